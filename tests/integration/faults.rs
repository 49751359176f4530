//! Faults injected into the real binary, and the outcome each must have (the
//! list, with what was seen, is RELIABILITY.md).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::fixtures::fixture;
use crate::common::harness::*;
use probdrop_tui::run::control::{self, Command as Ctl};
use probdrop_tui::run::dir::{self, RunDir, State};

#[test]
fn a_plugin_that_panics_in_training_is_replaced_by_its_previous_version() {
    let s = setup("probe-v1", "epochs = 50");
    let (mut child, run) = s.start_run();
    wait_for("step 3", || last_step(&run) >= 3);
    // Passes the load-time smoke test, panics at its first training step.
    s.replace("probe-panics-in-training");
    wait_for("the revert", || event(&run, "reverted").is_some());
    let failed = event(&run, "strategy_failed").unwrap();
    assert!(failed.message.contains("panic"), "{}", failed.message);
    let reverted = event(&run, "reverted").unwrap();
    assert!(
        reverted.message.contains("7.0.0 failed; back to 1.0.0"),
        "{}",
        reverted.message
    );
    wait_for("steps after the revert", || {
        last_step(&run) > reverted.step + 3
    });
    stop(&run, &mut child);
    assert_eq!(run.status().unwrap().state, State::Stopped);
    assert_steps_contiguous(&run);
    // No step was learnt with the failing version.
    for m in losses(&run) {
        assert_eq!(m.plugin_version, "1.0.0", "step {}", m.step);
    }
}

#[test]
fn without_a_previous_version_a_failing_plugin_pauses_the_run_until_fixed() {
    // NaN masks from the first training step: caught by the finiteness check.
    let s = setup("probe-nan-in-training", "epochs = 50");
    let (mut child, run) = s.start_run();
    wait_for("the pause", || {
        run.status().is_some_and(|st| st.state == State::Paused)
    });
    let status = run.status().unwrap();
    assert!(
        status.message.contains("NaN or infinite"),
        "{}",
        status.message
    );
    assert!(event(&run, "strategy_failed").is_some());
    assert_eq!(last_step(&run), 0, "nothing learnt from a NaN mask");
    assert!(child.try_wait().unwrap().is_none(), "the process lives on");

    // Fixed and rebuilt: resume picks the new version up and retries the step.
    s.replace("probe-v1");
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        control::send(&run.file(dir::SOCKET), &Ctl::Resume)
            .unwrap()
            .ok
    );
    wait_for("steps with the fixed version", || last_step(&run) >= 3);
    stop(&run, &mut child);
    assert_steps_contiguous(&run);
    for m in losses(&run) {
        assert_eq!(m.plugin_version, "1.0.0");
        assert!(m.value.is_finite());
    }
    assert!(event(&run, "reload").is_some());
}

#[test]
fn compare_says_when_a_run_pauses_on_a_broken_strategy_and_finishes_once_it_is_fixed() {
    let s = setup("probe-nan-in-training", "epochs = 1");
    let log = s.runs.with_extension("log");
    let mut compare = s
        .bin()
        .args(["compare", "--jobs", "2", "--runs"])
        .arg(&s.runs)
        .arg("--out")
        .arg(s.runs.with_extension("compare"))
        .arg(&s.file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("compare reporting the pause", || {
        said().contains("probe seed 3 paused, and compare waits for it")
    });
    assert!(said().contains("NaN or infinite"), "{}", said());
    let run = dir::list_runs(&s.runs)
        .into_iter()
        .find(|r| r.path.to_string_lossy().contains("probe"))
        .unwrap();
    s.replace("probe-v1");
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        control::send(&run.file(dir::SOCKET), &Ctl::Resume)
            .unwrap()
            .ok
    );
    wait_for("compare to finish", || {
        compare.try_wait().unwrap().is_some()
    });
    assert!(compare.wait().unwrap().success(), "{}", said());
    assert!(said().contains("probe seed 3 going again"), "{}", said());
    assert_eq!(run.status().unwrap().state, State::Done);
}

