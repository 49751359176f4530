//! The run directory: the contract between a trainer and whoever watches it.
//!
//! ```text
//! runs/<utc time>-<experiment>-<label>-s<seed>/
//!   experiment.toml   the resolved experiment (one strategy, one seed)
//!   run.json          identity: experiment name and source file, label, seed
//!   status.json       state, step, epoch, pid, best accuracy (replaced atomically)
//!   metrics.jsonl     append-only, one metric per line
//!   events.jsonl      append-only: reloads, config changes, errors
//!   snapshots.jsonl   append-only: sampled masks and salience per slot
//!   checkpoint.json   which checkpoint files are complete (replaced atomically)
//!   checkpoint/       model and optimiser records
//!   input.json        an image run's input: per-channel mean and std, class names
//!   control.sock      pause / resume / stop / apply-config (mode 0600)
//!   trainer.lock      locked by the live trainer (its pid and host inside)
//!   notes.json        the researcher's tags and note (the dashboard writes it)
//! ```
//! The directory is owner-only (0700).
//! Whole files are written to a temporary name and renamed; logs are appended one
//! line per write, and a torn last line is skipped on read.
//! Every file is read through `run::files` (no link followed, no FIFO or
//! device opened, whole files at most [`WHOLE_FILE_MAX`]): anyone who can
//! write in a run directory could put anything there.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::RunError;
use super::files::{open_regular, open_to_write, read_regular, read_regular_text};

pub const EXPERIMENT: &str = "experiment.toml";
pub const RUN: &str = "run.json";
pub const STATUS: &str = "status.json";
pub const METRICS: &str = "metrics.jsonl";
pub const EVENTS: &str = "events.jsonl";
pub const SNAPSHOTS: &str = "snapshots.jsonl";
pub const CHECKPOINT: &str = "checkpoint.json";
pub const CHECKPOINT_DIR: &str = "checkpoint";
pub const SOCKET: &str = "control.sock";
/// Control requests for a trainer on another host (see `run::control`).
pub const INBOX: &str = "control.inbox";
/// What the trainer prints (its stdout and stderr when the dashboard or
/// compare started it).
pub const TRAINER_LOG: &str = "trainer.log";
/// A text run's vocabulary, trained when the run starts and read on resume.
pub const TOKENIZER: &str = "tokenizer.json";
/// What an image run's model takes in (see [`InputSpec`]), written when its
/// trainer starts.
pub const INPUT: &str = "input.json";
/// The most a whole file of a run directory (status, run, checkpoint,
/// experiment, a comparison's manifest) may hold to be read; larger is
/// refused unread. Real ones are a few KiB.
pub const WHOLE_FILE_MAX: u64 = 16 << 20;

/// Who a run is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    pub experiment: String,
    /// The experiment file the run came from (watched for live changes).
    pub source: PathBuf,
    pub label: String,
    pub strategy_index: usize,
    pub seed: u64,
    pub created: String,
    /// The Slurm array task that trains it (`<job>_<task>`), when compare
    /// submitted it to Slurm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Training,
    Paused,
    Stopped,
    Done,
    Failed,
    Diverged,
}

impl State {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Done | State::Failed | State::Diverged | State::Stopped
        )
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub state: State,
    pub step: u64,
    pub epoch: u64,
    pub total_steps: u64,
    pub pid: u32,
    pub updated: f64,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub plugin_version: String,
    #[serde(default)]
    pub best_val_acc: Option<f64>,
    #[serde(default)]
    pub last_val_acc: Option<f64>,
    #[serde(default)]
    pub samples_per_s: Option<f64>,
    /// The host its trainer runs on, and when that trainer last said it is
    /// alive (every [`HEARTBEAT_EVERY`], also while paused or in a long
    /// evaluation): how a run on another host is known to be going.
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub heartbeat: f64,
}

/// How often a trainer renews its heartbeat.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(15);
/// A run on another host whose heartbeat is older than this is lost.
pub const LOST_AFTER_SECS: f64 = 120.0;

/// Serialises this process's writes of status.json: the trainer's own, its
/// watchdog's and its heartbeat's (which reads the file and writes it back).
/// It holds the status files this process has given a final state.
static STATUS_WRITES: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// This machine's host name (read once: every status write and every
/// liveness check asks).
pub fn hostname() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    })
    .clone()
}

/// Writes the trainer's status, stamped with this host and a fresh heartbeat.
pub fn write_status(dir: &RunDir, status: &Status) -> std::io::Result<()> {
    let finals = STATUS_WRITES.lock().unwrap_or_else(|e| e.into_inner());
    let path = dir.file(STATUS);
    if finals.contains(&path) {
        // This process gave the run its final status (and is ending): a step
        // finishing on another thread meanwhile must not write over it.
        return Ok(());
    }
    write_json(&path, &stamped(status))
}

