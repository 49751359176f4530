//! What the researcher says about a run (tags and a note, in `notes.json`,
//! written by the dashboard only), and putting finished runs away: archived
//! under `runs/archive/` (out of the list, kept whole) or deleted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RunError;
use super::dir::{RunDir, write_json};
use super::lock::RunLock;

/// The file in a run directory; no trainer reads or writes it.
pub const NOTES: &str = "notes.json";

/// The most notes.json may hold: a larger file is refused unread (whoever
/// wrote it, the dashboard shows why instead). The caps below fit in it.
pub const NOTES_MAX_BYTES: u64 = 64 * 1024;
/// The most characters a note may have (it is one line under the table;
/// the dashboard's typed line stops there).
pub const NOTE_MAX_CHARS: usize = 200;
/// The most tags a run may have, and characters a tag may have.
pub const TAGS_MAX: usize = 32;
pub const TAG_MAX_CHARS: usize = 64;

/// Where archived runs go, under the runs directory. `list_runs` does not see
/// them: the folder holds run directories, it is not one.
pub const ARCHIVE: &str = "archive";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Notes {
    /// Short words to filter by, without spaces or commas.
    pub tags: Vec<String>,
    /// One line, free text.
    pub note: String,
}

impl Notes {
    /// A run's notes (empty when it has none, or they cannot be read).
    pub fn of(run: &RunDir) -> Notes {
        Notes::read(run).unwrap_or_default()
    }

    /// A run's notes (empty when it has none), or why they are not read: a
    /// file over [`NOTES_MAX_BYTES`] (not parsed), not a regular file, not
    /// JSON, or over the caps.
    pub fn read(run: &RunDir) -> Result<Notes, String> {
        let path = run.file(NOTES);
        let bytes = match super::files::read_regular(&path, NOTES_MAX_BYTES) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Notes::default()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(format!(
                    "{NOTES} is larger than {} KiB; not read",
                    NOTES_MAX_BYTES / 1024
                ));
            }
            Err(e) => return Err(super::files::why_not_read(&path, &e)),
            Ok(b) => b,
        };
        let notes: Notes =
            serde_json::from_slice(&bytes).map_err(|e| format!("{NOTES} is not valid: {e}"))?;
        notes
            .check()
            .map_err(|e| format!("{NOTES}: {e}; not used"))?;
        Ok(notes)
    }

    /// Within the caps: a note of one line of at most [`NOTE_MAX_CHARS`], at
    /// most [`TAGS_MAX`] tags of at most [`TAG_MAX_CHARS`] each.
    pub fn check(&self) -> Result<(), String> {
        let chars = self.note.chars().count();
        if chars > NOTE_MAX_CHARS {
            return Err(format!(
                "the note has {chars} characters, more than {NOTE_MAX_CHARS}"
            ));
        }
        if self.note.contains(['\n', '\r']) {
            return Err("the note is more than one line".into());
        }
        if self.tags.len() > TAGS_MAX {
            return Err(format!("{} tags, more than {TAGS_MAX}", self.tags.len()));
        }
        match self.tags.iter().find(|t| t.chars().count() > TAG_MAX_CHARS) {
            Some(t) => Err(format!(
                "the tag \"{}…\" is longer than {TAG_MAX_CHARS} characters",
                t.chars().take(20).collect::<String>()
            )),
            None => Ok(()),
        }
    }

    /// Saves them, if within the caps ([`Notes::check`]).
    pub fn save(&self, run: &RunDir) -> std::io::Result<()> {
        self.check()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        write_json(&run.file(NOTES), self)
    }

    /// Tags as typed: words split at commas and spaces, a leading `#` dropped,
    /// each kept once, in the order given.
    pub fn parse_tags(text: &str) -> Vec<String> {
        let mut tags: Vec<String> = Vec::new();
        for word in text.split([',', ' ']).map(|w| w.trim_start_matches('#')) {
            if !word.is_empty() && !tags.iter().any(|t| t == word) {
                tags.push(word.to_string());
            }
        }
        tags
    }
}

/// Moves a finished run to `runs/archive/<its name>`. Refused while a trainer
/// holds the run (its lock is taken for the move, so none can start meanwhile).
pub fn archive(run: &RunDir) -> Result<PathBuf, RunError> {
    let _lock = RunLock::acquire(&run.path)?;
    let name = run.path.file_name().unwrap_or_default();
    let archive = run.path.with_file_name(ARCHIVE);
    std::fs::create_dir_all(&archive).map_err(|source| io(&archive, source))?;
    let to = free_name(&archive.join(name));
    std::fs::rename(&run.path, &to).map_err(|source| io(&run.path, source))?;
    super::store::Store::tidy_after(&run.path);
    Ok(to)
}

/// Deletes a finished run's directory with everything in it. Refused while a
/// trainer holds the run.
pub fn delete(run: &RunDir) -> Result<(), RunError> {
    let lock = RunLock::acquire(&run.path)?;
    // The directory goes with its lock file; the lock is released after.
    std::fs::remove_dir_all(&run.path).map_err(|source| io(&run.path, source))?;
    drop(lock);
    super::store::Store::tidy_after(&run.path);
    Ok(())
}

