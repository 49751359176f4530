//! Files that another process (another user, a careless neighbour) could
//! replace: reads never follow a link or block on a FIFO or device, and take at
//! most a stated number of bytes; writes never open an existing path, so a link
//! planted where a file will be written is replaced, not followed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::libc;

/// Opens `path` for reading without following a final symbolic link and
/// without blocking on it; anything but a regular file is refused.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    regular(file, path)
}

/// The whole of a regular file of at most `max` bytes (see [`open_regular`]);
/// a larger one is an error naming the limit, read no further than it.
pub fn read_regular(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    read_capped(open_regular(path)?, path, max)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, max: u64) -> std::io::Result<String> {
    utf8(path, read_regular(path, max)?)
}

/// The most an experiment file may hold: far more than any real one (40,000
/// parameters take about 1 MiB), little enough to read whole.
pub const MAX_EXPERIMENT_BYTES: u64 = 64 << 20;

/// A file the user names (an experiment file): a link is followed, as the
/// user may keep experiments elsewhere, but anything that is not a regular
/// file at the end of it (a FIFO, a device) is refused without waiting on it,
/// and so is one over `max` bytes or not UTF-8.
pub fn read_named_text(path: &Path, max: u64) -> std::io::Result<String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    utf8(path, read_capped(regular(file, path)?, path, max)?)
}

/// `file` if it is a regular file.
fn regular(file: File, path: &Path) -> std::io::Result<File> {
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// Opens `path` with `options` for writing (appending, or in place) without
/// following a final link or blocking on a FIFO (a writer's open of one waits
/// for a reader); anything but a regular file is refused.
pub fn open_to_write(options: &mut OpenOptions, path: &Path) -> std::io::Result<File> {
    let file = options
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    regular(file, path)
}

/// What tells whether a file changed without opening it: device, inode
/// (a file replaced by a rename is another inode), size, and the modification
/// and change times (ctime moves on any write, even one that restores mtime).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    /// The file type bits of its mode.
    kind: u32,
    dev: u64,
    ino: u64,
    pub len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            kind: meta.mode() & libc::S_IFMT,
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    pub fn is_file(&self) -> bool {
        self.kind == libc::S_IFREG
    }

    /// The same file (not one put in its place), maybe grown.
    pub fn same_file(&self, other: &Stamp) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}

/// `path`'s stamp, from `lstat` (no open, no link followed, never blocks);
/// `None` when there is nothing there.
pub fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::symlink_metadata(path).ok().map(|m| Stamp::of(&m))
}

/// A whole file that is read again only when its [`Stamp`] changes (a
/// dashboard watching thousands of runs re-reads nothing that stayed put).
#[derive(Clone, Debug, Default)]
pub struct Watched {
    seen: Option<Option<Stamp>>,
}

impl Watched {
    /// Whether `path` changed (appeared, went, or was written) since the last
    /// call that said so; the first call always says it did. Stat before
    /// reading: a write between the two is seen at the next call.
    pub fn changed(&mut self, path: &Path) -> bool {
        let now = Some(stamp(path));
        if now == self.seen {
            return false;
        }
        self.seen = now;
        true
    }
}

/// Why `path` was not read, in a few words naming only the file:
/// "notes.json is not a regular file; not read".
pub fn why_not_read(path: &Path, e: &std::io::Error) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if e.raw_os_error() == Some(libc::ELOOP) {
        return format!("{name} is a symbolic link; not read");
    }
    // Our own errors start with the path.
    let text = e.to_string();
    match text.strip_prefix(&format!("{} ", path.display())) {
        Some(rest) => format!("{name} {rest}; not read"),
        None => format!("{name} not read: {text}"),
    }
}

/// All of `file`, which must hold at most `max` bytes (read no further).
fn read_capped(file: File, path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is larger than {max} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

fn utf8(path: &Path, bytes: Vec<u8>) -> std::io::Result<String> {
    String::from_utf8(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not UTF-8 text", path.display()),
        )
    })
}

