//! What the dashboard knows, collected from disk: run directories (read
//! incrementally), experiment files (validated), plugins. It never trains.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::de::DeserializeOwned;

use super::identity::{self, Config};
use super::state::XAxis;
use crate::experiment::{self, Catalog, Diagnostic, Experiment, Machine};
use crate::run::dir::metric::{SeriesKey, Split};
use crate::run::dir::{self, EventLine, RunDir, RunInfo, SnapshotLine, State, Status};
use crate::run::files::{Stamp, Watched};
use crate::run::notes::Notes;
use crate::run::provenance::Provenance;

/// Bytes of one file read at most per refresh: a huge log is taken in
/// steps, and the dashboard draws between them.
pub const READ_PER_REFRESH: u64 = 32 << 20;
/// A line longer than this is skipped unread (no log of ours writes one; a
/// file without newlines must not grow memory).
pub const LINE_MAX: usize = 16 << 20;
const CHUNK: usize = 256 * 1024;

/// Reads the lines appended to a file since the last call, at most
/// [`READ_PER_REFRESH`] bytes a call, in memory bounded by a chunk and the
/// longest line. A torn last line is kept back until its newline arrives; a
/// file that shrank or was replaced is read again. An unchanged file is not
/// even opened (its stamp says so), and only a regular file ever is.
#[derive(Debug, Default)]
pub struct Tail {
    offset: u64,
    stamp: Option<Stamp>,
    partial: Vec<u8>,
    /// Inside a line being skipped (too long, or the torn end of one).
    skipping: bool,
    /// Start this many bytes before the end of a file first read (a long
    /// log's end, not all of it); `None`: from the start.
    from_end: Option<u64>,
    /// Why the file is not read, when it is there but not a regular file.
    pub refused: Option<String>,
    /// The last call stopped at its budget with more to read.
    more: bool,
}

/// What [`Tail::each_line`] hands on: the file was replaced or shrank (what
/// came before is void), or one complete line, without its newline.
pub enum Seen<'a> {
    Reset,
    Line(&'a [u8]),
}

