//! Sweeps through `compare` (issue 37): each cell an arm of its own, a row
//! per cell in compare.csv with a column per swept key, and a killed sweep
//! started again running only what is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{Tiny, kill_once_a_run_is_done, repo_root};
use probdrop_tui::run::comparison::{Manifest, TABLE_CSV};
use probdrop_tui::run::dir::{self, EventKind, RunDir, State};

/// DropBlock over block_size × p, 2 × 2, one seed.
fn sweep_file(dir: &Path, train_limit: usize) -> PathBuf {
    Tiny {
        train_limit,
        train: "epochs = 1\nlog_every = 1",
        strategies: "[[strategy]]\nplugin = \"dropblock\"\nparams = { block_size = 3 }\n\
                     schedule = { kind = \"linear\", end = 0.1 }\n\
                     sweep = { block_size = [3, 5], p = [0.05, 0.3] }",
        ..Tiny::default()
    }
    .write(&dir.join("tiny.toml"))
}

fn compare_cmd(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"));
    cmd.current_dir(cwd)
        .arg("--plugins")
        .arg(repo_root().join("plugins"))
        .args(["compare", "tiny.toml", "--jobs", "2"]);
    cmd
}

const CELLS: [&str; 4] = [
    "dropblock block_size=3 p=0.05",
    "dropblock block_size=3 p=0.3",
    "dropblock block_size=5 p=0.05",
    "dropblock block_size=5 p=0.3",
];

#[test]
fn a_two_by_two_sweep_compares_each_cell_with_its_values_as_columns() {
    let tmp = tempfile::tempdir().unwrap();
    sweep_file(tmp.path(), 128);
    let out = compare_cmd(tmp.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cdir = tmp.path().join("compare/tiny");
    let manifest = Manifest::load(&cdir).unwrap();
    let mut want = vec!["none"];
    want.extend(CELLS);
    assert_eq!(manifest.strategies, want);
    let csv = std::fs::read_to_string(cdir.join(TABLE_CSV)).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header[..5],
        ["strategy", "arm", "block_size", "p", "seeds_finished"]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 5, "{csv}");
    // The heatmap writes each cell's mean final accuracy, in percent, with
    // its keys on the axes.
    let svg = std::fs::read_to_string(cdir.join("sweep.svg")).unwrap();
    assert!(cdir.join("sweep.png").is_file());
    let mean_at = header.iter().position(|h| *h == "final_mean").unwrap();
    for row in &rows[1..] {
        let mean: f64 = row[mean_at].parse().unwrap();
        assert!(
            svg.contains(&format!("{:.2}", 100.0 * mean)),
            "{row:?} not drawn"
        );
    }
    let texts: Vec<&str> = svg
        .split("</text>")
        .filter_map(|t| t.rsplit('>').next())
        .map(str::trim)
        .collect();
    assert!(
        texts.contains(&"block_size") && texts.contains(&"p"),
        "{texts:?}"
    );
    assert_eq!(rows[0][..5], ["none", "none", "", "", "1"]);
    // compare.md names the arm's best cell: a row with the highest mean.
    let mean = |r: &Vec<&str>| r[mean_at].parse::<f64>().unwrap();
    let top = rows[1..].iter().map(mean).fold(f64::MIN, f64::max);
    let md = std::fs::read_to_string(cdir.join("compare.md")).unwrap();
    assert!(
        rows[1..]
            .iter()
            .filter(|r| mean(r) == top)
            .any(|r| md.contains(&format!("| dropblock | {} |", r[0]))),
        "{md}"
    );
    for (row, label) in rows[1..].iter().zip(CELLS) {
        let (b, p) = (label.contains("block_size=5"), label.contains("p=0.3"));
        let values = [if b { "5" } else { "3" }, if p { "0.3" } else { "0.05" }];
        assert_eq!(
            row[..4],
            [label, "dropblock", values[0], values[1]],
            "{csv}"
        );
        // The run trained with the cell's values, not the arm's.
        let entry = manifest.entry(label, 1).unwrap();
        let file = RunDir::new(&entry.dir).experiment().unwrap();
        let s = &file.strategy[0];
        assert_eq!(
            s.params["block_size"].as_integer(),
            Some(if b { 5 } else { 3 })
        );
        assert_eq!(s.schedule.end, Some(if p { 0.3 } else { 0.05 }));
        assert!(s.sweep.is_none());
        // And logged the rate it was given: p ramps towards the cell's end
        // (three quarters of it at the last of four steps).
        let last_p = RunDir::new(&entry.dir)
            .metrics()
            .iter()
            .filter(|l| l.split == "train" && l.metric == "loss")
            .map(|l| l.p)
            .next_back()
            .unwrap();
        let end = s.schedule.end.unwrap();
        assert!((0.5 * end..=end).contains(&last_p), "{label}: p {last_p}");
    }
}

