//! One run directory, one trainer: the trainer holds a write lock on
//! `trainer.lock` for its whole life, and liveness is that lock, not a pid
//! (a pid is reused once its process is gone).
//!
//! Open-file-description locks (`F_OFD_SETLK`): released by the kernel when the
//! process dies however it dies, held per open file rather than per process, and
//! testable with `F_OFD_GETLK` without taking them, so a watcher that asks never
//! stands in a starting trainer's way.
//!
//! A lock on a file holds only while the file stays at its name: deleted (or
//! replaced), a second trainer would make a new one and lock that. So the
//! trainer also holds a `flock` on the run directory itself, which no file
//! operation inside it can take away, and puts a deleted or replaced lock file
//! back within [`HEAL_EVERY`] so that the liveness test keeps working.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::fcntl::{FcntlArg, Flock, FlockArg, fcntl};
use nix::libc;

use super::RunError;

/// The lock file's name in a run directory.
pub const LOCK: &str = "trainer.lock";

/// How often a trainer checks that its lock file is still in place.
pub const HEAL_EVERY: Duration = Duration::from_millis(250);

/// Held by the trainer of a run until dropped (or the process ends).
pub struct RunLock {
    /// The directory's own lock; `None` where the filesystem has none
    /// (some network filesystems refuse `flock` on a directory).
    _dir: Option<Flock<File>>,
    file: Arc<Mutex<Option<File>>>,
    closing: Arc<AtomicBool>,
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunLock")
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        // Closed now, not when the healing thread next wakes.
        self.file.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// A lock over the whole file.
fn whole_file(kind: libc::c_short) -> libc::flock {
    libc::flock {
        l_type: kind,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// The lock file, never through a link, and never a FIFO (an open that
/// waited for a writer would freeze whoever asks, the dashboard included).
fn open(dir: &Path, write: bool) -> std::io::Result<File> {
    let path = dir.join(LOCK);
    if !write {
        return super::files::open_regular(&path);
    }
    super::files::open_to_write(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600),
        &path,
    )
}

/// Who holds the lock, as the holder wrote it: "pid 123 on host gpu1".
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    // Its holder writes one short line; more is not ours to show.
    let _ = file.take(4096).read_to_string(&mut text);
    let text = text.trim();
    if text.is_empty() {
        "another trainer".to_string()
    } else {
        text.to_string()
    }
}

impl RunLock {
    /// Takes the run's lock, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock, RunError> {
        let failed = |doing, source| RunError::Lock {
            dir: dir.to_path_buf(),
            doing,
            source,
        };
        let in_use = || RunError::InUse {
            dir: dir.to_path_buf(),
            holder: open(dir, false).map_or("another trainer".into(), |mut f| holder(&mut f)),
        };
        let dir_lock = lock_directory(dir).map_err(|e| match e {
            nix::errno::Errno::EWOULDBLOCK => in_use(),
            other => failed("cannot lock the directory of", other.into()),
        })?;
        let file = lock_file(dir).map_err(|e| match e {
            LockFailure::Held => in_use(),
            LockFailure::Io(doing, e) => failed(doing, e),
        })?;
        let lock = RunLock {
            _dir: dir_lock,
            file: Arc::new(Mutex::new(Some(file))),
            closing: Arc::new(AtomicBool::new(false)),
        };
        let (held, closing, dir) = (lock.file.clone(), lock.closing.clone(), dir.to_path_buf());
        let _ = std::thread::Builder::new()
            .name("run-lock".into())
            .spawn(move || heal(&dir, &held, &closing));
        Ok(lock)
    }
}

