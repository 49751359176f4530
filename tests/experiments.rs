//! `probdrop-tui check` on the shipped experiments and on every malformed file of
//! tests/invalid_experiments/, run as a user runs it.

mod common;

use std::path::Path;
use std::process::Command;

use common::repo_root;

fn check(files: &[&Path]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
        .current_dir(repo_root())
        .arg("check")
        .args(files)
        .output()
        .expect("run probdrop-tui");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn shipped_experiments_are_valid() {
    let dir = repo_root().join("experiments");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.iter().any(|f| f.ends_with("quickstart.toml")));
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let (ok, out) = check(&refs);
    assert!(ok, "{out}");
    assert!(
        out.contains("quickstart.toml: ok (1 run: probdropblock"),
        "{out}"
    );
    // Shipped for GPU users with the data: valid, and says it cannot run here.
    assert!(
        out.contains("compare-cifar10-resnet18.toml: ok (15 runs: none, dropout, dropout2d, dropblock, probdropblock × seeds [1, 2, 3])"),
        "{out}"
    );
    assert!(
        out.contains("warning: no run can start here until the data is there"),
        "{out}"
    );
}

#[test]
fn every_malformed_file_is_refused_with_its_message_and_position() {
    let dir = repo_root().join("tests/invalid_experiments");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "only {} malformed files", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let at = text
            .lines()
            .find_map(|l| l.strip_prefix("# at: "))
            .unwrap_or_else(|| panic!("{}: no `# at:` header", file.display()));
        let expects: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expects.is_empty(),
            "{}: no `# expect:` header",
            file.display()
        );
        let relative = file.strip_prefix(repo_root()).unwrap_or(file);
        let name = relative.display().to_string();
        // A file that is valid but cannot run here (its data is missing) is
        // refused by `run`, not by `check`.
        let by_run = text.lines().any(|l| l == "# command: run");
        let (ok, out) = if by_run {
            let runs = tempfile::tempdir().unwrap();
            let out = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
                .current_dir(repo_root())
                .arg("--plugins")
                .arg(repo_root().join("plugins"))
                .args(["run", "-q", "--runs"])
                .arg(runs.path())
                .arg(relative)
                .output()
                .unwrap();
            let created = std::fs::read_dir(runs.path()).unwrap().count();
            assert_eq!(created, 0, "{name}: a run directory was created");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        } else {
            check(&[relative])
        };
        let mut problems = Vec::new();
        if ok {
            problems.push("accepted".to_string());
        }
        let first = out
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: cannot start: ");
        if !first.starts_with(&format!("{name}:{at}: ")) {
            problems.push(format!("first line should start with {name}:{at}:"));
        }
        for e in &expects {
            if !out.contains(e) {
                problems.push(format!("missing {e:?}"));
            }
        }
        // The offending line is quoted under the position.
        let line_no: usize = at.split(':').next().unwrap().parse().unwrap();
        let offending = text.lines().nth(line_no - 1).unwrap_or("");
        if !out.contains(&format!("{line_no} | {offending}")) {
            problems.push(format!("offending line {offending:?} not quoted"));
        }
        if !problems.is_empty() {
            failures.push(format!("{name}: {}\n{out}", problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_missing_file_and_several_files_are_reported_together() {
    let (ok, out) = check(&[
        Path::new("experiments/quickstart.toml"),
        Path::new("tests/invalid_experiments/zero-epochs.toml"),
        Path::new("experiments/no-such-file.toml"),
    ]);
    assert!(!ok);
    assert!(out.contains("quickstart.toml: ok"), "{out}");
    assert!(out.contains("zero-epochs.toml:21:10:"), "{out}");
    assert!(
        out.contains("no-such-file.toml:1:1: cannot read the file"),
        "{out}"
    );
    assert!(out.contains("2 of 3 experiment file(s) invalid"), "{out}");
}