/// What one call of [`Tail::each_line`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TailRead {
    /// The file was replaced or shrank: what was read before is void.
    pub reset: bool,
    /// More is there than this call read.
    pub more: bool,
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
        let mut records = Vec::new();
        let read = self.each_line(path, READ_PER_REFRESH, |seen| {
            if let Seen::Line(l) = seen {
                records.extend(serde_json::from_slice(l).ok());
            }
        });
        (records, read.reset)
    }

    /// New complete lines, and whether the file was reset.
    pub fn lines(&mut self, path: &Path) -> (Vec<String>, bool) {
        let mut lines = Vec::new();
        let read = self.each_line(path, READ_PER_REFRESH, |seen| {
            if let Seen::Line(l) = seen {
                lines.push(String::from_utf8_lossy(l).into_owned());
            }
        });
        (lines, read.reset)
    }

    /// Calls `each` with every complete line appended since the last call,
    /// after [`Seen::Reset`] if the file was replaced, reading at most
    /// `budget` bytes.
    pub fn each_line(&mut self, path: &Path, budget: u64, mut each: impl FnMut(Seen)) -> TailRead {
        self.more = false;
        let Some(now) = self.look(path) else {
            return TailRead::default();
        };
        let mut read = self.start(now);
        if read.reset {
            each(Seen::Reset);
        }
        if now.len <= self.offset {
            return read;
        }
        let Ok(mut file) = crate::run::files::open_regular(path) else {
            return read;
        };
        // Replaced between the look and the open: the next call starts over.
        let same = file.metadata().is_ok_and(|m| Stamp::of(&m).same_file(&now));
        if !same || file.seek(SeekFrom::Start(self.offset)).is_err() {
            self.stamp = None;
            return read;
        }
        let want = budget.min(now.len - self.offset);
        let mut chunk = vec![0u8; CHUNK.min(want as usize).max(1)];
        let mut got = 0u64;
        while got < want {
            let n = match file.read(&mut chunk[..CHUNK.min((want - got) as usize)]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            got += n as u64;
            self.split(&chunk[..n], &mut each);
        }
        self.offset += got;
        // Only a spent budget: a short read (the file shrank) is seen next time.
        read.more = got == budget && self.offset < now.len;
        self.more = read.more;
        read
    }

    /// Whether the last read stopped at its budget with more to read (not
    /// when the file could not be read: that waits for the next refresh).
    pub fn behind(&self) -> bool {
        self.more
    }

    /// The file's stamp, or `None` (and why) when there is nothing to read.
    fn look(&mut self, path: &Path) -> Option<Stamp> {
        let now = crate::run::files::stamp(path);
        if now.is_none() {
            // Gone: whatever comes back there is read from its start.
            self.stamp = None;
        }
        self.refused = now.filter(|s| !s.is_file()).map(|_| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            format!("{name} is not a regular file; not read")
        });
        now.filter(Stamp::is_file)
    }

    /// Starts over when the file was replaced or shrank; places a first read.
    fn start(&mut self, now: Stamp) -> TailRead {
        let fresh = self.stamp.is_none() && self.offset == 0;
        let replaced = match self.stamp {
            Some(old) => !old.same_file(&now) || now.len < self.offset,
            None => self.offset > 0,
        };
        if replaced {
            self.offset = 0;
            self.partial.clear();
            self.skipping = false;
        }
        if (fresh || replaced)
            && let Some(n) = self.from_end.filter(|n| now.len > *n)
        {
            // Started mid-file: the first line is the end of one.
            self.offset = now.len - n;
            self.skipping = true;
        }
        self.stamp = Some(now);
        TailRead {
            reset: replaced,
            more: false,
        }
    }

    /// Hands the complete lines of `bytes` (after what was held back) to
    /// `each`, and holds back the rest.
    fn split(&mut self, mut bytes: &[u8], each: &mut impl FnMut(Seen)) {
        while let Some(i) = bytes.iter().position(|&b| b == b'\n') {
            let line = &bytes[..i];
            if std::mem::take(&mut self.skipping) {
                self.partial.clear();
            } else if self.partial.is_empty() {
                each(Seen::Line(line));
            } else {
                self.partial.extend_from_slice(line);
                each(Seen::Line(&self.partial));
                self.partial.clear();
            }
            bytes = &bytes[i + 1..];
        }
        if !self.skipping {
            self.partial.extend_from_slice(bytes);
        }
        if self.partial.len() > LINE_MAX {
            self.partial = Vec::new();
            self.skipping = true;
        }
    }
}

