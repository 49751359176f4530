//! Interface versions and hot reload, with fixture plugins built from
//! `tests/fixtures/probe.rs` (see `common/fixtures.rs`).

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::fixtures::fixture;
use crate::common::*;
use probdrop_tui::plugins::watch::{LiveStrategy, ReloadEvent, SwapOutcome, Watcher};
use probdrop_tui::plugins::{Library, MaskContext};

fn probe_value(live: &LiveStrategy) -> f32 {
    let x = tensor([1, 2, 4, 4], vec![1.0; 32]);
    to_vec(
        live.strategy
            .mask(&x, &MaskContext::training(0.5, 1))
            .unwrap(),
    )[0]
}

#[test]
fn a_plugin_of_another_major_version_is_refused_naming_both() {
    let err = Library::load(&fixture("probe-other-major")).unwrap_err().0;
    assert!(
        err.contains("2.0.0") && err.contains(plugin_api::INTERFACE_VERSION),
        "{err}"
    );
}

#[test]
fn plugins_built_against_older_minors_still_load_and_run() {
    for (fixture_name, interface, value) in [
        ("probe-old-minor", "1.0.0", 3.0),
        ("probe-minor-1-2", "1.2.0", 12.0),
    ] {
        let lib = Library::load(&fixture(fixture_name)).expect("older minor loads");
        assert_eq!(lib.interface, interface);
        let live = LiveStrategy::new(&lib, vec![]).unwrap();
        assert_eq!(probe_value(&live), value, "{fixture_name}");
    }
}

#[test]
fn a_wrong_shaped_mask_is_an_error_and_fails_the_smoke_test() {
    let lib = Library::load(&fixture("probe-bad-shape")).unwrap();
    let s = lib.create(&[]).unwrap();
    let x = tensor([1, 2, 4, 4], vec![1.0; 32]);
    let err = s.mask(&x, &MaskContext::training(0.5, 1)).unwrap_err().0;
    assert!(err.contains("does not broadcast"), "{err}");
    let smoke = probdrop_tui::plugins::watch::smoke_test(&lib).unwrap_err();
    assert!(smoke.contains("smoke test failed"), "{smoke}");
}

#[test]
fn a_panicking_plugin_returns_an_error_and_the_host_goes_on() {
    let lib = Library::load(&fixture("probe-panics")).unwrap();
    let s = lib.create(&[]).unwrap();
    let x = tensor([1, 2, 4, 4], vec![1.0; 32]);
    let err = s.mask(&x, &MaskContext::training(0.5, 1)).unwrap_err().0;
    assert!(
        err.contains("panicked") && err.contains("on purpose"),
        "{err}"
    );
    // And again: nothing was left poisoned.
    assert!(s.mask(&x, &MaskContext::training(0.5, 2)).is_err());
}

#[test]
fn a_file_that_is_not_a_library_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.so");
    std::fs::write(&path, b"definitely not ELF").unwrap();
    let err = Library::load(&path).unwrap_err().0;
    assert!(err.contains("not a loadable library"), "{err}");
}

/// Replaces `target` the way cargo and editors do: write beside it, then rename.
fn replace_atomically(source: &Path, target: &Path) {
    let tmp = target.with_extension("partial");
    std::fs::copy(source, &tmp).unwrap();
    std::fs::rename(&tmp, target).unwrap();
}

