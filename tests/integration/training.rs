//! Headless training with the real binary on the committed Fashion-MNIST subset:
//! the run directory contract, the schedule, SIGKILL and resume, live changes.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::common::{Tiny, repo_root, wait_for};
use probdrop_tui::experiment::{DropKind, DropSchedule, drop_rate};
use probdrop_tui::run::control::{self, Command as Ctl};
use probdrop_tui::run::dir::{self, MetricLine, RunDir, State};

fn bin() -> Command {
    let mut cmd = common::bin();
    cmd.arg("--plugins").arg(repo_root().join("plugins"));
    cmd
}

/// A small experiment over the committed subset; `train` is added to `[train]`.
fn experiment(dir: &Path, train: &str, strategy: &str) -> PathBuf {
    Tiny {
        seeds: "[3]",
        val_limit: 256,
        train,
        strategies: strategy,
        ..Tiny::default()
    }
    .write(&dir.join("tiny.toml"))
}

fn only_run(runs: &Path) -> RunDir {
    let mut all = dir::list_runs(runs);
    assert_eq!(all.len(), 1, "{all:?}");
    all.pop().unwrap()
}

/// Trains `file` quietly into `runs` with the real binary; its one run.
fn trained(runs: &Path, file: &Path) -> RunDir {
    let out = bin()
        .args(["run", "-q", "--runs"])
        .arg(runs)
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    only_run(runs)
}

fn output_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn train_steps(metrics: &[MetricLine], name: &str) -> Vec<(u64, f64, f64)> {
    metrics
        .iter()
        .filter(|m| m.split == "train" && m.metric == name)
        .map(|m| (m.step, m.value, m.p))
        .collect()
}

/// Four samples of the batch at each snapshot step (every 4 of 32), all of
/// the small CNN's `block2`, salience non-negative.
fn check_snapshots(run: &RunDir) {
    let snaps = run.snapshots();
    let expected: Vec<(u64, usize)> = [4, 8, 12, 16, 20, 24, 28, 32]
        .into_iter()
        .flat_map(|step| (0..4).map(move |sample| (step, sample)))
        .collect();
    assert_eq!(
        snaps.iter().map(|s| (s.step, s.sample)).collect::<Vec<_>>(),
        expected
    );
    assert_ne!(snaps[0].salience, snaps[1].salience, "different samples");
    for s in &snaps {
        assert_eq!((s.slot.as_str(), s.height, s.width), ("block2", 7, 7));
        assert_eq!(s.salience.len(), s.channels.len() * 49);
        assert_eq!(s.mask.len(), s.salience.len());
        assert!(s.salience.iter().all(|v| *v >= 0.0));
    }
}

#[test]
fn a_headless_run_writes_the_whole_run_directory_and_follows_the_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(
        tmp.path(),
        "epochs = 2\nlog_every = 1\neval_every = 8\ncheckpoint_every = 4\nsnapshot_every = 4",
        "[[strategy]]\nplugin = \"dropblock\"\nparams = { block_size = 3 }\nschedule = { kind = \"linear\", start = 0.0, end = 0.2 }",
    );
    let runs = tmp.path().join("runs");
    let out = bin()
        .args(["run", "--runs"])
        .arg(&runs)
        .arg(&file)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("done"), "{text}");
    let run = only_run(&runs);
    for name in [
        dir::EXPERIMENT,
        dir::RUN,
        dir::STATUS,
        dir::METRICS,
        dir::EVENTS,
        dir::SNAPSHOTS,
        dir::CHECKPOINT,
    ] {
        assert!(run.file(name).is_file(), "{name} missing");
    }
    let status = run.status().unwrap();
    assert_eq!(status.state, State::Done);
    assert_eq!((status.step, status.total_steps), (32, 32));
    assert_eq!(status.plugin_version, "1.1.0");
    let ck = run.checkpoint().expect("a complete checkpoint");
    assert_eq!(ck.step, 32);

    let metrics = run.metrics();
    let losses = train_steps(&metrics, "loss");
    assert_eq!(
        losses.iter().map(|l| l.0).collect::<Vec<_>>(),
        (1..=32).collect::<Vec<_>>()
    );
    // The linear schedule: p at step s is 0.2 · (s - 1) / 32, logged with every metric.
    let schedule = DropSchedule {
        kind: DropKind::Linear,
        start: Some(0.0),
        end: Some(0.2),
        ..Default::default()
    };
    for &(step, _, p) in &losses {
        let expected = drop_rate(&schedule, step - 1, 32, 16);
        assert!(
            (p - expected).abs() < 1e-12,
            "step {step}: p {p} vs {expected}"
        );
    }
    let first: f64 = losses[..4].iter().map(|l| l.1).sum::<f64>() / 4.0;
    let last: f64 = losses[28..].iter().map(|l| l.1).sum::<f64>() / 4.0;
    assert!(
        last < first * 0.8,
        "loss did not decrease: {first} -> {last}"
    );
    // The fraction actually dropped is logged per slot and grows with p.
    let dropped = train_steps(&metrics, "dropped/block2");
    assert_eq!(dropped.len(), 32);
    assert_eq!(dropped[0].1, 0.0, "p = 0 at the first step");
    let late: f64 = dropped[24..].iter().map(|d| d.1).sum::<f64>() / 8.0;
    assert!(
        late > 0.08 && late < 0.35,
        "dropped fraction {late} at p ≈ 0.17"
    );
    let val: Vec<u64> = metrics
        .iter()
        .filter(|m| m.split == "val" && m.metric == "acc")
        .map(|m| m.step)
        .collect();
    assert_eq!(val, [8, 16, 24, 32]);
    let acc = metrics
        .iter()
        .rfind(|m| m.split == "val" && m.metric == "acc")
        .unwrap();
    assert!(acc.value > 0.5, "validation accuracy {}", acc.value);
    for name in ["lr", "p", "acc", "step_time", "samples_per_s"] {
        assert_eq!(train_steps(&metrics, name).len(), 32, "{name}");
    }

    check_snapshots(&run);
    let events = run.events();
    assert_eq!(events.first().unwrap().kind, "started");
    assert_eq!(events.last().unwrap().kind, "done");
    // The resolved experiment parses and names one strategy and one seed.
    let resolved = run.experiment().unwrap();
    assert_eq!(resolved.seeds, [3]);
    assert_eq!(resolved.strategy.len(), 1);
}