#[test]
fn a_plugin_that_aborts_kills_only_its_trainer_and_the_run_resumes_once_fixed() {
    // Aborts the process at step 5; checkpoints every 2 steps.
    let s = setup(
        "probe-aborts-in-training",
        "epochs = 2\ncheckpoint_every = 2",
    );
    let run = s.prepare();
    // As the dashboard and `compare` start trainers, and record how they end.
    let mut trainer = s
        .bin()
        .arg("train")
        .arg(&run.path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let exit = trainer.wait().unwrap();
    let recorded = run.record_exit(trainer.id(), exit).unwrap();
    assert_eq!(
        recorded.as_deref(),
        Some("trainer killed by signal 6 (SIGABRT)")
    );
    let status = run.status().unwrap();
    assert_eq!(status.state, State::Failed);
    assert!(status.message.contains("SIGABRT"), "{}", status.message);
    assert_eq!(run.checkpoint().unwrap().step, 4);

    // The plugin fixed, the run continues from its checkpoint to the end.
    s.replace("probe-v1");
    s.resume_to_the_end(&run, 32);
}

/// A deterministic stream of "random" delays (xorshift), so a failure can be
/// replayed.
struct Delays(u64);

impl Delays {
    fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo)
    }
}

#[test]
fn twenty_five_sigkills_at_random_moments_lose_nothing() {
    // Long enough never to finish inside the loop, whatever the machine's speed.
    let s = setup("probe-v1", "epochs = 1000\ncheckpoint_every = 5");
    let run = s.prepare();
    let mut delays = Delays(0x9e37_79b9_7f4a_7c15);
    let mut kills = 0;
    let mut last_checkpoint = 0;
    while kills < 25 {
        let mut trainer = s
            .bin()
            .args(["run", "-q", "--resume"])
            .arg(&run.path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delays.next_ms(50, 1500)));
        assert!(
            trainer.try_wait().unwrap().is_none(),
            "the trainer ended by itself: {:?}",
            run.status()
        );
        trainer.kill().unwrap();
        trainer.wait().unwrap();
        kills += 1;
        // Whatever the moment, the checkpoint that checkpoint.json names is
        // complete, and it never goes backwards.
        if let Some(c) = run.checkpoint() {
            assert!(c.step >= last_checkpoint, "checkpoint went back");
            last_checkpoint = c.step;
            for f in [&c.model, &c.optimizer] {
                let path = run.path.join(dir::CHECKPOINT_DIR).join(f);
                assert!(
                    std::fs::metadata(&path).is_ok_and(|m| m.len() > 0),
                    "{} missing or empty",
                    path.display()
                );
            }
        }
    }
    // A last resume goes past the checkpoint and is stopped properly.
    let mut trainer = s
        .bin()
        .args(["run", "-q", "--resume"])
        .arg(&run.path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The killed trainers' logs and status can satisfy "past the checkpoint"
    // before this one has truncated them and opened its socket: wait for its
    // own pid in the status first (written after the truncation).
    let pid = trainer.id();
    wait_for("steps past the checkpoint", || {
        run.status()
            .is_some_and(|st| st.pid == pid && st.state == State::Training)
            && last_step(&run) > last_checkpoint + 3
    });
    stop(&run, &mut trainer);
    assert_eq!(run.status().unwrap().state, State::Stopped);
    // Every line of the logs is whole and readable, each step once.
    for log in [dir::METRICS, dir::EVENTS] {
        let text = std::fs::read_to_string(run.file(log)).unwrap();
        for (i, line) in text.lines().enumerate() {
            assert!(
                serde_json::from_str::<serde_json::Value>(line).is_ok(),
                "{log} line {} unreadable: {line:?}",
                i + 1
            );
        }
        assert!(text.ends_with('\n'));
    }
    assert_steps_contiguous(&run);
    // The resumes made progress between the kills.
    assert!(last_checkpoint >= 10, "checkpoint at {last_checkpoint}");
}

