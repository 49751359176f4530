//! `new-strategy` as a user runs it: a crate written outside the project,
//! built and listed; its own statistics test passing against this binary; its
//! cross-parameter rule reported by `check` and refused by `run` before
//! anything is created. Inside a copy of the project (a second clone, built
//! elsewhere): a member of that workspace, which still loads; and a crate that
//! would break it removed.

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
    the_test_command_is_the_one_the_readme_gives(&stdout);
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

/// Issue 34, item 18: one test command, printed and documented.
fn the_test_command_is_the_one_the_readme_gives(stdout: &str) {
    let command = probdrop_tui::scaffold::TEST_COMMAND;
    let test_it = stdout.lines().find(|l| l.contains("test it:")).unwrap();
    assert!(test_it.ends_with(command), "{stdout}");
    let readme = std::fs::read_to_string(common::repo_root().join("plugins/README.md")).unwrap();
    assert!(
        readme.replace('\n', " ").contains(command),
        "plugins/README.md does not give `{command}`"
    );
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
    // The command `new-strategy` prints, after `cargo`.
    let printed = probdrop_tui::scaffold::TEST_COMMAND
        .split_whitespace()
        .skip(1);
    let out = Command::new(cargo)
        .current_dir(krate)
        .args(printed)
        .args(["--offline", "--test", "statistics"])
        .env("PROBDROP_TUI", env!("CARGO_BIN_EXE_probdrop-tui"))
        .output()
        .unwrap();
    let said = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert!(said.contains("test result: ok. 3 passed"), "{said}");
}

/// The parts of the project a plugin crate needs, copied to `root` as a
/// second clone would have them: a workspace of plugin-api and plugins/*
/// (with one bundled plugin), its lock file.
fn project_copy(root: &Path) -> PathBuf {
    let plugins = offline_root(root);
    let repo = common::repo_root();
    crate::dashboard::copy_dir(&repo.join("plugin-api"), &root.join("plugin-api"));
    crate::dashboard::copy_dir(&repo.join("plugins/dropout"), &plugins.join("dropout"));
    std::fs::copy(repo.join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\"plugin-api\", \"plugins/*\"]\n",
    )
    .unwrap();
    plugins
}

/// `cargo metadata` of the copy's workspace: what fails for every plugin
/// when one member breaks it.
fn workspace_loads(root: &Path) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .current_dir(root)
        .args([
            "metadata",
            "--offline",
            "--no-deps",
            "--format-version",
            "1",
        ])
        .output()
        .unwrap()
}

/// Issue 34, item 2: with a binary built from another checkout, the crate
/// joins the workspace of the plugins directory in use, reaching its
/// plugin-api by a relative path, and the workspace still loads.
#[test]
fn new_strategy_in_another_clone_joins_its_workspace() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let plugins = project_copy(root);
    let out = run_in(root, &["new-strategy", "band-rows"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("band-rows 0.1.0 [crate]"), "{stdout}");
    let manifest = std::fs::read_to_string(plugins.join("band-rows/Cargo.toml")).unwrap();
    assert!(
        manifest.contains("plugin-api = { path = \"../../plugin-api\" }"),
        "{manifest}"
    );
    assert!(!manifest.contains("[workspace]"), "{manifest}");
    let loads = workspace_loads(root);
    let said = text(&loads.stdout);
    assert!(loads.status.success(), "{}", text(&loads.stderr));
    assert!(said.contains("\"name\":\"band-rows\""), "{said}");
    let listed = text(&run_in(root, &["plugins"]).stdout);
    assert!(listed.contains("dropout 1.0.0 [bundled]"), "{listed}");
}

/// Issue 34, item 2: a crate that does not build (here its name clashes with
/// the workspace's plugin-api) is removed, saying so, and the workspace
/// loads as before.
#[test]
fn a_new_crate_that_breaks_the_workspace_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let plugins = project_copy(root);
    let out = run_in(root, &["new-strategy", "plugin-api"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        stderr.contains("did not build, so it was removed")
            && stderr.contains("two packages named `plugin-api`"),
        "{stderr}"
    );
    assert!(!plugins.join("plugin-api").exists());
    assert!(workspace_loads(root).status.success());
}
