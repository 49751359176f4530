//! The dashboard in a real pseudo-terminal: start a run from the quickstart
//! experiment, watch it train, quit, come back to the same run still going, and
//! find the terminal restored each time.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::repo_root;
use portable_pty::CommandBuilder;
use probdrop_tui::run::comparison;
use probdrop_tui::run::control::{self, Command as Ctl};
use probdrop_tui::run::dir::{self, State};

struct Session {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    /// Kept open for as long as the dashboard should have its terminal.
    _master: Box<dyn portable_pty::MasterPty + Send>,
    writer: Box<dyn Write + Send>,
    parser: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
}

impl Session {
    fn start(cwd: &Path) -> Session {
        Session::start_with(cwd, &[])
    }

    fn start_with(cwd: &Path, env: &[(&str, &str)]) -> Session {
        Session::spawn(cwd, &[], env)
    }

    /// The binary with `args` (none: the dashboard) on an 80×24 terminal.
    fn spawn(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Session {
        Session::spawn_over(&repo_root().join("plugins"), cwd, args, env)
    }

    /// [`Session::spawn`] over the strategies of `plugins`.
    fn spawn_over(plugins: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Session {
        let pty = crate::common::terminal_80x24();
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_probdrop-tui"));
        cmd.arg("--plugins");
        cmd.arg(plugins);
        cmd.args(args);
        cmd.cwd(cwd);
        cmd.env("TERM", "xterm-256color");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pty.slave.spawn_command(cmd).unwrap();
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().unwrap();
        let writer = pty.master.take_writer().unwrap();
        let parser = Arc::new(Mutex::new(vt100::Parser::new(
            std::num::NonZeroU16::new(24).unwrap(),
            std::num::NonZeroU16::new(80).unwrap(),
            0,
        )));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (p, r) = (parser.clone(), raw.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                p.lock().unwrap().process(&buf[..n]);
                r.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Session {
            child,
            _master: pty.master,
            writer,
            parser,
            raw,
        }
    }

    fn screen(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    /// The rows of the screen that ran past the right edge onto the next.
    fn wrapped_rows(&self) -> Vec<u16> {
        let parser = self.parser.lock().unwrap();
        (0..24)
            .filter(|&r| parser.screen().row_wrapped(r))
            .collect()
    }

    fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if done(&s) {
                return s;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Quits and checks that the terminal was handed back: alternate screen left,
    /// cursor shown, mouse reporting off.
    fn quit(mut self) {
        self.keys("q");
        self.expect_restored();
    }

    /// Ends the dashboard with a signal (SIGTERM from a shutdown, SIGHUP from a
    /// lost SSH connection) and checks the terminal was handed back all the same.
    fn signal(mut self, signal: nix::sys::signal::Signal) {
        let pid = self.child.process_id().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
        self.expect_restored();
    }

    fn expect_restored(&mut self) {
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the dashboard did not quit"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
        let raw = String::from_utf8_lossy(&self.raw.lock().unwrap()).into_owned();
        let tail = &raw[raw
            .rfind("\x1b[?1049h")
            .expect("entered the alternate screen")..];
        assert!(tail.contains("\x1b[?1049l"), "left the alternate screen");
        assert!(tail.contains("\x1b[?25h"), "cursor shown again");
        let parser = self.parser.lock().unwrap();
        assert!(
            !parser.screen().alternate_screen(),
            "back on the main screen"
        );
        assert!(!parser.screen().hide_cursor(), "cursor visible");
    }
}

/// A failing test must not leave a dashboard behind.
impl Drop for Session {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The quickstart run's row (strategy and seed begin its name).
const QUICKSTART_ROW: &str = "probdropblock s1";

fn step_of(screen: &str) -> Option<u64> {
    let line = screen
        .lines()
        .find(|l| l.contains(QUICKSTART_ROW) && l.contains("training"))?;
    let field = line
        .split_whitespace()
        .find(|w| w.contains('/') && w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    field.split('/').next()?.parse().ok()
}

/// A scratch directory with the quickstart experiment pointing at the committed data.
fn workspace() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let experiments = tmp.path().join("experiments");
    std::fs::create_dir_all(&experiments).unwrap();
    let quickstart =
        std::fs::read_to_string(repo_root().join("experiments/quickstart.toml")).unwrap();
    let data = repo_root().join("data/fashion-mnist-subset");
    std::fs::write(
        experiments.join("quickstart.toml"),
        quickstart.replace("../data/fashion-mnist-subset", &data.display().to_string()),
    )
    .unwrap();
    tmp
}

/// Starts the quickstart's run from the Experiments view, through the start prompt.
fn start_quickstart(s: &mut Session) {
    s.wait_for("the tab bar", Duration::from_secs(120), |t| {
        t.contains("1 Runs")
    });
    s.keys("5");
    s.wait_for("the quickstart experiment", Duration::from_secs(10), |t| {
        t.contains("quickstart.toml") && t.contains("ok")
    });
    s.keys("n");
    s.wait_for("the start prompt", Duration::from_secs(10), |t| {
        t.contains("as in the file (cpu)")
    });
    s.keys("\r");
    s.keys("1");
}

fn stop_and_wait(run: &dir::RunDir) {
    control::send(&run.file(dir::SOCKET), &Ctl::Stop).unwrap();
    let start = Instant::now();
    while run.status().unwrap().state == State::Training {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn start_a_run_from_the_dashboard_quit_and_find_it_still_training() {
    let tmp = workspace();
    let mut s = Session::start(tmp.path());
    start_quickstart(&mut s);
    let first = s.wait_for("the run training", Duration::from_secs(60), |t| {
        step_of(t).is_some_and(|n| n > 0)
    });
    let a = step_of(&first).unwrap();
    // Issue 16, defect 18: the trainer holds nothing of the dashboard's
    // terminal, so a logout never waits on it.
    let pid = dir::list_runs(&tmp.path().join("runs"))[0]
        .status()
        .unwrap()
        .pid;
    let terminal_fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .filter(|p| p.starts_with("/dev/pts") || p.starts_with("/dev/tty"))
        .collect();
    assert!(
        terminal_fds.is_empty(),
        "the trainer holds {terminal_fds:?}"
    );
    // ... and is in a session of its own, not the dashboard's.
    let session_of = |pid: u32| -> String {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // After "(comm)": state, ppid, pgrp, session.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(3).unwrap().to_string()
    };
    let dashboard = s.child.process_id().unwrap();
    assert_ne!(
        session_of(pid),
        session_of(dashboard),
        "a session of its own"
    );
    assert_eq!(session_of(pid), pid.to_string(), "it leads its session");
    let later = s.wait_for(
        "the step counter to advance",
        Duration::from_secs(60),
        |t| step_of(t).is_some_and(|n| n > a),
    );
    assert!(step_of(&later).unwrap() > a);
    s.quit();

    // Started again, the dashboard finds the same run, still going.
    let runs = dir::list_runs(&tmp.path().join("runs"));
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    let before = run.status().unwrap().step;
    let s = Session::start(tmp.path());
    let screen = s.wait_for("the run, re-attached", Duration::from_secs(60), |t| {
        step_of(t).is_some_and(|n| n > before)
    });
    assert_eq!(
        screen.matches(QUICKSTART_ROW).count(),
        1,
        "one run, not a new one:\n{screen}"
    );
    s.quit();
    assert_eq!(
        run.status().unwrap().state,
        State::Training,
        "closing the dashboard does not stop training"
    );

    // Clean up: stop the trainer the dashboard started.
    stop_and_wait(run);
}

/// The terminal vanishes under the dashboard (an SSH session torn down): the
/// dashboard runs inside `script`, which holds the only end of its terminal, and
/// `script` is killed. The dashboard must end by itself, soon, not spin.
#[test]
fn a_terminal_closed_under_the_dashboard_ends_it() {
    let tmp = workspace();
    let pty = crate::common::terminal_80x24();
    let mut cmd = CommandBuilder::new("script");
    cmd.args(["-qfec"]);
    cmd.arg(format!(
        "{} --plugins {}",
        env!("CARGO_BIN_EXE_probdrop-tui"),
        repo_root().join("plugins").display()
    ));
    cmd.arg("/dev/null");
    cmd.cwd(tmp.path());
    cmd.env("TERM", "xterm-256color");
    let mut script = pty.slave.spawn_command(cmd).unwrap();
    let log = tmp.path().join("runs/dashboard.log");
    let start = Instant::now();
    let pid: i32 = loop {
        assert!(start.elapsed() < Duration::from_secs(120), "no dashboard");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(pid) = text
            .split("dashboard ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse().ok())
        {
            break pid;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(1500));
    script.kill().unwrap();
    script.wait().unwrap();
    let start = Instant::now();
    while probdrop_tui::run::dir::pid_alive(pid as u32) {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("the dashboard outlived its terminal");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(pty.master);
}

#[test]
fn sigterm_and_sighup_restore_the_terminal() {
    let tmp = workspace();
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
    ] {
        let s = Session::start(tmp.path());
        s.wait_for("the tab bar", Duration::from_secs(120), |t| {
            t.contains("1 Runs")
        });
        s.signal(signal);
    }
}

/// The debug build panics on request; the panic hook must hand the terminal
/// back before the message is printed.
#[test]
fn a_panic_in_the_dashboard_restores_the_terminal() {
    let tmp = workspace();
    let mut s = Session::start_with(tmp.path(), &[("PROBDROP_TUI_TEST_PANIC_AFTER_MS", "3000")]);
    s.wait_for("the tab bar", Duration::from_secs(120), |t| {
        t.contains("1 Runs")
    });
    s.expect_restored();
    let raw = String::from_utf8_lossy(&s.raw.lock().unwrap()).into_owned();
    let entered = raw.rfind("\x1b[?1049h").unwrap();
    let left = entered + raw[entered..].find("\x1b[?1049l").unwrap();
    assert!(
        raw[left..].contains("injected panic"),
        "the message, on the restored screen"
    );
}

#[test]
fn a_crashed_trainer_shows_as_failed_with_its_signal_and_restarts() {
    let tmp = workspace();
    let mut s = Session::start(tmp.path());
    start_quickstart(&mut s);
    s.wait_for("the run training", Duration::from_secs(60), |t| {
        step_of(t).is_some_and(|n| n > 0)
    });
    let runs = dir::list_runs(&tmp.path().join("runs"));
    let run = &runs[0];
    let pid = run.status().unwrap().pid;
    // What an abort in libtorch or a plugin does to the process. (A SIGSEGV sent
    // with kill would only reset Rust's stack-overflow handler: no fault to re-run.)
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGABRT,
    )
    .unwrap();
    let screen = s.wait_for("the run marked failed", Duration::from_secs(20), |t| {
        t.contains("failed") && t.contains("SIGABRT")
    });
    assert!(screen.contains("signal 6"), "{screen}");
    let status = run.status().unwrap();
    assert_eq!(status.state, State::Failed);
    assert!(status.message.contains("SIGABRT"), "{}", status.message);
    assert!(
        run.events().iter().any(|e| e.kind == "crashed"),
        "the event log says why"
    );
    let log = std::fs::read_to_string(tmp.path().join("runs/dashboard.log")).unwrap();
    assert!(
        log.contains("SIGABRT"),
        "the dashboard's log says it too:\n{log}"
    );

    // R continues it from its checkpoint, in a new trainer.
    s.keys("R");
    s.wait_for("the run training again", Duration::from_secs(60), |t| {
        step_of(t).is_some()
    });
    let again = run.status().unwrap();
    assert_ne!(again.pid, pid, "a new trainer");
    s.quit();
    stop_and_wait(run);
}

/// Issue 16, defect 14: `run` on an 80-column terminal: the progress line and
/// the closing table never wrap, and a run paused from outside (the dashboard's
/// `p`) says "paused" on its bar instead of freezing.
#[test]
fn run_on_an_80_column_terminal_fits_and_shows_a_pause() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("long.toml");
    let text = crate::common::Tiny {
        name: "long-experiment-name",
        train: "epochs = 400\nlog_every = 5\neval_every = 100000",
        strategies: "[[strategy]]\nplugin = \"dropblock\"\nlabel = \"dropblock-long-label\"\n\
                     params = { block_size = 3 }\nschedule = { kind = \"constant\", p = 0.1 }",
        ..Default::default()
    }
    .text();
    std::fs::write(&file, text).unwrap();
    let runs = tmp.path().join("runs");
    let args = [
        "run",
        file.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
    ];
    let mut s = Session::spawn(tmp.path(), &args, &[]);
    s.wait_for("the progress bar", Duration::from_secs(120), |t| {
        t.contains("eta") && t.contains("loss")
    });
    for _ in 0..10 {
        assert!(s.wrapped_rows().is_empty(), "wrapped:\n{}", s.screen());
        std::thread::sleep(Duration::from_millis(200));
    }
    let run = dir::list_runs(&runs).remove(0);
    control::send(&run.file(dir::SOCKET), &Ctl::Pause).unwrap();
    let paused = s.wait_for("paused on the bar", Duration::from_secs(30), |t| {
        t.contains("paused")
    });
    assert!(s.wrapped_rows().is_empty(), "wrapped:\n{paused}");
    control::send(&run.file(dir::SOCKET), &Ctl::Resume).unwrap();
    s.wait_for("resumed on the bar", Duration::from_secs(30), |t| {
        t.contains("resumed") || t.contains("loss")
    });
    control::send(&run.file(dir::SOCKET), &Ctl::Stop).unwrap();
    let end = s.wait_for("the closing table", Duration::from_secs(60), |t| {
        t.contains("seconds") && t.contains("stopped")
    });
    assert!(s.wrapped_rows().is_empty(), "wrapped:\n{end}");
    let start = Instant::now();
    while s.child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "run did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Issue 16, what users expect 10: the dashboard opens where it was closed
/// (here: Events, in a workspace without runs, which otherwise opens on
/// Experiments).
#[test]
fn the_dashboard_opens_on_the_view_it_was_closed_on() {
    let tmp = workspace();
    let mut s = Session::start(tmp.path());
    s.wait_for("the experiments view", Duration::from_secs(120), |t| {
        t.contains("quickstart.toml")
    });
    s.keys("6");
    s.wait_for("the events view", Duration::from_secs(10), |t| {
        t.contains("Events (0)")
    });
    s.quit();
    assert!(tmp.path().join("runs/dashboard-state.json").is_file());
    let s = Session::start(tmp.path());
    s.wait_for("the events view again", Duration::from_secs(120), |t| {
        t.contains("Events (0)")
    });
    s.quit();
}

/// Issue 16, what users expect 10: `C` in Experiments starts a real
/// `compare` in the background; its runs train, its table appears in the
/// Compare view and its reports are written, while the dashboard goes on.
#[test]
fn a_comparison_started_from_the_dashboard_runs_to_its_table() {
    let tmp = workspace();
    crate::common::Tiny {
        name: "tiny",
        train_limit: 128,
        val_limit: 64,
        train: "epochs = 1\neval_every = 4",
        strategies: "[[strategy]]\nplugin = \"dropout\"\nschedule = { kind = \"constant\", p = 0.1 }",
        ..Default::default()
    }
    .write(&tmp.path().join("experiments/tiny.toml"));
    let mut s = Session::start(tmp.path());
    s.wait_for("the experiments", Duration::from_secs(120), |t| {
        t.contains("tiny.toml")
    });
    // quickstart.toml is selected first; tiny.toml is after it.
    s.keys("j");
    s.keys("C");
    s.wait_for("the compare prompt", Duration::from_secs(10), |t| {
        t.contains("Start a comparison") && t.contains("tiny.toml")
    });
    s.keys("\r");
    let runs_dir = tmp.path().join("runs");
    let finished = || {
        let runs = dir::list_runs(&runs_dir);
        runs.len() == 2
            && runs
                .iter()
                .all(|r| r.status().is_some_and(|st| st.state == State::Done))
    };
    let start = Instant::now();
    while !finished() {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "the strategy and the none baseline did not finish; compare.log:\n{}",
            std::fs::read_to_string(tmp.path().join("compare/tiny/compare.log"))
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    s.keys("7");
    // Both rows counted: each has its seed's accuracy, none pending.
    s.wait_for("the comparison's table", Duration::from_secs(30), |t| {
        t.contains("tiny") && t.matches("1/1").count() >= 2
    });
    let report = tmp.path().join("compare/tiny").join(comparison::TABLE_MD);
    let start = Instant::now();
    while !std::fs::read_to_string(&report).is_ok_and(|t| t.contains("dropout")) {
        assert!(start.elapsed() < Duration::from_secs(30), "no report");
        std::thread::sleep(Duration::from_millis(200));
    }
    s.quit();
}

/// Issue 32: a strategy whose constructor never returns kept the dashboard
/// from drawing its first frame. Every library's first calls now have the
/// trial deadline (2 s here), all libraries at once: the dashboard draws, and
/// the Plugins view says why the strategy was refused.
#[test]
fn a_strategy_whose_constructor_hangs_does_not_keep_the_dashboard_from_starting() {
    let tmp = workspace();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let hangs = crate::common::fixtures::fixture("probe-hangs-in-new");
    std::fs::copy(hangs, plugins.join("libprobe.so")).unwrap();
    let env = [
        ("PROBE_HANG_IN_NEW", "1"),
        ("PROBDROP_TUI_TRIAL_TIMEOUT_S", "2"),
    ];
    let mut s = Session::spawn_over(&plugins, tmp.path(), &[], &env);
    s.wait_for("the first frame", Duration::from_secs(60), |t| {
        t.contains("1 Runs")
    });
    s.keys("4");
    s.wait_for("the refusal", Duration::from_secs(10), |t| {
        t.contains("refused: strategy probe 13.0.0: Strategy::")
    });
    s.quit();
}

/// Issue 34, item 1: a strategy crate copied into `plugins/` while the
/// dashboard runs is built by its watcher, joins its catalogue, and the
/// experiment using it starts from the Experiments view within a minute,
/// with no restart.
#[test]
fn a_strategy_crate_dropped_into_plugins_while_the_dashboard_runs_starts_from_it() {
    let tmp = workspace();
    let plugins = crate::common::fixtures::example_crate_in(tmp.path());
    // Staged beside the plugins directory, then moved in whole as `cp -r`
    // and a rename would leave it.
    let staged = tmp.path().join("my-strategy");
    std::fs::rename(plugins.join("my-strategy"), &staged).unwrap();
    crate::common::Tiny {
        name: "stripes",
        train: "epochs = 50",
        strategies: "[[strategy]]\nplugin = \"stripes\"\nschedule = { kind = \"constant\", p = 0.1 }",
        ..crate::common::Tiny::default()
    }
    .write(&tmp.path().join("experiments/stripes.toml"));
    let mut s = Session::spawn_over(&plugins, tmp.path(), &[], &[]);
    s.wait_for("the tab bar", Duration::from_secs(120), |t| {
        t.contains("1 Runs")
    });
    s.keys("5");
    s.keys("j");
    s.wait_for("stripes unknown", Duration::from_secs(10), |t| {
        t.contains("unknown") && t.contains("strategy \"stripes\"")
    });
    std::fs::rename(&staged, plugins.join("my-strategy")).unwrap();
    let dropped = Instant::now();
    s.wait_for("stripes.toml valid", Duration::from_secs(60), |t| {
        t.contains("stripes: valid")
    });
    s.keys("n");
    s.wait_for("the start prompt", Duration::from_secs(10), |t| {
        t.contains("as in the file (cpu)")
    });
    s.keys("\r");
    s.keys("1");
    let runs = tmp.path().join("runs");
    s.wait_for("the stripes run training", Duration::from_secs(60), |_| {
        dir::list_runs(&runs)
            .first()
            .and_then(|r| r.status())
            .is_some_and(|st| st.step > 0)
    });
    assert!(
        dropped.elapsed() < Duration::from_secs(60),
        "{:?}",
        dropped.elapsed()
    );
    let run = dir::list_runs(&runs).remove(0);
    assert_eq!(run.info().unwrap().label, "stripes");
    s.quit();
    stop_and_wait(&run);
}

/// Issue 34, item 17: while plugin crates build, the loading line says which
/// crate of how many cargo is at, in place, before the first frame. The
/// crate's build script waits long enough for cargo to draw its progress.
#[test]
fn the_loading_line_shows_which_crate_of_how_many_is_building() {
    let tmp = workspace();
    let krate = tmp.path().join("plugins/slow-build");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        "[package]\nname = \"slow-build\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         [lib]\ncrate-type = [\"cdylib\"]\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        krate.join("build.rs"),
        "fn main() { std::thread::sleep(std::time::Duration::from_secs(3)); }\n",
    )
    .unwrap();
    std::fs::write(krate.join("src/lib.rs"), "").unwrap();
    let s = Session::spawn_over(&tmp.path().join("plugins"), tmp.path(), &[], &[]);
    s.wait_for("the first frame", Duration::from_secs(120), |t| {
        t.contains("1 Runs")
    });
    let raw = String::from_utf8_lossy(&s.raw.lock().unwrap()).into_owned();
    let before_screen = &raw[..raw.find("\x1b[?1049h").expect("entered the screen")];
    // Which unit the first drawing finds depends on how fast the machine is.
    assert!(
        before_screen.contains("\rprobdrop-tui: building plugins: crate ")
            && before_screen.contains(" of 3 (slow-build) …"),
        "{before_screen:?}"
    );
    s.quit();
}

/// Issue 37: in a real terminal, the Sweep view's cursor moves over the
/// places of a real sweep, Space marks the runs of the one under it, and
/// Charts overlays exactly those runs.
#[test]
fn the_sweep_view_moves_over_places_and_marks_one_for_the_charts() {
    let root = crate::sweep_view::sweep_fixture();
    let mut s = Session::start(root);
    s.wait_for("the tab bar", Duration::from_secs(120), |t| {
        t.contains("8 Sweep")
    });
    s.keys("8");
    s.wait_for("the heatmap", Duration::from_secs(10), |t| {
        t.contains("Sweep 1/2") && t.contains("block_size=3 gamma_scale=0.5:")
    });
    // Right, then down: block_size 5, gamma_scale 1.0 (p averaged over).
    s.keys("\x1b[C");
    s.keys("\x1b[B");
    s.wait_for(
        "the cursor on the last place",
        Duration::from_secs(10),
        |t| t.contains("block_size=5 gamma_scale=1.0:"),
    );
    s.keys(" ");
    s.wait_for("the place's runs marked", Duration::from_secs(10), |t| {
        t.contains("4 run(s) marked for the charts")
    });
    s.keys("2");
    s.wait_for("the four runs overlaid", Duration::from_secs(10), |t| {
        t.contains("(4 runs)")
    });
    s.quit();
}