#[test]
fn a_loss_turning_nan_marks_the_run_diverged_and_keeps_the_last_good_checkpoint() {
    let s = setup("probe-v1", "epochs = 2\ncheckpoint_every = 2");
    diverging(&s, 1);
    let (run, _) = diverged_step(&s);
    let status = run.status().unwrap();
    let diverged = event(&run, "diverged").unwrap();
    assert!(
        status
            .message
            .contains(&format!("non-finite at step {}", diverged.step)),
        "{}",
        status.message
    );
    let checkpoint = run
        .checkpoint()
        .expect("a checkpoint before the divergence");
    assert!(checkpoint.step < diverged.step);
    assert!(
        run.path
            .join(dir::CHECKPOINT_DIR)
            .join(&checkpoint.model)
            .is_file()
    );
    // Nothing after the divergence was logged as a training step.
    assert!(last_step(&run) < diverged.step);
}

/// The experiment of `s` without a strategy and with a learning rate that
/// blows the weights up, logging every `log_every` steps.
fn diverging(s: &Setup, log_every: u32) {
    let text = std::fs::read_to_string(&s.file)
        .unwrap()
        .replace("lr = 0.05", "lr = 1e6")
        .replace("log_every = 1\n", &format!("log_every = {log_every}\n"))
        .replace("plugin = \"probe\"", "plugin = \"none\"")
        .replace("schedule = { kind = \"constant\", p = 0.1 }", "");
    std::fs::write(&s.file, text).unwrap();
}

fn diverged_step(s: &Setup) -> (RunDir, u64) {
    let out = s.run_file(&s.file);
    assert!(!out.status.success(), "a diverged run is not a success");
    let run = dir::list_runs(&s.runs).pop().unwrap();
    assert_eq!(run.status().unwrap().state, State::Diverged);
    let step = event(&run, "diverged").unwrap().step;
    (run, step)
}

/// Losses stay on the device between read points (log, evaluation and
/// checkpoint steps). One that turns NaN between two reads sends the run back
/// to the last good read and through those steps one at a time: the
/// divergence is found at the step where reading every step finds it.
#[test]
fn a_loss_turning_nan_between_reads_is_found_at_its_own_step() {
    let every_step = setup("probe-v1", "epochs = 2\ncheckpoint_every = 7");
    diverging(&every_step, 1);
    let (_, expected) = diverged_step(&every_step);

    let s = setup("probe-v1", "epochs = 2\ncheckpoint_every = 7");
    diverging(&s, 1000);
    let (run, at) = diverged_step(&s);
    assert_eq!(at, expected);
    let recheck = event(&run, "rechecking").expect("a recheck before the divergence");
    assert!(recheck.step < at, "{recheck:?}");
    assert!(
        recheck.message.contains("not finite"),
        "{}",
        recheck.message
    );
    if let Some(checkpoint) = run.checkpoint() {
        assert!(checkpoint.step < at);
    }
    assert!(losses(&run).iter().all(|m| m.value.is_finite()));
}