fn last_step(run: &RunDir) -> u64 {
    run.metrics().iter().map(|m| m.step).max().unwrap_or(0)
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_killed_trainer_resumes_from_its_checkpoint_without_gaps_or_repeats() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(
        tmp.path(),
        "epochs = 2\nlog_every = 1\ncheckpoint_every = 5\nsnapshot_every = 0",
        "[[strategy]]\nplugin = \"probdropblock\"\nparams = { block_size = 3 }\nschedule = { kind = \"constant\", p = 0.1 }",
    );
    let runs = tmp.path().join("runs");
    let mut child = spawn(bin().args(["run", "-q", "--runs"]).arg(&runs).arg(&file));
    wait_for("the run directory", Duration::from_secs(120), || {
        dir::list_runs(&runs).len() == 1
    });
    let run = only_run(&runs);
    // Kill mid-epoch, past a checkpoint and between two.
    wait_for("step 12", Duration::from_secs(120), || {
        last_step(&run) >= 12
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = last_step(&run);
    let ck = run.checkpoint().expect("a checkpoint before the kill");
    assert!(
        ck.step >= 10 && ck.step <= killed_at,
        "{ck:?} at {killed_at}"
    );

    let out = bin()
        .args(["run", "-q", "--resume"])
        .arg(&run.path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let losses = train_steps(&run.metrics(), "loss");
    let steps: Vec<u64> = losses.iter().map(|l| l.0).collect();
    assert_eq!(
        steps,
        (1..=32).collect::<Vec<_>>(),
        "a step missing or repeated"
    );
    let status = run.status().unwrap();
    assert_eq!((status.state, status.step), (State::Done, 32));
    assert!(
        run.events()
            .iter()
            .any(|e| e.kind == "resumed" && e.message.contains(&format!("after step {}", ck.step)))
    );
    // Training continued exactly: the same losses as a run never interrupted.
    let fresh = tmp.path().join("fresh");
    let out = bin()
        .args(["run", "-q", "--runs"])
        .arg(&fresh)
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let uninterrupted = train_steps(&only_run(&fresh).metrics(), "loss");
    let values = |l: &[(u64, f64, f64)]| l.iter().map(|x| x.1).collect::<Vec<_>>();
    assert_eq!(values(&losses), values(&uninterrupted));
}

/// The dashboard's way of applying a change: the new text through the
/// control socket (block size 7), applied as a second config change.
fn apply_block_size_7_through_the_socket(run: &RunDir, file: &Path) {
    let socket = run.file(dir::SOCKET);
    let via_socket = std::fs::read_to_string(file)
        .unwrap()
        .replace("block_size = 5", "block_size = 7");
    let reply = control::send(
        &socket,
        &Ctl::ApplyConfig {
            toml: Some(via_socket),
        },
    )
    .unwrap();
    assert!(reply.ok, "{reply:?}");
    wait_for("the second config_applied", Duration::from_secs(30), || {
        run.events()
            .iter()
            .filter(|e| e.kind == "config_applied")
            .count()
            == 2
    });
    let resolved = run.experiment().unwrap();
    assert_eq!(
        resolved.strategy[0].params["block_size"].as_integer(),
        Some(7)
    );
}

#[test]
fn a_saved_parameter_change_applies_at_a_step_boundary_and_a_stop_keeps_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let strategy = "[[strategy]]\nplugin = \"dropblock\"\nparams = { block_size = 3 }\nschedule = { kind = \"constant\", p = 0.1 }";
    let file = experiment(
        tmp.path(),
        "epochs = 50\nlog_every = 1\nsnapshot_every = 0",
        strategy,
    );
    let runs = tmp.path().join("runs");
    let mut child = spawn(bin().args(["run", "-q", "--runs"]).arg(&runs).arg(&file));
    wait_for("the run directory", Duration::from_secs(120), || {
        dir::list_runs(&runs).len() == 1
    });
    let run = only_run(&runs);
    wait_for("step 3", Duration::from_secs(120), || last_step(&run) >= 3);

    // An editor's truncate-then-write: first a half-written file, refused...
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, &text[..text.len() / 2]).unwrap();
    wait_for("config_invalid", Duration::from_secs(30), || {
        run.events().iter().any(|e| e.kind == "config_invalid")
    });
    // ...then the whole file with a new block size and drop rate, applied.
    let changed = text
        .replace("block_size = 3", "block_size = 5")
        .replace("p = 0.1", "p = 0.25");
    std::fs::write(&file, changed).unwrap();
    wait_for("config_applied", Duration::from_secs(30), || {
        run.events().iter().any(|e| e.kind == "config_applied")
    });
    let applied = run
        .events()
        .into_iter()
        .find(|e| e.kind == "config_applied")
        .unwrap();
    assert!(
        applied.message.contains("strategy.params"),
        "{}",
        applied.message
    );
    assert!(
        applied.message.contains("strategy.schedule"),
        "{}",
        applied.message
    );
    let resolved = run.experiment().unwrap();
    assert_eq!(
        resolved.strategy[0].params["block_size"].as_integer(),
        Some(5)
    );
    // Issue 33: the record keeps what was in force before, and from when.
    let record = probdrop_tui::run::provenance::Provenance::of(&run);
    let block = record
        .config_changes
        .iter()
        .find(|c| c.key == "strategy.params.block_size")
        .unwrap_or_else(|| panic!("{record:?}"));
    assert_eq!(block.after_step, applied.step);
    assert_eq!(block.from, Some(toml::Value::Integer(3)));
    assert_eq!(block.to, Some(toml::Value::Integer(5)));
    wait_for("a step after the change", Duration::from_secs(60), || {
        last_step(&run) > applied.step + 2
    });
    let ps = train_steps(&run.metrics(), "p");
    for &(step, _, p) in &ps {
        let expected = if step <= applied.step { 0.1 } else { 0.25 };
        assert_eq!(
            p, expected,
            "step {step}, change applied after step {}",
            applied.step
        );
    }

    apply_block_size_7_through_the_socket(&run, &file);
    let socket = run.file(dir::SOCKET);

    // Pause, resume and stop over the control socket.
    assert!(control::send(&socket, &Ctl::Pause).unwrap().ok);
    wait_for("paused", Duration::from_secs(30), || {
        run.status().is_some_and(|s| s.state == State::Paused)
    });
    assert!(control::send(&socket, &Ctl::Resume).unwrap().ok);
    assert!(control::send(&socket, &Ctl::Stop).unwrap().ok);
    let status = child.wait().unwrap();
    assert!(!status.success(), "a stopped run has not finished");
    let status = run.status().unwrap();
    assert_eq!(status.state, State::Stopped);
    assert_eq!(run.checkpoint().unwrap().step, status.step);
    let kinds: Vec<String> = run
        .events()
        .into_iter()
        .map(|e| e.kind.to_string())
        .collect();
    for k in ["paused", "resumed", "stopped"] {
        assert!(kinds.iter().any(|x| x == k), "{kinds:?}");
    }
    assert!(!socket.exists(), "the socket is removed on exit");
}

#[test]
fn an_unknown_device_or_missing_backend_is_refused_before_anything_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(tmp.path(), "epochs = 1", "");
    let runs = tmp.path().join("runs");
    let out = bin()
        .args(["run", "--device", "cuda:0", "--runs"])
        .arg(&runs)
        .arg(&file)
        .output()
        .unwrap();
    if !cfg!(feature = "tch") {
        assert!(!out.status.success());
        assert!(
            output_text(&out).contains("--features tch"),
            "{}",
            output_text(&out)
        );
        assert!(dir::list_runs(&runs).is_empty());
    }
    let out = bin()
        .args(["run", "--device", "tpu"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(output_text(&out).contains("--device: expected \"cpu\" or \"cuda:N\""));
}

#[test]
fn the_same_seed_reproduces_the_same_run() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(
        tmp.path(),
        "epochs = 1\nmax_steps = 8\nlog_every = 1\nsnapshot_every = 0",
        "[[strategy]]\nplugin = \"probdropblock\"\nparams = { block_size = 3 }\nschedule = { kind = \"constant\", p = 0.2 }",
    );
    let losses = |runs: &Path| -> Vec<f64> {
        let out = bin()
            .args(["run", "-q", "--runs"])
            .arg(runs)
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        train_steps(&only_run(runs).metrics(), "loss")
            .iter()
            .map(|l| l.1)
            .collect()
    };
    let a = losses(&tmp.path().join("a"));
    let b = losses(&tmp.path().join("b"));
    assert_eq!(a.len(), 8);
    assert_eq!(a, b);
}

#[test]
fn doctor_reports_backends_plugins_and_data_paths() {
    let out = bin().arg("doctor").output().unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("flex (CPU, pure Rust)"), "{text}");
    assert!(text.contains("10 strategies: "), "{text}");
    assert!(text.contains("quickstart.toml: data "), "{text}");
    assert!(text.contains("fashion-mnist-subset (found)"), "{text}");
    // The machine as the dashboard's Runs view shows it: a GPU line per
    // NVIDIA GPU, or why there is none.
    let machine = text
        .lines()
        .find(|l| l.starts_with("machine: cpu "))
        .unwrap();
    assert!(machine.contains("memory "), "{text}");
    assert!(
        machine.contains("no NVIDIA GPU") || text.contains("  gpu0 "),
        "{text}"
    );
}

