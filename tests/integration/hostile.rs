//! Hostile plugins, files and neighbours (issue 13): each hole a fault campaign
//! found, tried on the real binary, and the outcome it must have now. The list,
//! with what was seen, is in RELIABILITY.md.

use crate::common;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::harness::*;
use probdrop_tui::run::control::{self, Command as Ctl, MAX_CONNECTIONS, MAX_LINE};
use probdrop_tui::run::dir::{self, RunDir, State};

fn is_root() -> bool {
    nix::unistd::getuid().is_root()
}

/// Runs `script` with `sh` as the unprivileged user `nobody`.
fn as_nobody(script: &str) {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["sh", "-c", script])
        .output()
        .expect("setpriv");
    assert!(
        out.status.success(),
        "as nobody: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The library copies a process has mapped (its `/proc/<pid>/maps` lines naming
/// a `.so` outside the system's directories).
fn mapped_plugins(pid: u32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5).map(str::to_string))
        .filter(|p| p.contains(".so") && !p.starts_with("/usr/") && !p.starts_with("/lib"))
        .collect()
}

fn copy_dirs_of(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir("/tmp")
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("probdrop-tui-libs-{pid}-")))
        })
        .collect()
}

/// The attack of the campaign, as `nobody`: the predictable copy directories of
/// the next few hundred pids made in advance, world-writable, holding links to
/// the attacker's library and to a file of root's; then a root run. The trainer
/// maps nothing of them, overwrites nothing, and leaves no copy behind; its run
/// directory and socket are owner-only although the umask is 000.
#[test]
fn another_user_cannot_choose_what_a_trainer_maps_or_writes() {
    if !is_root() {
        eprintln!("skipped: switching to another user needs root");
        return;
    }
    let s = setup("probe-v1", "epochs = 50");
    let attack = tempfile::Builder::new()
        .prefix("att-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(attack.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let evil = attack.path().join("libprobe.so");
    std::fs::copy(common::fixtures::fixture("probe-v2"), &evil).unwrap();
    nix::unistd::chown(&evil, Some(65534.into()), Some(65534.into())).unwrap();
    let precious = attack.path().join("roots-file");
    std::fs::write(&precious, "root's data").unwrap();

    let next: u64 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (first, last) = (next + 1, next + 400);
    as_nobody(&format!(
        "for p in $(seq {first} {last}); do d=/tmp/probdrop-tui-libs-$p; mkdir -p $d && chmod 777 $d; \
         for n in 0 1 2 3 4 5 6 7 8 9; do ln -sf {evil} $d/libprobe-$n.so; done; \
         ln -sf {precious} $d/libdropout-0.so; done",
        evil = evil.display(),
        precious = precious.display()
    ));
    // Left by a trainer of ours that was killed while loading: cleaned up.
    let dead = {
        let mut c = Command::new("true").spawn().unwrap();
        c.wait().unwrap();
        c.id()
    };
    let stale = PathBuf::from(format!("/tmp/probdrop-tui-libs-{dead}-AbCdEf"));
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("libprobe.so"), "old copy").unwrap();

    let mut umask_000 = Command::new("sh");
    umask_000
        .args(["-c", "umask 000; exec \"$@\"", "sh"])
        .arg(env!("CARGO_BIN_EXE_probdrop-tui"))
        .arg("--plugins")
        .arg(&s.plugins)
        .env("TMPDIR", "/tmp");
    let (mut child, run) = s.spawn_run(umask_000);
    wait_for("step 3", || last_step(&run) >= 3);
    let pid = run.status().unwrap().pid;

    let mapped = mapped_plugins(pid);
    assert!(!mapped.is_empty(), "the probe library is mapped");
    for path in &mapped {
        assert!(
            path.starts_with(&format!("/tmp/probdrop-tui-libs-{pid}-")),
            "mapped outside the trainer's private directories: {path} ({mapped:?})"
        );
    }
    assert!(
        !mapped
            .iter()
            .any(|p| p.contains(attack.path().to_str().unwrap())),
        "{mapped:?}"
    );
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "root's data");
    for p in first..=last {
        let planted = PathBuf::from(format!("/tmp/probdrop-tui-libs-{p}"));
        let entries = std::fs::read_dir(&planted).map_or(0, |d| d.count());
        assert!(
            entries == 0 || entries == 11,
            "{} changed",
            planted.display()
        );
    }
    assert!(!stale.exists(), "a dead process's copies are removed");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(&run.path), 0o700, "run directory, umask 000");
    assert_eq!(mode(&run.file(dir::SOCKET)), 0o600, "socket, umask 000");
    assert!(
        copy_dirs_of(pid).is_empty(),
        "copies are removed once mapped"
    );

    stop(&run, &mut child);
    for p in first..=last {
        let _ = std::fs::remove_dir_all(format!("/tmp/probdrop-tui-libs-{p}"));
    }
}

