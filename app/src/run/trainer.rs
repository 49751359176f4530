//! A trainer process for a run directory: started by the dashboard and by
//! compare alike, and collected when it ends.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use super::dir::RunDir;

/// Where util-linux puts `setsid` (a new session without `unsafe` here).
const SETSID: [&str; 2] = ["/usr/bin/setsid", "/bin/setsid"];

/// `probdrop-tui train DIR`, started from this binary.
pub struct Trainer {
    pub run: RunDir,
    child: Child,
}

impl Trainer {
    /// Starts the trainer of `run` with its output appended to the run's
    /// trainer.log, in a session of its own (util-linux's `setsid`, which
    /// execs it in place: the child's pid is the trainer's), or without
    /// `setsid` in a process group of its own. Closing the dashboard, losing
    /// the SSH connection or a Ctrl-C to compare does not reach it, and no
    /// logout waits on it; they stop it through its socket, so that it
    /// checkpoints first.
    pub fn start(plugins: &Path, run: &RunDir) -> io::Result<Trainer> {
        Trainer::start_seeing(plugins, run, None, None)
    }

    /// [`Trainer::start`] with only the GPU of `CUDA_VISIBLE_DEVICES` entry
    /// `gpu` visible to it (it opens that GPU as `cuda:0`), stopping at
    /// fraction `stop_at` of training if given (`train --stop-at`).
    pub fn start_seeing(
        plugins: &Path,
        run: &RunDir,
        gpu: Option<&str>,
        stop_at: Option<f64>,
    ) -> io::Result<Trainer> {
        let mut cmd = detached(plugins)?;
        cmd.arg("train").arg(&run.path);
        if let Some(f) = stop_at {
            cmd.arg("--stop-at").arg(f.to_string());
        }
        if let Some(gpu) = gpu {
            cmd.env("CUDA_VISIBLE_DEVICES", gpu);
        }
        let child = with_log(cmd, &run.file(super::dir::TRAINER_LOG))?;
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

/// This binary with `--plugins`, to run in a session of its own (util-linux's
/// `setsid`, which execs it in place: the child's pid is the program's), or
/// without `setsid` in a process group of its own.
fn detached(plugins: &Path) -> io::Result<Command> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let mut cmd = match SETSID.iter().find(|p| Path::new(p).is_file()) {
        Some(setsid) => {
            let mut cmd = Command::new(setsid);
            cmd.arg(exe);
            cmd
        }
        None => {
            let mut cmd = Command::new(exe);
            cmd.process_group(0);
            cmd
        }
    };
    cmd.arg("--plugins").arg(plugins);
    Ok(cmd)
}

/// Starts `cmd` with no input and its output appended to `log`.
fn with_log(mut cmd: Command, log: &Path) -> io::Result<Child> {
    // Never through a link or into a FIFO (opening one would wait for a reader).
    let log =
        super::files::open_to_write(std::fs::OpenOptions::new().create(true).append(true), log)?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
}

/// A `compare` started in the background (by the dashboard): its runs and
/// its table appear as it goes, like those of a `compare` in a terminal.
pub struct Comparison {
    /// Where its output goes.
    pub log: PathBuf,
    child: Child,
}

/// The start prompt's choice that spreads a comparison over every GPU
/// (`compare --devices all`).
pub const ALL_GPUS: &str = "all GPUs";

/// compare's arguments for the start prompt's device choice.
fn device_args(device: Option<&str>) -> Vec<&str> {
    match device {
        Some(ALL_GPUS) => vec!["--devices", "all"],
        Some(d) => vec!["--device", d],
        None => Vec::new(),
    }
}

impl Comparison {
    /// `probdrop-tui compare FILE --runs RUNS --out OUT [--device D |
    /// --devices all]`, its output in `OUT/compare.log`.
    pub fn start(
        plugins: &Path,
        experiment: &Path,
        runs: &Path,
        out: &Path,
        device: Option<&str>,
    ) -> io::Result<Comparison> {
        std::fs::create_dir_all(out)?;
        let mut cmd = detached(plugins)?;
        cmd.arg("compare")
            .arg(experiment)
            .arg("--runs")
            .arg(runs)
            .arg("--out")
            .arg(out);
        cmd.args(device_args(device));
        let log = out.join("compare.log");
        let child = with_log(cmd, &log)?;
        Ok(Comparison { log, child })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has ended (collected then), and how.
    pub fn exited(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_gpus_asks_compare_to_spread_over_every_gpu() {
        assert_eq!(device_args(Some(ALL_GPUS)), ["--devices", "all"]);
        assert_eq!(device_args(Some("cuda:1")), ["--device", "cuda:1"]);
        assert!(device_args(None).is_empty());
    }
}