#[test]
fn a_resnet18_trains_on_cifar10_binary_files_with_augmentation() {
    let tmp = tempfile::tempdir().unwrap();
    // CIFAR-10's binary layout: one label byte, then 32×32 red, green, blue planes.
    let cifar = tmp.path().join("cifar-10-batches-bin");
    std::fs::create_dir_all(&cifar).unwrap();
    let record = |i: usize| -> Vec<u8> {
        let label = (i % 10) as u8;
        let mut r = vec![label];
        r.extend((0..3072).map(|j| ((j * 7 + i * 13) % 251) as u8 ^ (label * 25)));
        r
    };
    for b in 1..=5 {
        let bytes: Vec<u8> = (0..8).flat_map(|i| record(b * 8 + i)).collect();
        std::fs::write(cifar.join(format!("data_batch_{b}.bin")), bytes).unwrap();
    }
    let test: Vec<u8> = (0..8).flat_map(record).collect();
    std::fs::write(cifar.join("test_batch.bin"), test).unwrap();
    let file = tmp.path().join("cifar.toml");
    std::fs::write(
        &file,
        format!(
            r#"name = "cifar-smoke"
[data]
format = "cifar10"
path = "{}"
augment = "crop-flip"
[model]
kind = "resnet18"
[model.slots.stage4]
params = {{ block_size = 1 }}
[train]
epochs = 1
batch_size = 8
max_steps = 2
log_every = 1
snapshot_every = 1
[[strategy]]
plugin = "dropblock"
params = {{ block_size = 3 }}
schedule = {{ kind = "constant", p = 0.2 }}
"#,
            tmp.path().display()
        ),
    )
    .unwrap();
    let runs = tmp.path().join("runs");
    let run = trained(&runs, &file);
    let metrics = run.metrics();
    assert_eq!(train_steps(&metrics, "loss").len(), 2);
    let slots: Vec<(String, usize)> = run
        .snapshots()
        .iter()
        .map(|s| (s.slot.clone(), s.height))
        .collect();
    // The old names (`stage4` above) stand for the stage outputs, named as
    // the modules now are.
    assert!(slots.contains(&("layer3".to_string(), 8)), "{slots:?}");
    assert!(slots.contains(&("layer4".to_string(), 4)), "{slots:?}");
    assert!(
        metrics
            .iter()
            .any(|m| m.split == "val" && m.metric == "acc")
    );
}