/// The directory's `flock`: `None` where the filesystem cannot lock a
/// directory (the file lock still guards), an error when another holds it.
fn lock_directory(dir: &Path) -> Result<Option<Flock<File>>, nix::errno::Errno> {
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    match Flock::lock(handle, FlockArg::LockExclusiveNonblock) {
        Ok(held) => Ok(Some(held)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(nix::errno::Errno::EWOULDBLOCK),
        Err(_) => Ok(None),
    }
}

enum LockFailure {
    Held,
    Io(&'static str, std::io::Error),
}

/// Opens (creating) and locks `trainer.lock`, and writes this trainer in it.
fn lock_file(dir: &Path) -> Result<File, LockFailure> {
    let mut file = open(dir, true).map_err(|e| LockFailure::Io("cannot open", e))?;
    let lock = whole_file(libc::F_WRLCK as libc::c_short);
    if let Err(e) = fcntl(&file, FcntlArg::F_OFD_SETLK(&lock)) {
        return Err(match e {
            nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES => LockFailure::Held,
            other => LockFailure::Io("cannot lock", other.into()),
        });
    }
    let me = format!(
        "pid {} on host {}\n",
        std::process::id(),
        super::dir::hostname()
    );
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(me.as_bytes()))
        .map_err(|e| LockFailure::Io("writing", e))?;
    Ok(file)
}

/// Whether `held` is still the file at `trainer.lock`.
fn in_place(dir: &Path, held: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(there), Ok(mine)) = (std::fs::symlink_metadata(dir.join(LOCK)), held.metadata()) else {
        return false;
    };
    there.dev() == mine.dev() && there.ino() == mine.ino()
}

/// Puts the lock file back whenever it is deleted or replaced, until closing.
fn heal(dir: &Path, held: &Mutex<Option<File>>, closing: &AtomicBool) {
    while !closing.load(Ordering::SeqCst) {
        std::thread::sleep(HEAL_EVERY);
        let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
        let Some(file) = held.as_ref() else { return };
        if in_place(dir, file) {
            continue;
        }
        // What now stands at the name is not ours (we hold the directory):
        // it goes, and a new lock file takes its place.
        let _ = std::fs::remove_file(dir.join(LOCK));
        if let Ok(new) = lock_file(dir) {
            *held = Some(new);
        }
    }
}

/// Whether a trainer holds the run's lock now: `None` when the directory has no
/// lock file (made by an older version, or no trainer ever started).
pub fn held(dir: &Path) -> Option<bool> {
    let file = open(dir, false).ok()?;
    let mut probe = whole_file(libc::F_WRLCK as libc::c_short);
    match fcntl(&file, FcntlArg::F_OFD_GETLK(&mut probe)) {
        Ok(_) => Some(probe.l_type != libc::F_UNLCK as libc::c_short),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holder_and_freed_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(held(tmp.path()), None);
        let first = RunLock::acquire(tmp.path()).unwrap();
        assert_eq!(held(tmp.path()), Some(true));
        let refused = RunLock::acquire(tmp.path()).unwrap_err().to_string();
        assert!(
            refused.contains(&format!("pid {}", std::process::id())),
            "{refused}"
        );
        drop(first);
        assert_eq!(held(tmp.path()), Some(false));
        RunLock::acquire(tmp.path()).unwrap();
    }

    #[test]
    fn a_deleted_lock_file_neither_lets_a_second_trainer_in_nor_hides_the_first() {
        let tmp = tempfile::tempdir().unwrap();
        let _first = RunLock::acquire(tmp.path()).unwrap();
        std::fs::remove_file(tmp.path().join(LOCK)).unwrap();
        let refused = RunLock::acquire(tmp.path()).unwrap_err();
        assert!(matches!(refused, RunError::InUse { .. }), "{refused}");
        // Healed meanwhile, or not yet: either way, a stranger's file goes there.
        let _ = std::fs::remove_file(tmp.path().join(LOCK));
        std::fs::write(tmp.path().join(LOCK), "planted").unwrap();
        std::thread::sleep(HEAL_EVERY * 3);
        assert_eq!(held(tmp.path()), Some(true), "the lock file is back, held");
        let text = std::fs::read_to_string(tmp.path().join(LOCK)).unwrap();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
    }
}
