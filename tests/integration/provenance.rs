//! Issue 33: every run records the code that ran, `provenance.json`: the
//! binary's checkout and each strategy library by the SHA-256 of the bytes
//! loaded, checked against `sha256sum` of the file.

use std::process::Command;

use crate::common::fixtures::fixture;
use crate::common::harness::*;
use probdrop_tui::run::dir;
use probdrop_tui::run::provenance::{GIT_COMMIT, Provenance};

/// What `sha256sum` says of `path`.
fn sha256sum(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A run records the host's commit and its library's hash; a rebuild that
/// keeps the version number is still told apart: a new entry with the new
/// hash and the step it took effect, and a reload message naming both hashes.
#[test]
fn a_run_records_its_code_and_a_reload_with_the_same_version_a_new_hash() {
    let s = setup("probe-v1", "epochs = 50");
    let first = sha256sum(&s.library);
    let (mut child, run) = s.start_run();
    wait_for("step 2", || last_step(&run) >= 2);
    let record = Provenance::of(&run);
    assert_eq!(record.starts.len(), 1);
    assert_eq!(record.starts[0].commit, GIT_COMMIT);
    assert_eq!(record.libraries.len(), 1);
    assert_eq!(record.libraries[0].sha256, first);
    assert_eq!(record.libraries[0].version, "1.0.0");
    // The same crate version, other bytes: a rebuild that forgot to bump it.
    let mut bytes = std::fs::read(fixture("probe-v1")).unwrap();
    bytes.extend_from_slice(b"rebuilt");
    let tmp = s.library.with_extension("partial");
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, &s.library).unwrap();
    let second = sha256sum(&s.library);
    assert_ne!(first, second);
    wait_for("the reload", || event(&run, "reload").is_some());
    let reload = event(&run, "reload").unwrap();
    let want = format!("probe 1.0.0 ({}) → 1.0.0 ({})", &first[..8], &second[..8]);
    assert_eq!(reload.message, want);
    let record = Provenance::of(&run);
    assert_eq!(record.libraries.len(), 2, "{record:?}");
    assert_eq!(record.libraries[1].sha256, second);
    assert_eq!(record.libraries[1].after_step, reload.step);
    stop(&run, &mut child);
    assert_eq!(run.status().unwrap().state, dir::State::Stopped);
}

/// Every library a run used is kept once by its hash beside the runs, the
/// very bytes `sha256sum` named; it stays while any run (archived ones too)
/// refers to it and goes with the last one deleted.
#[test]
fn the_run_store_keeps_each_library_once_while_a_run_refers_to_it() {
    use probdrop_tui::run::notes;
    use probdrop_tui::run::store::Store;
    let s = setup("probe-v1", "epochs = 1\nmax_steps = 2");
    let sha = sha256sum(&s.library);
    for _ in 0..2 {
        assert!(s.run_file(&s.file).status.success());
    }
    let runs = dir::list_runs(&s.runs);
    assert_eq!(runs.len(), 2);
    let store = Store::of_run(&runs[0].path);
    let stored = store.library("probe", &sha).unwrap();
    assert_eq!(sha256sum(&stored), sha);
    let entries = || {
        std::fs::read_dir(&store.dir)
            .unwrap()
            .filter(|e| {
                !e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count()
    };
    assert_eq!(entries(), 1, "one copy for both runs");
    // The data's hashes were cached beside it for the second run.
    assert!(store.dir.join(".data-hashes.json").is_file());
    let record = Provenance::of(&runs[0]);
    let data = record.data.expect("the data is recorded");
    assert!(data.files.len() >= 4, "{:?}", data.files);

    notes::delete(&runs[0]).unwrap();
    assert!(
        store.library("probe", &sha).is_ok(),
        "the other run still uses it"
    );
    let archived = notes::archive(&runs[1]).unwrap();
    assert!(
        store.library("probe", &sha).is_ok(),
        "an archived run still uses it"
    );
    notes::delete(&dir::RunDir::new(archived)).unwrap();
    assert!(
        store.library("probe", &sha).is_err(),
        "no run refers to it any more"
    );
    assert_eq!(entries(), 0);
}