fn stamped(status: &Status) -> Status {
    Status {
        host: hostname(),
        heartbeat: now(),
        ..status.clone()
    }
}

/// Renews the heartbeat of this process's run (a status that is neither
/// final nor another process's is left alone).
pub fn beat(dir: &RunDir) {
    let _one = STATUS_WRITES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(status) = dir.status()
        && !status.state.is_final()
        && status.pid == std::process::id()
    {
        let _ = write_json(&dir.file(STATUS), &stamped(&status));
    }
}

impl Status {
    /// A queued run's status before its trainer has said anything.
    pub fn new(pid: u32) -> Status {
        Status {
            state: State::Queued,
            step: 0,
            epoch: 0,
            total_steps: 0,
            pid,
            updated: 0.0,
            message: String::new(),
            device: String::new(),
            plugin_version: String::new(),
            best_val_acc: None,
            last_val_acc: None,
            samples_per_s: None,
            host: String::new(),
            heartbeat: 0.0,
        }
    }

    /// Whether its trainer runs on another host than this one.
    pub fn elsewhere(&self) -> bool {
        !self.host.is_empty() && self.host != hostname()
    }

    /// Seconds since its trainer's last heartbeat, by the trainer's clock
    /// against this one's (only for this host's own runs).
    pub fn silent_for(&self) -> f64 {
        now() - self.heartbeat
    }
}

/// A heartbeat older than this when first seen is not believed to be from a
/// clock that merely runs behind: the run is lost at once.
pub const CLOCK_SKEW_TOLERANCE_SECS: f64 = 3600.0;

/// When this process last saw each run's heartbeat change, by its own
/// monotonic clock: liveness never compares two hosts' clocks.
static HEARD: std::sync::Mutex<
    Option<std::collections::HashMap<PathBuf, (f64, std::time::Instant)>>,
> = std::sync::Mutex::new(None);

/// How long the heartbeat in `status` (of the run in `path`) has stood still
/// as seen from here. On first sight it counts as just heard, unless its
/// stamp is past [`CLOCK_SKEW_TOLERANCE_SECS`]; a stamp from the future buys
/// nothing, since only a change counts.
pub fn unheard_for(path: &Path, status: &Status) -> std::time::Duration {
    let mut heard = HEARD.lock().unwrap_or_else(|e| e.into_inner());
    let heard = heard.get_or_insert_with(Default::default);
    let at = std::time::Instant::now();
    let entry = heard.entry(path.to_path_buf()).or_insert_with(|| {
        let first = if status.silent_for() > CLOCK_SKEW_TOLERANCE_SECS {
            at.checked_sub(std::time::Duration::from_secs_f64(LOST_AFTER_SECS))
                .unwrap_or(at)
        } else {
            at
        };
        (status.heartbeat, first)
    });
    if entry.0 != status.heartbeat {
        *entry = (status.heartbeat, at);
    }
    at.duration_since(entry.1)
}

/// Records that the run in `path` was seen with `heartbeat` at `seen`: for
/// tests, which cannot wait [`LOST_AFTER_SECS`].
#[doc(hidden)]
pub fn note_heartbeat(path: &Path, heartbeat: f64, seen: std::time::Instant) {
    let mut heard = HEARD.lock().unwrap_or_else(|e| e.into_inner());
    let heard = heard.get_or_insert_with(Default::default);
    heard.insert(path.to_path_buf(), (heartbeat, seen));
}

/// The names in metrics.jsonl: written by the trainer, read by the dashboard
/// and compare.
pub mod metric {
    pub const TRAIN: &str = "train";
    pub const VAL: &str = "val";
    pub const LOSS: &str = "loss";
    pub const ACC: &str = "acc";
    pub const TOP5: &str = "top5";
    pub const LR: &str = "lr";
    /// The drop rate of the step.
    pub const P: &str = "p";
    pub const STEP_TIME: &str = "step_time";
    pub const SAMPLES_PER_S: &str = "samples_per_s";
    /// What a slot's dropped fraction is named after.
    const DROPPED: &str = "dropped/";

    /// The fraction of units the strategy dropped at `slot`.
    pub fn dropped(slot: &str) -> String {
        format!("{DROPPED}{slot}")
    }

    /// Whether a metric is a slot's dropped fraction.
    pub fn is_dropped(name: &str) -> bool {
        name.starts_with(DROPPED)
    }

    /// A name of the trainer's own use of the machine: `system/<name>`.
    macro_rules! system {
        ($name:literal) => {
            concat!("system/", $name)
        };
    }