#[test]
fn a_rebuilt_plugin_is_swapped_into_a_running_training_and_a_broken_one_refused() {
    use common::fixtures::fixture;
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let library = plugins.join(format!("libprobe{}", std::env::consts::DLL_SUFFIX));
    std::fs::copy(fixture("probe-v1"), &library).unwrap();
    let file = experiment(
        tmp.path(),
        "epochs = 50\nlog_every = 1\nsnapshot_every = 0",
        "[[strategy]]\nplugin = \"probe\"\nschedule = { kind = \"constant\", p = 0.1 }",
    );
    let runs = tmp.path().join("runs");
    // Not quiet: what a foreground run says about reloads is checked too.
    let said = tmp.path().join("run.stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
        .arg("--plugins")
        .arg(&plugins)
        .args(["run", "--runs"])
        .arg(&runs)
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&said).unwrap())
        .spawn()
        .unwrap();
    wait_for("the run directory", Duration::from_secs(120), || {
        dir::list_runs(&runs).len() == 1
    });
    let run = only_run(&runs);
    wait_for("step 3", Duration::from_secs(120), || last_step(&run) >= 3);

    let replace = |source: &Path| {
        let tmp = library.with_extension("partial");
        std::fs::copy(source, &tmp).unwrap();
        std::fs::rename(&tmp, &library).unwrap();
    };
    replace(&fixture("probe-v2"));
    wait_for("the reload event", Duration::from_secs(30), || {
        run.events().iter().any(|e| e.kind == "reload")
    });
    let reload = run
        .events()
        .into_iter()
        .find(|e| e.kind == "reload")
        .unwrap();
    assert!(
        reload.message.contains("probe 1.0.0 → 2.0.0"),
        "{}",
        reload.message
    );
    wait_for("steps on the new version", Duration::from_secs(60), || {
        last_step(&run) > reload.step + 2
    });
    for m in train_steps_full(&run.metrics()) {
        let expected = if m.step <= reload.step {
            "1.0.0"
        } else {
            "2.0.0"
        };
        assert_eq!(m.plugin_version, expected, "step {}", m.step);
    }

    // A parameter change after the reload builds on the new version.
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "plugin = \"probe\"",
        "plugin = \"probe\"\nparams = { gain = 2.0 }",
    );
    std::fs::write(&file, text).unwrap();
    wait_for("config_applied", Duration::from_secs(30), || {
        run.events().iter().any(|e| e.kind == "config_applied")
    });
    let applied = run
        .events()
        .into_iter()
        .find(|e| e.kind == "config_applied")
        .unwrap();
    assert!(
        applied.message.contains("with probe 2.0.0"),
        "{}",
        applied.message
    );

    // A version that panics inside `mask` fails its smoke test: refused, and the
    // run goes on with 2.0.0.
    replace(&fixture("probe-panics"));
    wait_for("the refusal", Duration::from_secs(30), || {
        run.events().iter().any(|e| e.kind == "reload_refused")
    });
    let refused = run
        .events()
        .into_iter()
        .find(|e| e.kind == "reload_refused")
        .unwrap();
    assert!(refused.message.contains("panic"), "{}", refused.message);
    wait_for("steps after the refusal", Duration::from_secs(60), || {
        last_step(&run) > refused.step + 2
    });
    let last = train_steps_full(&run.metrics()).pop().unwrap();
    assert_eq!(last.plugin_version, "2.0.0");
    assert!(
        control::send(&run.file(dir::SOCKET), &Ctl::Stop)
            .unwrap()
            .ok
    );
    child.wait().unwrap();
    assert_eq!(run.status().unwrap().state, State::Stopped);
    said_reload_and_refusal(&said, reload.step);
}

