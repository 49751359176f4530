//! The control socket of a run: one JSON command per line, one reply line.
//! The socket lives in the run directory with owner-only permissions; a
//! connection from another user is refused.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

/// Listens on the socket and forwards commands; replies "accepted" at once (the
/// trainer acts at its next step boundary and logs what it did).
pub struct ControlServer {
    pub commands: Receiver<Command>,
    path: PathBuf,
}

impl ControlServer {
    pub fn start(path: &Path) -> std::io::Result<ControlServer> {
        // A socket file left by a killed trainer is stale: remove it.
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || serve(listener, tx))?;
        Ok(ControlServer {
            commands: rx,
            path: path.to_path_buf(),
        })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(listener: UnixListener, tx: Sender<Command>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = handle(stream, &tx);
        });
    }
}

fn same_user(stream: &UnixStream) -> bool {
    // The socket is 0600 already; the peer's credentials are checked as well, so a
    // process of another user that got hold of a descriptor is still refused.
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(stream, PeerCredentials)
        .is_ok_and(|cred| cred.uid() == nix::unistd::getuid().as_raw())
}

fn handle(stream: UnixStream, tx: &Sender<Command>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let reply = |w: &mut UnixStream, ok: bool, message: String| -> std::io::Result<()> {
        let mut line =
            serde_json::to_string(&Reply { ok, message }).map_err(std::io::Error::other)?;
        line.push('\n');
        w.write_all(line.as_bytes())
    };
    if !same_user(&stream) {
        return reply(&mut writer, false, "refused: not the run's owner".into());
    }
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 {
        match serde_json::from_str::<Command>(line.trim()) {
            Ok(cmd) => {
                let sent = tx.send(cmd).is_ok();
                reply(
                    &mut writer,
                    sent,
                    if sent {
                        "accepted".into()
                    } else {
                        "the trainer is gone".into()
                    },
                )?;
            }
            Err(e) => reply(&mut writer, false, format!("bad command: {e}"))?,
        }
        line.clear();
    }
    Ok(())
}

/// Sends one command to the run whose socket is `path` and returns the reply.
pub fn send(path: &Path, command: &Command) -> Result<Reply, String> {
    let mut stream = UnixStream::connect(path)
        .map_err(|e| format!("cannot reach the trainer at {}: {e}", path.display()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut line = serde_json::to_string(command).map_err(|e| e.to_string())?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(|e| e.to_string())?;
    serde_json::from_str(reply.trim()).map_err(|e| format!("bad reply {reply:?}: {e}"))
}
