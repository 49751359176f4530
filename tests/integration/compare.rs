//! `probdrop-tui compare` end to end: the table's numbers against the run
//! directories, a killed compare that repeats no finished run, and one run
//! again over runs that started from another configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::{Tiny, kill_once_a_run_is_done, repo_root};
use probdrop_tui::run::comparison::{self as compare, Manifest};
use probdrop_tui::run::dir::{self, RunDir, State};
use probdrop_tui::run::provenance::{ConfigChange, Provenance};

/// One strategy (DropBlock) in the file: compare adds the `none` baseline.
fn experiment(dir: &Path, epochs: usize, train_limit: usize) -> PathBuf {
    let train = format!("epochs = {epochs}\neval_every = 4\ncheckpoint_every = 4\nlog_every = 1");
    Tiny {
        seeds: "[1, 2]",
        train_limit,
        train: &train,
        strategies: "[[strategy]]\nplugin = \"dropblock\"\nparams = { block_size = 3 }\n\
                     schedule = { kind = \"linear\", end = 0.2 }",
        ..Tiny::default()
    }
    .write(&dir.join("tiny.toml"))
}

fn compare_cmd(cwd: &Path, jobs: usize) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"));
    cmd.current_dir(cwd)
        .arg("--plugins")
        .arg(repo_root().join("plugins"))
        .args(["compare", "tiny.toml", "--jobs", &jobs.to_string()]);
    cmd
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
    (m, v.sqrt())
}

#[test]
fn the_table_matches_the_run_directories() {
    let tmp = tempfile::tempdir().unwrap();
    experiment(tmp.path(), 1, 256);
    let stdout = ok(compare_cmd(tmp.path(), 2).output().unwrap());
    let cdir = tmp.path().join("compare/tiny");
    let manifest = Manifest::load(&cdir).unwrap();
    assert_eq!(manifest.strategies, ["none", "dropblock"]);
    assert_eq!(manifest.seeds, [1, 2]);
    assert_eq!(manifest.runs.len(), 4);

    let csv = std::fs::read_to_string(cdir.join(compare::TABLE_CSV)).unwrap();
    let rows: Vec<Vec<String>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let col = |row: &[String], i: usize| row[i].parse::<f64>().unwrap();
    let mut finals_of = Vec::new();
    for (row, label) in rows.iter().zip(["none", "dropblock"]) {
        assert_eq!(row[0], label);
        assert_eq!((row[1].as_str(), row[2].as_str()), ("2", "2"));
        // Independently of the compare code: the trainer's own status.json.
        let (finals, bests): (Vec<f64>, Vec<f64>) = manifest
            .runs
            .iter()
            .filter(|e| e.label == label)
            .map(|e| {
                let s = RunDir::new(&e.dir).status().unwrap();
                assert_eq!(s.state, State::Done);
                (s.last_val_acc.unwrap(), s.best_val_acc.unwrap())
            })
            .unzip();
        let (fm, fsd) = mean_sd(&finals);
        let (bm, bsd) = mean_sd(&bests);
        assert!((col(row, 3) - fm).abs() < 1e-12, "{label} final mean");
        assert!((col(row, 4) - fsd).abs() < 1e-12, "{label} final sd");
        assert!((col(row, 7) - bm).abs() < 1e-12, "{label} best mean");
        assert!((col(row, 8) - bsd).abs() < 1e-12, "{label} best sd");
        // The 95 % interval: mean ± t(0.975, 1) · sd / √2.
        let half = 12.706204736174694 * fsd / 2f64.sqrt();
        assert!((col(row, 5) - (fm - half)).abs() < 1e-9, "{label} CI low");
        assert!((col(row, 6) - (fm + half)).abs() < 1e-9, "{label} CI high");
        finals_of.push(finals);
    }
    // Δ against the baseline, paired by seed (the runs are in seed order).
    let delta = (finals_of[1][0] - finals_of[0][0] + finals_of[1][1] - finals_of[0][1]) / 2.0;
    assert!((col(&rows[1], 11) - delta).abs() < 1e-12);
    assert!(rows[0][11].is_empty(), "no Δ for the baseline itself");
    let p = col(&rows[1], 12);
    assert!(p > 0.0 && p <= 1.0, "p {p}");

    // The same table in the Markdown file and on stdout.
    let md = std::fs::read_to_string(cdir.join(compare::TABLE_MD)).unwrap();
    let line = format!(
        "| none | 2/2 | {:.2} ± {:.2} |",
        100.0 * mean_sd(&finals_of[0]).0,
        100.0 * mean_sd(&finals_of[0]).1
    );
    assert!(md.contains(&line), "{line}\n{md}");
    assert!(stdout.contains(&line), "{stdout}");
    let runs_csv = std::fs::read_to_string(cdir.join(compare::RUNS_CSV)).unwrap();
    assert_eq!(runs_csv.lines().count(), 5);
    // One test against the baseline: Holm leaves its p as it is.
    assert!(md.contains("| p (Holm, 1 tests) |"), "{md}");
    assert!((col(&rows[1], 17) - p).abs() < 1e-12, "Holm p");
    // Its figures beside the reports.
    for figure in ["comparison.png", "comparison.svg"] {
        assert!(cdir.join(figure).is_file(), "no {figure}");
    }
    the_comparison_draws_its_figure(tmp.path());
    the_comparison_exports_into_its_own_folder(tmp.path(), &manifest);
}

