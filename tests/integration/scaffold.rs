//! `new-strategy` as a user runs it: a crate written outside the project,
//! built and listed; its own statistics test passing against this binary; its
//! cross-parameter rule reported by `check` and refused by `run` before
//! anything is created.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{self, Tiny, bin};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A project-like directory whose cargo builds offline into the fixtures'
/// target (abi_stable built once for every test).
fn offline_root(root: &Path) -> PathBuf {
    common::fixtures::fixtures();
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-fixtures/target");
    std::fs::create_dir_all(root.join(".cargo")).unwrap();
    std::fs::write(
        root.join(".cargo/config.toml"),
        format!("[net]\noffline = true\n[build]\ntarget-dir = {target:?}\n"),
    )
    .unwrap();
    root.join("plugins")
}

fn run_in(root: &Path, args: &[&str]) -> Output {
    bin().current_dir(root).args(args).output().unwrap()
}

#[test]
fn new_strategy_writes_builds_and_lists_a_crate_whose_rules_check_enforces() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let plugins = offline_root(root);
    let out = run_in(root, &["new-strategy", "band-rows"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "band-rows 0.1.0 [crate] interface {}",
            plugin_api::INTERFACE_VERSION
        )),
        "{stdout}"
    );
    assert!(stdout.contains("min_rows (int, default 1"), "{stdout}");
    let krate = plugins.join("band-rows");
    // Outside the project: a workspace of its own, on the project's lock file.
    let manifest = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("[workspace]"), "{manifest}");
    assert!(krate.join("Cargo.lock").is_file());
    // A second time is refused rather than overwriting the user's work.
    let again = run_in(root, &["new-strategy", "band-rows"]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("exists already"));

    rules_are_checked_before_a_run_starts(root);
    the_crates_own_statistics_test_passes(&krate);
}

/// `min_rows > max_rows` passes the schema (both in range) and breaks the
/// skeleton's own rule: `check` names it at the parameters, once, in the
/// plugin's words; `run` refuses and creates no run directory.
fn rules_are_checked_before_a_run_starts(root: &Path) {
    let file = Tiny {
        train: "epochs = 1",
        strategies: "[[strategy]]\nplugin = \"band-rows\"\n\
                     params = { min_rows = 7, max_rows = 6 }\n\
                     schedule = { kind = \"constant\", p = 0.1 }\n",
        ..Tiny::default()
    }
    .write(&root.join("bad.toml"));
    let out = run_in(root, &["check", file.to_str().unwrap()]);
    let said = text(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("bad.toml:")
            && said.contains(
                "`strategy[0].params`: band-rows: min_rows = 7 is larger than max_rows = 6"
            ),
        "{said}"
    );
    assert_eq!(said.matches("band-rows:").count(), 1, "{said}");
    let runs = root.join("runs");
    let out = run_in(root, &["run", file.to_str().unwrap(), "--quiet"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("min_rows = 7") || text(&out.stderr).contains("min_rows = 7")
    );
    assert!(!runs.exists(), "a refused run created {}", runs.display());
}

/// The generated tests/statistics.rs samples masks through this binary.
fn the_crates_own_statistics_test_passes(krate: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(krate)
        .args(["test", "--offline", "--release", "--test", "statistics"])
        .env("PROBDROP_TUI", env!("CARGO_BIN_EXE_probdrop-tui"))
        .output()
        .unwrap();
    let said = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert!(said.contains("test result: ok. 3 passed"), "{said}");
}
