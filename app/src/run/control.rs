//! The control socket of a run: one JSON command per line, one reply line.
//! The socket lives in the run directory with owner-only permissions; a
//! connection from another user is refused.
//!
//! A Unix socket does not reach a trainer on another host, so the run
//! directory also has an inbox (`control.inbox`): commands appended one JSON
//! line each, taken by the trainer within half a second and acted on at its
//! next step boundary, answered in events.jsonl. The same owner-only rule: an
//! inbox that is not the trainer's user's, or that others may write, is not
//! read.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RunError;
use super::dir::{self, EventKind, EventLine, JsonLog};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Command {
    Pause,
    Resume,
    Stop,
    /// Re-read the experiment: from `toml` if given, else from the run's source file.
    ApplyConfig {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        toml: Option<String>,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
}

/// The longest command line taken; a longer one closes the connection.
pub const MAX_LINE: usize = 64 * 1024;
/// Connections served at once; more are refused.
pub const MAX_CONNECTIONS: usize = 16;
/// How long one connection may stay open.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);

/// Listens on the socket and forwards commands; replies "accepted" at once (the
/// trainer acts at its next step boundary and logs what it did). A stop also
/// raises `stop`, which the trainer's watchdog reads when a step hangs.
pub struct ControlServer {
    pub commands: Receiver<Command>,
    pub stop: Arc<AtomicBool>,
    path: PathBuf,
    closing: Arc<AtomicBool>,
}

/// The longest socket path the kernel takes is 107 bytes (`sun_path`).
const SOCKET_PATH_MAX: usize = 107;

/// Calls `f` with a path to the socket `path` that the kernel takes: `path`
/// itself if short enough, else the same file through `/proc/self/fd` and an
/// open handle on its directory (a run directory may lie deep, and a sweep
/// cell's name is long).
fn reachable<T>(path: &Path, f: impl FnOnce(&Path) -> std::io::Result<T>) -> std::io::Result<T> {
    use std::os::fd::AsRawFd;
    if path.as_os_str().len() <= SOCKET_PATH_MAX {
        return f(path);
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return f(path);
    };
    let dir = std::fs::File::open(parent)?;
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    let result = f(&short);
    drop(dir);
    result
}

/// A listener bound at `path`, owner-only, with the identity of the socket file
/// it made (to see it deleted or replaced).
fn bind(path: &Path) -> std::io::Result<(UnixListener, (u64, u64))> {
    use std::os::unix::fs::MetadataExt;
    // A socket file left by a killed trainer is stale: remove it.
    let _ = std::fs::remove_file(path);
    let listener = reachable(path, |p| UnixListener::bind(p))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    let meta = std::fs::metadata(path)?;
    Ok((listener, (meta.dev(), meta.ino())))
}

impl ControlServer {
    pub fn start(path: &Path, stop: Arc<AtomicBool>) -> std::io::Result<ControlServer> {
        let (listener, id) = bind(path)?;
        let (tx, rx) = channel();
        let closing = Arc::new(AtomicBool::new(false));
        let server = Server {
            path: path.to_path_buf(),
            inbox: Inbox::open(&path.with_file_name(dir::INBOX)),
            tx,
            stop: stop.clone(),
            closing: closing.clone(),
            active: Arc::new(AtomicUsize::new(0)),
        };
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || server.serve(listener, id))?;
        Ok(ControlServer {
            commands: rx,
            stop,
            path: path.to_path_buf(),
            closing,
        })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_file(&self.path);
    }
}

struct Server {
    path: PathBuf,
    inbox: Inbox,
    tx: Sender<Command>,
    stop: Arc<AtomicBool>,
    closing: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
}

/// Counts a connection while it is served.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Server {
    /// Accepts connections (polling, so that it can also see its socket file go
    /// and make a new one) until the trainer closes it.
    fn serve(mut self, mut listener: UnixListener, mut id: (u64, u64)) {
        use std::os::unix::fs::MetadataExt;
        let mut last_check = std::time::Instant::now();
        while !self.closing.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => self.take(stream),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
            if last_check.elapsed() >= Duration::from_millis(500) {
                last_check = std::time::Instant::now();
                self.take_inbox();
                let present =
                    std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == id);
                if !present
                    && !self.closing.load(Ordering::SeqCst)
                    && let Ok((l, new_id)) = bind(&self.path)
                {
                    (listener, id) = (l, new_id);
                }
            }
        }
    }

    /// Forwards the inbox's new commands; notes in events.jsonl what it
    /// could not take.
    fn take_inbox(&mut self) {
        for line in self.inbox.take() {
            let refused = match line {
                Ok(cmd) => {
                    if cmd == Command::Stop {
                        self.stop.store(true, Ordering::SeqCst);
                    }
                    let _ = self.tx.send(cmd);
                    continue;
                }
                Err(why) => why,
            };
            let events = self.path.with_file_name(dir::EVENTS);
            if let Ok(mut log) = JsonLog::open(&events) {
                let _ = log.append(&EventLine {
                    wall: dir::now(),
                    step: 0,
                    kind: EventKind::Error,
                    message: format!("control inbox: {refused}"),
                });
            }
        }
    }

    fn take(&self, stream: UnixStream) {
        let slot = Slot(self.active.clone());
        if self.active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            let _ = stream.set_nonblocking(false);
            let _ = reply(&stream, false, "refused: too many connections".into());
            return;
        }
        let tx = self.tx.clone();
        let stop = self.stop.clone();
        let spawned = std::thread::Builder::new()
            .name("control-conn".into())
            .spawn(move || {
                let _slot = slot;
                let _ = handle(stream, &tx, &stop);
            });
        drop(spawned);
    }
}

