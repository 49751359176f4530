//! The trainer's watchdog: a strategy that never returns from `mask()` (or any
//! step that never ends) would leave the run "training" forever, deaf to pause
//! and stop, since both are taken at step boundaries. A thread of its own sees
//! such a step and ends the process with the run's state written: failed past the
//! deadline, stopped when a stop was asked for during the hung step. The
//! checkpoint is the last one saved, so the run resumes from it.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::run::dir::{self, EventKind, EventLine, JsonLog, RunDir, State};
use crate::train::limits::Limits;

/// The deadline when the experiment sets none: generous, scaled by the run's own
/// step time so that a slow model on a slow machine is never cut short.
pub const MIN_DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
pub const MEDIAN_FACTOR: u32 = 20;
/// How long a stop waits for the step in progress before ending the process.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

const RECENT_STEPS: usize = 101;

#[derive(Default)]
struct Progress {
    /// The step in progress and when it started.
    step: Option<(u64, Instant)>,
    /// The mask call in progress: "dropblock 1.1.0" at slot "layer3".
    mask: Option<(String, String, Instant)>,
    /// The last completed step (the status's step).
    done: u64,
    recent: VecDeque<Duration>,
    /// When the watchdog first saw the stop request during this step.
    stop_seen: Option<Instant>,
}

impl Progress {
    fn median(&self) -> Option<Duration> {
        let mut d: Vec<Duration> = self.recent.iter().copied().collect();
        d.sort();
        d.get(d.len() / 2).copied()
    }
}

/// What the training loop tells the watchdog; cheap (one uncontended lock).
#[derive(Clone)]
pub struct Watchdog {
    progress: Arc<Mutex<Progress>>,
}

impl Watchdog {
    /// Starts watching: `deadline` from the experiment, else the default rule;
    /// `stop` is raised by the control socket and by SIGINT/SIGTERM.
    pub fn start(
        run_dir: &RunDir,
        deadline: Option<Duration>,
        limits: Limits,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let progress = Arc::new(Mutex::new(Progress::default()));
        let watched = Watched {
            dir: run_dir.clone(),
            progress: progress.clone(),
            deadline,
            limits,
            stop,
        };
        let _ = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || watched.watch());
        Watchdog { progress }
    }

    fn with(&self, f: impl FnOnce(&mut Progress)) {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut p);
    }

    pub fn begin_step(&self, step: u64) {
        self.with(|p| p.step = Some((step, Instant::now())));
    }

    /// The step ended (learnt from, or failed and to be retried).
    pub fn end_step(&self, completed: Option<u64>) {
        self.with(|p| {
            if let Some((_, started)) = p.step.take()
                && let Some(step) = completed
            {
                p.done = step;
                if p.recent.len() == RECENT_STEPS {
                    p.recent.pop_front();
                }
                p.recent.push_back(started.elapsed());
            }
            p.stop_seen = None;
        });
    }

    pub fn enter_mask(&self, strategy: &str, slot: &str) {
        self.with(|p| p.mask = Some((strategy.to_string(), slot.to_string(), Instant::now())));
    }

    pub fn leave_mask(&self) {
        self.with(|p| p.mask = None);
    }
}

struct Watched {
    dir: RunDir,
    progress: Arc<Mutex<Progress>>,
    deadline: Option<Duration>,
    limits: Limits,
    stop: Arc<AtomicBool>,
}

/// How a run that cannot end at a step boundary ends.
pub struct Verdict {
    pub state: State,
    pub kind: EventKind,
    pub message: String,
    /// The last step completed.
    pub step: u64,
}

