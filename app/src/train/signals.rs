//! The signals that end a trainer: SIGTERM (`kill`, `timeout`, systemd,
//! Slurm), SIGINT (Ctrl-C) and SIGHUP (the terminal of a foreground `run` went
//! away, as when an SSH connection drops). The first asks the run to stop at the
//! next step boundary with a checkpoint; one more while it stops ends the
//! process at once, its final status and event written and its socket removed
//! first. Signals are process-wide, so this is too: one thread takes them
//! for whichever run the process trains at the moment.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::run::dir::{EventKind, RunDir, State};
use crate::train::watchdog::{Verdict, end_run};

/// The run being trained and its stop flag.
static RUN: Mutex<Option<(RunDir, Arc<AtomicBool>)>> = Mutex::new(None);
/// How many of these signals this process has received.
static RECEIVED: AtomicUsize = AtomicUsize::new(0);
/// The first one, for the reason a run gives when it stops.
static FIRST: Mutex<Option<i32>> = Mutex::new(None);
static LISTENING: Mutex<bool> = Mutex::new(false);
/// Whether stdout and stderr were terminals when the trainer started (a
/// terminal that hung up no longer says it is one).
static STDOUT_TTY: AtomicBool = AtomicBool::new(false);
static STDERR_TTY: AtomicBool = AtomicBool::new(false);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The signals' hold on one run, from its trainer's start to its end.
pub struct Guard {
    /// Raised by the first signal (already raised if one came before).
    pub stop: Arc<AtomicBool>,
}

impl Guard {
    pub fn install(run: &RunDir) -> std::io::Result<Guard> {
        listen()?;
        let stop = Arc::new(AtomicBool::new(received()));
        *lock(&RUN) = Some((run.clone(), stop.clone()));
        Ok(Guard { stop })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        *lock(&RUN) = None;
    }
}

/// The stop flag of the run being trained (a new one when none is).
pub fn stop_flag() -> Arc<AtomicBool> {
    lock(&RUN)
        .as_ref()
        .map_or_else(|| Arc::new(AtomicBool::new(received())), |(_, s)| s.clone())
}

/// Whether a stopping signal has come: a `run` of several runs starts no more.
pub fn received() -> bool {
    RECEIVED.load(Ordering::SeqCst) > 0
}

/// Why the run stops, when a signal asked: "SIGHUP (the terminal went away)".
pub fn reason() -> Option<String> {
    lock(&FIRST).map(|sig| match sig {
        SIGHUP => "SIGHUP (the terminal went away)".to_string(),
        other => name(other).to_string(),
    })
}

fn name(sig: i32) -> &'static str {
    match sig {
        SIGHUP => "SIGHUP",
        SIGINT => "SIGINT",
        _ => "SIGTERM",
    }
}

fn listen() -> std::io::Result<()> {
    let mut listening = lock(&LISTENING);
    if !*listening {
        STDOUT_TTY.store(std::io::stdout().is_terminal(), Ordering::SeqCst);
        STDERR_TTY.store(std::io::stderr().is_terminal(), Ordering::SeqCst);
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || signals.forever().for_each(on_signal))?;
        *listening = true;
    }
    Ok(())
}

fn on_signal(sig: i32) {
    if sig == SIGHUP {
        leave_terminal();
        // A hang-up comes from the kernel and again from the shell: once is
        // enough, and neither is a user insisting.
        if received() {
            return;
        }
    }
    let first = RECEIVED.fetch_add(1, Ordering::SeqCst) == 0;
    if first {
        *lock(&FIRST) = Some(sig);
    }
    let run = lock(&RUN).clone();
    match run {
        Some((_, stop)) if !stop.swap(true, Ordering::SeqCst) => {}
        Some((dir, _)) => end_now(&dir, sig),
        None if first => {}
        None => std::process::exit(128 + sig),
    }
}

/// A second signal: the run ends here, at its last completed step, and resumes
/// from its last checkpoint.
fn end_now(dir: &RunDir, sig: i32) -> ! {
    end_run(dir, 128 + sig, || {
        let step = dir.status().map_or(0, |s| s.step);
        let saved = dir
            .checkpoint()
            .map_or("no checkpoint yet: resume starts again".into(), |c| {
                format!("resume continues from the checkpoint at step {}", c.step)
            });
        Verdict {
            state: State::Stopped,
            kind: EventKind::Stopped,
            message: format!(
                "ended at once by a second {} while stopping at step {step}; {saved}",
                name(sig)
            ),
            step,
        }
    })
}

/// Output to a terminal that hung up fails (and Rust's printing panics on it):
/// from now on it goes nowhere. Files and pipes are kept.
fn leave_terminal() {
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    if STDOUT_TTY.load(Ordering::SeqCst) {
        let _ = nix::unistd::dup2_stdout(&null);
    }
    if STDERR_TTY.load(Ordering::SeqCst) {
        let _ = nix::unistd::dup2_stderr(&null);
    }
}