fn same_user(stream: &UnixStream) -> bool {
    // The socket is 0600 already; the peer's credentials are checked as well, so a
    // process of another user that got hold of a descriptor is still refused.
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(stream, PeerCredentials)
        .is_ok_and(|cred| cred.uid() == nix::unistd::getuid().as_raw())
}

fn reply(mut w: &UnixStream, ok: bool, message: String) -> std::io::Result<()> {
    let mut line = serde_json::to_string(&Reply { ok, message }).map_err(std::io::Error::other)?;
    line.push('\n');
    w.write_all(line.as_bytes())
}

fn handle(stream: UnixStream, tx: &Sender<Command>, stop: &AtomicBool) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    if !same_user(&stream) {
        return reply(&stream, false, "refused: not the run's owner".into());
    }
    let deadline = std::time::Instant::now() + CONNECTION_DEADLINE;
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        stream.set_read_timeout(Some(left))?;
        let n = (&stream).read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            answer(&stream, &line, tx, stop)?;
        }
        if pending.len() > MAX_LINE {
            return reply(
                &stream,
                false,
                format!("refused: a command line longer than {MAX_LINE} bytes"),
            );
        }
    }
}

fn answer(
    stream: &UnixStream,
    line: &[u8],
    tx: &Sender<Command>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    match serde_json::from_slice::<Command>(line.trim_ascii()) {
        Ok(cmd) => {
            if cmd == Command::Stop {
                stop.store(true, Ordering::SeqCst);
            }
            let sent = tx.send(cmd).is_ok();
            let message = if sent {
                "accepted"
            } else {
                "the trainer is gone"
            };
            reply(stream, sent, message.into())
        }
        Err(e) => reply(stream, false, format!("bad command: {e}")),
    }
}

/// The trainer's side of the inbox: where it has read up to.
struct Inbox {
    path: PathBuf,
    offset: u64,
    /// Inside a line longer than [`MAX_LINE`], already reported: the bytes up
    /// to its end are passed over.
    skipping: bool,
    /// What was last said about the inbox itself, said once.
    problem: Option<String>,
}

/// How much of the inbox is read at one look.
const INBOX_CHUNK: u64 = 16 * MAX_LINE as u64;

impl Inbox {
    /// Requests from before the trainer started are not for it: it reads
    /// from the inbox's end as it is now.
    fn open(path: &Path) -> Inbox {
        let offset = std::fs::symlink_metadata(path).map_or(0, |m| m.len());
        Inbox {
            path: path.to_path_buf(),
            offset,
            skipping: false,
            problem: None,
        }
    }

    /// The complete lines appended since the last look, as commands (or why
    /// not: a line that is not UTF-8, too long, or not a command is passed
    /// over and said). None from an inbox another user owns or may write, or
    /// that is not a regular file (a FIFO is never waited on).
    fn take(&mut self) -> Vec<Result<Command, String>> {
        use std::os::unix::fs::MetadataExt;
        let file = match super::files::open_regular(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => return self.said_once(format!("not read: {e}")),
        };
        let Ok(meta) = file.metadata() else {
            return Vec::new();
        };
        if meta.len() <= self.offset {
            self.offset = self.offset.min(meta.len());
            return Vec::new();
        }
        let owner_only = meta.uid() == nix::unistd::getuid().as_raw() && meta.mode() & 0o022 == 0;
        if !owner_only {
            return vec![Err(format!(
                "not read: {} is not owner-only (another user could write it); requests ignored",
                self.path.display()
            ))];
        }
        self.problem = None;
        self.read_lines(file)
    }

    fn said_once(&mut self, problem: String) -> Vec<Result<Command, String>> {
        if self.problem.as_ref() == Some(&problem) {
            return Vec::new();
        }
        self.problem = Some(problem.clone());
        vec![Err(problem)]
    }