/// Creates `path`, which must not exist yet (not even as a dangling link), for
/// writing, with `mode` (before the umask).
pub fn create_new(path: &Path, mode: u32) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// A temporary name beside `path`, unique to this process and call.
fn temporary_beside(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    // Unique per call: the watchdog thread may write while the loop does.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Writes a file through `fill` into a new temporary file beside `path`
/// (created exclusively, never through a link), synced, then renamed over
/// `path`: readers see the old content or the new, and whatever was at `path`
/// (a link included) is replaced, never written through. On any failure the
/// temporary file is removed (callers name `path` in their error).
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    replace_with(path, fill).map(drop)
}

/// [`write_with`], keeping the file now at `path` open: later writes append to
/// it (a log that starts from a whole first version).
pub fn replace_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<File> {
    let tmp = temporary_beside(path);
    let written = create_new(&tmp, 0o666).and_then(|file| {
        let mut out = std::io::BufWriter::new(file);
        fill(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(file)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// [`write_with`] for bytes at hand.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, |out| out.write_all(bytes))
}

/// Makes `path` a directory of this user's, creating it (and its parents) if
/// need be. Files written into it land wherever it leads, so a link there,
/// anything but a directory, or another user's directory is refused.
pub fn own_dir(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::create_dir(path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let meta = std::fs::symlink_metadata(path)?;
    let refuse = |why: String| {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} {why}; nothing is written there", path.display()),
        ))
    };
    let me = nix::unistd::geteuid().as_raw();
    if meta.file_type().is_symlink() {
        refuse("is a symbolic link".into())
    } else if !meta.is_dir() {
        refuse("is not a directory".into())
    } else if std::os::unix::fs::MetadataExt::uid(&meta) != me {
        let uid = std::os::unix::fs::MetadataExt::uid(&meta);
        refuse(format!("belongs to user {uid}, not to this user ({me})"))
    } else {
        Ok(())
    }
}

/// Past a file-size limit (`ulimit -f`) a write then fails with EFBIG, as one
/// fails on a full disk, instead of SIGXFSZ killing the process mid-write: the
/// caller can say which file it could not write and clean up.
pub fn writes_fail_past_size_limit() {
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_where_a_file_is_written_is_replaced_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let path = tmp.path().join("out.csv");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_one() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.csv");
        std::fs::write(&path, "old").unwrap();
        let e = write_with(&path, |_| Err(std::io::Error::other("disk full"))).unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_replaced_file_stays_open_for_appending() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("events");
        let mut file = replace_with(&path, |out| out.write_all(b"first ")).unwrap();
        file.write_all(b"then more").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first then more");
    }

    #[test]
    fn own_dir_makes_a_directory_and_refuses_a_link_or_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let made = tmp.path().join("a/b");
        own_dir(&made).unwrap();
        own_dir(&made).unwrap();
        assert!(made.is_dir());
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&made, &link).unwrap();
        let e = own_dir(&link).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = own_dir(&file).unwrap_err().to_string();
        assert!(e.contains("is not a directory"), "{e}");
    }

    #[test]
    fn fifos_links_and_oversized_files_are_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("notes.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = read_regular(&fifo, 100).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = tmp.path().join("big");
        std::fs::write(&big, [b'x'; 101]).unwrap();
        assert!(read_regular(&big, 100).is_err());
        assert_eq!(read_regular(&big, 101).unwrap().len(), 101);
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&big, &link).unwrap();
        assert!(read_regular(&link, 1000).is_err());
    }

    #[test]
    fn a_named_file_follows_links_but_never_waits_on_a_fifo() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real.toml");
        std::fs::write(&real, "name = \"x\"").unwrap();
        let link = tmp.path().join("link.toml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(read_named_text(&link, 100).unwrap(), "name = \"x\"");
        let fifo = tmp.path().join("fifo.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let to_fifo = tmp.path().join("to-fifo.toml");
        std::os::unix::fs::symlink(&fifo, &to_fifo).unwrap();
        for path in [&fifo, &to_fifo] {
            let e = read_named_text(path, 100).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        assert!(read_named_text(&real, 3).is_err(), "over the cap");
    }
}
