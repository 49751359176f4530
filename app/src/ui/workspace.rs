//! What the dashboard knows, collected from disk: run directories (read
//! incrementally), experiment files (validated), plugins. It never trains.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::de::DeserializeOwned;

use crate::experiment::{self, Catalog, Diagnostic, Experiment, Machine};
use crate::run::dir::{self, EventLine, MetricLine, RunDir, RunInfo, SnapshotLine, State, Status};

/// Reads the lines appended to a JSON-lines file since the last call. A torn last
/// line is kept back until its newline arrives; a file that shrank is read again.
#[derive(Debug, Default)]
pub struct Tail {
    offset: u64,
    inode: u64,
    partial: String,
}

impl Tail {
    /// New complete records, and whether the file was reset (shrank).
    pub fn read<T: DeserializeOwned>(&mut self, path: &Path) -> (Vec<T>, bool) {
        let Ok(mut file) = File::open(path) else {
            return (Vec::new(), false);
        };
        use std::os::unix::fs::MetadataExt;
        let (len, inode) = file
            .metadata()
            .map(|m| (m.len(), m.ino()))
            .unwrap_or((0, 0));
        let mut reset = false;
        // Replaced (a resumed run rewrites its log without what it logs again) or
        // shrunk: start over.
        if inode != self.inode && self.inode != 0 || len < self.offset {
            self.offset = 0;
            self.partial.clear();
            reset = true;
        }
        self.inode = inode;
        if len == self.offset {
            return (Vec::new(), reset);
        }
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return (Vec::new(), reset);
        }
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_err() {
            return (Vec::new(), reset);
        }
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let mut out = Vec::new();
        let text = std::mem::take(&mut self.partial);
        let mut rest = text.as_str();
        while let Some(i) = rest.find('\n') {
            if let Ok(v) = serde_json::from_str(&rest[..i]) {
                out.push(v);
            }
            rest = &rest[i + 1..];
        }
        self.partial = rest.to_string();
        (out, reset)
    }
}

/// A metric over steps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub points: Vec<(f64, f64)>,
}

/// One run as the dashboard shows it.
#[derive(Debug)]
pub struct RunView {
    pub dir: RunDir,
    pub info: RunInfo,
    pub status: Option<Status>,
    /// By "split/metric", e.g. "train/loss", "val/acc", "train/p".
    pub series: BTreeMap<String, Series>,
    pub events: Vec<EventLine>,
    /// The latest snapshot of each slot and sample.
    pub snapshots: BTreeMap<(String, usize), SnapshotLine>,
    /// Whether the trainer's process is alive (for "training" that is not).
    pub alive: bool,
    /// From the resolved experiment, read once (the ETA needs it at every frame).
    batch_size: Option<usize>,
    metrics_tail: Tail,
    events_tail: Tail,
    snapshots_tail: Tail,
}

impl RunView {
    pub fn open(dir: RunDir) -> Option<RunView> {
        let info = dir.info().ok()?;
        let batch_size = dir.experiment().ok().map(|f| f.train.batch_size);
        let mut view = RunView {
            dir,
            info,
            status: None,
            series: BTreeMap::new(),
            events: Vec::new(),
            snapshots: BTreeMap::new(),
            alive: false,
            batch_size,
            metrics_tail: Tail::default(),
            events_tail: Tail::default(),
            snapshots_tail: Tail::default(),
        };
        view.refresh();
        Some(view)
    }

