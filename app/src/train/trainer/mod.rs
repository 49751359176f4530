//! The training loop of one run, writing its run directory.
//!
//! At every step boundary it takes control commands (pause, resume, stop,
//! apply-config), a new version of its strategy from the plugin watcher, and a
//! saved change of its experiment file; what it did goes to the event log.

mod checkpoint;
mod config;
mod reads;
mod session;
mod slots;
mod system;
mod task;
mod writer;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;

use crate::run::dir::{self, RunDir, State};
use crate::run::lock::RunLock;

use self::checkpoint::resume_point;
use self::session::run;
use self::writer::Writer;

/// How progress is shown while training in the foreground.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A progress bar (stderr is a terminal).
    Bar,
    /// One plain line per logged step.
    Lines,
    Quiet,
}

impl Progress {
    pub fn auto() -> Self {
        if std::io::stderr().is_terminal() {
            Progress::Bar
        } else {
            Progress::Lines
        }
    }
}

#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub plugins_dir: PathBuf,
    pub progress: Progress,
    /// Start over from step 0, discarding the checkpoint and the logs.
    pub restart: bool,
    /// Stop, checkpointed, once this fraction of training is done (a
    /// halving rung); resuming goes on from there.
    pub stop_at: Option<f64>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub state: State,
    pub steps: u64,
    pub final_val_acc: Option<f64>,
    pub best_val_acc: Option<f64>,
    pub final_train_loss: Option<f64>,
    pub seconds: f64,
    pub message: String,
}

impl Summary {
    /// How a run another process trained ended, read back from its
    /// directory (the seconds from its first to its last logged value).
    pub fn read(run: &RunDir) -> Option<Summary> {
        let status = run.status()?;
        let metrics = run.metrics();
        let loss = metrics
            .iter()
            .rfind(|m| m.split == dir::metric::TRAIN && m.metric == dir::metric::LOSS);
        let walls = metrics.iter().map(|m| m.wall);
        let first = walls.clone().fold(f64::INFINITY, f64::min);
        let last = walls.fold(f64::NEG_INFINITY, f64::max);
        Some(Summary {
            state: status.state,
            steps: status.step,
            final_val_acc: status.last_val_acc,
            best_val_acc: status.best_val_acc,
            final_train_loss: loss.map(|m| m.value),
            seconds: if last > first { last - first } else { 0.0 },
            message: status.message,
        })
    }
}

/// Trains the run in `run_dir` to its end, resuming from its checkpoint if it has one.
///
/// Refused without changing anything when another trainer holds the run, or when
/// the run has a checkpoint that cannot be read (unless `opts.restart`). Every
/// other way it ends is written to the status with the reason.
pub fn train(run_dir: &RunDir, opts: &TrainOptions) -> Result<Summary> {
    let _lock = RunLock::acquire(&run_dir.path)?;
    let _signals = crate::train::signals::Guard::install(run_dir)?;
    crate::train::limits::prefer_me_to_the_oom_killer();
    let started = Instant::now();
    // A write past a file-size limit fails (reported below, the run marked
    // failed) rather than killing the process.
    crate::run::files::writes_fail_past_size_limit();
    let resume = resume_point(run_dir, opts.restart)?;
    let mut writer = match Writer::open(run_dir) {
        Ok(w) => w,
        Err(e) => {
            dir::record_failure(run_dir, &format!("{e:#}"));
            return Err(e);
        }
    };
    let result = run_dir
        .info()
        .map_err(anyhow::Error::from)
        .and_then(|info| Ok((info, run_dir.experiment()?)))
        .and_then(|(info, resolved)| {
            run(run_dir, &info, resolved, resume, opts, &mut writer, started)
        });
    if let Err(e) = &result {
        writer.fail(&format!("{e:#}"));
    }
    result
}
