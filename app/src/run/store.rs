//! The libraries runs used, by content, beside the runs (`runs/.store/<sha256>/`):
//! one copy of each strategy library whatever number of runs used it, with its
//! crate's sources when it was built from one, so that the code behind a run
//! stays available after its crate is edited or rebuilt. Archived runs still
//! refer to theirs; what no run refers to any more goes when runs are deleted
//! or archived.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dir::{self, RunDir};
use super::files;
use super::notes::ARCHIVE;
use super::provenance::{self, Provenance, SourcesRecord};
use crate::plugins::Library;

/// The store's directory under the runs directory.
pub const STORE: &str = ".store";
/// What an entry holds besides the library file.
const ENTRY: &str = "library.json";
/// A kept crate's files, under the entry.
const SOURCES: &str = "src";

/// One library in the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub name: String,
    pub version: String,
    pub interface: String,
    /// The library's file name in the entry (as it was found).
    pub file: String,
    pub sha256: String,
    pub sources: Option<SourcesRecord>,
}

pub struct Store {
    pub dir: PathBuf,
}

/// Why a recorded library cannot be replayed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StoreError {
    #[error("{name} ({sha}) is not in the store {store}")]
    Missing {
        name: String,
        sha: String,
        store: PathBuf,
    },
    #[error("{path} was changed: its SHA-256 is {found}, the run used {sha}")]
    Changed {
        path: PathBuf,
        sha: String,
        found: String,
    },
}

impl Store {
    /// The store of the runs directory holding `run` (an archived run's too).
    pub fn of_run(run: &Path) -> Store {
        Store::in_runs(runs_root(run))
    }

    /// After `run` was archived or deleted: removes what no run refers to
    /// any more. A failure leaves the store as it was, for the next time.
    pub fn tidy_after(run: &Path) {
        let _ = Store::of_run(run).collect(runs_root(run));
    }

    /// The store of the runs directory `runs`.
    pub fn in_runs(runs: &Path) -> Store {
        Store {
            dir: runs.join(STORE),
        }
    }

    fn entry(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    /// Keeps `library` (the very bytes loaded, and its crate's sources), unless
    /// the store has it already.
    pub fn keep(&self, library: &Library) -> std::io::Result<()> {
        let entry = self.entry(&library.sha256);
        if entry.join(ENTRY).is_file() {
            return Ok(());
        }
        files::own_dir(&self.dir)?;
        let bytes = library.loaded_bytes()?;
        if provenance::sha256_hex(&bytes) != library.sha256 {
            return Err(std::io::Error::other("the loaded copy changed"));
        }
        let building =
            nix::unistd::mkdtemp(&self.dir.join(".new-XXXXXX")).map_err(std::io::Error::from)?;
        let done =
            fill(&building, library, &bytes).and_then(|()| std::fs::rename(&building, &entry));
        if done.is_err() {
            let _ = std::fs::remove_dir_all(&building);
        }
        match done {
            // Another trainer stored the same library meanwhile.
            Err(_) if entry.join(ENTRY).is_file() => Ok(()),
            done => done,
        }
    }

    /// The stored file of the library `sha256` (named `name` in messages),
    /// checked to be those very bytes.
    pub fn library(&self, name: &str, sha256: &str) -> Result<PathBuf, StoreError> {
        let missing = || StoreError::Missing {
            name: name.into(),
            sha: provenance::short(sha256).into(),
            store: self.dir.clone(),
        };
        let stored: Stored =
            dir::read_json(&self.entry(sha256).join(ENTRY)).map_err(|_| missing())?;
        let path = self.entry(sha256).join(&stored.file);
        let bytes = std::fs::read(&path).map_err(|_| missing())?;
        let found = provenance::sha256_hex(&bytes);
        if found != sha256 {
            return Err(StoreError::Changed {
                path,
                sha: sha256.into(),
                found,
            });
        }
        Ok(path)
    }

    /// Removes the libraries no run under `runs` (archived ones included)
    /// refers to; returns their hashes.
    pub fn collect(&self, runs: &Path) -> std::io::Result<Vec<String>> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(Vec::new());
        };
        let used = used_by(runs);
        let mut removed = Vec::new();
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            // `.new-…`: an entry being written, not yet any run's.
            if name.starts_with('.') || used.contains(&name) {
                continue;
            }
            std::fs::remove_dir_all(self.entry(&name))?;
            removed.push(name);
        }
        Ok(removed)
    }
}

/// The runs directory `run` is (or was) in: an archived run's is the one
/// above `archive/`.
fn runs_root(run: &Path) -> &Path {
    let parent = run.parent().unwrap_or(Path::new("."));
    match parent.file_name() {
        Some(name) if name == ARCHIVE => parent.parent().unwrap_or(parent),
        _ => parent,
    }
}

/// The hashes of the libraries the runs under `runs` and `runs/archive` used.
fn used_by(runs: &Path) -> std::collections::BTreeSet<String> {
    let all = dir::list_runs(runs)
        .into_iter()
        .chain(dir::list_runs(&runs.join(ARCHIVE)));
    all.flat_map(|run: RunDir| Provenance::of(&run).libraries)
        .map(|l| l.sha256)
        .collect()
}

/// Writes the entry of `library` (its `bytes`, its crate's files) into `at`.
fn fill(at: &Path, library: &Library, bytes: &[u8]) -> std::io::Result<()> {
    let stored = stored(library);
    files::create_new(&at.join(&stored.file), 0o755)?.write_all(bytes)?;
    if let Some(sources) = library.built_from.as_deref() {
        for (rel, bytes) in &sources.files {
            let to = at.join(SOURCES).join(rel);
            std::fs::create_dir_all(to.parent().unwrap_or(at))?;
            files::create_new(&to, 0o644)?.write_all(bytes)?;
        }
    }
    dir::write_json(&at.join(ENTRY), &stored)
}

fn stored(library: &Library) -> Stored {
    let file = library
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "library.so".into());
    Stored {
        name: library.info.name.clone(),
        version: library.info.version.clone(),
        interface: library.interface.clone(),
        file,
        sha256: library.sha256.clone(),
        sources: library.built_from.as_deref().map(SourcesRecord::of),
    }
}