/// Issue 18: a foreground run says on its terminal (here, the file its
/// stderr went to) that it reloaded at `step` and refused a library.
fn said_reload_and_refusal(said: &Path, step: u64) {
    let said = std::fs::read_to_string(said).unwrap();
    let line = |what: &str| said.lines().find(|l| l.contains(what)).map(str::to_string);
    let reloaded = line("strategy reloaded: probe 1.0.0 → 2.0.0");
    assert!(
        reloaded.is_some_and(|l| l.starts_with(&format!("step {step}: "))),
        "{said}"
    );
    let refused = line("new strategy library refused, the run keeps its version");
    assert!(refused.is_some_and(|l| l.contains("panic")), "{said}");
}

fn train_steps_full(metrics: &[MetricLine]) -> Vec<MetricLine> {
    metrics
        .iter()
        .filter(|m| m.split == "train" && m.metric == "loss")
        .cloned()
        .collect()
}

#[test]
fn over_ten_classes_validation_reports_top5_too() {
    let tmp = tempfile::tempdir().unwrap();
    let cifar = tmp.path().join("cifar-100-binary");
    std::fs::create_dir_all(&cifar).unwrap();
    // CIFAR-100's layout: coarse label, fine label, then the three colour planes.
    let record = |i: usize| -> Vec<u8> {
        let mut r = vec![(i % 20) as u8, (i % 100) as u8];
        r.extend((0..3072).map(|j| ((j * 3 + i * 11) % 256) as u8));
        r
    };
    std::fs::write(
        cifar.join("train.bin"),
        (0..64).flat_map(record).collect::<Vec<u8>>(),
    )
    .unwrap();
    std::fs::write(
        cifar.join("test.bin"),
        (0..32).flat_map(record).collect::<Vec<u8>>(),
    )
    .unwrap();
    let file = tmp.path().join("c100.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"c100\"\n[data]\nformat = \"cifar100\"\npath = \"{}\"\n[model]\nkind = \"small-cnn\"\nchannels = [8, 8]\n[train]\nepochs = 1\nbatch_size = 16\nmax_steps = 2\n",
            tmp.path().display()
        ),
    )
    .unwrap();
    let runs = tmp.path().join("runs");
    let out = bin()
        .args(["run", "-q", "--runs"])
        .arg(&runs)
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let metrics = only_run(&runs).metrics();
    let val = |name: &str| {
        metrics
            .iter()
            .find(|m| m.split == "val" && m.metric == name)
            .map(|m| m.value)
            .unwrap_or_else(|| panic!("no val/{name}"))
    };
    assert!(val("top5") >= val("acc"));
    assert!(val("top5") <= 1.0);
}

