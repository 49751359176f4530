//! Issue 33: `probdrop-tui reproduce RUN_DIR` re-runs a finished run from its
//! directory alone and shows it identical: after the strategy's library was
//! replaced, with a live edit and a hot reload in the original; and refuses,
//! naming what changed, when a stored library or the data is not as the run
//! used it.

use std::process::Output;

use crate::common::Tiny;
use crate::common::harness::*;
use probdrop_tui::run::dir::{self, RunDir};
use probdrop_tui::run::provenance::Provenance;
use probdrop_tui::run::store::Store;

/// The probe experiment of the fault suites with its data copied into the
/// setup (so that a test may change it) and `train` lines.
fn with_own_data(s: &Setup, train: &str) {
    let data = s.plugins.parent().unwrap().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let from = crate::common::repo_root().join("data/fashion-mnist-subset");
    for name in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::copy(from.join(name), data.join(name)).unwrap();
    }
    let train = format!("log_every = 1\nsnapshot_every = 0\n{train}");
    Tiny {
        name: "faults",
        seeds: "[3]",
        data: data.display().to_string(),
        train: &train,
        strategies: "[[strategy]]\nplugin = \"probe\"\nschedule = { kind = \"constant\", p = 0.1 }",
        ..Tiny::default()
    }
    .write(&s.file);
}

fn reproduce(s: &Setup, run: &RunDir, extra: &[&str]) -> Output {
    s.bin()
        .args(["reproduce", "-q"])
        .arg(&run.path)
        .args(extra)
        .output()
        .unwrap()
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A finished run of `steps` steps on the probe, trained to its end.
fn finished_run(s: &Setup, steps: u64) -> RunDir {
    with_own_data(s, &format!("epochs = 50\nmax_steps = {steps}"));
    let out = s.run_file(&s.file);
    assert!(out.status.success(), "{}", said(&out));
    let run = dir::list_runs(&s.runs).pop().unwrap();
    assert_eq!(run.status().unwrap().state, dir::State::Done);
    run
}

/// The replay `reproduce` made beside `run`.
fn replay_of(run: &RunDir) -> RunDir {
    let runs = run.path.parent().unwrap();
    dir::list_runs(runs)
        .into_iter()
        .find(|r| r.path != run.path && r.info().unwrap().experiment.ends_with("-replay"))
        .expect("a replay run directory")
}

#[test]
fn a_finished_run_replays_bit_for_bit_from_the_store_after_its_library_was_replaced() {
    let s = setup("probe-v1", "");
    let run = finished_run(&s, 12);
    // The strategy rebuilt with other code: the run's own stays in the store.
    s.replace("probe-v2");
    let out = reproduce(&s, &run, &[]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("identical: ") && said(&out).contains("over 12 steps, bit for bit"),
        "{}",
        said(&out)
    );
    let replay = replay_of(&run);
    let record = Provenance::of(&replay);
    assert_eq!(
        record.libraries[0].sha256,
        Provenance::of(&run).libraries[0].sha256,
        "the replay ran the stored library, not the one in plugins/"
    );
    // The trainers' `system/…` lines come with time, not steps.
    let logged = |r: &RunDir| {
        (r.metrics().iter())
            .filter(|m| !dir::metric::is_system(&m.metric))
            .count()
    };
    assert_eq!(logged(&run), logged(&replay));
}

#[test]
fn a_replay_stops_where_asked_and_compares_those_steps() {
    let s = setup("probe-v1", "");
    let run = finished_run(&s, 12);
    let out = reproduce(&s, &run, &["--steps", "5"]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("over 5 steps"), "{}", said(&out));
    let replay = replay_of(&run);
    assert_eq!(last_step(&replay), 5);
    assert_eq!(replay.status().unwrap().state, dir::State::Stopped);
}

#[test]
fn a_changed_byte_of_a_stored_library_or_of_the_data_is_named_and_nothing_is_replayed() {
    let s = setup("probe-v1", "");
    let run = finished_run(&s, 6);
    let sha = Provenance::of(&run).libraries[0].sha256.clone();
    let stored = Store::of_run(&run.path).library("probe", &sha).unwrap();
    let original = std::fs::read(&stored).unwrap();
    let mut bytes = original.clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&stored, &bytes).unwrap();
    let out = reproduce(&s, &run, &[]);
    assert!(!out.status.success());
    assert!(
        said(&out).contains(&format!("{} was changed", stored.display()))
            && said(&out).contains(&sha),
        "{}",
        said(&out)
    );
    // Refused even --anyway: other code is not a replay.
    assert!(!reproduce(&s, &run, &["--anyway"]).status.success());
    std::fs::write(&stored, &original).unwrap();

    let data = s.plugins.parent().unwrap().join("data");
    let labels = data.join("t10k-labels-idx1-ubyte.gz");
    let mut bytes = std::fs::read(&labels).unwrap();
    bytes.push(0);
    std::fs::write(&labels, &bytes).unwrap();
    let out = reproduce(&s, &run, &[]);
    assert!(!out.status.success());
    assert!(
        said(&out).contains("data: ") && said(&out).contains("t10k-labels-idx1-ubyte.gz changed"),
        "{}",
        said(&out)
    );
    assert_eq!(dir::list_runs(&s.runs).len(), 1, "nothing replayed");
}