#[test]
fn a_library_whose_trial_never_returns_is_refused_and_training_goes_on() {
    let s = setup("probe-v1", "epochs = 50");
    let mut short_trials = s.bin();
    short_trials.env("PROBDROP_TUI_TRIAL_TIMEOUT_S", "2");
    let (mut child, run) = s.spawn_run(short_trials);
    wait_for("step 3", || last_step(&run) >= 3);
    s.replace("probe-hangs");
    wait_for("the refusal", || event(&run, "reload_refused").is_some());
    let refused = event(&run, "reload_refused").unwrap();
    assert!(
        refused.message.contains("did not return within 2 s"),
        "{}",
        refused.message
    );
    // Training goes on with the version it had (the trial held nothing).
    let at = last_step(&run);
    wait_for("five more steps", || last_step(&run) >= at + 5);
    assert!(event(&run, "reload").is_none());
    stop(&run, &mut child);
    assert_steps_contiguous(&run);
}

#[test]
fn a_strategy_that_hangs_in_training_fails_the_run_with_the_reason_and_it_resumes() {
    let s = setup(
        "probe-hangs-in-training",
        "epochs = 1\nmax_steps = 9\ncheckpoint_every = 2\nstep_timeout = 3",
    );
    let (child, run) = s.start_run();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let status = run.status().unwrap();
    assert_eq!(status.state, State::Failed, "{status:?}");
    assert!(
        status
            .message
            .contains("strategy probe 11.0.0 did not return from mask()")
            && status.message.contains("at step 5"),
        "{}",
        status.message
    );
    let error = event(&run, "error").expect("logged");
    assert_eq!(error.message, status.message);
    assert_eq!(
        run.checkpoint().unwrap().step,
        4,
        "the checkpoint is intact"
    );
    // Fixed, the run resumes from its checkpoint and finishes.
    s.replace("probe-v1");
    s.resume_to_the_end(&run, 9);
}

#[test]
fn stop_during_a_hung_step_ends_the_trainer_at_once() {
    let s = setup("probe-hangs-in-training", "epochs = 50");
    let (mut child, run) = s.start_run();
    wait_for("step 4", || last_step(&run) >= 4);
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    assert!(
        control::send(&run.file(dir::SOCKET), &Ctl::Stop)
            .unwrap()
            .ok
    );
    // The default deadline is a minute; a stop does not wait for it.
    wait_for("the trainer to end", || child.try_wait().unwrap().is_some());
    let took = asked.elapsed();
    let status = run.status().unwrap();
    assert_eq!(status.state, State::Stopped, "{status:?}");
    assert!(
        status.message.contains("did not return from mask()"),
        "{}",
        status.message
    );
    assert_eq!(status.step, 4);
    eprintln!("stopped {took:?} after the request");
    assert!(
        took < Duration::from_secs(30),
        "not the one-minute deadline"
    );
}

