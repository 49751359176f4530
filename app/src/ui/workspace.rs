//! What the dashboard knows, collected from disk: run directories (read
//! incrementally), experiment files (validated), plugins. It never trains.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::de::DeserializeOwned;

use super::identity::{self, Config};
use super::state::XAxis;
use crate::experiment::{self, Catalog, Diagnostic, Experiment, Machine};
use crate::run::dir::{self, EventLine, MetricLine, RunDir, RunInfo, SnapshotLine, State, Status};
use crate::run::notes::Notes;

/// Reads the lines appended to a file since the last call. A torn last line
/// is kept back until its newline arrives; a file that shrank or was replaced
/// is read again.
#[derive(Debug, Default)]
pub struct Tail {
    offset: u64,
    inode: u64,
    partial: String,
    /// Start this many bytes before the end of a file first read (a long
    /// log's end, not all of it); `None`: from the start.
    from_end: Option<u64>,
}

impl Tail {
    /// A tail that first reads only the last `bytes` of the file.
    pub fn last(bytes: u64) -> Tail {
        Tail {
            from_end: Some(bytes),
            ..Tail::default()
        }
    }

    /// New complete JSON records, and whether the file was reset (shrank).
    pub fn read<T: DeserializeOwned>(&mut self, path: &Path) -> (Vec<T>, bool) {
        let (lines, reset) = self.lines(path);
        let records = lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        (records, reset)
    }

    /// New complete lines, and whether the file was reset.
    pub fn lines(&mut self, path: &Path) -> (Vec<String>, bool) {
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
        let first = self.inode == 0 || reset;
        self.inode = inode;
        let mut skip_torn = false;
        if first && let Some(n) = self.from_end.filter(|n| len > *n) {
            self.offset = len - n;
            skip_torn = true;
        }
        if len == self.offset || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return (Vec::new(), reset);
        }
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_err() {
            return (Vec::new(), reset);
        }
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let text = std::mem::take(&mut self.partial);
        let mut lines: Vec<String> = Vec::new();
        let mut rest = text.as_str();
        while let Some(i) = rest.find('\n') {
            lines.push(rest[..i].to_string());
            rest = &rest[i + 1..];
        }
        self.partial = rest.to_string();
        if skip_torn && !lines.is_empty() {
            // Started mid-file: the first line is the end of one.
            lines.remove(0);
        }
        (lines, reset)
    }
}

/// The last lines of a run's trainer.log, as the log pane shows them.
#[derive(Debug)]
pub struct LogTail {
    tail: Tail,
    pub lines: std::collections::VecDeque<String>,
}

/// Lines of a trainer's log kept (and bytes read from the end at first).
pub const LOG_LINES: usize = 500;
const LOG_BYTES: u64 = 64 * 1024;

impl Default for LogTail {
    fn default() -> LogTail {
        LogTail {
            tail: Tail::last(LOG_BYTES),
            lines: Default::default(),
        }
    }
}