#[test]
fn a_full_disk_stops_the_trainer_with_a_clear_error_and_keeps_what_was_written() {
    let s = setup("probe-v1", "epochs = 4\ncheckpoint_every = 2");
    let run = s.prepare();
    let trainer = s
        .bin()
        .arg("train")
        .arg(&run.path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("step 3", || last_step(&run) >= 3);
    // The disk fills up mid-run: a file-size limit set on the running trainer
    // makes every write past it fail (EFBIG, as ENOSPC would).
    let size = std::fs::metadata(run.file(dir::METRICS)).unwrap().len();
    let limit = Command::new("prlimit")
        .arg(format!("--pid={}", trainer.id()))
        .arg(format!("--fsize={}", size + 4000))
        .status()
        .unwrap();
    assert!(limit.success());
    let out = trainer.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(out.status.code().is_some(), "an error exit, not a signal");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Says what it was doing and why it failed, e.g. "saving the model
    // checkpoint: … File too large".
    assert!(
        (stderr.contains("writing") || stderr.contains("saving")) && stderr.contains("too large"),
        "{stderr}"
    );
    let status = run.status().unwrap();
    assert_eq!(status.state, State::Failed);
    assert!(status.message.contains("too large"), "{}", status.message);
    // What was written before stays readable; with space again, the run
    // resumes from its last checkpoint and finishes.
    assert!(last_step(&run) >= 3);
    let checkpoint = run
        .checkpoint()
        .expect("checkpoints before the disk filled");
    assert!(checkpoint.step >= 2);
    s.resume_to_the_end(&run, 64);
}

#[test]
fn a_symlink_out_of_the_plugins_directory_is_refused_and_the_watcher_goes_on() {
    let s = setup("probe-v1", "epochs = 50");
    // At start-up: listed as refused, with the reason.
    let outside = s
        .plugins
        .join(format!("libescape{}", std::env::consts::DLL_SUFFIX));
    std::os::unix::fs::symlink(fixture("probe-v2"), &outside).unwrap();
    let out = s.bin().args(["plugins", "--json"]).output().unwrap();
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let escape = listing
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str().unwrap_or("").contains("escape"))
        .unwrap_or_else(|| panic!("{listing}"));
    let error = escape["error"].as_str().unwrap();
    assert!(error.contains("outside the plugins directory"), "{error}");
    std::fs::remove_file(&outside).unwrap();

    // While training: a link appearing is refused, and a real new version after
    // it is still picked up.
    let (mut child, run) = s.start_run();
    wait_for("step 3", || last_step(&run) >= 3);
    std::os::unix::fs::symlink(fixture("probe-v2"), &outside).unwrap();
    wait_for("the refusal", || event(&run, "reload_refused").is_some());
    let refused = event(&run, "reload_refused").unwrap();
    assert!(
        refused.message.contains("outside the plugins directory"),
        "{}",
        refused.message
    );
    s.replace("probe-v2");
    wait_for("the reload", || event(&run, "reload").is_some());
    stop(&run, &mut child);
    assert_steps_contiguous(&run);
}

/// Run by `another_user_is_refused_by_the_control_socket` as an unprivileged user:
/// connects to `PROBDROP_SOCKET`, sends a stop, prints what happened.
#[test]
#[ignore = "a helper, run as another user by the test below"]
fn control_socket_client_helper() {
    use std::io::{BufRead, BufReader, Write};
    let Ok(path) = std::env::var("PROBDROP_SOCKET") else {
        return;
    };
    match std::os::unix::net::UnixStream::connect(&path) {
        Err(e) => println!("CONNECT-ERROR {e}"),
        Ok(mut stream) => {
            let _ = stream.write_all(b"{\"cmd\":\"stop\"}\n");
            let mut line = String::new();
            let _ = BufReader::new(stream).read_line(&mut line);
            println!("REPLY {}", line.trim());
        }
    }
}