/// The original's configuration was edited live (the probe's gain 1 → 2)
/// and its library hot-reloaded (v1 → v2) while it trained: the replay does
/// both at the recorded steps and logs the very same values.
#[test]
fn a_run_edited_live_and_hot_reloaded_replays_identically() {
    let s = setup("probe-v1", "");
    with_own_data(&s, "epochs = 200\nmax_steps = 900");
    let (mut child, run) = s.start_run();
    wait_for("step 3", || last_step(&run) >= 3);
    let text = std::fs::read_to_string(&s.file).unwrap();
    let edited = text.replace(
        "plugin = \"probe\"",
        "plugin = \"probe\"\nparams = { gain = 2.0 }",
    );
    std::fs::write(&s.file, edited).unwrap();
    wait_for("config_applied", || event(&run, "config_applied").is_some());
    s.replace("probe-v2");
    wait_for("the reload", || event(&run, "reload").is_some());
    assert!(child.wait().unwrap().success());
    assert_eq!(
        run.status().unwrap().state,
        dir::State::Done,
        "ended before the changes"
    );
    let record = Provenance::of(&run);
    assert!(record.changed_mid_run());
    assert_eq!(record.config_changes[0].key, "strategy.params.gain");
    assert_eq!(record.libraries.len(), 2);
    assert!(record.libraries[1].after_step > 0);

    let out = reproduce(&s, &run, &[]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("identical: "), "{}", said(&out));
    let replay = replay_of(&run);
    let again = Provenance::of(&replay);
    assert_eq!(again.config_changes, record.config_changes);
    let swaps = |p: &Provenance| {
        p.libraries
            .iter()
            .map(|l| (l.after_step, l.sha256.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(swaps(&again), swaps(&record));
}

/// Issue 33's first test: a run whose saved experiment file changed the
/// probe's gain from 1 to 2 while it trained, and a run with 2 from the
/// start, both by the real binary, are told apart by the record (which names
/// the step), compare's outcome, the Runs table and the config panel, the
/// TensorBoard HParams and run.csv.
#[test]
fn a_run_edited_live_through_its_saved_file_is_told_apart_by_every_reader() {
    use crate::dashboard::{app_over, render};
    use probdrop_tui::export::hparams::{self, HValue};
    use probdrop_tui::export::tfevents;
    use probdrop_tui::ui::keys::Action;

    let s = setup("probe-v1", "");
    with_own_data(&s, "epochs = 200\nmax_steps = 400");
    let plain = std::fs::read_to_string(&s.file).unwrap();
    let gain = |g: &str| {
        plain.replace(
            "plugin = \"probe\"",
            &format!("plugin = \"probe\"\nparams = {{ gain = {g} }}"),
        )
    };
    std::fs::write(&s.file, gain("1.0")).unwrap();
    let (mut child, changed) = s.start_run();
    wait_for("step 3", || last_step(&changed) >= 3);
    std::fs::write(&s.file, gain("2.0")).unwrap();
    wait_for("config_applied", || {
        event(&changed, "config_applied").is_some()
    });
    assert!(child.wait().unwrap().success());
    assert!(s.run_file(&s.file).status.success());
    let clean = dir::list_runs(&s.runs)
        .into_iter()
        .find(|r| r.path != changed.path)
        .unwrap();

    let record = Provenance::of(&changed);
    let applied = event(&changed, "config_applied").unwrap();
    assert_eq!(record.config_changes.len(), 1, "{record:?}");
    assert_eq!(record.config_changes[0].key, "strategy.params.gain");
    assert_eq!(record.config_changes[0].after_step, applied.step);
    assert!(!Provenance::of(&clean).changed_mid_run());

    use probdrop_tui::run::comparison::outcome_of;
    assert!(outcome_of(&changed).changed_mid_run && !outcome_of(&clean).changed_mid_run);

    let out = s.plugins.parent().unwrap().join("exports");
    for (run, start, flag) in [(&changed, 1.0, true), (&clean, 2.0, false)] {
        let written = crate::export::export(&s, run, "tensorboard", &out.join("tb"));
        let events = tfevents::read(&std::fs::read(&written[0]).unwrap()).unwrap();
        let params = hparams::read_session_start(&events).unwrap();
        assert_eq!(params["strategy.params.gain"], HValue::Number(start));
        assert_eq!(params["changed_mid_run"], HValue::Flag(flag));
        let written = crate::export::export(&s, run, "csv", &out.join("csv"));
        let row = crate::export::run_csv(&written[2]);
        assert_eq!(row["strategy.params.gain"], start.to_string());
        assert_eq!(row["changed_mid_run"], flag.to_string());
        let step = format!("@ step {}", applied.step);
        assert_eq!(row["changes"].contains(&step), flag, "{}", row["changes"]);
    }

    let mut app = app_over(s.runs.clone(), s.file.parent().unwrap().to_path_buf());
    let screen = render(&app, 160, 48);
    let rows: Vec<&str> = screen.lines().filter(|l| l.contains("faults s3")).collect();
    let marked: Vec<usize> = (0..rows.len())
        .filter(|i| rows[*i].contains("✎ "))
        .collect();
    let at = app
        .runs
        .iter()
        .position(|r| r.dir.path == changed.path)
        .unwrap();
    assert_eq!(marked, [at], "only the changed run is marked:\n{screen}");
    app.selected.run = at;
    let mut fx = crate::dashboard::FakeEffects::default();
    app.apply(Action::ToggleConfig, &mut fx);
    let screen = render(&app, 160, 48);
    let history = format!("1.0 → 2.0 @ step {}", applied.step);
    assert!(screen.contains(&history), "{screen}");
}

/// A strategy built from a crate in `plugins/`: the store keeps the library
/// with the crate's sources as built; the crate edited (same version) and
/// rebuilt, the run still replays bit for bit with the code it ran.
#[test]
fn a_run_of_a_crate_edited_and_rebuilt_since_replays_the_stored_build() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = crate::common::fixtures::example_crate_in(tmp.path());
    let file = Tiny {
        name: "crate",
        train: "log_every = 1\nsnapshot_every = 0\nepochs = 1\nmax_steps = 8",
        strategies: "[[strategy]]\nplugin = \"stripes\"\nschedule = { kind = \"constant\", p = 0.2 }",
        ..Tiny::default()
    }
    .write(&tmp.path().join("crate.toml"));
    let runs = tmp.path().join("runs");
    let bin = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_probdrop-tui"));
        cmd.arg("--plugins").arg(&plugins);
        cmd
    };
    let out = bin()
        .args(["run", "-q", "--runs"])
        .arg(&runs)
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", said(&out));
    let run = dir::list_runs(&runs).pop().unwrap();
    let used = Provenance::of(&run).libraries[0].clone();
    let sources = used.sources.clone().expect("built from a crate");
    assert!(
        sources.kept && sources.dir.ends_with("my-strategy"),
        "{sources:?}"
    );
    let entry = Store::of_run(&run.path).dir.join(&used.sha256);
    let lib_rs = plugins.join("my-strategy/src/lib.rs");
    let as_built = std::fs::read_to_string(&lib_rs).unwrap();
    assert_eq!(
        std::fs::read_to_string(entry.join("src/src/lib.rs")).unwrap(),
        as_built
    );

    // Other code under the same version: rows instead of columns.
    std::fs::write(
        &lib_rs,
        as_built.replace(
            "ParamSpec::bool(\"rows\", false)",
            "ParamSpec::bool(\"rows\", true)",
        ),
    )
    .unwrap();
    let listed = bin().args(["plugins", "--json"]).output().unwrap();
    assert!(listed.status.success(), "{}", said(&listed));
    let out = bin()
        .args(["run", "-q", "--runs"])
        .arg(&runs)
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", said(&out));
    let rebuilt = dir::list_runs(&runs)
        .into_iter()
        .find(|r| r.path != run.path)
        .unwrap();
    assert_ne!(
        Provenance::of(&rebuilt).libraries[0].sha256,
        used.sha256,
        "rebuilt"
    );

    let out = bin()
        .args(["reproduce", "-q"])
        .arg(&run.path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("identical: "), "{}", said(&out));
    // The rebuilt run's own logs differ from the original's: the replay's
    // verdict is not a foregone one.
    let losses = |r: &RunDir| losses(r).iter().map(|m| m.value).collect::<Vec<_>>();
    assert_ne!(losses(&rebuilt), losses(&run));
}

/// A run whose record names another commit than this binary's: refused with
/// both named; `--anyway` replays it all the same (here, identical: the code
/// did not really change).
#[test]
fn another_host_commit_is_named_and_anyway_replays_all_the_same() {
    let s = setup("probe-v1", "");
    let run = finished_run(&s, 4);
    let mut record = Provenance::of(&run);
    record.starts[0].commit = "0123456789abcdef0123456789abcdef01234567".into();
    record.starts[0].describe = "v0.0.1-elsewhere".into();
    record.write(&run).unwrap();
    let out = reproduce(&s, &run, &[]);
    assert!(!out.status.success());
    assert!(
        said(&out).contains("was built from v0.0.1-elsewhere (0123456789abcdef")
            && said(&out).contains("--anyway"),
        "{}",
        said(&out)
    );
    assert_eq!(dir::list_runs(&s.runs).len(), 1, "nothing replayed");
    let out = reproduce(&s, &run, &["--anyway"]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("replaying anyway"), "{}", said(&out));
}
