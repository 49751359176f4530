//! What ran, in every run directory (`provenance.json`): each start of a
//! trainer (the binary's checkout, version, backend, device, threads, host)
//! and each strategy library the run used, identified by the SHA-256 of the
//! bytes loaded, with the step it took effect. Written at start and at every
//! change, whole (a new file renamed over), so it is complete at any moment.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::dir::{self, RunDir};
use crate::experiment::{ExperimentFile, changes};

/// The file in a run directory.
pub const PROVENANCE: &str = "provenance.json";

/// The checkout this binary was built from (`git describe --always --dirty`,
/// embedded at build time).
pub const GIT_DESCRIBE: &str = env!("PROBDROP_GIT_DESCRIBE");
/// Its commit.
pub const GIT_COMMIT: &str = env!("PROBDROP_GIT_COMMIT");
/// `git diff HEAD` of that checkout (empty when clean; at most 1 MiB).
pub const GIT_DIFF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/host.diff"));

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub starts: Vec<Start>,
    pub libraries: Vec<LibraryUse>,
    /// Every key a live change set, in order, with its step and both values:
    /// `experiment.toml` is the configuration in force now; with these undone
    /// (latest first) it is the one the run started with.
    #[serde(default)]
    pub config_changes: Vec<ConfigChange>,
    /// The data as the run first started on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<super::data_files::DataRecord>,
}

/// One key a saved change set while the run trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigChange {
    /// In force for the steps after this one.
    pub after_step: u64,
    /// Dotted, as in `experiment::changes::CHANGES`: `strategy.params.block_size`.
    pub key: String,
    /// `None` where the key was not set (or is no longer).
    pub from: Option<toml::Value>,
    pub to: Option<toml::Value>,
}

impl ConfigChange {
    /// `strategy.params.block_size 3→5`: the key and both values.
    pub fn describe(&self) -> String {
        let (from, to) = (value_text(self.from.as_ref()), value_text(self.to.as_ref()));
        format!("{} {from}→{to}", self.key)
    }
}

/// One trainer process taking the run up after step `after_step` (0: from
/// the beginning; else its checkpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Start {
    pub after_step: u64,
    pub wall: f64,
    pub describe: String,
    pub commit: String,
    pub version: String,
    pub backend: String,
    pub device: String,
    pub threads: usize,
    pub host: String,
    #[serde(default)]
    pub burn: String,
    /// The GPU's or the CPU's model.
    #[serde(default)]
    pub device_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libtorch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda: Option<String>,
    /// The file in the run directory holding the checkout's diff, when it
    /// had uncommitted changes (files not yet added to git are not in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl Start {
    /// This binary, taking the run up after `after_step` on `backend`/`device`.
    pub fn here(after_step: u64, backend: &str, device: &str) -> Start {
        let facts = crate::train::device::facts(device);
        Start {
            after_step,
            wall: dir::now(),
            describe: GIT_DESCRIBE.into(),
            commit: GIT_COMMIT.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            backend: backend.into(),
            device: device.into(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            host: dir::hostname(),
            burn: env!("PROBDROP_BURN_VERSION").into(),
            device_name: facts.name,
            libtorch: facts.libtorch,
            cuda: facts.cuda,
            diff: None,
        }
    }
}

/// A strategy library in use for the steps after `after_step`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LibraryUse {
    pub after_step: u64,
    pub name: String,
    pub version: String,
    pub interface: String,
    pub path: PathBuf,
    pub sha256: String,
    /// The plugin crate it was built from, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<SourcesRecord>,
}

/// The crate a library was built from, as it was just after the build.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourcesRecord {
    pub dir: PathBuf,
    /// Over every file's path, length and bytes (`plugins::sources`).
    pub sha256: String,
    /// The commit, " (dirty)" with uncommitted changes; None outside git.
    pub git: Option<String>,
    /// Whether the files are in the run store (not when over its limit).
    pub kept: bool,
}

impl SourcesRecord {
    pub fn of(sources: &crate::plugins::sources::CrateSources) -> SourcesRecord {
        SourcesRecord {
            dir: sources.dir.clone(),
            sha256: sources.sha256.clone(),
            git: sources.git.clone(),
            kept: !sources.files.is_empty(),
        }
    }
}

impl Provenance {
    /// The run's record so far (empty for a run that has none yet).
    pub fn of(run: &RunDir) -> Provenance {
        dir::read_json(&run.file(PROVENANCE)).unwrap_or_default()
    }