impl Watched {
    fn watch(self) {
        let mut beaten = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if let Some(v) = self.verdict().or_else(|| self.over_limits()) {
                self.end(v);
            }
            // Also while a step, an evaluation or a pause takes long.
            if beaten.elapsed() >= dir::HEARTBEAT_EVERY {
                dir::beat(&self.dir);
                beaten = Instant::now();
            }
        }
    }

    fn deadline(&self, p: &Progress) -> Duration {
        self.deadline.unwrap_or_else(|| {
            p.median()
                .map_or(MIN_DEFAULT_DEADLINE, |m| m * MEDIAN_FACTOR)
                .max(MIN_DEFAULT_DEADLINE)
        })
    }

    fn verdict(&self) -> Option<Verdict> {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let (step, started) = p.step?;
        let what = match &p.mask {
            Some((strategy, slot, since)) => format!(
                "strategy {strategy} did not return from mask() at {slot} for {:.0} s at step {step}",
                since.elapsed().as_secs_f64()
            ),
            None => format!(
                "step {step} did not finish for {:.0} s",
                started.elapsed().as_secs_f64()
            ),
        };
        let resume = format!(
            "resume continues from the checkpoint (the step in the status is the last one completed, {})",
            p.done
        );
        if self.stop.load(Ordering::SeqCst) {
            let seen = *p.stop_seen.get_or_insert_with(Instant::now);
            let grace = STOP_GRACE.max(p.median().unwrap_or_default() * 2);
            if seen.elapsed() >= grace {
                return Some(Verdict {
                    state: State::Stopped,
                    kind: EventKind::Stopped,
                    message: format!(
                        "stopped by request during a step that did not end: {what}; {resume}"
                    ),
                    step: p.done,
                });
            }
        }
        (started.elapsed() >= self.deadline(&p)).then(|| Verdict {
            state: State::Failed,
            kind: EventKind::Error,
            message: format!(
                "{what} (the deadline is {:.0} s: [train] step_timeout); {resume}",
                self.deadline(&p).as_secs_f64()
            ),
            step: p.done,
        })
    }

    fn over_limits(&self) -> Option<Verdict> {
        let why = self.limits.exceeded()?;
        let done = self.progress.lock().unwrap_or_else(|e| e.into_inner()).done;
        Some(Verdict {
            state: State::Failed,
            kind: EventKind::Error,
            message: format!(
                "{why}; resume continues from the checkpoint (the step in the status is the last one completed, {done})"
            ),
            step: done,
        })
    }

    fn end(&self, v: Verdict) -> ! {
        let code = if v.state == State::Stopped { 0 } else { 1 };
        end_run(&self.dir, code, || v)
    }
}

/// Held while a checkpoint is written.
static SAVING: Mutex<()> = Mutex::new(());
/// How long a forced end waits for a checkpoint being written.
pub const SAVE_WAIT: Duration = Duration::from_secs(30);

/// Taken for the whole of a checkpoint's writing: an end forced meanwhile
/// waits for it, so that it never leaves a checkpoint half-recorded (files
/// written, `checkpoint.json` not yet), which no resume would take.
pub fn saving() -> std::sync::MutexGuard<'static, ()> {
    SAVING.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`saving`], waiting at most [`SAVE_WAIT`] (a write hung on a dead disk
/// must not keep the process from ending).
fn saves_held() -> Option<std::sync::MutexGuard<'static, ()>> {
    let asked = Instant::now();
    loop {
        match SAVING.try_lock() {
            Ok(held) => return Some(held),
            Err(std::sync::TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(_) if asked.elapsed() >= SAVE_WAIT => return None,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Writes the verdict to the event log and the status, removes the control
/// socket, then ends the process with `code`: for a call that cannot be
/// interrupted any other way, or a user who will not wait. A checkpoint
/// being written is finished first.
pub fn end_run(run: &RunDir, code: i32, verdict: impl FnOnce() -> Verdict) -> ! {
    let _no_more_saves = saves_held();
    let v = &verdict();
    if let Ok(mut log) = JsonLog::open(&run.file(dir::EVENTS)) {
        let _ = log.append(&EventLine {
            wall: dir::now(),
            step: v.step,
            kind: v.kind.clone(),
            message: v.message.clone(),
        });
    }
    let mut status = run
        .status()
        .unwrap_or_else(|| dir::Status::new(std::process::id()));
    status.state = v.state;
    status.step = v.step;
    status.pid = std::process::id();
    status.message = v.message.clone();
    status.updated = dir::now();
    let _ = dir::write_status_final(run, &status);
    let _ = std::fs::remove_file(run.file(dir::SOCKET));
    // The terminal may be gone (a hang-up): nothing to panic over.
    let _ = writeln!(std::io::stderr(), "error: {}", v.message);
    std::process::exit(code);
}
