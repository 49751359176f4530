//! A trainer process for a run directory: started by the dashboard and by
//! compare alike, and collected when it ends.

use std::io;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use super::dir::RunDir;

/// `probdrop-tui train DIR`, started from this binary.
pub struct Trainer {
    pub run: RunDir,
    child: Child,
}

impl Trainer {
    /// Starts the trainer of `run` with its output appended to the run's
    /// trainer.log. It gets its own process group: closing the dashboard,
    /// losing the SSH connection or a Ctrl-C to compare does not reach it;
    /// they stop it through its socket, so that it checkpoints first.
    pub fn start(plugins: &Path, run: &RunDir) -> io::Result<Trainer> {
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(run.file(super::dir::TRAINER_LOG))?;
        let child = Command::new(exe)
            .arg("--plugins")
            .arg(plugins)
            .arg("train")
            .arg(&run.path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()?;
        Ok(Trainer {
            run: run.clone(),
            child,
        })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has ended (collected then, so it does not linger as a
    /// zombie), and how.
    pub fn exited(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Waits for it to end.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait()
    }

    /// Records in the run an end the trainer could not record itself (a
    /// signal, a panic): see [RunDir::record_exit].
    pub fn record(&self, exit: ExitStatus) -> io::Result<Option<String>> {
        self.run.record_exit(self.child.id(), exit)
    }
}