#[test]
fn another_user_is_refused_by_the_control_socket_and_nothing_listens_on_the_network() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let s = setup("probe-v1", "epochs = 50");
    let (mut child, run) = s.start_run();
    wait_for("step 2", || last_step(&run) >= 2);
    let socket = run.file(dir::SOCKET);
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "owner-only");

    // No TCP or UDP socket, listening or not, among the trainer's descriptors.
    let trainer = run.status().unwrap().pid;
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{trainer}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")
                .map(|i| i.trim_end_matches(']').to_string())
        })
        .collect();
    assert!(!inodes.is_empty(), "the control socket at least");
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let inode = line.split_whitespace().nth(9).unwrap_or("");
            assert!(
                !inodes.iter().any(|i| i == inode),
                "the trainer has a {table} socket: {line}"
            );
        }
    }

    // Another user: as root here, run the helper as `nobody`. The path is made
    // reachable and, to get past the 0600 mode, the socket opened to all: the
    // peer-credential check must still refuse.
    if nix::unistd::getuid().is_root() {
        let mut p = run.path.clone();
        while p.pop() {
            if p == Path::new("/") || p == Path::new("/tmp") {
                break;
            }
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(&run.path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let as_nobody = |what: &str| -> String {
            let out = Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(std::env::current_exe().unwrap())
                .args([
                    // Test names leave out the binary's own name.
                    concat!(module_path!(), "::control_socket_client_helper")
                        .trim_start_matches("integration::"),
                    "--exact",
                    "--ignored",
                    "--nocapture",
                ])
                .env("PROBDROP_SOCKET", &socket)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "{what}: {stdout}");
            stdout
        };
        let denied = as_nobody("0600");
        assert!(denied.contains("CONNECT-ERROR"), "{denied}");
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
        let refused = as_nobody("0666");
        assert!(
            refused.contains("refused: not the run's owner"),
            "{refused}"
        );
        assert_eq!(run.status().unwrap().state, State::Training, "not stopped");
    }
    stop(&run, &mut child);
}

/// The run directory turns read-only under a running trainer (as a user other
/// than root: root ignores permissions, so when the tests run as root the
/// trainer runs as `nobody`).
#[test]
fn a_run_directory_turned_read_only_stops_the_trainer_with_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup("probe-v1", "epochs = 50");
    let run = s.prepare();
    let mode =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    let root = nix::unistd::getuid().is_root();
    let mut cmd = if root {
        // Everything the trainer needs readable, its run directory its own.
        let mut p = run.path.clone();
        while p.pop() && p != Path::new("/tmp") && p != Path::new("/") {
            mode(&p, 0o755);
        }
        mode(&s.plugins, 0o755);
        let nobody = Some(nix::unistd::Uid::from_raw(65534));
        let group = Some(nix::unistd::Gid::from_raw(65534));
        nix::unistd::chown(&run.path, nobody, group).unwrap();
        for entry in std::fs::read_dir(&run.path).unwrap() {
            nix::unistd::chown(&entry.unwrap().path(), nobody, group).unwrap();
        }
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_probdrop-tui"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
    };
    let trainer = cmd
        .arg("--plugins")
        .arg(&s.plugins)
        .arg("train")
        .arg(&run.path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("step 3", || last_step(&run) >= 3);
    let before = std::fs::read(run.file(dir::METRICS)).unwrap();
    mode(&run.path, 0o555);
    let out = trainer.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.status.code().is_some(), "an error exit, not a signal");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    eprintln!("trainer said: {}", stderr.lines().last().unwrap_or(""));
    mode(&run.path, 0o755);
    // What was written is kept: the metrics log only grew, and still parses.
    let after = std::fs::read(run.file(dir::METRICS)).unwrap();
    assert!(after.starts_with(&before));
    assert!(last_step(&run) >= 3);
    // The status could not be rewritten in a read-only directory: it still says
    // training, with a pid that is gone, which the dashboard shows as failed.
    let status = run.status().unwrap();
    assert!(!dir::pid_alive(status.pid));
}

/// Issue 16, defect 15: a trainer killed before its first checkpoint and
/// started again trains from step 0 and logs each step once.
#[test]
fn a_run_killed_before_its_first_checkpoint_starts_over_logging_each_step_once() {
    let s = setup("probe-v1", "epochs = 4\ncheckpoint_every = 1000000");
    let (mut child, run) = s.start_run();
    wait_for("step 5", || last_step(&run) >= 5);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(run.checkpoint().is_none(), "no checkpoint before the kill");
    s.resume_to_the_end(&run, 64);
}