    /// Whether the run's configuration or its strategy's code changed while
    /// it trained (then its numbers are not those of one configuration).
    pub fn changed_mid_run(&self) -> bool {
        !self.config_changes.is_empty() || self.libraries.len() > 1
    }

    /// The configuration in force for the steps after `step`, from `now`
    /// (the run directory's `experiment.toml`, in force at the end): the
    /// changes made after it undone, latest first.
    pub fn config_after(&self, now: &ExperimentFile, step: u64) -> ExperimentFile {
        self.undoing(now, |c| c.after_step > step)
    }

    /// The configuration the run started with: every change undone.
    pub fn starting_config(&self, now: &ExperimentFile) -> ExperimentFile {
        self.undoing(now, |_| true)
    }

    fn undoing(
        &self,
        now: &ExperimentFile,
        undo: impl Fn(&ConfigChange) -> bool,
    ) -> ExperimentFile {
        let undone: Vec<(&str, Option<&toml::Value>)> = self
            .config_changes
            .iter()
            .rev()
            .filter(|c| undo(c))
            .map(|c| (c.key.as_str(), c.from.as_ref()))
            .collect();
        changes::with_values(now, &undone)
    }

    /// Adds `start`, with the checkout's diff beside the record when there is
    /// one (`host.diff`, `host-2.diff` for a second start with another diff).
    pub fn add_start(&mut self, run: &RunDir, mut start: Start) -> std::io::Result<()> {
        if !GIT_DIFF.is_empty() {
            let same = self
                .starts
                .iter()
                .filter_map(|s| s.diff.as_ref())
                .find(|f| std::fs::read(run.file(f)).is_ok_and(|d| d == GIT_DIFF));
            let name = match same {
                Some(f) => f.clone(),
                None => match self.starts.iter().filter(|s| s.diff.is_some()).count() {
                    0 => "host.diff".to_string(),
                    n => format!("host-{}.diff", n + 1),
                },
            };
            if same.is_none() {
                dir::write_atomic(&run.file(&name), GIT_DIFF)?;
            }
            start.diff = Some(name);
        }
        self.starts.push(start);
        Ok(())
    }

    /// Every change the run went through, in step order, on one line:
    /// `strategy.params.block_size 3→5 @ step 190; library probe 1.0.0
    /// (3f2a9c41)→1.0.0 (9c41d2e0) @ step 250`; empty when none. The one
    /// wording the exports share, beside the starting values they carry.
    pub fn describe_changes(&self) -> String {
        let keys = self
            .config_changes
            .iter()
            .map(|c| (c.after_step, c.describe()));
        // The first library is the one the run started with, not a change.
        let swaps = self.libraries.windows(2).map(|w| {
            let (from, to) = (&w[0], &w[1]);
            let renamed = if to.name == from.name {
                String::new()
            } else {
                format!("{} ", to.name)
            };
            let (was, is) = (code_text(from), code_text(to));
            (
                to.after_step,
                format!("library {} {was}→{renamed}{is}", from.name),
            )
        });
        let mut all: Vec<(u64, String)> = keys.chain(swaps).collect();
        all.sort_by_key(|(step, _)| *step);
        let described: Vec<String> = all
            .into_iter()
            .map(|(step, what)| format!("{what} @ step {step}"))
            .collect();
        described.join("; ")
    }

    /// The library in use now, if any.
    pub fn current_library(&self) -> Option<&LibraryUse> {
        self.libraries.last()
    }

    /// Records `library` as in use from now on, unless it is the very code in
    /// use.
    pub fn use_library(&mut self, library: LibraryUse) {
        if self.current_library().map(|l| &l.sha256) != Some(&library.sha256) {
            self.libraries.push(library);
        }
    }

    /// Records `changes` in the run's record.
    pub fn record_changes(run: &RunDir, changes: Vec<ConfigChange>) -> std::io::Result<()> {
        let mut p = Provenance::of(run);
        p.config_changes.extend(changes);
        p.write(run)
    }

    /// Records `library` (in use after `after_step`) in the run's record.
    pub fn record_library(run: &RunDir, library: LibraryUse) -> std::io::Result<()> {
        let mut p = Provenance::of(run);
        p.use_library(library);
        p.write(run)
    }

