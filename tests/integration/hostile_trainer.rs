//! Issue 32, the second hostile campaign, on the trainer: how it ends when
//! the terminal goes away or signals come twice, a lock file deleted under it,
//! constructors that never return, plugins that leak memory or threads.
//! Each case, with what was seen, is in RELIABILITY.md.

use std::process::Stdio;
use std::time::{Duration, Instant};

use portable_pty::CommandBuilder;

use crate::common::harness::*;
use probdrop_tui::run::dir::{self, RunDir, State};
use probdrop_tui::run::lock;

/// A run ended by the trainer itself: a final state, its socket gone, and a
/// `stopped` (or error) event saying why.
fn assert_ended_truly(run: &RunDir, state: State, why: &str) {
    let status = run.status().unwrap();
    assert_eq!(status.state, state, "{}", status.message);
    assert!(
        !run.file(dir::SOCKET).exists(),
        "the control socket was left"
    );
    let said = run.events().iter().rev().any(|e| e.message.contains(why));
    assert!(said, "no event says {why:?}: {:?}", run.events());
    assert!(!dir::pid_alive(status.pid) || status.pid == std::process::id());
}

/// Waits for `pid` to end, at most two minutes.
fn wait_gone(pid: u32) {
    wait_for("the trainer to end", || !dir::pid_alive(pid));
}

/// SIGHUP, as a dropped SSH connection sends it: `run` in the foreground of a
/// terminal that goes away (the `script` holding it is killed) stops at a
/// step boundary with a checkpoint there, status `stopped` saying why.
#[test]
fn a_foreground_run_whose_terminal_goes_away_stops_with_a_checkpoint() {
    let s = setup("probe-v1", "epochs = 50\ncheckpoint_every = 1000");
    let pty = crate::common::terminal_80x24();
    let mut cmd = CommandBuilder::new("script");
    cmd.arg("-qfec");
    cmd.arg(format!(
        "{} --plugins '{}' run --runs '{}' '{}'",
        env!("CARGO_BIN_EXE_probdrop-tui"),
        s.plugins.display(),
        s.runs.display(),
        s.file.display()
    ));
    cmd.arg("/dev/null");
    let mut script = pty.slave.spawn_command(cmd).unwrap();
    wait_for("the run directory", || dir::list_runs(&s.runs).len() == 1);
    let run = dir::list_runs(&s.runs).pop().unwrap();
    wait_for("step 3", || last_step(&run) >= 3);
    let pid = run.status().unwrap().pid;
    script.kill().unwrap();
    script.wait().unwrap();
    drop(pty);
    wait_gone(pid);
    assert_ended_truly(&run, State::Stopped, "stopped by SIGHUP");
    let status = run.status().unwrap();
    let checkpoint = run.checkpoint().expect("a stop checkpoint");
    assert_eq!(
        checkpoint.step, status.step,
        "the checkpoint is where it stopped"
    );
    assert_eq!(last_step(&run), status.step);
}