/// Runs the "training loop" (a mask per iteration, events drained at each step
/// boundary) until `done` says so or `limit` passes.
fn run_loop(
    live: &mut LiveStrategy,
    watcher: &Watcher,
    limit: Duration,
    log: &mut Vec<String>,
    mut done: impl FnMut(f32, &[String]) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        for event in watcher.drain() {
            match event {
                ReloadEvent::Ready { library, .. } => match live.offer(&library) {
                    Some(SwapOutcome::Swapped { to, .. }) => log.push(format!("swapped to {to}")),
                    Some(SwapOutcome::Refused { reason, .. }) => {
                        log.push(format!("refused: {reason}"))
                    }
                    None => {}
                },
                ReloadEvent::Refused { reason, .. } => log.push(format!("refused: {reason}")),
                ReloadEvent::BuildOutput { .. } | ReloadEvent::Gone { .. } => {}
            }
        }
        if done(probe_value(live), log) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Waits for a refusal that `matches`, checking that v2 keeps answering meanwhile.
fn expect_refusal(
    live: &mut LiveStrategy,
    watcher: &Watcher,
    log: &mut Vec<String>,
    what: &str,
    matches: impl Fn(&str) -> bool,
) {
    let before = log.len();
    let seen = run_loop(live, watcher, Duration::from_secs(10), log, |v, log| {
        assert_eq!(v, 2.0, "the running version changed");
        log[before..]
            .iter()
            .any(|l| l.starts_with("refused") && matches(l))
    });
    assert!(seen.is_some(), "{what} not reported: {log:?}");
}

#[test]
fn hot_reload_swaps_versions_and_refuses_broken_ones() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("probe.so");
    std::fs::copy(fixture("probe-v1"), &target).unwrap();
    let mut live = LiveStrategy::new(&Library::load(&target).unwrap(), vec![]).unwrap();
    let watcher = Watcher::start(dir.path(), trial()).unwrap();
    let mut log = Vec::new();
    assert_eq!(probe_value(&live), 1.0);

    // New version, atomic replace: taken.
    replace_atomically(&fixture("probe-v2"), &target);
    let took = run_loop(
        &mut live,
        &watcher,
        Duration::from_secs(10),
        &mut log,
        |v, _| v == 2.0,
    );
    // How fast is measured by `cargo bench --bench reload`, not asserted here.
    took.unwrap_or_else(|| panic!("v2 never took effect: {log:?}"));

    // Corrupt file, written in place: refused, v2 keeps answering.
    std::fs::write(&target, b"\x7fELF but not really").unwrap();
    expect_refusal(&mut live, &watcher, &mut log, "corrupt library", |l| {
        l.contains("not a loadable library")
    });

    // Truncated library: refused.
    let bytes = std::fs::read(fixture("probe-v1")).unwrap();
    std::fs::write(&target, &bytes[..bytes.len() / 3]).unwrap();
    expect_refusal(&mut live, &watcher, &mut log, "truncated library", |l| {
        l.contains("truncated")
    });

    // Another interface major: refused naming both versions.
    replace_atomically(&fixture("probe-other-major"), &target);
    expect_refusal(&mut live, &watcher, &mut log, "incompatible library", |l| {
        l.contains("2.0.0") && l.contains(plugin_api::INTERFACE_VERSION)
    });

    // A version built against the older minor interface is taken.
    replace_atomically(&fixture("probe-old-minor"), &target);
    let seen = run_loop(
        &mut live,
        &watcher,
        Duration::from_secs(10),
        &mut log,
        |v, _| v == 3.0,
    );
    assert!(seen.is_some(), "older-minor version not taken: {log:?}");
}

#[test]
fn a_changed_plugin_crate_is_rebuilt_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = common::fixtures::example_crate_in(dir.path());
    let found = probdrop_tui::plugins::discover(&plugins, &mut |_: &str| {}).unwrap();
    let lib = found
        .into_iter()
        .next()
        .unwrap()
        .outcome
        .expect("example builds");
    assert_eq!(
        (lib.info.name.as_str(), lib.info.version.as_str()),
        ("stripes", "0.1.0")
    );
    let mut live = LiveStrategy::new(&lib, vec![]).unwrap();
    let watcher = Watcher::start(&plugins, trial()).unwrap();
    // The author bumps the version: the crate is rebuilt and the new one swapped in.
    let manifest = plugins.join("my-strategy/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("version = \"0.1.0\"", "version = \"0.2.0\""),
    )
    .unwrap();
    let start = Instant::now();
    let mut built_lines = 0;
    let mut swapped = None;
    while start.elapsed() < Duration::from_secs(120) && swapped.is_none() {
        for event in watcher.drain() {
            match event {
                ReloadEvent::Ready { library, .. } => swapped = live.offer(&library),
                ReloadEvent::BuildOutput { .. } => built_lines += 1,
                ReloadEvent::Refused { reason, .. } => panic!("refused: {reason}"),
                ReloadEvent::Gone { path } => panic!("{} reported gone", path.display()),
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        swapped,
        Some(SwapOutcome::Swapped {
            name: "stripes".into(),
            from: "0.1.0".into(),
            to: "0.2.0".into()
        }),
        "({built_lines} build lines)"
    );
    assert_eq!(live.strategy.info.version, "0.2.0");
}

/// The watcher's trial process: the probdrop-tui binary this package builds.
fn trial() -> probdrop_tui::plugins::trial::Trial {
    probdrop_tui::plugins::trial::Trial::new(
        env!("CARGO_BIN_EXE_probdrop-tui"),
        probdrop_tui::plugins::trial::DEFAULT_DEADLINE,
    )
}
