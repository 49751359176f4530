//! The trial call of a newly found library, in a child process with a deadline:
//! a library whose `mask()` never returns must not hold anything this process
//! needs (the generator lock every mask call takes), so it runs where it can be
//! killed. Only a library that passed is loaded here. The first load of every
//! library (its loading code, metadata and constructor) goes through one too,
//! in every command: a loader that hangs inside `dlopen` would hold the
//! dynamic linker's lock, and no thread of this process could load another.
//! The child says which call it is in, so that the one that hung is named.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
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
        Ok(Trial::new(std::env::current_exe()?, deadline()))
    }

    /// Runs the smoke test of the library at `path` in a child process: `Ok` when
    /// it passed in time, else why not.
    pub fn run(&self, path: &Path) -> Result<(), String> {
        self.run_child(path, false)
    }

    /// Runs only the library's first calls (loading, metadata, constructor)
    /// in a child process.
    pub fn run_load(&self, path: &Path) -> Result<(), String> {
        self.run_child(path, true)
    }

    fn run_child(&self, path: &Path, load_only: bool) -> Result<(), String> {
        // The child dies with this thread (see `dies_with`), which waits on
        // it below whatever happens.
        let mut cmd = Command::new(&self.exe);
        cmd.arg("trial");
        if load_only {
            cmd.arg("--load-only");
        }
        let mut child = cmd
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
                    return Err(self.hung(&said_by(&mut child)));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("waiting for the trial process: {e}"));
                }
            }
        };
        let said = said_by(&mut child);
        if exit.success() {
            return Ok(());
        }
        let reason: Vec<&str> = said.lines().filter(|l| !l.starts_with('@')).collect();
        let said = reason.join("\n");
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

/// What a child printed (it has ended, or been killed: the pipe holds it).
fn said_by(child: &mut std::process::Child) -> String {
    let mut said = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read;
        let _ = out.read_to_string(&mut said);
    }
    said
}

impl Trial {
    /// Why a trial that ran out of time failed: the call it was in, and the
    /// strategy when it had said its name.
    fn hung(&self, said: &str) -> String {
        let last = |prefix: &str| said.lines().rev().find_map(|l| l.strip_prefix(prefix));
        let secs = self.deadline.as_secs_f64();
        let message = match last(CALLING).unwrap_or(LOADING) {
            MASK => format!(
                "smoke test: mask() did not return within {secs:.0} s; the library was not loaded"
            ),
            call => format!("{call} did not return within {secs:.0} s; the library was not loaded"),
        };
        match last(STRATEGY) {
            Some(who) => format!("strategy {who}: {message}"),
            None => message,
        }
    }
}

/// The deadline of a trial, and of any first call into a library:
/// `PROBDROP_TUI_TRIAL_TIMEOUT_S`, else [`DEFAULT_DEADLINE`].
pub fn deadline() -> Duration {
    std::env::var("PROBDROP_TUI_TRIAL_TIMEOUT_S")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(DEFAULT_DEADLINE, Duration::from_secs_f64)
}

static FOR_LOADING: OnceLock<Trial> = OnceLock::new();

/// Makes every first load of a library in this process go through a trial of
/// this binary (what `main` does; a test binary cannot run trials of itself).
pub fn try_first_loads() {
    if let Ok(trial) = Trial::this_binary() {
        let _ = FOR_LOADING.set(trial);
    }
}

/// The trial first loads go through, where this process runs them.
pub fn for_loading() -> Option<&'static Trial> {
    FOR_LOADING.get()
}

/// What the child says before each call, and once it knows the strategy.
const CALLING: &str = "@calling ";
const STRATEGY: &str = "@strategy ";
const LOADING: &str = "the library's loading code (dlopen, metadata)";
const NEW: &str = "Strategy::new";
const MASK: &str = "mask()";

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The `trial` command's body: load, build with the default parameters and
/// (unless `load_only`) smoke-test, saying each call before making it; print
/// why not. With the `parent` that started it, it dies with that parent.
pub fn trial_command(path: &Path, load_only: bool, parent: Option<u32>) -> bool {
    if let Some(parent) = parent
        && let Err(why) = dies_with(parent)
    {
        println!("{why}");
        return false;
    }
    say(&format!("{CALLING}{LOADING}"));
    let outcome = super::Library::load(path).map_err(|e| e.0).and_then(|lib| {
        say(&format!("{STRATEGY}{} {}", lib.info.name, lib.info.version));
        say(&format!("{CALLING}{NEW}"));
        lib.create_here(&[]).map_err(|e| e.0)?;
        if load_only {
            return Ok(());
        }
        say(&format!("{CALLING}{MASK}"));
        super::watch::smoke_test(&lib)
    });
    match outcome {
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