/// The last lines of a run's trainer.log, as the log pane shows them.
#[derive(Debug)]
pub struct LogTail {
    pub(crate) tail: Tail,
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

pub use super::series::Series;

/// One run as the dashboard shows it.
#[derive(Debug)]
pub struct RunView {
    pub dir: RunDir,
    pub info: RunInfo,
    pub status: Option<Status>,
    pub series: BTreeMap<SeriesKey, Series>,
    pub events: Vec<EventLine>,
    /// The snapshots of each slot and sample, oldest first: every one while
    /// there are few, then an even spread over the run (see [`keep_snapshot`]).
    pub snapshots: BTreeMap<(String, usize), Vec<SnapshotLine>>,
    /// Whether the trainer's process is alive (for "training" that is not).
    pub alive: bool,
    /// The end of its trainer.log.
    pub log: LogTail,
    /// The resolved experiment, flattened (legends, the config panel), with
    /// the history of each key a live change set.
    pub config: Config,
    /// What ran: the record the config history and the Runs table's mark
    /// for a run changed mid-way come from.
    pub provenance: Provenance,
    /// When it was prepared, `HH:MM:SS` (tells identical runs apart).
    pub started: String,
    /// The researcher's tags and note.
    pub notes: Notes,
    /// Why its notes.json was not read (too large, not a regular file…).
    pub notes_error: Option<String>,
    /// Why its status.json was not read, when it is there.
    status_error: Option<String>,
    /// From the resolved experiment, read once (the ETA needs it at every frame).
    batch_size: Option<usize>,
    epochs: Option<usize>,
    /// (step, wall-clock seconds) of logged steps, for charts over time:
    /// every step while there are few, then an even spread (see [`keep_wall`]).
    walls: Vec<(f64, f64)>,
    metrics_tail: Tail,
    events_tail: Tail,
    snapshots_tail: Tail,
    status_file: Watched,
    notes_file: Watched,
    /// Whole files read and parsed (status, notes): an idle refresh reads none.
    whole_reads: u64,
}

impl RunView {
    pub fn open(dir: RunDir) -> Option<RunView> {
        let info = dir.info().ok()?;
        let resolved = dir.experiment().ok();
        let batch_size = resolved.as_ref().map(|f| f.train.batch_size);
        let epochs = resolved.as_ref().map(|f| f.train.epochs);
        let provenance = Provenance::of(&dir);
        let config = identity::with_history(
            identity::read_config(&dir.file(dir::EXPERIMENT)),
            &provenance,
        );
        let started = identity::clock_of(&info.created);
        let mut view = RunView {
            dir,
            config,
            provenance,
            started,
            notes: Notes::default(),
            notes_error: None,
            status_error: None,
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
            status_file: Watched::default(),
            notes_file: Watched::default(),
            whole_reads: 0,
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

    /// Reads what changed on disk; true if anything did. Whole files are read
    /// only when their stamp changed; logs from where the last read ended.
    pub fn refresh(&mut self) -> bool {
        let mut changed = self.refresh_status();
        changed |= self.refresh_metrics();
        let (events, _): (Vec<EventLine>, bool) =
            self.events_tail.read(&self.dir.file(dir::EVENTS));
        changed |= !events.is_empty();
        if events.iter().any(|e| e.kind.changes_what_ran()) {
            // A live change or a new library: what ran, and its history, moved.
            self.provenance = Provenance::of(&self.dir);
            self.config = identity::with_history(
                identity::read_config(&self.dir.file(dir::EXPERIMENT)),
                &self.provenance,
            );
        }
        self.events.extend(events);
        changed |= self.log.refresh(&self.dir.file(dir::TRAINER_LOG));
        changed |= self.refresh_notes();
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

    /// Whether a log of it is not read to its end yet (a long one comes in
    /// over several refreshes).
    pub fn behind(&self) -> bool {
        [&self.metrics_tail, &self.events_tail, &self.snapshots_tail]
            .iter()
            .any(|t| t.behind())
    }

    /// How many times a whole file (status, notes) was read and parsed.
    pub fn whole_reads(&self) -> u64 {
        self.whole_reads
    }

    /// Why some of its files are not read, if any are not.
    pub fn problems(&self) -> Vec<String> {
        let tails = [&self.metrics_tail, &self.events_tail, &self.snapshots_tail];
        tails
            .into_iter()
            .filter_map(|t| t.refused.clone())
            .chain(self.log.tail.refused.clone())
            .chain(self.status_error.clone())
            .chain(self.notes_error.clone())
            .collect()
    }

    /// The status when its file changed; whether the trainer lives, unless
    /// the run is finished and its status unchanged (a finished run's
    /// trainer is started again only through a status it rewrites).
    fn refresh_status(&mut self) -> bool {
        let mut changed = false;
        let path = self.dir.file(dir::STATUS);
        let rewritten = self.status_file.changed(&path);
        if rewritten {
            self.whole_reads += 1;
            let (status, error) = match dir::read_json::<Status>(&path) {
                Ok(s) => (Some(s), None),
                Err(crate::run::RunError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    (None, None)
                }
                Err(crate::run::RunError::Read { source, .. }) => {
                    (None, Some(crate::run::files::why_not_read(&path, &source)))
                }
                Err(crate::run::RunError::Json { source, .. }) => (
                    None,
                    Some(format!("{} is not valid: {source}", dir::STATUS)),
                ),
                Err(e) => (None, Some(e.to_string())),
            };
            changed = status != self.status || error != self.status_error;
            self.status = status;
            self.status_error = error;
        }
        let finished = self.status.as_ref().is_none_or(|s| s.state.is_final());
        if rewritten || !finished {
            let alive = self
                .status
                .as_ref()
                .is_some_and(|s| self.dir.trainer_alive(s));
            changed |= alive != self.alive;
            self.alive = alive;
        }
        changed
    }

    fn refresh_notes(&mut self) -> bool {
        if !self
            .notes_file
            .changed(&self.dir.file(crate::run::notes::NOTES))
        {
            return false;
        }
        self.whole_reads += 1;
        let (notes, error) = match Notes::read(&self.dir) {
            Ok(n) => (n, None),
            Err(e) => (Notes::default(), Some(e)),
        };
        let changed = notes != self.notes || error != self.notes_error;
        self.notes = notes;
        self.notes_error = error;
        changed
    }

    /// Folds what metrics.jsonl gained into the series (at most
    /// [`READ_PER_REFRESH`] bytes: a long log comes in over a few refreshes).
    fn refresh_metrics(&mut self) -> bool {
        let mut key = SeriesKey::new(Split::Train, "");
        let mut changed = false;
        let (series, walls) = (&mut self.series, &mut self.walls);
        let path = self.dir.file(dir::METRICS);
        let read = self
            .metrics_tail
            .each_line(&path, READ_PER_REFRESH, |seen| match seen {
                Seen::Reset => {
                    series.clear();
                    walls.clear();
                    changed = true;
                }
                Seen::Line(line) => {
                    let Ok(m) = serde_json::from_slice::<MetricRef>(line) else {
                        return;
                    };
                    changed = true;
                    keep_wall(walls, m.step as f64, m.wall);
                    let Some(split) = Split::of(&m.split) else {
                        return;
                    };
                    // One key buffer: no allocation per line.
                    key.split = split;
                    key.metric.clear();
                    key.metric.push_str(&m.metric);
                    if !series.contains_key(&key) {
                        series.insert(key.clone(), Series::default());
                    }
                    if let Some(s) = series.get_mut(&key) {
                        s.push(m.step, m.value);
                    }
                }
            });
        // More to come: the next refresh goes on (and draws meanwhile).
        changed || read.more
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

    /// Whether a saved change of its experiment waits for a restart: the
    /// trainer said so since it last started, and the run is not done.
    pub fn needs_restart(&self) -> bool {
        let since_start = self
            .events
            .iter()
            .rposition(|e| matches!(e.kind, dir::EventKind::Started | dir::EventKind::Resumed))
            .map_or(0, |i| i + 1);
        let done = self.status.as_ref().is_some_and(|s| s.state == State::Done);
        !done
            && self.events[since_start..]
                .iter()
                .any(|e| e.kind == dir::EventKind::NeedsRestart)
    }

    /// When its last logged step was written (its trainer's clock).
    pub fn last_step_wall(&self) -> Option<f64> {
        self.walls.last().map(|w| w.1)
    }

    /// Seconds since its last logged step at `now`, when a training run has
    /// gone [`STALL_MEDIANS`] median steps (and [`STALL_FLOOR_SECS`]) without
    /// one: a hung `mask()` or data reader shows long before the step
    /// timeout ends it. Only a run of this host: another's steps are stamped
    /// by its own clock.
    pub fn stalled_for(&self, now: f64) -> Option<f64> {
        let here = self.status.as_ref().is_some_and(|s| !s.elsewhere());
        if !here || self.state() != DisplayState::Is(State::Training) {
            return None;
        }
        let since = now - self.last_step_wall()?;
        let median = self.median_step_secs().unwrap_or(0.0);
        (since > (STALL_MEDIANS * median).max(STALL_FLOOR_SECS)).then_some(since)
    }

    /// The median time between its last few logged steps.
    fn median_step_secs(&self) -> Option<f64> {
        let recent = &self.walls[self.walls.len().saturating_sub(STALL_WINDOW)..];
        let mut gaps: Vec<f64> = recent.windows(2).map(|w| w[1].1 - w[0].1).collect();
        gaps.sort_by(f64::total_cmp);
        gaps.get(gaps.len() / 2).copied()
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

/// A training run with no step for this many median steps has stalled…
pub const STALL_MEDIANS: f64 = 3.0;
/// …and for at least this many seconds (an evaluation, a checkpoint).
pub const STALL_FLOOR_SECS: f64 = 30.0;
/// Logged steps whose spacing gives the median.
const STALL_WINDOW: usize = 32;

/// The fields of a metrics.jsonl line the dashboard uses, borrowed from the
/// line (a long log is parsed without an allocation per line).
#[derive(serde::Deserialize)]
struct MetricRef<'a> {
    step: u64,
    #[serde(borrow)]
    split: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    metric: std::borrow::Cow<'a, str>,
    value: f64,
    wall: f64,
}

/// Wall-clock times kept for the minutes axis; beyond, every other older one
/// goes (interpolation between the rest stays close).
pub const WALLS: usize = 4096;

/// Notes when a step was logged (once a step; a resumed run's steps after
/// its checkpoint are logged again, later), in bounded memory.
fn keep_wall(walls: &mut Vec<(f64, f64)>, step: f64, wall: f64) {
    if walls.last().is_some_and(|w| w.0 == step) {
        return;
    }
    while walls.last().is_some_and(|w| w.0 > step) {
        walls.pop();
    }
    if walls.len() >= WALLS {
        // Thin the older half; the newest half stays as logged.
        let half = walls.len() / 2;
        let mut i = 0;
        walls.retain(|_| {
            i += 1;
            i > half || i % 2 == 1
        });
    }
    walls.push((step, wall));
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
/// One bad directory costs only itself: nothing here waits on a file.
pub fn scan_runs(runs: &Path, known: &mut Vec<RunView>) -> bool {
    let listed = dir::list_runs(runs);
    let before = known.len();
    // A directory deleted while displayed simply disappears.
    let present: std::collections::HashSet<&Path> =
        listed.iter().map(|d| d.path.as_path()).collect();
    known.retain(|r| present.contains(r.dir.path.as_path()));
    let mut changed = known.len() != before;
    let seen: std::collections::HashSet<PathBuf> =
        known.iter().map(|r| r.dir.path.clone()).collect();
    for r in known.iter_mut() {
        changed |= r.refresh();
    }
    for dir in listed {
        if !seen.contains(&dir.path)
            && let Some(view) = RunView::open(dir)
        {
            known.push(view);
            changed = true;
        }
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

    /// A run directory with a status, for the refresh tests.
    fn run_dir(root: &Path) -> RunDir {
        let info = RunInfo {
            experiment: "e".into(),
            source: "e.toml".into(),
            label: "a".into(),
            strategy_index: 0,
            seed: 1,
            created: String::new(),
            slurm_job: None,
        };
        let d = RunDir::create(root, &info, "name = \"e\"\n").unwrap();
        let status = Status {
            state: State::Done,
            ..Status::new(0)
        };
        dir::write_json(&d.file(dir::STATUS), &status).unwrap();
        d
    }

    /// Issue 32, case 14: an unchanged run directory is not read again (its
    /// files' stamps say so); a rewritten status is, even one of the same
    /// size whose modification time was put back (the change time moved).
    #[test]
    fn an_unchanged_run_directory_is_not_read_again() {
        let tmp = tempfile::tempdir().unwrap();
        let d = run_dir(tmp.path());
        let mut view = RunView::open(d.clone()).unwrap();
        let reads = view.whole_reads();
        for _ in 0..5 {
            assert!(!view.refresh(), "nothing changed");
        }
        assert_eq!(view.whole_reads(), reads, "nothing read again");
        let mut status = view.status.clone().unwrap();
        status.step = 7;
        dir::write_json(&d.file(dir::STATUS), &status).unwrap();
        assert!(view.refresh());
        assert_eq!(view.whole_reads(), reads + 1, "only the status");
        assert_eq!(view.status.as_ref().map(|s| s.step), Some(7));
        // In place, same size, modification time restored.
        let path = d.file(dir::STATUS);
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"step\": 7", "\"step\": 8");
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::io::Write::write_all(&mut &f, text.as_bytes()).unwrap();
        f.set_modified(mtime).unwrap();
        drop(f);
        assert!(view.refresh());
        assert_eq!(view.status.as_ref().map(|s| s.step), Some(8));
        assert_eq!(view.whole_reads(), reads + 2);
        assert!(!view.refresh());
        assert_eq!(view.whole_reads(), reads + 2);
    }

    /// Issue 32, case 14: notes over the size cap are refused unread, with
    /// the reason shown for that run; within it, over the caps, refused too.
    #[test]
    fn oversized_notes_are_refused_with_the_reason() {
        use crate::run::notes::{NOTES, NOTES_MAX_BYTES, TAGS_MAX};
        let tmp = tempfile::tempdir().unwrap();
        let d = run_dir(tmp.path());
        let big = format!("{{\"note\": \"{}\"}}", "x".repeat(2 << 20));
        std::fs::write(d.file(NOTES), big).unwrap();
        let mut view = RunView::open(d.clone()).unwrap();
        assert_eq!(view.notes, Notes::default());
        let why = view.notes_error.clone().unwrap();
        assert!(
            why.contains(&format!("larger than {} KiB", NOTES_MAX_BYTES / 1024)),
            "{why}"
        );
        assert_eq!(view.problems(), [why]);
        let many = Notes {
            tags: (0..=TAGS_MAX).map(|i| format!("t{i}")).collect(),
            note: String::new(),
        };
        assert!(many.save(&d).is_err(), "refused on write");
        dir::write_json(&d.file(NOTES), &many).unwrap();
        assert!(view.refresh());
        let why = view.notes_error.clone().unwrap();
        assert!(why.contains("more than 32"), "{why}");
        let fine = Notes {
            tags: vec!["ok".into()],
            note: "fine".into(),
        };
        fine.save(&d).unwrap();
        assert!(view.refresh());
        assert_eq!((view.notes.clone(), view.notes_error.clone()), (fine, None));
    }

    /// Issue 32, case 13: a long metrics log comes in over refreshes of at
    /// most [`READ_PER_REFRESH`] bytes, into bounded series that keep its
    /// last value and maximum; a line without end is skipped, not held.
    #[test]
    fn a_long_metrics_log_is_read_in_steps_into_bounded_series() {
        let tmp = tempfile::tempdir().unwrap();
        let d = run_dir(tmp.path());
        let mut text = String::new();
        let n = 300_000u64;
        for step in 1..=n {
            let value = if step == 4321 {
                99.0
            } else {
                (step % 10) as f64
            };
            text.push_str(&format!(
                "{{\"step\":{step},\"epoch\":0,\"split\":\"train\",\"metric\":\"loss\",\"value\":{value},\"wall\":{step}.0,\"p\":0.1,\"plugin_version\":\"1\"}}\n"
            ));
        }
        assert!(
            text.len() as u64 > READ_PER_REFRESH,
            "needs several refreshes"
        );
        std::fs::write(d.file(dir::METRICS), &text).unwrap();
        let mut view = RunView::open(d.clone()).unwrap();
        let loss = |v: &RunView| v.series[&SeriesKey::new(Split::Train, "loss")].clone();
        assert!(loss(&view).last().unwrap().0 < n as f64, "not all at once");
        assert!(view.behind());
        while view.refresh() {}
        assert!(!view.behind());
        let s = loss(&view);
        assert_eq!(s.last(), Some((n as f64, (n % 10) as f64)));
        assert_eq!(s.max(), Some(99.0));
        assert_eq!(s.sum_count().1, n);
        assert!(
            s.points().len()
                <= 2 * super::super::series::BUCKETS + super::super::series::RECENT_POINTS
        );
        assert!(view.walls.len() <= WALLS);
        assert!((view.x_of(XAxis::Minutes, n as f64) - (n - 1) as f64 / 60.0).abs() < 1e-6);
        // 20 MiB without a newline, then a good line: skipped, then read.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(d.file(dir::METRICS))
            .unwrap();
        f.write_all(&vec![b'x'; LINE_MAX + (4 << 20)]).unwrap();
        f.write_all(b"\n{\"step\":300001,\"epoch\":0,\"split\":\"train\",\"metric\":\"loss\",\"value\":0.5,\"wall\":1.0,\"p\":0.1,\"plugin_version\":\"1\"}\n").unwrap();
        while view.refresh() {
            assert!(view.metrics_tail.partial.len() <= LINE_MAX + CHUNK);
        }
        assert_eq!(loss(&view).last(), Some((300_001.0, 0.5)));
    }

    #[test]
    fn a_fifo_is_refused_by_a_tail_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("metrics.jsonl");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let mut tail = Tail::default();
        let (lines, reset) = tail.lines(&path);
        assert!(lines.is_empty() && !reset);
        assert_eq!(
            tail.refused.as_deref(),
            Some("metrics.jsonl is not a regular file; not read")
        );
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