    /// The trainer process's CPU use, in % of one core.
    pub const CPU_PERCENT: &str = system!("cpu_percent");
    /// The trainer process's resident memory.
    pub const RSS_BYTES: &str = system!("rss_bytes");
    /// The rest only on CUDA, of the trainer's GPU: its utilisation,
    /// the memory the trainer holds on it, its memory in use by anyone, its
    /// temperature and power draw.
    pub const GPU_PERCENT: &str = system!("gpu_percent");
    pub const GPU_PROCESS_MEMORY_BYTES: &str = system!("gpu_process_memory_bytes");
    pub const GPU_MEMORY_BYTES: &str = system!("gpu_memory_bytes");
    pub const GPU_TEMPERATURE_C: &str = system!("gpu_temperature_c");
    pub const GPU_POWER_W: &str = system!("gpu_power_w");

    /// Whether a metric is one of the trainer's use of the machine.
    pub fn is_system(name: &str) -> bool {
        name.starts_with(system!(""))
    }

    /// The data a metric was measured on.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum Split {
        Train,
        Val,
    }

    impl Split {
        pub const ALL: [Split; 2] = [Split::Train, Split::Val];

        /// Its name in metrics.jsonl.
        pub const fn name(self) -> &'static str {
            match self {
                Split::Train => TRAIN,
                Split::Val => VAL,
            }
        }

        /// The split a metrics.jsonl line names, if one.
        pub fn of(name: &str) -> Option<Split> {
            Split::ALL.into_iter().find(|s| s.name() == name)
        }
    }

    /// One metric on one split: what the dashboard keys a run's series by,
    /// written `split/metric` (`val/acc`, `train/dropped/block2`).
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub struct SeriesKey {
        pub split: Split,
        pub metric: String,
    }

    impl SeriesKey {
        pub fn new(split: Split, metric: &str) -> SeriesKey {
            SeriesKey {
                split,
                metric: metric.to_string(),
            }
        }

        /// The validation accuracy's series, what comparisons rank by.
        pub fn val_acc() -> SeriesKey {
            SeriesKey::new(Split::Val, ACC)
        }
    }

    impl std::fmt::Display for SeriesKey {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}/{}", self.split.name(), self.metric)
        }
    }
}

/// One line of metrics.jsonl.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MetricLine {
    pub step: u64,
    pub epoch: u64,
    /// "train" or "val".
    pub split: String,
    pub metric: String,
    pub value: f64,
    /// Seconds since the Unix epoch.
    pub wall: f64,
    /// Drop rate in force.
    pub p: f64,
    pub plugin_version: String,
}

/// One line of events.jsonl.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EventLine {
    pub wall: f64,
    pub step: u64,
    pub kind: EventKind,
    pub message: String,
}

/// What an event line reports: the kinds the trainer writes and the dashboard
/// and compare read, named once (`name`, as in events.jsonl).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Started,
    Resumed,
    Paused,
    Stopped,
    Done,
    Error,
    /// The trainer ended without saying so (a signal, a panic); recorded by
    /// whoever collected it.
    Crashed,
    Diverged,
    Reload,
    ReloadRefused,
    Reverted,
    StrategyFailed,
    Rechecking,
    ConfigApplied,
    NeedsRestart,
    ConfigInvalid,
    /// A kind this version does not know (a newer trainer's), kept as written.
    Other(String),
}

impl EventKind {
    const KNOWN: [EventKind; 16] = [
        EventKind::Started,
        EventKind::Resumed,
        EventKind::Paused,
        EventKind::Stopped,
        EventKind::Done,
        EventKind::Error,
        EventKind::Crashed,
        EventKind::Diverged,
        EventKind::Reload,
        EventKind::ReloadRefused,
        EventKind::Reverted,
        EventKind::StrategyFailed,
        EventKind::Rechecking,
        EventKind::ConfigApplied,
        EventKind::NeedsRestart,
        EventKind::ConfigInvalid,
    ];

    pub fn name(&self) -> &str {
        match self {
            EventKind::Started => "started",
            EventKind::Resumed => "resumed",
            EventKind::Paused => "paused",
            EventKind::Stopped => "stopped",
            EventKind::Done => "done",
            EventKind::Error => "error",
            EventKind::Crashed => "crashed",
            EventKind::Diverged => "diverged",
            EventKind::Reload => "reload",
            EventKind::ReloadRefused => "reload_refused",
            EventKind::Reverted => "reverted",
            EventKind::StrategyFailed => "strategy_failed",
            EventKind::Rechecking => "rechecking",
            EventKind::ConfigApplied => "config_applied",
            EventKind::NeedsRestart => "needs_restart",
            EventKind::ConfigInvalid => "config_invalid",
            EventKind::Other(name) => name,
        }
    }

