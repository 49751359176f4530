//! One run directory, one trainer: the trainer holds a write lock on
//! `trainer.lock` for its whole life, and liveness is that lock, not a pid
//! (a pid is reused once its process is gone).
//!
//! Open-file-description locks (`F_OFD_SETLK`): released by the kernel when the
//! process dies however it dies, held per open file rather than per process, and
//! testable with `F_OFD_GETLK` without taking them, so a watcher that asks never
//! stands in a starting trainer's way.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{FcntlArg, fcntl};
use nix::libc;

use super::RunError;

/// The lock file's name in a run directory.
pub const LOCK: &str = "trainer.lock";

/// Held by the trainer of a run until dropped (or the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
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

fn open(dir: &Path, write: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .create(write)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir.join(LOCK))
}

/// Who holds the lock, as the holder wrote it: "pid 123 on host gpu1".
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut text);
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
        let mut file = open(dir, true).map_err(|e| failed("cannot open", e))?;
        let lock = whole_file(libc::F_WRLCK as libc::c_short);
        if let Err(e) = fcntl(&file, FcntlArg::F_OFD_SETLK(&lock)) {
            return Err(match e {
                nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES => RunError::InUse {
                    dir: dir.to_path_buf(),
                    holder: holder(&mut file),
                },
                other => failed("cannot lock", other.into()),
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
            .map_err(|e| failed("writing", e))?;
        Ok(RunLock { _file: file })
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
}