    /// The lines from the offset on, as bytes: the offset passes every line
    /// looked at, whatever it holds, so that no line blocks the ones after it.
    fn read_lines(&mut self, mut file: std::fs::File) -> Vec<Result<Command, String>> {
        use std::io::{Seek, SeekFrom};
        let mut bytes = Vec::new();
        let read = file
            .seek(SeekFrom::Start(self.offset))
            .and_then(|_| file.take(INBOX_CHUNK).read_to_end(&mut bytes));
        if read.is_err() {
            return Vec::new();
        }
        let mut taken = Vec::new();
        let mut consumed = 0;
        while let Some(end) = bytes[consumed..].iter().position(|&b| b == b'\n') {
            let line = &bytes[consumed..consumed + end];
            consumed += end + 1;
            if !std::mem::take(&mut self.skipping) {
                taken.extend(command_of(line));
            }
        }
        if consumed == 0 && bytes.len() as u64 == INBOX_CHUNK {
            if !self.skipping {
                taken.push(Err(format!(
                    "a line longer than {MAX_LINE} bytes; passed over"
                )));
            }
            self.skipping = true;
            consumed = bytes.len();
        }
        self.offset += consumed as u64;
        taken
    }
}

/// One inbox line as a command, or why not; `None` for a blank line.
fn command_of(line: &[u8]) -> Option<Result<Command, String>> {
    if line.len() > MAX_LINE {
        return Some(Err(format!(
            "a line of {} bytes, longer than {MAX_LINE}; passed over",
            line.len()
        )));
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Some(Err("a line that is not UTF-8 text; passed over".into()));
    };
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(serde_json::from_str(text).map_err(|e| {
        let shown: String = text.chars().take(120).collect();
        format!("bad command {shown:?}: {e}")
    }))
}

/// Appends `command` to the inbox of the run in `run_dir` (made owner-only
/// if it is new), for a trainer on another host to take.
pub fn post(run_dir: &Path, command: &Command) -> Result<(), RunError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut line = serde_json::to_string(command).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(run_dir.join(dir::INBOX))?;
    file.write_all(line.as_bytes())?;
    Ok(())
}

/// Sends one command to the run whose socket is `path` and returns the reply.
pub fn send(path: &Path, command: &Command) -> Result<Reply, RunError> {
    let stream = reachable(path, |p| UnixStream::connect(p));
    let mut stream = stream.map_err(|source| RunError::Unreachable {
        path: path.to_path_buf(),
        source,
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = serde_json::to_string(command).map_err(std::io::Error::other)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    serde_json::from_str(reply.trim()).map_err(|source| RunError::BadReply { reply, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::OpenOptionsExt;

    fn append(path: &Path, bytes: &[u8]) {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    /// A run directory deeper than a socket path may be still gets its socket.
    #[test]
    fn a_socket_deep_in_the_file_system_is_bound_and_reached() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let path = deep.join(dir::SOCKET);
        assert!(path.as_os_str().len() > SOCKET_PATH_MAX);
        let server = ControlServer::start(&path, Arc::new(AtomicBool::new(false))).unwrap();
        assert!(path.exists(), "the socket file is where it was asked for");
        let reply = send(&path, &Command::Pause).unwrap();
        assert!(reply.ok, "{reply:?}");
        assert_eq!(server.commands.recv().unwrap(), Command::Pause);
    }

    /// Every look until the inbox has nothing new.
    fn drain(inbox: &mut Inbox) -> Vec<Result<Command, String>> {
        let mut all = Vec::new();
        for _ in 0..8 {
            all.extend(inbox.take());
        }
        all
    }

    #[test]
    fn bad_and_oversized_lines_are_passed_over_and_said_and_later_commands_taken() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(dir::INBOX);
        append(&path, b"");
        let mut inbox = Inbox::open(&path);
        append(&path, b"\xff\xfe{\"cmd\":\"stop\"}\n{\"cmd\":\"pause\"}\n");
        let got = drain(&mut inbox);
        assert!(
            matches!(&got[0], Err(e) if e.contains("not UTF-8")),
            "{got:?}"
        );
        assert_eq!(got[1], Ok(Command::Pause));
        let mut huge = vec![b'x'; 2 * INBOX_CHUNK as usize + 7];
        huge.push(b'\n');
        append(&path, &huge);
        append(&path, &[b'y'; MAX_LINE + 1]);
        append(&path, b"\n{\"cmd\":\"resume\"}\n");
        let got = drain(&mut inbox);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            matches!(&got[0], Err(e) if e.contains("longer than")),
            "{got:?}"
        );
        assert!(
            matches!(&got[1], Err(e) if e.contains("longer than")),
            "{got:?}"
        );
        assert_eq!(got[2], Ok(Command::Resume));
    }

    #[test]
    fn an_inbox_replaced_by_a_fifo_is_refused_once_without_waiting() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(dir::INBOX);
        let mut inbox = Inbox::open(&path);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let got = drain(&mut inbox);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            matches!(&got[0], Err(e) if e.contains("not a regular file")),
            "{got:?}"
        );
        std::fs::remove_file(&path).unwrap();
        append(&path, b"{\"cmd\":\"stop\"}\n");
        assert_eq!(drain(&mut inbox), vec![Ok(Command::Stop)]);
    }
}
