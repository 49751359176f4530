//! The trial call of a newly found library, in a child process with a deadline:
//! a library whose `mask()` never returns must not hold anything this process
//! needs (the generator lock every mask call takes), so it runs where it can be
//! killed. Only a library that passed is loaded here.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Deadline of a trial when `PROBDROP_TUI_TRIAL_TIMEOUT_S` does not set one.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(20);

/// How to try a library: this program's hidden `trial` command.
#[derive(Clone, Debug)]
pub struct Trial {
    exe: PathBuf,
    deadline: Duration,
}

impl Trial {
    pub fn new(exe: impl Into<PathBuf>, deadline: Duration) -> Trial {
        Trial {
            exe: exe.into(),
            deadline,
        }
    }

    /// The running probdrop-tui binary, with the deadline from
    /// `PROBDROP_TUI_TRIAL_TIMEOUT_S` if set.
    pub fn this_binary() -> std::io::Result<Trial> {
        let deadline = std::env::var("PROBDROP_TUI_TRIAL_TIMEOUT_S")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(DEFAULT_DEADLINE, Duration::from_secs_f64);
        Ok(Trial::new(std::env::current_exe()?, deadline))
    }

    /// Runs the smoke test of the library at `path` in a child process: `Ok` when
    /// it passed in time, else why not.
    pub fn run(&self, path: &Path) -> Result<(), String> {
        // The child dies with this thread (see `dies_with`), which waits on
        // it below whatever happens.
        let mut child = Command::new(&self.exe)
            .arg("trial")
            .arg(path)
            .arg("--parent")
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the trial process: {e}"))?;
        let started = Instant::now();
        let exit = loop {
            match child.try_wait() {
                Ok(Some(exit)) => break exit,
                Ok(None) if started.elapsed() >= self.deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "smoke test: mask() did not return within {:.0} s; the library was not loaded",
                        self.deadline.as_secs_f64()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("waiting for the trial process: {e}"));
                }
            }
        };
        let mut said = String::new();
        if let Some(mut out) = child.stdout.take() {
            use std::io::Read;
            let _ = out.read_to_string(&mut said);
        }
        if exit.success() {
            return Ok(());
        }
        let said = said.trim();
        Err(if said.is_empty() {
            format!(
                "smoke test: the trial process ended badly ({})",
                crate::run::dir::exit_description(exit).unwrap_or_default()
            )
        } else {
            said.to_string()
        })
    }
}

/// The `trial` command's body: load and smoke-test, print why not. With the
/// `parent` that started it, it dies with that parent.
pub fn trial_command(path: &Path, parent: Option<u32>) -> bool {
    if let Some(parent) = parent
        && let Err(why) = dies_with(parent)
    {
        println!("{why}");
        return false;
    }
    match super::Library::load(path)
        .map_err(|e| e.0)
        .and_then(|lib| super::watch::smoke_test(&lib))
    {
        Ok(()) => true,
        Err(why) => {
            println!("{why}");
            false
        }
    }
}

/// Has the kernel kill this process when the thread that started it ends (a
/// trainer killed mid-trial must not leave a hung trial running under init),
/// then checks that `parent` is still there: had it died before the request,
/// nothing would ever send the signal.
fn dies_with(parent: u32) -> Result<(), String> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| format!("smoke test: cannot tie the trial to its parent: {e}"))?;
    let now = nix::unistd::getppid().as_raw();
    if u32::try_from(now) != Ok(parent) {
        return Err(format!(
            "smoke test: the process that started the trial ({parent}) is gone"
        ));
    }
    Ok(())
}