    pub fn from_name(name: &str) -> EventKind {
        Self::KNOWN
            .into_iter()
            .find(|k| k.name() == name)
            .unwrap_or_else(|| EventKind::Other(name.to_string()))
    }

    /// Something went wrong (shown in red).
    pub fn is_trouble(&self) -> bool {
        matches!(
            self,
            EventKind::Error
                | EventKind::Diverged
                | EventKind::ReloadRefused
                | EventKind::ConfigInvalid
        )
    }

    /// The outcome of a saved change of the experiment file.
    /// Whether it changed the configuration or the code a run trains with.
    pub fn changes_what_ran(&self) -> bool {
        matches!(
            self,
            EventKind::ConfigApplied | EventKind::Reload | EventKind::Reverted
        )
    }

    pub fn is_config(&self) -> bool {
        matches!(
            self,
            EventKind::ConfigApplied | EventKind::NeedsRestart | EventKind::ConfigInvalid
        )
    }
}

impl std::fmt::Display for EventKind {
    /// The name, padded to a width when one is asked for (`{:<14}`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl PartialEq<&str> for EventKind {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(EventKind::from_name(&String::deserialize(d)?))
    }
}

/// One line of snapshots.jsonl: a few channels of one sample at one slot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SnapshotLine {
    pub step: u64,
    pub slot: String,
    pub sample: usize,
    pub channels: Vec<usize>,
    pub height: usize,
    pub width: usize,
    /// `|x|` per channel, row-major, `channels.len() × height × width`.
    pub salience: Vec<f32>,
    /// The keep-mask (rescale included) at the same positions.
    pub mask: Vec<f32>,
    pub p: f64,
    /// Text: the token of each row (the rows are the sample's real tokens).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<String>,
}

impl SnapshotLine {
    /// Positions in one channel's map.
    pub fn plane(&self) -> usize {
        self.height * self.width
    }

    /// The keep-mask of channel `c` (an index into `channels`); empty past them.
    pub fn mask_of(&self, c: usize) -> &[f32] {
        let plane = self.plane();
        self.mask.get(c * plane..(c + 1) * plane).unwrap_or(&[])
    }

    pub fn salience_of(&self, c: usize) -> &[f32] {
        let plane = self.plane();
        self.salience.get(c * plane..(c + 1) * plane).unwrap_or(&[])
    }

    /// The share of `mask`'s positions the strategy dropped (a keep-mask of 0).
    pub fn dropped_fraction(mask: &[f32]) -> f64 {
        let dropped = mask.iter().filter(|v| **v == 0.0).count();
        dropped as f64 / mask.len().max(1) as f64
    }

    /// How much channel `c` shows: how many positions it dropped, then how
    /// much its salience varies (a dead channel, all zero, shows nothing).
    pub fn telling(&self, c: usize) -> (usize, f64) {
        let dropped = self.mask_of(c).iter().filter(|v| **v == 0.0).count();
        let sal = self.salience_of(c);
        let n = sal.len().max(1) as f64;
        let mean = sal.iter().map(|v| f64::from(*v)).sum::<f64>() / n;
        let var = sal
            .iter()
            .map(|v| (f64::from(*v) - mean).powi(2))
            .sum::<f64>()
            / n;
        (dropped, var)
    }

    /// The channel (an index into `channels`) that shows the most: see
    /// [`SnapshotLine::telling`]; the first among equals.
    pub fn most_telling_channel(&self) -> usize {
        (0..self.channels.len().max(1))
            .map(|c| (c, self.telling(c)))
            .fold((0, (0, f64::NEG_INFINITY)), |best, (c, t)| {
                if t.0 > best.1.0 || (t.0 == best.1.0 && t.1 > best.1.1) {
                    (c, t)
                } else {
                    best
                }
            })
            .0
    }
}

/// How an image run's model reads its input: pixels in [0, 1] less `mean`,
/// over `std`, per channel (as the trainer computed them from its training
/// split), and the name of each class its outputs score, in output order.
/// What a user of the exported weights needs to get the run's accuracy.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InputSpec {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub classes: Vec<String>,
}

/// What checkpoint.json records: the step the checkpoint was taken after.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckpointInfo {
    pub step: u64,
    pub epoch: u64,
    pub model: String,
    pub optimizer: String,
    pub best_val_acc: Option<f64>,
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `YYYYMMDD-HHMMSS` in UTC.
pub fn timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Gregorian date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Writes `bytes` to `path` through a new temporary file in the same directory
/// and a rename ([`super::files::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    super::files::write_atomic(path, bytes)
}