/// A small transformer on the committed Austen sentences (6 balanced classes).
fn text_experiment(dir: &Path, train: &str) -> PathBuf {
    let data = repo_root().join("data/austen-sentences");
    let text = format!(
        r#"name = "tiny-text"
seeds = [5]

[data]
format = "text"
path = "{}"
max_len = 40
vocab_size = 3000
workers = 1

[model]
kind = "transformer"
hidden = 64
heads = 4
layers = 1
ff = 128

[optimizer]
kind = "adamw"
lr = 1e-3
weight_decay = 0.01

[train]
batch_size = 32
{train}

[[strategy]]
plugin = "probdropblock1d"
params = {{ block_size = 4 }}
schedule = {{ kind = "linear", start = 0.0, end = 0.1 }}
slots = ["layer1"]
"#,
        data.display()
    );
    let path = dir.join("tiny-text.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_text_run_beats_the_majority_class_and_resumes_with_its_own_vocabulary() {
    let tmp = tempfile::tempdir().unwrap();
    let file = text_experiment(
        tmp.path(),
        "epochs = 3\nlog_every = 10\ncheckpoint_every = 100\nsnapshot_every = 50",
    );
    let runs = tmp.path().join("runs");
    let mut child = spawn(bin().args(["run", "-q", "--runs"]).arg(&runs).arg(&file));
    wait_for("the run directory", Duration::from_secs(120), || {
        dir::list_runs(&runs).len() == 1
    });
    let run = only_run(&runs);
    wait_for("a checkpoint", Duration::from_secs(600), || {
        run.checkpoint().is_some_and(|c| c.step >= 100)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let vocabulary = std::fs::read(run.path.join("tokenizer.json")).expect("tokenizer.json");

    let out = bin()
        .args(["run", "-q", "--resume"])
        .arg(&run.path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    // The resumed run encodes with the vocabulary it started with.
    assert_eq!(
        std::fs::read(run.path.join("tokenizer.json")).unwrap(),
        vocabulary
    );
    let status = run.status().unwrap();
    assert_eq!((status.state, status.step), (State::Done, 3 * 188));
    let steps: Vec<u64> = train_steps(&run.metrics(), "loss")
        .iter()
        .map(|l| l.0)
        .collect();
    let expected: Vec<u64> = (10..=564).step_by(10).chain([564]).collect();
    let mut expected = expected;
    expected.dedup();
    assert_eq!(steps, expected, "a logged step missing or repeated");
    // 1200 validation sentences, 200 per novel: the majority class is 1/6.
    let acc = status.last_val_acc.unwrap();
    assert!(acc > 0.3, "validation accuracy {acc} vs 1/6 by chance");
    // The strategy dropped about p of the real positions at the end.
    let dropped = train_steps(&run.metrics(), "dropped/layer1");
    let (_, frac, p) = *dropped.last().unwrap();
    assert!((frac - p).abs() < 0.04, "dropped {frac} at p {p}");
    // Snapshots are token × hidden, labelled with the sample's real tokens.
    let snaps = run.snapshots();
    assert!(!snaps.is_empty());
    for s in &snaps {
        assert_eq!(s.slot, "layer1");
        assert_eq!((s.channels.len(), s.width), (1, 64));
        assert_eq!(s.tokens.len(), s.height);
        assert_eq!(s.tokens[0], "[CLS]");
        assert_eq!(s.mask.len(), s.height * 64);
    }
}

/// Issue 20: a trainer this test did not start (as on another host) is
/// paused, resumed and stopped through its run directory's inbox alone, and
/// answers in events.jsonl; bad lines are answered there too, and an inbox
/// others may write is not read.
#[test]
fn the_control_inbox_pauses_resumes_and_stops_a_trainer() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(
        tmp.path(),
        "epochs = 50\nlog_every = 1\nsnapshot_every = 0",
        "",
    );
    let runs = tmp.path().join("runs");
    let mut child = spawn(bin().args(["run", "-q", "--runs"]).arg(&runs).arg(&file));
    wait_for("the run directory", Duration::from_secs(120), || {
        dir::list_runs(&runs).len() == 1
    });
    let run = only_run(&runs);
    wait_for("step 2", Duration::from_secs(120), || last_step(&run) >= 2);
    std::fs::write(run.file(dir::INBOX), "").unwrap();
    std::fs::set_permissions(
        run.file(dir::INBOX),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    control::post(&run.path, &Ctl::Pause).unwrap();
    wait_for("paused through the inbox", Duration::from_secs(30), || {
        run.status().is_some_and(|s| s.state == State::Paused)
    });
    assert!(run.events().iter().any(|e| e.kind == "paused"));
    std::fs::OpenOptions::new()
        .append(true)
        .open(run.file(dir::INBOX))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"cmd\": \"dance\"}\n"))
        .unwrap();
    wait_for("the bad line answered", Duration::from_secs(30), || {
        run.events()
            .iter()
            .any(|e| e.message.contains("control inbox: bad command"))
    });
    control::post(&run.path, &Ctl::Resume).unwrap();
    wait_for("resumed", Duration::from_secs(30), || {
        run.status().is_some_and(|s| s.state == State::Training)
    });
    // Writable by others: not read, and said so.
    std::fs::set_permissions(
        run.file(dir::INBOX),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    control::post(&run.path, &Ctl::Stop).unwrap();
    wait_for("the refusal", Duration::from_secs(30), || {
        run.events()
            .iter()
            .any(|e| e.message.contains("is not owner-only"))
    });
    assert_eq!(run.status().unwrap().state, State::Training);
    std::fs::set_permissions(
        run.file(dir::INBOX),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    control::post(&run.path, &Ctl::Stop).unwrap();
    child.wait().unwrap();
    assert_eq!(run.status().unwrap().state, State::Stopped);
}

/// Issue 34, item 21: a trainer logs its own CPU use and resident memory as
/// `system/…` metrics at its logged steps, and on the CPU no GPU series at
/// all (absent, not zero); Charts offers them and export carries them.
#[test]
fn a_trainer_logs_its_use_of_the_machine_as_system_metrics() {
    use probdrop_tui::run::dir::metric;
    use probdrop_tui::ui::keys::{Action, View};
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(
        tmp.path(),
        "epochs = 1\nmax_steps = 4\nlog_every = 2\nsnapshot_every = 0",
        "[[strategy]]\nplugin = \"dropblock\"\nparams = { block_size = 3 }\n\
         schedule = { kind = \"constant\", p = 0.1 }",
    );
    let runs = tmp.path().join("runs");
    let run = trained(&runs, &file);
    let metrics = run.metrics();
    for name in [metric::CPU_PERCENT, metric::RSS_BYTES] {
        let values = train_steps(&metrics, name);
        assert!(!values.is_empty(), "no {name} in {metrics:?}");
        assert!(values.iter().all(|v| v.1 >= 0.0), "{name}: {values:?}");
    }
    let rss = train_steps(&metrics, metric::RSS_BYTES);
    assert!(
        rss.iter().all(|v| v.1 > 1e6),
        "a trainer holds megabytes: {rss:?}"
    );
    let system: Vec<&str> = (metrics.iter())
        .map(|m| m.metric.as_str())
        .filter(|m| metric::is_system(m))
        .collect();
    assert!(
        system.iter().all(|m| !m.starts_with("system/gpu")),
        "{system:?}"
    );

    // Charts offers the series among the run's metrics.
    let experiments = tmp.path().join("experiments");
    std::fs::create_dir_all(&experiments).unwrap();
    let mut app = crate::dashboard::app_over(runs.clone(), experiments);
    let mut fx = crate::dashboard::FakeEffects::default();
    app.apply(Action::Go(View::Charts), &mut fx);
    let mut screens = String::new();
    for _ in 0..20 {
        screens += &crate::dashboard::render(&app, 80, 24);
        app.apply(Action::CycleMetric, &mut fx);
    }
    for title in ["system/cpu percent (", "system/rss bytes ("] {
        assert!(screens.contains(title), "no chart {title:?} in\n{screens}");
    }

    // Export carries them: a row of metrics.csv each.
    let exported = tmp.path().join("exports");
    let out = bin()
        .arg("export")
        .arg(&run.path)
        .args(["--format", "csv", "--out"])
        .arg(&exported)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let name = run.path.file_name().unwrap();
    let csv = std::fs::read_to_string(exported.join(name).join("metrics.csv")).unwrap();
    let rows = |m: &str| {
        csv.lines()
            .filter(|l| l.contains(&format!(",{m},")))
            .count()
    };
    assert_eq!(
        rows(metric::CPU_PERCENT),
        train_steps(&metrics, metric::CPU_PERCENT).len()
    );
    assert_eq!(rows(metric::RSS_BYTES), rss.len());
}

/// A ResNet-18 experiment over the Fashion-MNIST subset with one strategy,
/// two steps, every step logged.
fn resnet_file(dir: &Path, name: &str, strategy: &str) -> PathBuf {
    let data = repo_root().join("data/fashion-mnist-subset");
    let file = dir.join(format!("{name}.toml"));
    let text = format!(
        "name = \"{name}\"\n[data]\nformat = \"idx\"\npath = \"{}\"\ntrain_limit = 64\n\
         val_limit = 16\n[model]\nkind = \"resnet18\"\n[train]\nepochs = 1\nbatch_size = 8\n\
         max_steps = 2\nlog_every = 1\n[[strategy]]\n{strategy}\n",
        data.display()
    );
    std::fs::write(&file, text).unwrap();
    file
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Each dropped fraction a run logged, by slot: `[(slot, [per step])]`.
fn dropped_by_slot(run: &RunDir) -> Vec<(String, Vec<f64>)> {
    let mut out: Vec<(String, Vec<f64>)> = Vec::new();
    for m in run.metrics().iter().filter(|m| m.split == "train") {
        let Some(slot) = m.metric.strip_prefix("dropped/") else {
            continue;
        };
        match out.iter_mut().find(|(s, _)| s == slot) {
            Some((_, values)) => values.push(m.value),
            None => out.push((slot.to_string(), vec![m.value])),
        }
    }
    out
}

/// Every new kind of slot (after a batch norm, a shortcut, a residual branch,
/// a stage output by its old name) trains two steps on flex, with the
/// strategy where its `slots` put it and nowhere else; stochastic depth's
/// linear rule leaves the first branch alone and drops at the deeper ones.
#[test]
fn every_kind_of_resnet_slot_trains_where_its_pattern_puts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let p = "schedule = { kind = \"constant\", p = 0.5 }";
    let cases = [
        (
            "bn",
            "plugin = \"dropout2d\"\nslots = [\"layer2.*.bn1\"]",
            names(&["layer2.0.bn1", "layer2.1.bn1"]),
        ),
        (
            "shortcut",
            "plugin = \"dropblock\"\nparams = { block_size = 3 }\nslots = [\"layer[34].0.shortcut\"]",
            names(&["layer3.0.shortcut", "layer4.0.shortcut"]),
        ),
        (
            "branch",
            "plugin = \"droppath\"\nslots = [\"layer*.*.branch\"]\ndepth_rule = \"linear\"",
            (1..=4)
                .flat_map(|s| (0..2).map(move |b| format!("layer{s}.{b}.branch")))
                .collect(),
        ),
        (
            "stage",
            "plugin = \"dropout\"\nslots = [\"stage3\"]",
            names(&["layer3"]),
        ),
    ];
    for (name, strategy, want) in cases {
        let file = resnet_file(tmp.path(), name, &format!("{strategy}\n{p}"));
        let runs = tmp.path().join(format!("runs-{name}"));
        let run = trained(&runs, &file);
        assert_eq!(train_steps(&run.metrics(), "loss").len(), 2, "{name}");
        let dropped = dropped_by_slot(&run);
        let slots: Vec<&str> = dropped.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            slots, want,
            "{name}: the slots that logged a dropped fraction"
        );
        if name == "branch" {
            assert!(dropped[0].1.iter().all(|&d| d == 0.0), "{dropped:?}");
            assert!(dropped[7].1.iter().any(|&d| d > 0.0), "{dropped:?}");
        } else {
            assert!(
                dropped.iter().all(|(_, d)| d.iter().any(|&v| v > 0.0)),
                "{name}: {dropped:?}"
            );
        }
    }
}

/// A file written before slots followed the modules (`stage3`, `stage4`, or
/// no `slots` key on a ResNet) masks the same places with the same masks as
/// one naming `layer3` and `layer4`: the stage outputs, 7×7 and 4×4 on
/// 28×28 images.
#[test]
fn old_slot_names_mask_the_same_places_with_the_same_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let strategy = "plugin = \"dropblock\"\nparams = { block_size = 3 }\n\
                    schedule = { kind = \"constant\", p = 0.3 }";
    let masks = |name: &str, slots: &str| {
        let file = resnet_file(
            tmp.path(),
            name,
            &format!("{strategy}\n{slots}\n[model.slots.stage4]\np_scale = 0.5"),
        );
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(
            &file,
            text.replace("log_every = 1", "log_every = 1\nsnapshot_every = 1"),
        )
        .unwrap();
        let run = trained(&tmp.path().join(format!("runs-{name}")), &file);
        run.snapshots()
            .into_iter()
            .map(|s| (s.step, s.slot, s.height, s.mask))
            .collect::<Vec<_>>()
    };
    let new = masks("new", "slots = [\"layer3\", \"layer4\"]");
    let places: Vec<(&str, usize)> = new.iter().map(|(_, s, h, _)| (s.as_str(), *h)).collect();
    assert!(
        places.contains(&("layer3", 7)) && places.contains(&("layer4", 4)),
        "{places:?}"
    );
    assert!(
        places.iter().all(|(s, _)| ["layer3", "layer4"].contains(s)),
        "{places:?}"
    );
    assert!(
        new.iter().any(|(_, _, _, m)| m.contains(&0.0)),
        "something is dropped"
    );
    assert_eq!(masks("old", "slots = [\"stage3\", \"stage4\"]"), new);
    assert_eq!(masks("default", ""), new);
}

/// A three-layer transformer on the Austen sentences, trained two steps with
/// `strategy` (the lines of one `[[strategy]]` table); without the model's
/// own dropout, so that a strategy's masks are the only random draws.
fn text_slots_file(dir: &Path, name: &str, strategy: &str) -> PathBuf {
    let data = repo_root().join("data/austen-sentences");
    let file = dir.join(format!("{name}.toml"));
    let text = format!(
        "name = \"{name}\"\n[data]\nformat = \"text\"\npath = \"{}\"\nmax_len = 32\n\
         vocab_size = 2000\ntrain_limit = 64\nval_limit = 16\n[model]\nkind = \"transformer\"\n\
         hidden = 32\nheads = 4\nlayers = 3\nff = 64\ndropout = 0.0\n[train]\nepochs = 1\nbatch_size = 16\n\
         max_steps = 2\nlog_every = 1\n[[strategy]]\n{strategy}\n",
        data.display()
    );
    std::fs::write(&file, text).unwrap();
    file
}

/// The transformer's residual branches (LayerDrop's places) and attention
/// logits (DropKey's) train two steps with the strategy where its `slots`
/// put it and nowhere else; DropKey's rate falls with depth under
/// `linear-down`, to nothing at the last layer.
#[test]
fn every_kind_of_transformer_slot_trains_where_its_pattern_puts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let p = "schedule = { kind = \"constant\", p = 0.5 }";
    let branches = "plugin = \"droppath\"\nslots = [\"layer*.attn\", \"layer*.ff\"]";
    let keys = "plugin = \"dropkey\"\nslots = [\"layer*.keys\"]\ndepth_rule = \"linear-down\"";
    let cases = [
        (
            "branches",
            branches,
            names(&[
                "layer1.attn",
                "layer1.ff",
                "layer2.attn",
                "layer2.ff",
                "layer3.attn",
                "layer3.ff",
            ]),
        ),
        (
            "keys",
            keys,
            names(&["layer1.keys", "layer2.keys", "layer3.keys"]),
        ),
    ];
    for (name, strategy, want) in cases {
        let file = text_slots_file(tmp.path(), name, &format!("{strategy}\n{p}"));
        let run = trained(&tmp.path().join(format!("runs-{name}")), &file);
        assert_eq!(train_steps(&run.metrics(), "loss").len(), 2, "{name}");
        let dropped = dropped_by_slot(&run);
        let slots: Vec<&str> = dropped.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            slots, want,
            "{name}: the slots that logged a dropped fraction"
        );
        if name == "keys" {
            // 2 × 16 × 4 heads × 32 × 32 logits a step: p within a few points.
            let mean = |i: usize| dropped[i].1.iter().sum::<f64>() / 2.0;
            assert!((mean(0) - 0.5).abs() < 0.03, "{dropped:?}");
            assert!((mean(1) - 0.25).abs() < 0.03, "{dropped:?}");
            assert_eq!(mean(2), 0.0, "{dropped:?}");
        }
    }
    // The dropped keys reach the softmax: the first loss moves with them,
    // and not when DropKey drops nothing.
    let first_loss = |name: &str, strategy: &str| {
        let file = text_slots_file(tmp.path(), name, strategy);
        let run = trained(&tmp.path().join(format!("runs-{name}")), &file);
        train_steps(&run.metrics(), "loss")[0].1
    };
    let none = first_loss("none", "plugin = \"none\"");
    let idle = format!("{keys}\nschedule = {{ kind = \"constant\", p = 0.0 }}");
    assert_eq!(first_loss("idle", &idle), none);
    let busy = format!("{keys}\n{p}");
    assert_ne!(first_loss("busy", &busy), none);
}