impl LogTail {
    /// Reads what was appended; true if anything was.
    pub fn refresh(&mut self, path: &Path) -> bool {
        let (new, reset) = self.tail.lines(path);
        if reset {
            self.lines.clear();
        }
        let changed = reset || !new.is_empty();
        // A progress bar redraws with carriage returns: keep what it ended on.
        self.lines.extend(
            new.into_iter()
                .map(|l| l.rsplit('\r').next().unwrap_or("").to_string()),
        );
        while self.lines.len() > LOG_LINES {
            self.lines.pop_front();
        }
        changed
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
    /// The snapshots of each slot and sample, oldest first: every one while
    /// there are few, then an even spread over the run (see [`keep_snapshot`]).
    pub snapshots: BTreeMap<(String, usize), Vec<SnapshotLine>>,
    /// Whether the trainer's process is alive (for "training" that is not).
    pub alive: bool,
    /// The end of its trainer.log.
    pub log: LogTail,
    /// The resolved experiment, flattened (legends, the config panel).
    pub config: Config,
    /// When it was prepared, `HH:MM:SS` (tells identical runs apart).
    pub started: String,
    /// The researcher's tags and note.
    pub notes: Notes,
    /// From the resolved experiment, read once (the ETA needs it at every frame).
    batch_size: Option<usize>,
    epochs: Option<usize>,
    /// (step, wall-clock seconds) of each logged step, for charts over time.
    walls: Vec<(f64, f64)>,
    metrics_tail: Tail,
    events_tail: Tail,
    snapshots_tail: Tail,
}

impl RunView {
    pub fn open(dir: RunDir) -> Option<RunView> {
        let info = dir.info().ok()?;
        let resolved = dir.experiment().ok();
        let batch_size = resolved.as_ref().map(|f| f.train.batch_size);
        let epochs = resolved.as_ref().map(|f| f.train.epochs);
        let config = identity::read_config(&dir.file(dir::EXPERIMENT));
        let started = identity::clock_of(&info.created);
        let mut view = RunView {
            dir,
            config,
            started,
            notes: Notes::default(),
            info,
            status: None,
            series: BTreeMap::new(),
            events: Vec::new(),
            snapshots: BTreeMap::new(),
            alive: false,
            log: LogTail::default(),
            batch_size,
            epochs,
            walls: Vec::new(),
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
            self.walls.clear();
            changed = true;
        }
        for m in metrics {
            changed = true;
            self.keep_wall(m.step as f64, m.wall);
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
        changed |= self.log.refresh(&self.dir.file(dir::TRAINER_LOG));
        let notes = Notes::of(&self.dir);
        if notes != self.notes {
            self.notes = notes;
            changed = true;
        }
        let (snaps, _): (Vec<SnapshotLine>, bool) =
            self.snapshots_tail.read(&self.dir.file(dir::SNAPSHOTS));
        changed |= !snaps.is_empty();
        for s in snaps {
            let history = self
                .snapshots
                .entry((s.slot.clone(), s.sample))
                .or_default();
            keep_snapshot(history, s);
        }
        changed
    }

    /// Notes when a step was logged (once a step; a resumed run's steps
    /// after its checkpoint are logged again, later).
    fn keep_wall(&mut self, step: f64, wall: f64) {
        if self.walls.last().is_some_and(|w| w.0 == step) {
            return;
        }
        while self.walls.last().is_some_and(|w| w.0 > step) {
            self.walls.pop();
        }
        self.walls.push((step, wall));
    }

    /// Where `step` lies on the charts' x axis: the step itself, the epoch
    /// (fractional), or minutes since the run's first logged step
    /// (interpolated between logged steps).
    pub fn x_of(&self, axis: XAxis, step: f64) -> f64 {
        match axis {
            XAxis::Step => step,
            XAxis::Epoch => {
                let total = self.status.as_ref().map_or(0, |s| s.total_steps);
                match self.epochs.filter(|&e| e > 0 && total > 0) {
                    Some(e) => step / (total as f64 / e as f64),
                    None => step,
                }
            }
            XAxis::Minutes => {
                let Some(&(_, start)) = self.walls.first() else {
                    return 0.0;
                };
                let i = self.walls.partition_point(|w| w.0 < step);
                let wall = match (i.checked_sub(1).map(|j| self.walls[j]), self.walls.get(i)) {
                    (Some((s0, w0)), Some(&(s1, w1))) if s1 > s0 => {
                        w0 + (w1 - w0) * (step - s0) / (s1 - s0)
                    }
                    (_, Some(&(_, w))) | (Some((_, w)), None) => w,
                    (None, None) => start,
                };
                (wall - start) / 60.0
            }
        }
    }

    /// The state to show: a "training" run whose trainer is gone has failed.
    pub fn state(&self) -> DisplayState {
        match &self.status {
            None => DisplayState::Unknown,
            Some(s) if matches!(s.state, State::Training | State::Paused) && !self.alive => {
                if s.elsewhere() {
                    DisplayState::Unheard
                } else {
                    DisplayState::Lost
                }
            }
            Some(s) => DisplayState::Is(s.state),
        }
    }

    /// What [`identity::names`] needs to name it among other runs.
    pub fn named(&self) -> identity::Named<'_> {
        identity::Named {
            label: &self.info.label,
            seed: self.info.seed,
            config: &self.config,
            started: self.started.clone(),
            seeds: vec![self.info.seed],
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

/// Snapshots kept per slot and sample (a snapshot of a large map is ~100 KB).
pub const SNAPSHOT_HISTORY: usize = 32;

/// Adds the newest snapshot to `history`; when it is full, every other older
/// one goes first, so the history always spans the run from its first
/// snapshot, densest at the end.
pub fn keep_snapshot(history: &mut Vec<SnapshotLine>, snap: SnapshotLine) {
    // A resumed run snapshots again from its checkpoint: keep steps increasing.
    history.retain(|s| s.step < snap.step);
    if history.len() >= SNAPSHOT_HISTORY {
        let mut i = 0;
        history.retain(|_| {
            i += 1;
            i % 2 == 1
        });
    }
    history.push(snap);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisplayState {
    Unknown,
    /// Marked training, but its process is gone (killed, crashed, machine rebooted).
    Lost,
    /// Marked training on another host, whose heartbeat stopped.
    Unheard,
    Is(State),
}

impl DisplayState {
    pub fn label(self) -> &'static str {
        match self {
            DisplayState::Unknown => "unknown",
            DisplayState::Lost => "failed",
            DisplayState::Unheard => "lost",
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
    fn a_log_tail_starts_near_the_end_of_a_long_log() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("trainer.log");
        let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let mut log = LogTail::default();
        assert!(log.refresh(&path));
        assert_eq!(log.lines.len(), LOG_LINES);
        assert_eq!(log.lines.back().map(String::as_str), Some("line 19999"));
        assert!(
            log.lines.iter().all(|l| l.starts_with("line ")),
            "no torn line"
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"step 1\rstep 2\n").unwrap();
        assert!(log.refresh(&path));
        assert_eq!(log.lines.back().map(String::as_str), Some("step 2"));
        assert!(!log.refresh(&path), "nothing new");
    }

    #[test]
    fn snapshot_history_spans_the_run_and_keeps_the_newest() {
        let snap = |step| SnapshotLine {
            step,
            slot: "a".into(),
            sample: 0,
            channels: vec![0],
            height: 1,
            width: 1,
            salience: vec![1.0],
            mask: vec![1.0],
            p: 0.1,
            tokens: Vec::new(),
        };
        let mut history = Vec::new();
        for step in 1..=1000 {
            keep_snapshot(&mut history, snap(step));
        }
        assert!(history.len() <= SNAPSHOT_HISTORY);
        assert_eq!(history.first().map(|s| s.step), Some(1));
        assert_eq!(history.last().map(|s| s.step), Some(1000));
        assert!(history.windows(2).all(|w| w[0].step < w[1].step));
        // A resumed run's snapshots replace those after its checkpoint.
        keep_snapshot(&mut history, snap(500));
        assert_eq!(history.last().map(|s| s.step), Some(500));
        assert!(history.iter().all(|s| s.step <= 500));
    }

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