    pub fn name(&self) -> String {
        self.dir
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Reads what changed on disk; true if anything did.
    pub fn refresh(&mut self) -> bool {
        let mut changed = false;
        let status = self.dir.status();
        if status != self.status {
            self.status = status;
            changed = true;
        }
        let alive = self
            .status
            .as_ref()
            .is_some_and(|s| self.dir.trainer_alive(s));
        if alive != self.alive {
            self.alive = alive;
            changed = true;
        }
        let (metrics, reset): (Vec<MetricLine>, bool) =
            self.metrics_tail.read(&self.dir.file(dir::METRICS));
        if reset {
            self.series.clear();
            changed = true;
        }
        for m in metrics {
            changed = true;
            let series = self
                .series
                .entry(dir::metric::series(&m.split, &m.metric))
                .or_default();
            // A resumed run logs again from its checkpoint: keep steps increasing.
            while series.points.last().is_some_and(|p| p.0 >= m.step as f64) {
                series.points.pop();
            }
            series.points.push((m.step as f64, m.value));
        }
        let (events, _): (Vec<EventLine>, bool) =
            self.events_tail.read(&self.dir.file(dir::EVENTS));
        changed |= !events.is_empty();
        self.events.extend(events);
        let (snaps, _): (Vec<SnapshotLine>, bool) =
            self.snapshots_tail.read(&self.dir.file(dir::SNAPSHOTS));
        changed |= !snaps.is_empty();
        for s in snaps {
            self.snapshots.insert((s.slot.clone(), s.sample), s);
        }
        changed
    }

    /// The state to show: a "training" run whose trainer is gone has failed.
    pub fn state(&self) -> DisplayState {
        match &self.status {
            None => DisplayState::Unknown,
            Some(s) if matches!(s.state, State::Training | State::Paused) && !self.alive => {
                DisplayState::Lost
            }
            Some(s) => DisplayState::Is(s.state),
        }
    }

    pub fn best_val_acc(&self) -> Option<f64> {
        self.status.as_ref().and_then(|s| s.best_val_acc)
    }

    /// Seconds left at the last logged speed.
    pub fn eta_seconds(&self) -> Option<f64> {
        let s = self.status.as_ref()?;
        if s.state != State::Training || s.step == 0 {
            return None;
        }
        let per_s = s.samples_per_s?;
        let steps_per_s = per_s / self.batch_size? as f64;
        (steps_per_s > 0.0).then(|| (s.total_steps.saturating_sub(s.step)) as f64 / steps_per_s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisplayState {
    Unknown,
    /// Marked training, but its process is gone (killed, crashed, machine rebooted).
    Lost,
    Is(State),
}

impl DisplayState {
    pub fn label(self) -> &'static str {
        match self {
            DisplayState::Unknown => "unknown",
            DisplayState::Lost => "failed",
            DisplayState::Is(State::Queued) => "queued",
            DisplayState::Is(State::Training) => "training",
            DisplayState::Is(State::Paused) => "paused",
            DisplayState::Is(State::Stopped) => "stopped",
            DisplayState::Is(State::Done) => "done",
            DisplayState::Is(State::Failed) => "failed",
            DisplayState::Is(State::Diverged) => "diverged",
        }
    }
}

/// One experiment file and what validation said.
#[derive(Debug)]
pub struct ExperimentView {
    pub path: PathBuf,
    pub modified: Option<SystemTime>,
    pub result: Result<Experiment, Vec<Diagnostic>>,
}

impl ExperimentView {
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Experiment files of a directory, re-validated when they change.
pub fn scan_experiments(
    dir: &Path,
    catalog: &Catalog,
    machine: &dyn Machine,
    known: &mut Vec<ExperimentView>,
) -> bool {
    let files = experiment::files_in(dir);
    let mut changed = files.len() != known.len();
    let mut next = Vec::with_capacity(files.len());
    for path in files {
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let old = known.iter().position(|e| e.path == path);
        match old {
            Some(i) if known[i].modified == modified => {
                next.push(known.swap_remove(i));
            }
            _ => {
                changed = true;
                let result = experiment::load(&path, catalog, machine);
                next.push(ExperimentView {
                    path,
                    modified,
                    result,
                });
            }
        }
    }
    next.sort_by(|a, b| a.path.cmp(&b.path));
    *known = next;
    changed
}

/// Run directories under `runs`, opened or refreshed; true if anything changed.
pub fn scan_runs(runs: &Path, known: &mut Vec<RunView>) -> bool {
    let mut changed = false;
    for dir in dir::list_runs(runs) {
        if !known.iter().any(|r| r.dir.path == dir.path)
            && let Some(view) = RunView::open(dir)
        {
            known.push(view);
            changed = true;
        }
    }
    let before = known.len();
    // A directory deleted while displayed simply disappears.
    known.retain(|r| r.dir.path.join(dir::RUN).is_file());
    changed |= known.len() != before;
    for r in known.iter_mut() {
        changed |= r.refresh();
    }
    known.sort_by(|a, b| a.dir.path.cmp(&b.dir.path));
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn tail_holds_back_a_torn_line_and_restarts_when_the_file_shrinks() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log.jsonl");
        let mut tail = Tail::default();
        std::fs::write(&path, "{\"a\":1}\n{\"a\":").unwrap();
        let (v, reset): (Vec<serde_json::Value>, bool) = tail.read(&path);
        assert_eq!((v.len(), reset), (1, false));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"2}\n").unwrap();
        let (v, _): (Vec<serde_json::Value>, bool) = tail.read(&path);
        assert_eq!(v, [serde_json::json!({"a": 2})]);
        std::fs::write(&path, "{\"a\":3}\n").unwrap();
        let (v, reset): (Vec<serde_json::Value>, bool) = tail.read(&path);
        assert_eq!((v, reset), (vec![serde_json::json!({"a": 3})], true));
    }
}