    pub fn write(&self, run: &RunDir) -> std::io::Result<()> {
        dir::write_json(&run.file(PROVENANCE), self)
    }
}

/// A recorded value as the config panel writes it: strings without quotes,
/// "-" for a key that was not set.
fn value_text(v: Option<&toml::Value>) -> String {
    match v {
        None => "-".into(),
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `1.0.0 (3f2a9c41)`: a library's version and, since a rebuild can keep
/// the version, its code.
fn code_text(l: &LibraryUse) -> String {
    format!("{} ({})", l.version, short(&l.sha256))
}

/// "3f2a9c41": enough of a hash to tell two builds apart in a message.
pub fn short(sha256: &str) -> &str {
    sha256.get(..8).unwrap_or(sha256)
}

/// SHA-256 of `bytes` in lowercase hex, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn library(after_step: u64, sha256: &str) -> LibraryUse {
        LibraryUse {
            after_step,
            name: "probe".into(),
            version: "1.0.0".into(),
            interface: "1.4.0".into(),
            path: "libprobe.so".into(),
            sha256: sha256.into(),
            sources: None,
        }
    }

    #[test]
    fn a_library_is_recorded_once_per_code_and_the_record_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path());
        let mut p = Provenance::of(&run);
        assert_eq!(p, Provenance::default());
        p.starts.push(Start::here(0, "flex", "cpu"));
        p.use_library(library(0, "aa"));
        p.use_library(library(7, "aa"));
        p.use_library(library(9, "bb"));
        assert_eq!(p.libraries.len(), 2, "the same code twice is one use");
        assert_eq!(p.current_library().unwrap().after_step, 9);
        p.write(&run).unwrap();
        assert_eq!(Provenance::of(&run), p);
        assert!(!p.starts[0].commit.is_empty() && !p.starts[0].describe.is_empty());
        assert_eq!(short("3f2a9c41deadbeef"), "3f2a9c41");
        // sha256sum of "abc".
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_configuration_at_any_step_is_the_end_one_with_later_changes_undone() {
        let text = "name = \"t\"\nseeds = [1]\n[data]\nformat = \"idx\"\npath = \"d\"\n\
                    [model]\nkind = \"small-cnn\"\n[train]\nepochs = 1\nbatch_size = 8\nlog_every = 10\n\
                    [[strategy]]\nplugin = \"none\"\n";
        let source = std::path::Path::new("t.toml");
        let catalog = crate::experiment::Catalog::default();
        let exp = crate::experiment::validate(source, text, &catalog, &crate::train::ThisMachine)
            .unwrap();
        let mut now = exp.resolved(&exp.runs()[0]);
        now.train.log_every = 3;
        let change = |after_step, from, to| ConfigChange {
            after_step,
            key: "train.log_every".into(),
            from: Some(toml::Value::Integer(from)),
            to: Some(toml::Value::Integer(to)),
        };
        let p = Provenance {
            config_changes: vec![change(5, 10, 7), change(9, 7, 3)],
            ..Provenance::default()
        };
        let at = |step| p.config_after(&now, step).train.log_every;
        assert_eq!(
            [at(0), at(4), at(5), at(8), at(9), at(20)],
            [10, 10, 7, 7, 3, 3]
        );
        assert_eq!(p.starting_config(&now).train.log_every, 10);
        assert_eq!(Provenance::default().starting_config(&now), now);
    }

    #[test]
    fn the_changes_are_described_in_step_order_with_library_swaps_by_their_code() {
        assert_eq!(Provenance::default().describe_changes(), "");
        let p = Provenance {
            libraries: vec![library(0, "3f2a9c41aaaa"), library(250, "9c41d2e0bbbb")],
            config_changes: vec![
                ConfigChange {
                    after_step: 190,
                    key: "strategy.params.block_size".into(),
                    from: Some(toml::Value::Integer(3)),
                    to: Some(toml::Value::Integer(5)),
                },
                ConfigChange {
                    after_step: 300,
                    key: "strategy.schedule.kind".into(),
                    from: None,
                    to: Some(toml::Value::String("linear".into())),
                },
            ],
            ..Provenance::default()
        };
        assert_eq!(
            p.describe_changes(),
            "strategy.params.block_size 3→5 @ step 190; \
             library probe 1.0.0 (3f2a9c41)→1.0.0 (9c41d2e0) @ step 250; \
             strategy.schedule.kind -→linear @ step 300"
        );
    }
}