#[test]
fn a_killed_sweep_started_again_runs_only_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    // Long enough that the kill lands while cells are still to come.
    sweep_file(tmp.path(), 1024);
    let mut first = compare_cmd(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cdir = tmp.path().join("compare/tiny");
    let done = kill_once_a_run_is_done(&mut first, &cdir, Duration::from_secs(180));
    let before: Vec<(PathBuf, Vec<u8>)> = done
        .iter()
        .map(|d| (d.clone(), std::fs::read(d.join(dir::METRICS)).unwrap()))
        .collect();
    let out = compare_cmd(tmp.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    for (d, metrics) in before {
        assert_eq!(
            std::fs::read(d.join(dir::METRICS)).unwrap(),
            metrics,
            "retrained"
        );
        assert!(!stderr.contains(&format!("({})", d.display())), "{stderr}");
    }
    // Five runs (the baseline and four cells), each made once and finished.
    let m = Manifest::load(&cdir).unwrap();
    assert_eq!(m.runs.len(), 5);
    assert_eq!(dir::list_runs(&tmp.path().join("runs")).len(), 5);
    for e in &m.runs {
        assert_eq!(RunDir::new(&e.dir).status().unwrap().state, State::Done);
    }
}

/// `check` counts a sweep's cells and runs before anything starts.
#[test]
fn check_counts_the_cells_and_runs_of_a_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let file = Tiny {
        seeds: "[1, 2, 3]",
        train: "epochs = 1",
        strategies: "[[strategy]]\nplugin = \"none\"\n\n[[strategy]]\nplugin = \"dropblock\"\n\
                     params = { block_size = 5 }\nschedule = { kind = \"linear\", end = 0.1 }\n\
                     sweep = { block_size = [3, 5, 7], p = [0.05, 0.1, 0.2] }\n\n\
                     [[strategy]]\nplugin = \"probdropblock\"\n\
                     schedule = { kind = \"linear\", end = 0.1 }\n\
                     sweep = { p = { min = 0.05, max = 0.2, log = true, count = 4 } }",
        ..Tiny::default()
    }
    .write(&tmp.path().join("sweep.toml"));
    let out = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
        .arg("--plugins")
        .arg(repo_root().join("plugins"))
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("ok (42 runs: none, dropblock block_size=3 p=0.05, "),
        "{text}"
    );
    assert!(
        text.contains("  dropblock sweeps block_size × p: 3 × 3 = 9 cells × 3 seeds = 27 runs"),
        "{text}"
    );
    assert!(
        text.contains("  probdropblock sweeps p: 4 drawn = 4 cells × 3 seeds = 12 runs"),
        "{text}"
    );
}

/// Successive halving on a sweep built to have one bad cell (dropout at
/// p = 1 zeroes every activation at its slot while training): at half of
/// training that cell stops for good, reported as halted, and the other
/// trains to the end.
#[test]
fn halving_stops_the_bad_cell_at_its_rung_and_finishes_the_good_one() {
    let tmp = tempfile::tempdir().unwrap();
    Tiny {
        seeds: "[1, 2]",
        train: "epochs = 2\neval_every = 4\nlog_every = 1",
        strategies: "[[strategy]]\nplugin = \"dropout\"\n\
                     schedule = { kind = \"constant\", p = 0.0 }\n\
                     sweep = { p = [0.0, 1.0] }\n\n\
                     [sweep]\nhalving = { rungs = [0.5], keep = 0.5 }",
        ..Tiny::default()
    }
    .write(&tmp.path().join("tiny.toml"));
    let out = compare_cmd(tmp.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let cdir = tmp.path().join("compare/tiny");
    let m = Manifest::load(&cdir).unwrap();
    let (good, bad) = ("dropout p=0.0", "dropout p=1.0");
    assert_eq!(m.halted.keys().collect::<Vec<_>>(), [bad], "{stderr}");
    assert_eq!(m.halted[bad], 0.5);
    assert_eq!(m.cleared.get(good), Some(&1));
    for seed in [1, 2] {
        let run = |label| RunDir::new(&m.entry(label, seed).unwrap().dir);
        let (g, b) = (run(good).status().unwrap(), run(bad).status().unwrap());
        assert_eq!((g.state, g.step), (State::Done, 32));
        // The good cell too waited at the rung, then went on from there.
        let stops: Vec<u64> = (run(good).events().into_iter())
            .filter(|e| e.kind == EventKind::Stopped)
            .map(|e| e.step)
            .collect();
        assert_eq!(stops, [16]);
        // 512 images in batches of 32, two epochs: the rung is step 16,
        // where the trainer stops itself, however fast it is.
        assert_eq!((b.state, b.step), (State::Stopped, 16));
    }
    let md = std::fs::read_to_string(cdir.join("compare.md")).unwrap();
    assert!(md.contains("halted at 50 %"), "{md}");
    // Run again: nothing left to train, the halted cell stays where it is.
    let again = compare_cmd(tmp.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr).into_owned();
    assert!(again.status.success(), "{stderr}");
    assert!(!stderr.contains("started "), "{stderr}");
}