/// `path`, or `path-2`, `path-3`… if taken (a run archived twice under one name).
fn free_name(path: &Path) -> PathBuf {
    let mut candidate = path.to_path_buf();
    let mut n = 1;
    while candidate.exists() {
        n += 1;
        candidate = PathBuf::from(format!("{}-{n}", path.display()));
    }
    candidate
}

fn io(path: &Path, source: std::io::Error) -> RunError {
    RunError::Read {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::dir::{RUN, list_runs};

    fn run_in(runs: &Path, name: &str) -> RunDir {
        let dir = RunDir::new(runs.join(name));
        std::fs::create_dir_all(&dir.path).unwrap();
        std::fs::write(dir.file(RUN), "{}").unwrap();
        dir
    }

    #[test]
    fn tags_are_words_kept_once() {
        assert_eq!(
            Notes::parse_tags("#baseline, wide  baseline,b5"),
            ["baseline", "wide", "b5"]
        );
        assert!(Notes::parse_tags(" , ").is_empty());
    }

    #[test]
    fn notes_round_trip_and_a_damaged_file_reads_as_none() {
        let tmp = tempfile::tempdir().unwrap();
        let run = run_in(tmp.path(), "a");
        assert_eq!(Notes::of(&run), Notes::default());
        let notes = Notes {
            tags: vec!["baseline".into()],
            note: "lr too high?".into(),
        };
        notes.save(&run).unwrap();
        assert_eq!(Notes::of(&run), notes);
        std::fs::write(run.file(NOTES), "{not json").unwrap();
        assert_eq!(Notes::of(&run), Notes::default());
    }

    /// Issue 32, case 14: the caps hold on write and on read.
    #[test]
    fn notes_over_the_caps_are_refused_on_write_and_on_read() {
        let tmp = tempfile::tempdir().unwrap();
        let run = run_in(tmp.path(), "a");
        let long = Notes {
            note: "é".repeat(NOTE_MAX_CHARS + 1),
            ..Notes::default()
        };
        let e = long.save(&run).unwrap_err().to_string();
        assert!(e.contains("more than 200"), "{e}");
        assert!(!run.file(NOTES).exists(), "nothing written");
        let two_lines = Notes {
            note: "a\nb".into(),
            ..Notes::default()
        };
        assert!(two_lines.save(&run).is_err());
        let wide_tag = Notes {
            tags: vec!["t".repeat(TAG_MAX_CHARS + 1)],
            ..Notes::default()
        };
        assert!(wide_tag.save(&run).is_err());
        write_json(&run.file(NOTES), &long).unwrap();
        let e = Notes::read(&run).unwrap_err();
        assert!(
            e.starts_with("notes.json: the note has 201 characters"),
            "{e}"
        );
        assert_eq!(Notes::of(&run), Notes::default());
        let at_cap = Notes {
            note: "é".repeat(NOTE_MAX_CHARS),
            tags: (0..TAGS_MAX)
                .map(|i| "t".repeat(TAG_MAX_CHARS - 3) + &i.to_string())
                .collect(),
        };
        at_cap.save(&run).unwrap();
        assert_eq!(Notes::read(&run), Ok(at_cap));
        let size = std::fs::metadata(run.file(NOTES)).unwrap().len();
        assert!(
            size < NOTES_MAX_BYTES / 4,
            "the caps fit the file cap: {size}"
        );
    }

    #[test]
    fn archived_runs_leave_the_list_whole_and_deleted_ones_are_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let runs = tmp.path();
        let (a, b) = (run_in(runs, "a"), run_in(runs, "b"));
        std::fs::write(a.file("metrics.jsonl"), "{}\n").unwrap();
        let to = archive(&a).unwrap();
        assert_eq!(to, runs.join(ARCHIVE).join("a"));
        assert!(to.join("metrics.jsonl").is_file(), "kept whole");
        // Archived a second time under the same name: kept beside the first.
        let a2 = run_in(runs, "a");
        assert_eq!(archive(&a2).unwrap(), runs.join(ARCHIVE).join("a-2"));
        let listed: Vec<PathBuf> = list_runs(runs).into_iter().map(|r| r.path).collect();
        assert_eq!(listed, std::slice::from_ref(&b.path));
        delete(&b).unwrap();
        assert!(!b.path.exists());
        assert!(list_runs(runs).is_empty());
    }

    #[test]
    fn a_run_whose_trainer_holds_it_is_neither_archived_nor_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let run = run_in(tmp.path(), "busy");
        let _held = RunLock::acquire(&run.path).unwrap();
        // The lock is per open file description: a second acquire in this
        // process is refused as another process's would be.
        let err = archive(&run).unwrap_err().to_string();
        assert!(err.contains("in use"), "{err}");
        assert!(delete(&run).is_err());
        assert!(run.file(RUN).is_file(), "nothing moved or removed");
    }
}
