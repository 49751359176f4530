//! The run directory's writer: status, event, metric and snapshot logs.

use std::io::Write;

use anyhow::{Context, Result};

use crate::run::dir::{
    self, EventKind, EventLine, JsonLog, MetricLine, RunDir, SnapshotLine, State, Status,
};

pub(super) struct Writer {
    pub(super) dir: RunDir,
    pub(super) metrics: JsonLog,
    pub(super) events: JsonLog,
    pub(super) snapshots: JsonLog,
    pub(super) status: Status,
    /// The TensorBoard event file, with `[log] tensorboard = true`.
    tensorboard: Option<std::io::BufWriter<std::fs::File>>,
}

impl Writer {
    /// Opens the run's logs; the status starts from what the run's status.json
    /// says (its step, epoch and accuracies), so a run that fails before its
    /// first step keeps them.
    pub(super) fn open(run_dir: &RunDir) -> Result<Writer> {
        let previous = run_dir.status();
        let keep = |f: fn(&Status) -> u64| previous.as_ref().map_or(0, f);
        Ok(Writer {
            dir: run_dir.clone(),
            metrics: JsonLog::open(&run_dir.file(dir::METRICS)).context("opening metrics.jsonl")?,
            events: JsonLog::open(&run_dir.file(dir::EVENTS)).context("opening events.jsonl")?,
            snapshots: JsonLog::open(&run_dir.file(dir::SNAPSHOTS))
                .context("opening snapshots.jsonl")?,
            status: Status {
                state: State::Training,
                step: keep(|s| s.step),
                epoch: keep(|s| s.epoch),
                total_steps: keep(|s| s.total_steps),
                updated: dir::now(),
                device: previous
                    .as_ref()
                    .map(|s| s.device.clone())
                    .unwrap_or_default(),
                best_val_acc: previous.as_ref().and_then(|s| s.best_val_acc),
                last_val_acc: previous.as_ref().and_then(|s| s.last_val_acc),
                ..Status::new(std::process::id())
            },
            tensorboard: None,
        })
    }

    /// Appends metric lines to metrics.jsonl and, when it is open, to the
    /// TensorBoard event file (flushed: TensorBoard reads it as it grows).
    pub(super) fn log_metrics(&mut self, lines: &[MetricLine]) -> Result<()> {
        self.metrics.append_all(lines).context("writing metrics")?;
        if let Some(file) = &mut self.tensorboard {
            crate::export::write_events(file, &crate::export::step_events(lines))
                .and_then(|()| file.flush())
                .context("writing the TensorBoard event file")?;
        }
        Ok(())
    }

    /// Appends snapshots to snapshots.jsonl and their pictures to the event
    /// file when it is open.
    pub(super) fn log_snapshots(&mut self, snapshots: &[SnapshotLine]) -> Result<()> {
        self.snapshots
            .append_all(snapshots)
            .context("writing snapshots")?;
        if let Some(file) = &mut self.tensorboard {
            let events = crate::export::snapshot_events(snapshots, dir::now())?;
            crate::export::write_events(file, &events)
                .and_then(|()| file.flush())
                .context("writing the TensorBoard event file")?;
        }
        Ok(())
    }

    /// (Re)writes the run's event file from what the run has logged so far
    /// (metrics, snapshots, hyperparameters), then keeps it open for
    /// [`Writer::log_metrics`] and [`Writer::log_snapshots`].
    pub(super) fn open_tensorboard(&mut self) -> Result<()> {
        let path = self.dir.file(crate::export::tfevents::FILE_NAME);
        let mut events = crate::export::run_events(&self.dir, false)?;
        events[0].wall_time = dir::now();
        // A new file renamed over the old: a link planted at its name is
        // replaced, not written through.
        let file = crate::run::files::replace_with(&path, |mut out| {
            crate::export::write_events(&mut out, &events)
        })
        .context("writing the TensorBoard event file")?;
        self.tensorboard = Some(std::io::BufWriter::new(file));
        Ok(())
    }

    /// The run's end in its event file: final and best validation accuracy.
    pub(super) fn close_tensorboard(&mut self) -> Result<()> {
        let Some(file) = &mut self.tensorboard else {
            return Ok(());
        };
        let s = &self.status;
        let event = crate::export::hparams::end_event(
            s.step as i64,
            dir::now(),
            s.last_val_acc.unwrap_or(f64::NAN),
            s.best_val_acc.unwrap_or(f64::NAN),
            s.state == State::Done,
        );
        crate::export::write_events(file, &[event])
            .and_then(|()| file.flush())
            .context("writing the TensorBoard event file")
    }

    pub(super) fn event(
        &mut self,
        step: u64,
        kind: EventKind,
        message: impl Into<String>,
    ) -> Result<()> {
        let line = EventLine {
            wall: dir::now(),
            step,
            kind,
            message: message.into(),
        };
        self.events.append(&line).context("writing the event log")
    }

    pub(super) fn status(&mut self) -> Result<()> {
        self.status.updated = dir::now();
        dir::write_status(&self.dir, &self.status).context("writing status.json")
    }

    /// The run failed: the reason goes to the event log and the status, each as
    /// far as the disk still lets it.
    pub(super) fn fail(&mut self, message: &str) {
        let _ = self.event(self.status.step, EventKind::Error, message);
        self.status.state = State::Failed;
        self.status.message = message.to_string();
        self.status.updated = dir::now();
        let _ = dir::write_status_final(&self.dir, &self.status);
    }
}

pub(super) fn metric(
    step: u64,
    epoch: u64,
    split: &str,
    name: &str,
    value: f64,
    p: f64,
    version: &str,
) -> MetricLine {
    MetricLine {
        step,
        epoch,
        split: split.into(),
        metric: name.into(),
        value,
        wall: dir::now(),
        p,
        plugin_version: version.into(),
    }
}
