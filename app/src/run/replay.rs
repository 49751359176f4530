//! A run that replays another (`reproduce`): `replay.json` in its directory
//! holds the original's timeline, which the trainer follows instead of the
//! experiment file and the plugins directory: each configuration in force and
//! each strategy library (from the run store, by hash) at the step it took
//! effect, and where to stop.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::dir::{self, RunDir};

/// The file in the replaying run's directory.
pub const REPLAY: &str = "replay.json";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Replay {
    /// The run replayed.
    pub of: PathBuf,
    /// Stop after this step (`reproduce --steps`); the schedules still count
    /// the original's steps.
    pub stop_after: Option<u64>,
    /// Each live change of the original: the whole configuration in force
    /// after `after_step`, as TOML (applied as a saved file would be).
    pub configs: Vec<ConfigAt>,
    /// Each library the original used, in order.
    pub libraries: Vec<LibraryAt>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigAt {
    pub after_step: u64,
    pub toml: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LibraryAt {
    pub after_step: u64,
    pub name: String,
    pub sha256: String,
    /// The stored file.
    pub path: PathBuf,
}

impl Replay {
    /// The replay `run` follows, if it is one.
    pub fn of_run(run: &RunDir) -> Option<Replay> {
        dir::read_json(&run.file(REPLAY)).ok()
    }

    pub fn write(&self, run: &RunDir) -> std::io::Result<()> {
        dir::write_json(&run.file(REPLAY), self)
    }

    /// The library in use after `step` (a run taken up from a checkpoint
    /// starts with it).
    pub fn library_after(&self, step: u64) -> Option<&LibraryAt> {
        self.libraries.iter().rfind(|l| l.after_step <= step)
    }

    /// The libraries that take over after exactly `step`.
    pub fn libraries_due(&self, step: u64) -> impl Iterator<Item = &LibraryAt> {
        self.libraries
            .iter()
            .filter(move |l| l.after_step == step && step > 0)
    }

    /// The configurations applied after exactly `step`.
    pub fn configs_due(&self, step: u64) -> impl Iterator<Item = &ConfigAt> {
        self.configs.iter().filter(move |c| c.after_step == step)
    }
}