#[test]
fn a_second_trainer_on_one_run_directory_is_refused_and_a_reused_pid_is_not_alive() {
    let s = setup("probe-v1", "epochs = 50");
    let (mut child, run) = s.start_run();
    wait_for("step 2", || last_step(&run) >= 2);
    let holder = run.status().unwrap().pid;
    let second = s.resume(&run, &[]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(
        stderr.contains(&format!("is in use by pid {holder} on host")),
        "{stderr}"
    );
    let status = run.status().unwrap();
    assert_eq!((status.state, status.pid), (State::Training, holder));
    stop(&run, &mut child);

    // A dead trainer's pid taken by another process: not alive, whatever the pid.
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let mut status = run.status().unwrap();
    status.state = State::Training;
    status.pid = sleeper.id();
    dir::write_json(&run.file(dir::STATUS), &status).unwrap();
    assert!(dir::pid_alive(sleeper.id()));
    assert!(
        !run.trainer_alive(&status),
        "liveness is the lock, not the pid"
    );
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

/// A run stopped after a few steps, with its checkpoint, for the resume tests.
/// A run stopped after step 6, well before its last step: its 150 steps
/// leave the stop time to arrive (with 12, a fast step finished the run
/// between the look that saw step 6 and the stop, and the stop met a closed
/// socket: seen in CI once steps got faster).
fn stopped_run(s: &Setup) -> RunDir {
    let (mut child, run) = s.start_run();
    wait_for("step 6", || last_step(&run) >= 6);
    stop(&run, &mut child);
    run
}

#[test]
fn an_unreadable_checkpoint_is_refused_and_nothing_changes_until_a_restart_is_asked() {
    let s = setup(
        "probe-v1",
        "epochs = 10\nmax_steps = 150\ncheckpoint_every = 3",
    );
    let run = stopped_run(&s);
    let checkpoint = run.file(dir::CHECKPOINT);
    let good = std::fs::read(&checkpoint).unwrap();
    let named = run.checkpoint().unwrap().model;
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("garbage", b"\x00\xffnot json".to_vec(), "cannot be read"),
        ("empty", Vec::new(), "cannot be read"),
        (
            "a missing file",
            String::from_utf8(good.clone())
                .unwrap()
                .replace(&named, "model-gone")
                .into_bytes(),
            "which is missing",
        ),
    ];
    for (what, bytes, says) in cases {
        std::fs::write(&checkpoint, &bytes).unwrap();
        let before: Vec<Vec<u8>> = [dir::METRICS, dir::STATUS, dir::EVENTS]
            .iter()
            .map(|f| std::fs::read(run.file(f)).unwrap())
            .collect();
        let out = s.resume(&run, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: {stderr}");
        assert!(
            stderr.contains(says) && stderr.contains("--restart"),
            "{what}: {stderr}"
        );
        let after: Vec<Vec<u8>> = [dir::METRICS, dir::STATUS, dir::EVENTS]
            .iter()
            .map(|f| std::fs::read(run.file(f)).unwrap())
            .collect();
        assert!(before == after, "{what}: nothing changes");
    }
    // Asked for explicitly: from step 0, the logs cleared, each step once.
    let out = s.resume(&run, &["--restart"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_steps_contiguous(&run);
    assert_eq!(last_step(&run), 150);
}

#[test]
fn a_damaged_log_is_truncated_on_resume_and_a_failed_resume_keeps_the_step() {
    let s = setup(
        "probe-v1",
        "epochs = 10\nmax_steps = 150\ncheckpoint_every = 3",
    );
    let run = stopped_run(&s);
    let stopped_at = run.status().unwrap().step;
    // A line that is not UTF-8 in the middle of the log.
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(run.file(dir::METRICS))
        .unwrap();
    log.write_all(b"{\"step\": 1, \"bad\": \"\xff\xfe\"}\n")
        .unwrap();
    drop(log);
    // The model checkpoint damaged: the resume fails, the status keeps its step.
    let model = run
        .file(dir::CHECKPOINT_DIR)
        .join(run.checkpoint().unwrap().model);
    let saved = std::fs::read(&model).unwrap();
    std::fs::write(&model, b"damaged").unwrap();
    let out = s.resume(&run, &[]);
    assert!(!out.status.success());
    let status = run.status().unwrap();
    assert_eq!(status.state, State::Failed);
    assert_eq!(status.step, stopped_at, "{status:?}");
    std::fs::write(&model, saved).unwrap();
    let out = s.resume(&run, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut keys: Vec<(u64, String)> = run
        .metrics()
        .into_iter()
        .map(|m| (m.step, format!("{}/{}", m.split, m.metric)))
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "a (step, metric) logged twice");
    assert_steps_contiguous(&run);
}

fn temporary_files(run: &RunDir) -> Vec<String> {
    std::fs::read_dir(&run.path)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[test]
fn sigterm_and_a_broken_run_file_write_the_final_status() {
    let s = setup("probe-v1", "epochs = 50");
    let (child, run) = s.start_run();
    wait_for("step 3", || last_step(&run) >= 3);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let status = run.status().unwrap();
    assert_eq!(status.state, State::Stopped, "{status:?} {out:?}");
    assert_eq!(
        run.checkpoint().unwrap().step,
        status.step,
        "saved on the way out"
    );
    assert!(temporary_files(&run).is_empty());

    // The run's own experiment file broken: failed, with the reason.
    std::fs::write(run.file(dir::EXPERIMENT), "name = [").unwrap();
    let out = s.resume(&run, &[]);
    assert!(!out.status.success());
    let status = run.status().unwrap();
    assert_eq!(status.state, State::Failed);
    assert!(
        status.message.contains("invalid TOML"),
        "{}",
        status.message
    );
    assert!(temporary_files(&run).is_empty());
}

#[test]
fn the_control_socket_limits_lines_and_connections_and_comes_back_when_deleted() {
    let s = setup("probe-v1", "epochs = 50");
    let (mut child, run) = s.start_run();
    wait_for("step 2", || last_step(&run) >= 2);
    let socket = run.file(dir::SOCKET);

    // A line without end: refused once past the limit, the connection closed.
    let mut long = UnixStream::connect(&socket).unwrap();
    long.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let chunk = vec![b'x'; 4096];
    let mut sent = 0;
    while sent <= 4 * MAX_LINE {
        if long.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let mut reply = String::new();
    let _ = long.read_to_string(&mut reply);
    assert!(reply.contains("longer than"), "{reply:?}");

    // Idle connections past the limit: the extra ones refused.
    let idle: Vec<UnixStream> = (0..MAX_CONNECTIONS)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = UnixStream::connect(&socket).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = String::new();
    let _ = extra.read_to_string(&mut reply);
    assert!(reply.contains("too many connections"), "{reply:?}");
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));

    // Deleted: made again, and control works through it.
    std::fs::remove_file(&socket).unwrap();
    wait_for("the socket again", || socket.exists());
    let at = last_step(&run);
    wait_for("more steps", || last_step(&run) > at);
    stop(&run, &mut child);
    assert_eq!(run.status().unwrap().state, State::Stopped);
}

#[test]
fn a_fifo_named_like_a_library_does_not_block_the_watcher() {
    let s = setup("probe-v1", "epochs = 50");
    let (mut child, run) = s.start_run();
    wait_for("step 2", || last_step(&run) >= 2);
    nix::unistd::mkfifo(
        &s.plugins.join("libfifo.so"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    s.replace("probe-v2");
    wait_for("the reload after the FIFO", || {
        event(&run, "reload").is_some()
    });
    stop(&run, &mut child);
}

#[test]
fn mask_exits_non_zero_on_a_mask_that_is_not_finite() {
    let s = setup("probe-v1", "epochs = 1");
    let out = s
        .bin()
        .args([
            "mask", "probe", "--shape", "2,3,8,8", "--p", "0.1", "--param", "gain=0",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("NaN or infinite"), "{stderr}");
}

#[test]
fn check_reports_many_errors_in_linear_time_with_a_cap_and_refuses_what_cannot_run() {
    let s = setup("probe-v1", "epochs = 1");
    let base = std::fs::read_to_string(&s.file).unwrap();
    // 40,000 unknown strategy parameters: a capped report, and every line of the
    // file is not scanned again for each (this took 12 s before).
    let mut many = base.replace("plugin = \"probe\"\n", "plugin = \"probe\"\nparams = { ");
    let keys: Vec<String> = (0..40_000).map(|i| format!("k{i} = 1")).collect();
    many = many.replace(
        "params = { ",
        &format!("params = {{ {} }}\n", keys.join(", ")),
    );
    let file = s.file.with_file_name("many.toml");
    std::fs::write(&file, many).unwrap();
    let out = s.bin().arg("check").arg(&file).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("… and 39950 more errors"),
        "{}",
        &stdout[stdout.len().saturating_sub(500)..]
    );
    // The quoted line is cut around the column, not printed whole 50 times.
    assert!(stdout.len() < 50 * 1024, "{} bytes", stdout.len());

    let cases = [
        ("epochs = 1", "epochs = 1152921504606846976", "train.epochs"),
        ("train_limit = 512", "train_limit = 0", "data.train_limit"),
        (
            "hidden = 32",
            "hidden = 10000000000",
            "GiB of memory this machine has",
        ),
    ];
    for (from, to, key) in cases {
        let file = s.file.with_file_name("bad.toml");
        std::fs::write(&file, base.replace(from, to)).unwrap();
        let out = s.bin().arg("check").arg(&file).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{to}");
        assert!(stdout.contains(key), "{to}: {stdout}");
        let out = s.run_file(&file);
        assert!(!out.status.success(), "{to}");
        assert!(dir::list_runs(&s.runs).is_empty(), "{to}: nothing created");
    }
}

/// The listing of `plugins --json` for a plugins directory: name or id → error
/// (`None` when loaded).
fn listing(plugins: &Path) -> Vec<(String, Option<String>)> {
    let out = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
        .arg("--plugins")
        .arg(plugins)
        .args(["plugins", "--json"])
        .output()
        .unwrap();
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    listing
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["error"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// A second copy of the example crate, named `second` (crate and strategy).
fn second_crate(plugins: &Path, own_workspace: bool) {
    let from = plugins.join("my-strategy");
    let to = plugins.join("second");
    std::fs::create_dir_all(to.join("src")).unwrap();
    let lib = std::fs::read_to_string(from.join("src/lib.rs")).unwrap();
    std::fs::write(
        to.join("src/lib.rs"),
        lib.replace(
            "NAME: &'static str = \"stripes\"",
            "NAME: &'static str = \"second\"",
        ),
    )
    .unwrap();
    let mut manifest = std::fs::read_to_string(from.join("Cargo.toml"))
        .unwrap()
        .replace("name = \"my-strategy\"", "name = \"second\"");
    if !own_workspace {
        manifest = manifest.replace("\n[workspace]\n", "\n");
    }
    std::fs::write(to.join("Cargo.toml"), manifest).unwrap();
    if own_workspace {
        std::fs::copy(from.join("Cargo.lock"), to.join("Cargo.lock")).unwrap();
    }
}

/// A crate whose manifest cargo cannot load (a path dependency that is not there).
fn broken_crate(plugins: &Path, own_workspace: bool) {
    let dir = plugins.join("broken");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nnothere = {{ path = \"../../nowhere\" }}\n{}",
            if own_workspace { "\n[workspace]\n" } else { "" }
        ),
    )
    .unwrap();
}

fn assert_loaded(list: &[(String, Option<String>)], name: &str) {
    let found = list.iter().find(|(n, _)| n == name);
    assert!(
        matches!(found, Some((_, None))),
        "{name} not loaded: {list:?}"
    );
}

#[test]
fn a_crate_with_a_broken_manifest_fails_alone_in_both_layouts() {
    // Crates that are each their own workspace (a --plugins directory elsewhere).
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::fixtures::example_crate_in(tmp.path());
    second_crate(&plugins, true);
    broken_crate(&plugins, true);
    let list = listing(&plugins);
    assert_loaded(&list, "stripes");
    assert_loaded(&list, "second");
    let broken = list.iter().find(|(_, e)| e.is_some()).expect("one refused");
    assert_eq!(
        list.iter().filter(|(_, e)| e.is_some()).count(),
        1,
        "{list:?}"
    );
    assert!(broken.1.as_ref().unwrap().contains("nowhere"), "{list:?}");

    // Crates that are members of one workspace (the project's plugins/).
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::fixtures::example_crate_in(tmp.path());
    let krate = plugins.join("my-strategy");
    let manifest = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        manifest.replace("\n[workspace]\n", "\n"),
    )
    .unwrap();
    std::fs::rename(krate.join("Cargo.lock"), tmp.path().join("Cargo.lock")).unwrap();
    std::fs::write(
        tmp.path().join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"plugins/*\"]\n",
    )
    .unwrap();
    second_crate(&plugins, false);
    let list = listing(&plugins);
    assert_loaded(&list, "stripes");
    assert_loaded(&list, "second");
    broken_crate(&plugins, false);
    let list = listing(&plugins);
    assert_loaded(&list, "stripes");
    assert_loaded(&list, "second");
    let refused: Vec<_> = list.iter().filter(|(_, e)| e.is_some()).collect();
    assert_eq!(refused.len(), 1, "{list:?}");
    assert!(
        refused[0].1.as_ref().unwrap().contains("manifest"),
        "{list:?}"
    );
}

#[test]
fn two_libraries_with_one_name_are_both_refused_and_a_run_reloads_only_its_own() {
    let s = setup("probe-v1", "epochs = 50");
    let twin = s.plugins.join("libtwin.so");
    std::fs::copy(common::fixtures::fixture("probe-v2"), &twin).unwrap();
    let list = listing(&s.plugins);
    let refused: Vec<_> = list.iter().filter(|(_, e)| e.is_some()).collect();
    assert_eq!(refused.len(), 2, "{list:?}");
    for (_, e) in refused {
        assert!(
            e.as_ref().unwrap().contains("also calls itself \"probe\""),
            "{e:?}"
        );
    }
    let out = s.bin().arg("check").arg(&s.file).output().unwrap();
    assert!(!out.status.success(), "neither is used");
    std::fs::remove_file(&twin).unwrap();

    // While a run trains: a twin appearing is not taken, its own file is.
    let (mut child, run) = s.start_run();
    wait_for("step 2", || last_step(&run) >= 2);
    // Whole, as an install would put it (a half-copied file is refused for
    // another reason, which is not what this test is about).
    let partial = twin.with_extension("partial");
    std::fs::copy(common::fixtures::fixture("probe-v2"), &partial).unwrap();
    std::fs::rename(&partial, &twin).unwrap();
    wait_for("the refusal", || event(&run, "reload_refused").is_some());
    let refused = event(&run, "reload_refused").unwrap();
    assert!(
        refused.message.contains("also calls itself"),
        "{}",
        refused.message
    );
    assert!(event(&run, "reload").is_none());
    std::fs::remove_file(&twin).unwrap();
    s.replace("probe-v2");
    wait_for("the reload", || event(&run, "reload").is_some());
    stop(&run, &mut child);
}

#[test]
fn a_gzip_bomb_as_idx_data_is_refused_without_inflating_it() {
    let s = setup("probe-v1", "epochs = 1");
    let real = common::repo_root().join("data/fashion-mnist-subset");
    let data = s.file.with_file_name("bomb-data");
    std::fs::create_dir_all(&data).unwrap();
    for name in [
        "train-images-idx3-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::copy(real.join(name), data.join(name)).unwrap();
    }
    // A header declaring 10 labels, then 256 MiB of zeros: about 250 kB on disk.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&[0, 0, 8, 1, 0, 0, 0, 10]).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    std::fs::write(data.join("train-labels-idx1-ubyte.gz"), bomb).unwrap();
    let text = std::fs::read_to_string(&s.file)
        .unwrap()
        .replace(real.to_str().unwrap(), data.to_str().unwrap());
    std::fs::write(&s.file, text).unwrap();

    let said = failed_run_says(&s);
    assert!(
        said.contains("train-labels-idx1-ubyte.gz")
            && said.contains("more than the 10 bytes of data its IDX header declares"),
        "{said}"
    );
}

/// The `trial` processes smoke-testing a library copy of the trainer `pid`
/// (its copies live in /tmp/probdrop-tui-libs-<pid>-…); zombies have no
/// command line and do not count.
fn trials_of(pid: u32) -> Vec<i32> {
    let copies = format!("probdrop-tui-libs-{pid}-");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let args: Vec<String> = cmdline
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.iter().any(|a| a == "trial") && args.iter().any(|a| a.contains(&copies))
        })
        .collect()
}

/// Issue 32: a trainer killed while it smoke-tested a library whose `mask`
/// never returns left the `trial` child running under init, past its
/// deadline, for good.
#[test]
fn a_trainer_killed_during_a_hanging_trial_takes_the_trial_with_it() {
    let s = setup("probe-v1", "epochs = 50");
    let mut long_trials = s.bin();
    long_trials.env("PROBDROP_TUI_TRIAL_TIMEOUT_S", "300");
    let (mut child, run) = s.spawn_run(long_trials);
    wait_for("step 3", || last_step(&run) >= 3);
    s.replace("probe-hangs");
    let trainer = child.id();
    wait_for("the trial", || !trials_of(trainer).is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    while !trials_of(trainer).is_empty() && killed.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = trials_of(trainer);
    for pid in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(left.is_empty(), "trial processes left running: {left:?}");
}

/// `bytes`, an IDX file, with its first dimension declared as `declared` and
/// only its first `keep` records, gzipped.
fn redeclared_idx(bytes: &[u8], declared: u32, keep: usize) -> Vec<u8> {
    let ndim = usize::from(bytes[3]);
    let record: usize = bytes[8..4 + 4 * ndim]
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .product();
    let mut out = bytes[..4 + 4 * ndim + keep * record].to_vec();
    out[4..8].copy_from_slice(&declared.to_be_bytes());
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&out).unwrap();
    enc.finish().unwrap()
}

/// Issue 32: an IDX gzip whose honest header declares 4.1 M images was
/// inflated whole (36 s, 6.3 GB) for a run that used 512 of them.
#[test]
fn idx_data_is_read_only_as_far_as_the_run_uses_it_and_too_much_is_refused_unread() {
    use std::io::Read;
    let s = setup("probe-v1", "epochs = 1");
    let real = common::repo_root().join("data/fashion-mnist-subset");
    let data = s.file.with_file_name("declared-data");
    std::fs::create_dir_all(&data).unwrap();
    for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(real.join(name), data.join(name)).unwrap();
    }
    // 4.1 M images declared, 600 present: the run reads its 512 and never
    // reaches the end.
    for name in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"] {
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(real.join(name)).unwrap())
            .read_to_end(&mut bytes)
            .unwrap();
        std::fs::write(data.join(name), redeclared_idx(&bytes, 4_100_000, 600)).unwrap();
    }
    let text = std::fs::read_to_string(&s.file)
        .unwrap()
        .replace(real.to_str().unwrap(), data.to_str().unwrap());
    std::fs::write(&s.file, &text).unwrap();
    let out = s.run_file(&s.file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Without a limit, a test set declaring 4 G images (3.4 TB) is refused
    // from its header, with the figures.
    let mut header = vec![0, 0, 8, 3];
    for d in [u32::MAX, 28, 28] {
        header.extend_from_slice(&d.to_be_bytes());
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&header).unwrap();
    std::fs::write(
        data.join("t10k-images-idx3-ubyte.gz"),
        enc.finish().unwrap(),
    )
    .unwrap();
    std::fs::write(&s.file, text.replace("val_limit = 128\n", "")).unwrap();
    std::fs::remove_dir_all(&s.runs).unwrap();
    let said = failed_run_says(&s);
    assert!(
        said.contains("t10k-images-idx3-ubyte.gz")
            && said.contains("GiB of memory this machine has"),
        "{said}"
    );
}

/// `run` of the setup's experiment, which must fail: what it said on stderr
/// and in its run's status.
fn failed_run_says(s: &Setup) -> String {
    let out = s.run_file(&s.file);
    assert!(!out.status.success());
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        dir::list_runs(&s.runs)
            .first()
            .and_then(RunDir::status)
            .map(|st| st.message)
            .unwrap_or_default()
    )
}