/// Two SIGTERMs (as `timeout`, systemd or Slurm send them) at various gaps:
/// every time the trainer ends `stopped`, with the reason, and its socket
/// removed; a resume then finishes the run with every step logged once.
#[test]
fn a_second_sigterm_still_ends_with_a_true_status() {
    for gap_ms in [0, 20, 300] {
        let s = setup(
            "probe-v1",
            "epochs = 50\nmax_steps = 60\ncheckpoint_every = 4",
        );
        let (mut child, run) = s.start_run();
        wait_for("step 2", || last_step(&run) >= 2);
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        for _ in 0..2 {
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
            std::thread::sleep(Duration::from_millis(gap_ms));
        }
        child.wait().unwrap();
        let message = run.status().unwrap().message;
        let why = if message.contains("second SIGTERM") {
            "second SIGTERM"
        } else {
            "stopped by SIGTERM"
        };
        assert_ended_truly(&run, State::Stopped, why);
        let out = s.resume(&run, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_steps_contiguous(&run);
    }
}

/// `trainer.lock` deleted (and a file planted in its place) under a running
/// trainer: a second trainer is refused all the same, the lock file comes
/// back held, and the first trainer finishes undisturbed.
#[test]
fn a_deleted_lock_file_lets_no_second_trainer_in() {
    let s = setup("probe-v1", "epochs = 20");
    let (mut child, run) = s.start_run();
    wait_for("step 2", || last_step(&run) >= 2);
    std::fs::remove_file(run.file(lock::LOCK)).unwrap();
    let second = s.resume(&run, &[]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second trainer ran: {err}");
    assert!(err.contains("in use"), "{err}");
    std::fs::write(run.file(lock::LOCK), "planted").unwrap();
    wait_for("the lock file back and held", || {
        lock::held(&run.path) == Some(true)
    });
    assert!(child.wait().unwrap().success());
    assert_eq!(run.status().unwrap().state, State::Done);
    assert_steps_contiguous(&run);
}

/// `check` and `run` of an experiment whose strategy's constructor never
/// returns: bounded by the trial deadline, refused naming the strategy and
/// the call, nothing created. Once for a constructor that hangs whatever its
/// parameters (found by the load-time trial, in a child process) and once for
/// one that hangs only with the experiment's (found when the parameters are
/// checked).
#[test]
fn a_constructor_that_never_returns_is_refused_in_bounded_time() {
    let s = setup("probe-hangs-in-new", "epochs = 1");
    let hang_always = [("PROBE_HANG_IN_NEW", "1")];
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Env, &str, &str); 2] = [
        (
            &hang_always,
            "",
            "libprobe.so (strategy probe 13.0.0: Strategy::new did not return within 2 s;",
        ),
        (
            &[],
            "params = { gain = 6.0 }",
            "`strategy[0].params`: probe: Strategy::new did not return within 2 s",
        ),
    ];
    for (env, params, said) in cases {
        let text = std::fs::read_to_string(&s.file).unwrap();
        let file = s.file.with_file_name("hangs.toml");
        std::fs::write(&file, format!("{text}{params}\n")).unwrap();
        for command in [vec!["check"], vec!["run", "--runs"]] {
            let mut cmd = s.bin();
            cmd.args(&command);
            if command.len() > 1 {
                cmd.arg(&s.runs);
            }
            let command = command[0];
            let started = Instant::now();
            let out = cmd
                .arg(&file)
                .env("PROBDROP_TUI_TRIAL_TIMEOUT_S", "2")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{command}: {text}");
            assert!(text.contains(said), "{command}: {text}");
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{command}: {text}"
            );
            assert!(
                dir::list_runs(&s.runs).is_empty(),
                "{command} created a run"
            );
        }
    }
}

/// A strategy that leaks memory (or threads) from step 3 on: the trainer
/// ends `failed` naming the limit it passed, exit status 1, the checkpoint
/// of step 2 intact; nothing else is taken down.
#[test]
fn a_plugin_past_the_memory_or_thread_limit_fails_its_run_with_the_reason() {
    let cases = [
        (
            "probe-leaks-memory",
            "memory_limit = 1.0",
            "[train] memory_limit",
        ),
        (
            "probe-leaks-threads",
            "thread_limit = 200",
            "[train] thread_limit",
        ),
    ];
    for (probe, limit, named) in cases {
        let s = setup(
            probe,
            &format!("epochs = 50\ncheckpoint_every = 2\n{limit}"),
        );
        let out = s.run_file(&s.file);
        let run = dir::list_runs(&s.runs).pop().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_ended_truly(&run, State::Failed, named);
        let checkpoint = run.read_checkpoint().unwrap().expect("a checkpoint");
        assert!(checkpoint.step >= 2, "{checkpoint:?}");
        assert!(run.status().unwrap().step < 50, "it did not run on");
    }
}