/// Writes a final status: atomically if it can, else in place (on a full disk
/// the rename's new file may not fit where the old one's blocks do).
pub fn write_status_final(dir: &RunDir, status: &Status) -> std::io::Result<()> {
    let mut finals = STATUS_WRITES.lock().unwrap_or_else(|e| e.into_inner());
    let path = dir.file(STATUS);
    finals.push(path.clone());
    let status = &stamped(status);
    write_json(&path, status).or_else(|_| {
        let text = serde_json::to_string_pretty(status).map_err(std::io::Error::other)?;
        let mut f = open_to_write(OpenOptions::new().write(true).truncate(true), &path)?;
        f.write_all(text.as_bytes())
    })
}

/// Marks a run failed with `message` when its trainer could not even open it:
/// the status says so (keeping its step), and so does the event log.
pub fn record_failure(dir: &RunDir, message: &str) {
    let mut status = dir
        .status()
        .unwrap_or_else(|| Status::new(std::process::id()));
    status.state = State::Failed;
    status.pid = std::process::id();
    status.message = message.to_string();
    status.updated = now();
    let _ = write_status_final(dir, &status);
    if let Ok(mut log) = JsonLog::open(&dir.file(EVENTS)) {
        let _ = log.append(&EventLine {
            wall: status.updated,
            step: status.step,
            kind: EventKind::Error,
            message: message.to_string(),
        });
    }
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    write_atomic(path, text.as_bytes())
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, RunError> {
    let text = read_whole(path)?;
    serde_json::from_str(&text).map_err(|source| RunError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// A whole text file of a run directory, at most [`WHOLE_FILE_MAX`] bytes.
pub fn read_whole(path: &Path) -> Result<String, RunError> {
    read_regular_text(path, WHOLE_FILE_MAX).map_err(|source| RunError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// An append-only JSON-lines log. Each record is one `write` of one whole line.
pub struct JsonLog {
    file: fs::File,
    pub path: PathBuf,
}

impl JsonLog {
    pub fn open(path: &Path) -> std::io::Result<JsonLog> {
        let file = open_to_write(OpenOptions::new().create(true).append(true), path)?;
        Ok(JsonLog {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn append<T: Serialize>(&mut self, record: &T) -> std::io::Result<()> {
        let mut line = serde_json::to_string(record).map_err(std::io::Error::other)?;
        line.push('\n');
        self.file.write_all(line.as_bytes())
    }

    pub fn append_all<T: Serialize>(&mut self, records: &[T]) -> std::io::Result<()> {
        let mut text = String::new();
        for r in records {
            text.push_str(&serde_json::to_string(r).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        self.file.write_all(text.as_bytes())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Every complete, parseable line of a JSON-lines file; a torn or foreign line is
/// skipped (a crash can leave the last line half-written).
pub fn read_lines<T: DeserializeOwned>(path: &Path) -> Vec<T> {
    let Ok(file) = open_regular(path) else {
        return Vec::new();
    };
    BufReader::new(file)
        .split(b'\n')
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_slice(&l).ok())
        .collect()
}

/// A run directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Creates `runs/<time>-<name>-<label>-s<seed>` (with a counter on a clash).
    pub fn create(runs: &Path, info: &RunInfo, experiment_toml: &str) -> std::io::Result<RunDir> {
        fs::create_dir_all(runs)?;
        // Named after when the run was made (`info.created`): the runs one
        // command makes together share it, and sort by strategy within it.
        let created = match info.created.as_str() {
            "" => timestamp(now() as u64),
            stamp => stamp.to_string(),
        };
        let base = format!(
            "{}-{}-{}-s{}",
            created,
            sanitize(&info.experiment),
            sanitize(&info.label),
            info.seed
        );
        let mut path = runs.join(&base);
        let mut n = 1;
        while let Err(e) = fs::create_dir(&path) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(e);
            }
            n += 1;
            path = runs.join(format!("{base}-{n}"));
        }
        // Owner-only whatever the umask: a GPU box is shared, and the directory
        // holds the control socket and the model.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))?;
        let dir = RunDir { path };
        write_atomic(&dir.file(EXPERIMENT), experiment_toml.as_bytes())?;
        write_json(&dir.file(RUN), info)?;
        Ok(dir)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn info(&self) -> Result<RunInfo, RunError> {
        read_json(&self.file(RUN))
    }

    /// Rewrites run.json (atomically), e.g. with the Slurm task that trains it.
    pub fn write_info(&self, info: &RunInfo) -> std::io::Result<()> {
        write_json(&self.file(RUN), info)
    }

    /// The run's resolved experiment, as stored when it was prepared.
    pub fn experiment(&self) -> Result<crate::experiment::ExperimentFile, RunError> {
        let path = self.file(EXPERIMENT);
        let text = read_whole(&path)?;
        crate::experiment::parse(&path, &text)
            .map_err(|mut errors| RunError::Experiment(Box::new(errors.swap_remove(0))))
    }

    pub fn status(&self) -> Option<Status> {
        read_json(&self.file(STATUS)).ok()
    }

    /// The image run's input, once its trainer has started (none for text
    /// runs, and for runs trained before input.json was written).
    pub fn input(&self) -> Option<InputSpec> {
        read_json(&self.file(INPUT)).ok()
    }

    pub fn write_input(&self, input: &InputSpec) -> std::io::Result<()> {
        write_json(&self.file(INPUT), input)
    }

    /// Whether the run's trainer is running: the run lock when the directory has
    /// one (a pid can be reused), else the pid in its status.
    pub fn trainer_alive(&self, status: &Status) -> bool {
        // Another host's pid means nothing here, and its lock may not be
        // visible over a network filesystem: its heartbeat says.
        if status.elsewhere() {
            return unheard_for(&self.path, status).as_secs_f64() < LOST_AFTER_SECS;
        }
        super::lock::held(&self.path).unwrap_or_else(|| pid_alive(status.pid))
    }

    /// The complete checkpoint, if the run has one that can be read.
    pub fn checkpoint(&self) -> Option<CheckpointInfo> {
        self.read_checkpoint().ok().flatten()
    }

    /// The run's checkpoint: `None` when it never saved one, an error saying
    /// what is wrong when it saved one that cannot be used.
    pub fn read_checkpoint(&self) -> Result<Option<CheckpointInfo>, String> {
        let path = self.file(CHECKPOINT);
        let dir = self.file(CHECKPOINT_DIR);
        let text = match read_regular(&path, WHOLE_FILE_MAX) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let saved = fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
                return if saved {
                    Err(format!(
                        "{CHECKPOINT} is missing but {CHECKPOINT_DIR}/ holds saved files"
                    ))
                } else {
                    Ok(None)
                };
            }
            Err(e) => return Err(format!("{CHECKPOINT} cannot be read: {e}")),
        };
        let info: CheckpointInfo = serde_json::from_slice(&text)
            .map_err(|e| format!("{CHECKPOINT} cannot be read: {e}"))?;
        for file in [&info.model, &info.optimizer] {
            let inside = Path::new(file).components().count() == 1;
            // Not through a link, and never a FIFO for the loader to wait on.
            let regular = fs::symlink_metadata(dir.join(file)).is_ok_and(|m| m.is_file());
            if !inside || !regular {
                return Err(format!(
                    "{CHECKPOINT} names {CHECKPOINT_DIR}/{file}, which is missing"
                ));
            }
        }
        Ok(Some(info))
    }

    /// A fresh start: the checkpoint and the metric and snapshot logs go (the
    /// event log keeps the run's history).
    pub fn discard_progress(&self) -> std::io::Result<()> {
        for name in [CHECKPOINT, METRICS, SNAPSHOTS] {
            match fs::remove_file(self.file(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        match fs::remove_dir_all(self.file(CHECKPOINT_DIR)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn metrics(&self) -> Vec<MetricLine> {
        read_lines(&self.file(METRICS))
    }

    pub fn events(&self) -> Vec<EventLine> {
        read_lines(&self.file(EVENTS))
    }

    pub fn snapshots(&self) -> Vec<SnapshotLine> {
        read_lines(&self.file(SNAPSHOTS))
    }

    /// Records how a trainer process ended when the trainer could not say so itself
    /// (a signal, a panic, an abort): a run it left training, paused or queued
    /// becomes failed, with the reason in its status and event log. Returns the
    /// reason when something was recorded. A run another trainer has taken over
    /// since (another pid in its status) is left alone.
    pub fn record_exit(
        &self,
        pid: u32,
        exit: std::process::ExitStatus,
    ) -> std::io::Result<Option<String>> {
        let Some(why) = exit_description(exit) else {
            return Ok(None);
        };
        let mut status = match self.status() {
            Some(s) if s.state.is_final() || (s.pid != pid && s.pid != 0) => return Ok(None),
            Some(s) => s,
            None => Status::new(pid),
        };
        status.state = State::Failed;
        status.updated = now();
        status.message = format!("{why} (see {TRAINER_LOG}; resume continues from the checkpoint)");
        write_json(&self.file(STATUS), &status)?;
        end_torn_line(&self.file(EVENTS))?;
        JsonLog::open(&self.file(EVENTS))?.append(&EventLine {
            wall: status.updated,
            step: status.step,
            kind: EventKind::Crashed,
            message: why.clone(),
        })?;
        Ok(Some(why))
    }

    /// Keeps only complete lines of a log whose `step` is at most `step` (on resume,
    /// what was logged after the checkpoint is logged again by the resumed run).
    /// Works on bytes: a line that is not UTF-8 or not JSON is dropped, never a
    /// reason to keep everything.
    pub fn truncate_log_after(&self, name: &str, step: u64) -> std::io::Result<()> {
        #[derive(Deserialize)]
        struct Step {
            step: Option<u64>,
        }
        let path = self.file(name);
        let file = match open_regular(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        // Line by line into the new file: a long log is never held whole.
        super::files::write_with(&path, |out| {
            for line in BufReader::new(file).split(b'\n') {
                let line = line?;
                let keep = serde_json::from_slice::<Step>(&line)
                    .ok()
                    .and_then(|s| s.step)
                    .is_some_and(|s| s <= step);
                if keep {
                    out.write_all(&line)?;
                    out.write_all(b"\n")?;
                }
            }
            Ok(())
        })
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether a process exists (signal 0 checks without sending anything).
pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    match nix::sys::signal::kill(pid, None) {
        Ok(()) => !is_zombie(pid.as_raw()),
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// A child that exited but was not reaped yet still answers signal 0.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// How a process ended, when it did not end well: "killed by signal 11 (SIGSEGV)"
/// or "exited with status 101".
pub fn exit_description(exit: std::process::ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = exit.signal() {
        let name = nix::sys::signal::Signal::try_from(sig)
            .map(|s| s.as_str())
            .unwrap_or("unknown signal");
        Some(format!("trainer killed by signal {sig} ({name})"))
    } else if exit.success() {
        None
    } else {
        Some(format!(
            "trainer exited with status {}",
            exit.code().unwrap_or(-1)
        ))
    }
}

/// Ends a log that a crash left torn with a newline, so the next record starts a
/// line of its own (the torn one stays unreadable, as before).
fn end_torn_line(path: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = open_to_write(OpenOptions::new().read(true).append(true), path) else {
        return Ok(());
    };
    if f.metadata()?.len() == 0 {
        return Ok(());
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    f.read_exact(&mut last)?;
    if last[0] != b'\n' {
        f.write_all(b"\n")?;
    }
    Ok(())
}

/// Run directories under `runs`, oldest first.
pub fn list_runs(runs: &Path) -> Vec<RunDir> {
    let Ok(entries) = fs::read_dir(runs) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join(RUN).is_file())
        .collect();
    dirs.sort();
    dirs.into_iter().map(RunDir::new).collect()
}

#[cfg(test)]
mod tests {

    /// A series key reads back from metrics.jsonl's split names only, writes
    /// as `split/metric`, and sorts training before validation.
    #[test]
    fn series_keys_are_split_and_metric() {
        use super::metric::{SeriesKey, Split};
        assert_eq!(Split::of("train"), Some(Split::Train));
        assert_eq!(Split::of("val"), Some(Split::Val));
        assert_eq!(Split::of("test"), None);
        let dropped = SeriesKey::new(Split::Train, &super::metric::dropped("layer3.0.bn1"));
        assert_eq!(dropped.to_string(), "train/dropped/layer3.0.bn1");
        assert_eq!(SeriesKey::val_acc().to_string(), "val/acc");
        assert!(SeriesKey::new(Split::Train, "z") < SeriesKey::new(Split::Val, "a"));
    }

    /// Once a run's trainer has written its final status, a step finishing on
    /// another thread before the process exits does not write over it.
    #[test]
    fn a_final_status_is_not_written_over_by_this_process() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path());
        let mut status = Status::new(std::process::id());
        status.state = State::Training;
        write_status(&run, &status).unwrap();
        status.state = State::Failed;
        write_status_final(&run, &status).unwrap();
        status.state = State::Training;
        write_status(&run, &status).unwrap();
        assert_eq!(run.status().unwrap().state, State::Failed);
    }
    use super::*;

    /// Issue 34, item 10: of three channels — dead (all zero), one drop,
    /// one drop with more varied salience — the last shows the most.
    #[test]
    fn the_most_telling_channel_drops_most_then_varies_most() {
        let s = SnapshotLine {
            step: 1,
            slot: "block2".into(),
            sample: 0,
            channels: vec![4, 9, 11],
            height: 1,
            width: 3,
            salience: vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.2, 0.0, 2.0, 0.5],
            mask: vec![1.0, 1.0, 1.0, 0.0, 1.5, 1.5, 1.5, 0.0, 1.5],
            p: 0.3,
            tokens: Vec::new(),
        };
        assert_eq!(s.telling(0), (0, 0.0));
        assert_eq!(s.most_telling_channel(), 2);
        assert_eq!(SnapshotLine::dropped_fraction(&s.mask), 2.0 / 9.0);
        assert_eq!(SnapshotLine::dropped_fraction(s.mask_of(1)), 1.0 / 3.0);
        assert!(s.mask_of(3).is_empty(), "past the channels");
        let dead = SnapshotLine {
            mask: vec![1.0; 9],
            salience: vec![0.0; 9],
            ..s
        };
        assert_eq!(dead.most_telling_channel(), 0, "the first among equals");
    }

    /// Every kind is written under its own name and read back as itself; a
    /// kind this version does not know is kept as written.
    #[test]
    fn event_kinds_round_trip_through_their_names() {
        let mut names = std::collections::BTreeSet::new();
        for kind in EventKind::KNOWN {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), kind);
            assert!(names.insert(kind.name().to_string()), "{kind} named twice");
        }
        let newer: EventKind = serde_json::from_str("\"migrated\"").unwrap();
        assert_eq!(newer, EventKind::Other("migrated".into()));
        assert_eq!(serde_json::to_string(&newer).unwrap(), "\"migrated\"");
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(0), "19700101-000000");
        assert_eq!(timestamp(951_782_400), "20000229-000000");
        assert_eq!(timestamp(1_795_775_345), "20261127-102905");
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_truncation_keeps_earlier_steps() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::new(tmp.path());
        let mut log = JsonLog::open(&dir.file(METRICS)).unwrap();
        for step in 1..=5 {
            log.append(&MetricLine {
                step,
                epoch: 0,
                split: "train".into(),
                metric: "loss".into(),
                value: 1.0 / step as f64,
                wall: 0.0,
                p: 0.0,
                plugin_version: "1.0.0".into(),
            })
            .unwrap();
        }
        drop(log);
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.file(METRICS))
            .unwrap();
        f.write_all(b"{\"step\": 6, \"epo").unwrap();
        assert_eq!(dir.metrics().len(), 5);
        dir.truncate_log_after(METRICS, 3).unwrap();
        let steps: Vec<u64> = dir.metrics().iter().map(|m| m.step).collect();
        assert_eq!(steps, [1, 2, 3]);
    }

    /// Issue 20: a run on another host is alive while its heartbeat is
    /// recent, lost after [`LOST_AFTER_SECS`] (its pid means nothing here);
    /// `beat` renews only this process's own run, and never a final one.
    /// Issue 32: "recent" is by this host's clock alone: a heartbeat that
    /// changes lives whatever its stamp says (a clock 150 s behind), one that
    /// stands still is lost however far in the future it claims to be.
    #[test]
    fn another_hosts_run_lives_by_its_heartbeat() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::new(tmp.path());
        let mut status = Status {
            state: State::Training,
            host: "node7".into(),
            heartbeat: now() - 150.0,
            ..Status::new(std::process::id())
        };
        assert!(status.elsewhere());
        assert!(dir.trainer_alive(&status), "behind, first seen");
        let long_ago = std::time::Instant::now()
            .checked_sub(std::time::Duration::from_secs_f64(LOST_AFTER_SECS + 1.0))
            .unwrap();
        let pretend_heard = |beat: f64| note_heartbeat(&dir.path, beat, long_ago);
        pretend_heard(status.heartbeat);
        assert!(
            !dir.trainer_alive(&status),
            "silent for longer than LOST_AFTER"
        );
        status.heartbeat += 15.0;
        assert!(
            dir.trainer_alive(&status),
            "it changed: alive, still 135 s behind"
        );
        status.heartbeat = now() + 1e6;
        assert!(dir.trainer_alive(&status), "a change");
        pretend_heard(status.heartbeat);
        assert!(
            !dir.trainer_alive(&status),
            "the future does not keep it alive"
        );
        let other = tempfile::tempdir().unwrap();
        let dead = Status {
            heartbeat: now() - CLOCK_SKEW_TOLERANCE_SECS - 1.0,
            ..status.clone()
        };
        assert!(
            !RunDir::new(other.path()).trainer_alive(&dead),
            "old at first sight"
        );
        write_json(&dir.file(STATUS), &status).unwrap();
        beat(&dir);
        let renewed = dir.status().unwrap();
        assert_eq!(renewed.host, hostname());
        assert!(renewed.silent_for() < 5.0);
        assert!(!renewed.elsewhere());
        for (state, pid) in [(State::Done, std::process::id()), (State::Training, 1)] {
            let old = Status {
                state,
                heartbeat: 1.0,
                ..Status::new(pid)
            };
            write_json(&dir.file(STATUS), &old).unwrap();
            beat(&dir);
            assert_eq!(dir.status().unwrap().heartbeat, 1.0, "{state:?} pid {pid}");
        }
    }
}
