//! What the fault suites share: a temporary project with the `probe` fixture
//! strategy in its plugins directory and a small experiment, the binary, and
//! readers of the run directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use probdrop_tui::run::control::{self, Command as Ctl};
use probdrop_tui::run::dir::{self, EventLine, MetricLine, RunDir};

use super::Tiny;
use super::fixtures::fixture;

/// A small experiment with the `probe` test strategy on every step.
pub fn experiment(dir: &Path, train: &str) -> PathBuf {
    let train = format!("log_every = 1\nsnapshot_every = 0\n{train}");
    Tiny {
        name: "faults",
        seeds: "[3]",
        train: &train,
        strategies: "[[strategy]]\nplugin = \"probe\"\nschedule = { kind = \"constant\", p = 0.1 }",
        ..Tiny::default()
    }
    .write(&dir.join("faults.toml"))
}

pub struct Setup {
    pub _tmp: tempfile::TempDir,
    pub plugins: PathBuf,
    pub library: PathBuf,
    pub file: PathBuf,
    pub runs: PathBuf,
}

pub fn setup(first: &str, train: &str) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let library = plugins.join(format!("libprobe{}", std::env::consts::DLL_SUFFIX));
    std::fs::copy(fixture(first), &library).unwrap();
    let file = experiment(tmp.path(), train);
    let runs = tmp.path().join("runs");
    Setup {
        plugins,
        library,
        file,
        runs,
        _tmp: tmp,
    }
}

impl Setup {
    pub fn bin(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"));
        cmd.arg("--plugins").arg(&self.plugins);
        cmd
    }

    /// The experiment's run directory, prepared as `run` prepares it (queued).
    pub fn prepare(&self) -> RunDir {
        let catalog = probdrop_tui::plugins::load(&self.plugins, &mut |_: &str| {})
            .unwrap()
            .catalog;
        let select = probdrop_tui::run::prepare::Selection::default();
        let (_, dirs) = probdrop_tui::run::prepare::prepare_runs(
            &catalog,
            &probdrop_tui::train::ThisMachine,
            &self.file,
            &self.runs,
            select,
        )
        .unwrap();
        dirs[0].clone()
    }

    /// `run` of `file` in the foreground, silent, to its end.
    pub fn run_file(&self, file: &Path) -> std::process::Output {
        self.bin()
            .args(["run", "-q", "--runs"])
            .arg(&self.runs)
            .arg(file)
            .output()
            .unwrap()
    }

    pub fn start_run(&self) -> (Child, RunDir) {
        self.spawn_run(self.bin())
    }

    /// Starts `run` of the experiment through `cmd` (the binary, or a wrapper
    /// that ends with its arguments), silent, and waits for the run directory.
    pub fn spawn_run(&self, mut cmd: Command) -> (Child, RunDir) {
        let child = cmd
            .args(["run", "-q", "--runs"])
            .arg(&self.runs)
            .arg(&self.file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the run directory", || {
            dir::list_runs(&self.runs).len() == 1
        });
        (child, dir::list_runs(&self.runs).pop().unwrap())
    }

    /// `run --resume` of `run` with `extra` arguments, to its end.
    pub fn resume(&self, run: &RunDir, extra: &[&str]) -> std::process::Output {
        self.bin()
            .args(["run", "-q", "--resume"])
            .arg(&run.path)
            .args(extra)
            .output()
            .unwrap()
    }

    /// Resumes `run`, which must then finish at `last` with each step logged once.
    pub fn resume_to_the_end(&self, run: &RunDir, last: u64) {
        let out = self.resume(run, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(run.status().unwrap().state, dir::State::Done);
        assert_steps_contiguous(run);
        assert_eq!(last_step(run), last);
    }

    /// Replaces the library the way a build does: a new file renamed over it.
    pub fn replace(&self, with: &str) {
        let tmp = self.library.with_extension("partial");
        std::fs::copy(fixture(with), &tmp).unwrap();
        std::fs::rename(&tmp, &self.library).unwrap();
    }
}

/// [`super::wait_for`] with the fault suites' two minutes.
pub fn wait_for(what: &str, done: impl FnMut() -> bool) {
    super::wait_for(what, Duration::from_secs(120), done);
}

pub fn event(run: &RunDir, kind: &str) -> Option<EventLine> {
    run.events().into_iter().find(|e| e.kind == kind)
}

pub fn losses(run: &RunDir) -> Vec<MetricLine> {
    run.metrics()
        .into_iter()
        .filter(|m| m.split == "train" && m.metric == "loss")
        .collect()
}

pub fn last_step(run: &RunDir) -> u64 {
    losses(run).last().map_or(0, |m| m.step)
}

/// Steps 1, 2, 3, … each logged once.
pub fn assert_steps_contiguous(run: &RunDir) {
    let steps: Vec<u64> = losses(run).iter().map(|m| m.step).collect();
    let expected: Vec<u64> = (1..=steps.len() as u64).collect();
    assert_eq!(steps, expected, "a step missing or repeated");
}

pub fn stop(run: &RunDir, child: &mut Child) {
    assert!(
        control::send(&run.file(dir::SOCKET), &Ctl::Stop)
            .unwrap()
            .ok
    );
    child.wait().unwrap();
}