/// Issue 34, item 19: `export compare/tiny --format csv` writes each run's
/// files under `OUT/tiny/<run>/`, not flat beside every other export.
fn the_comparison_exports_into_its_own_folder(cwd: &Path, manifest: &Manifest) {
    let out = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
        .current_dir(cwd)
        .args([
            "export",
            "compare/tiny",
            "--format",
            "csv",
            "--out",
            "exports",
        ])
        .output()
        .unwrap();
    let written = ok(out);
    let folders: Vec<String> = std::fs::read_dir(cwd.join("exports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(folders, ["tiny"], "{written}");
    for e in manifest.current() {
        let name = e.dir.file_name().unwrap().to_string_lossy();
        let metrics = format!("exports/tiny/{name}/metrics.csv");
        assert!(
            written.lines().any(|l| l == metrics),
            "{metrics} in {written}"
        );
        assert!(cwd.join(&metrics).is_file(), "{metrics}");
    }
}

/// `export compare/tiny --format png`: one figure of both strategies.
fn the_comparison_draws_its_figure(cwd: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
        .current_dir(cwd)
        .args(["export", "compare/tiny", "--format", "png", "--out", "figs"])
        .output()
        .unwrap();
    let written = ok(out);
    assert_eq!(written.trim(), "figs/tiny/comparison.png");
    let png = image::open(cwd.join("figs/tiny/comparison.png")).unwrap();
    let (w, h) = probdrop_tui::export::figures::SIZE;
    assert_eq!((png.width(), png.height()), (w, h));
}

#[test]
fn a_killed_compare_started_again_repeats_no_finished_run() {
    let tmp = tempfile::tempdir().unwrap();
    // Long enough that the kill lands while later runs are still to come.
    experiment(tmp.path(), 2, 1024);
    let mut first = compare_cmd(tmp.path(), 1)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cdir = tmp.path().join("compare/tiny");
    let done = kill_once_a_run_is_done(&mut first, &cdir, Duration::from_secs(120));
    let before: Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> = done
        .iter()
        .map(|d| {
            let f = d.join(dir::METRICS);
            (
                d.clone(),
                std::fs::read(&f).unwrap(),
                std::fs::metadata(&f).unwrap().modified().unwrap(),
            )
        })
        .collect();

    let out = compare_cmd(tmp.path(), 1).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    // "… = 4 runs; K finished, …": at least those seen finished before the kill.
    let finished: usize = stderr
        .split("runs; ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("no summary line: {stderr}"));
    assert!(finished >= done.len(), "{stderr}");
    for (d, metrics, modified) in before {
        let f = d.join(dir::METRICS);
        assert_eq!(
            std::fs::read(&f).unwrap(),
            metrics,
            "{} retrained",
            d.display()
        );
        assert_eq!(std::fs::metadata(&f).unwrap().modified().unwrap(), modified);
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !stderr.contains(&format!("({})", d.display())),
            "{name} started again: {stderr}"
        );
    }
    // Four runs in all, each finished once: no directory was made twice.
    let m = Manifest::load(&cdir).unwrap();
    assert_eq!(m.runs.len(), 4);
    assert_eq!(dir::list_runs(&tmp.path().join("runs")).len(), 4);
    for e in &m.runs {
        assert_eq!(RunDir::new(&e.dir).status().unwrap().state, State::Done);
        // Steps logged once each, none missing.
        let steps: Vec<u64> = RunDir::new(&e.dir)
            .metrics()
            .iter()
            .filter(|l| l.split == "train" && l.metric == "loss")
            .map(|l| l.step)
            .collect();
        let expected: Vec<u64> = (1..=steps.len() as u64).collect();
        assert_eq!(steps, expected, "{}", e.dir.display());
    }
}

/// Issue 20: `--devices` names GPUs this build can open, and replaces
/// `--jobs` and `--device`; on a machine (or build) without one it says so
/// before creating anything.
#[test]
fn devices_are_checked_before_any_run_is_made() {
    let cwd = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compare-devices");
    let _ = std::fs::remove_dir_all(&cwd);
    std::fs::create_dir_all(&cwd).unwrap();
    experiment(&cwd, 1, 64);
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
            .current_dir(&cwd)
            .arg("--plugins")
            .arg(repo_root().join("plugins"))
            .args(["compare", "tiny.toml"])
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["--devices", "cuda:7"]);
    assert!(
        err.contains("cuda:7 is not a CUDA device here (devices here: cpu"),
        "{err}"
    );
    assert!(run(&["--devices", "all"]).contains("sees no CUDA device"));
    assert!(run(&["--devices", "all", "--jobs", "2"]).contains("cannot be used with"));
    assert!(run(&["--jobs-per-device", "2"]).contains("--devices"));
    assert!(
        !cwd.join("runs").exists(),
        "no run directory before the devices are known"
    );
}

/// What a trainer leaves after a live change of DropBlock's block size
/// (3 → 5 after step 1): the configuration in force at the end in
/// `experiment.toml`, the change in `provenance.json`.
fn change_block_size_live(run: &RunDir) {
    let mut now = run.experiment().unwrap();
    now.strategy[0]
        .params
        .insert("block_size".into(), toml::Value::Integer(5));
    let text = toml::to_string(&now).unwrap();
    dir::write_atomic(&run.file(dir::EXPERIMENT), text.as_bytes()).unwrap();
    let change = ConfigChange {
        after_step: 1,
        key: "strategy.params.block_size".into(),
        from: Some(toml::Value::Integer(3)),
        to: Some(toml::Value::Integer(5)),
    };
    Provenance::record_changes(run, vec![change]).unwrap();
}

/// Issue 33: the runs of a comparison start alike. Run again after a live
/// change mid-run (every run started from the file as it is), compare goes
/// on and leaves the changed run out; after an edit of a key the runs start
/// with, it refuses before making or rewriting anything, naming the key,
/// both values and the runs.
#[test]
fn a_compare_run_again_refuses_runs_that_started_from_another_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(tmp.path(), 1, 64);
    ok(compare_cmd(tmp.path(), 2).output().unwrap());
    let cdir = tmp.path().join("compare/tiny");
    let before = Manifest::load(&cdir).unwrap();
    let changed = before.entry("dropblock", 2).unwrap();
    change_block_size_live(&RunDir::new(&changed.dir));

    let stdout = ok(compare_cmd(tmp.path(), 2).output().unwrap());
    assert!(stdout.contains("Left out: dropblock seed 2"), "{stdout}");

    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("lr = 0.05", "lr = 0.1")).unwrap();
    // One seed more too: refused before its runs are made.
    let out = compare_cmd(tmp.path(), 2)
        .args(["--seeds", "3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for e in &before.runs {
        let line = format!(
            "{} ({} seed {}): optimizer.lr = 0.05 when it started, 0.1 now",
            e.dir.display(),
            e.label,
            e.seed
        );
        assert!(stderr.contains(&line), "{line}\n{stderr}");
    }
    assert!(
        stderr.contains("Put the file (and the options) back"),
        "{stderr}"
    );
    assert_eq!(Manifest::load(&cdir).unwrap(), before);
    assert_eq!(dir::list_runs(&tmp.path().join("runs")).len(), 4);
}
