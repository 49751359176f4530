//! The dashboard: reads run directories, sends control messages, starts trainer
//! processes; never trains in its own process.

pub mod app;
pub mod export_view;
pub mod identity;
pub mod keys;
pub mod loading;
pub mod manage;
pub mod runlist;
pub mod saved;
pub mod series;
pub mod state;
pub mod system;
pub mod views;
pub mod workspace;

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossterm::event::{self, Event, KeyEventKind, MouseEventKind};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use crossterm::{cursor, execute};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use crate::experiment::Machine;
use crate::plugins::watch::{ReloadEvent, Watcher};
use crate::run::control::{self, Command as Ctl};
use crate::run::dir::{self, RunDir};
use crate::run::prepare::{Selection, prepare_runs};
use crate::run::trainer::{Comparison, Trainer};
use app::{App, Effects, Input, Pick};
use views::{ColorDepth, Screen};

/// At most this many redraws a second, and none when nothing changed.
const FRAME: Duration = Duration::from_millis(100);
/// How often run directories and experiment files are re-read.
const REFRESH: Duration = Duration::from_millis(500);
/// How often the machine's CPU, memory and GPUs are looked at.
const SYSTEM: Duration = Duration::from_secs(2);

pub struct Options {
    pub plugins: PathBuf,
    /// What experiments are checked against and which devices are offered.
    pub machine: Arc<dyn Machine>,
    pub runs: PathBuf,
    pub experiments: PathBuf,
    pub compare: PathBuf,
}

/// The dashboard's log file. While the dashboard owns the terminal, stderr points
/// at it too, so that nothing (a warning from a library, a build message) is ever
/// written over the screen.
static LOG: OnceLock<Mutex<File>> = OnceLock::new();
/// The terminal's stderr, put back whenever the dashboard leaves the screen.
static TERMINAL_STDERR: OnceLock<OwnedFd> = OnceLock::new();

/// The log's place: beside the runs it watches.
pub fn log_path(runs: &Path) -> PathBuf {
    runs.join("dashboard.log")
}

fn open_log(runs: &Path) -> Result<()> {
    std::fs::create_dir_all(runs).with_context(|| format!("creating {}", runs.display()))?;
    let path = log_path(runs);
    // A FIFO put there would hold the dashboard in `open`: refused instead.
    let file = crate::run::files::open_to_write(
        std::fs::OpenOptions::new().create(true).append(true),
        &path,
    )
    .with_context(|| format!("opening the log {}", path.display()))?;
    let _ = LOG.set(Mutex::new(file));
    // Close-on-exec (std duplicates with F_DUPFD_CLOEXEC): the trainers the
    // dashboard starts must hold nothing of its terminal.
    if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
        let _ = TERMINAL_STDERR.set(fd);
    }
    Ok(())
}

/// Appends one time-stamped line to the dashboard's log.
fn log(line: &str) {
    if let Some(file) = LOG.get()
        && let Ok(mut f) = file.lock()
    {
        let t = dir::now();
        let _ = writeln!(f, "{} {line}", dir::timestamp(t as u64));
    }
}

fn stderr_to_log() {
    if let Some(file) = LOG.get()
        && let Ok(f) = file.lock()
    {
        let _ = nix::unistd::dup2_stderr(&*f);
    }
}

fn stderr_to_terminal() {
    if let Some(fd) = TERMINAL_STDERR.get() {
        let _ = nix::unistd::dup2_stderr(fd);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Poll {
    Ready,
    Timeout,
    /// The terminal went away (its pseudo-terminal closed) without a SIGHUP
    /// reaching us.
    HungUp,
}

/// Waits up to `wait` for the terminal (stdin, which crossterm reads) to have
/// input.
fn wait_for_input(wait: Duration) -> Poll {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let stdin = std::io::stdin();
    let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::ZERO);
    match poll(&mut fds, timeout) {
        Ok(0) => Poll::Timeout,
        Ok(_) => match fds[0].revents() {
            Some(r)
                if r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) =>
            {
                Poll::HungUp
            }
            _ => Poll::Ready,
        },
        // Interrupted (a signal: resize, SIGTERM): look again at once.
        Err(_) => Poll::Timeout,
    }
}

fn enter_screen() -> std::io::Result<()> {
    terminal::enable_raw_mode()?;
    execute!(
        std::io::stdout(),
        EnterAlternateScreen,
        event::EnableMouseCapture,
        cursor::Hide
    )?;
    stderr_to_log();
    Ok(())
}

/// Puts the terminal back however the dashboard ends (return, error, panic).
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> Result<TerminalGuard> {
        enter_screen().context("this needs a terminal")?;
        Ok(TerminalGuard)
    }
}

fn restore_terminal() {
    stderr_to_terminal();
    let _ = terminal::disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        event::DisableMouseCapture,
        LeaveAlternateScreen,
        cursor::Show
    );
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Starts trainers as detached processes and talks to them.
struct RealEffects {
    plugins: PathBuf,
    machine: Arc<dyn Machine>,
    runs: PathBuf,
    /// Where comparisons started from the dashboard write.
    compare: PathBuf,
    children: Vec<Trainer>,
    comparisons: Vec<Comparison>,
    /// Set while an editor has the terminal.
    suspended_for_editor: bool,
}

impl Effects for RealEffects {
    /// Collects exited trainers (so they do not linger as zombies) and records a
    /// crash the trainer could not record itself: the run shows as failed with the
    /// signal or exit status. Returns what was recorded, for the log.
    fn reap(&mut self) -> Vec<String> {
        let mut recorded = Vec::new();
        self.children.retain_mut(|trainer| match trainer.exited() {
            Ok(None) => true,
            Ok(Some(exit)) => {
                let run = trainer.run.path.display();
                match trainer.record(exit) {
                    Ok(Some(why)) => recorded.push(format!("{run}: {why}")),
                    Ok(None) => {}
                    Err(e) => recorded.push(format!(
                        "{run}: could not record the trainer's exit ({exit}): {e}"
                    )),
                }
                false
            }
            Err(_) => false,
        });
        self.comparisons.retain_mut(|c| match c.exited() {
            Ok(None) => true,
            Ok(Some(exit)) if exit.success() => false,
            Ok(Some(exit)) => {
                recorded.push(format!(
                    "a comparison ended with {exit}: see {}",
                    c.log.display()
                ));
                false
            }
            Err(_) => false,
        });
        recorded
    }

    fn start_trainer(&mut self, run: &RunDir) -> Result<(), String> {
        let trainer = Trainer::start(&self.plugins, run).map_err(|e| e.to_string())?;
        log(&format!(
            "started trainer {} for {}",
            trainer.id(),
            run.path.display()
        ));
        self.children.push(trainer);
        Ok(())
    }

    fn control(&mut self, run: &RunDir, command: Ctl) -> Result<(), String> {
        // A trainer on another host cannot be reached through the socket.
        if run.status().is_some_and(|s| s.elsewhere()) {
            return control::post(&run.path, &command).map_err(|e| e.to_string());
        }
        let reply = control::send(&run.file(dir::SOCKET), &command).map_err(|e| e.to_string())?;
        if reply.ok { Ok(()) } else { Err(reply.message) }
    }

    fn prepare(&mut self, experiment: &Path, pick: &Pick) -> Result<Vec<RunDir>, String> {
        let loaded = crate::plugins::load(&self.plugins, &mut log)
            .map_err(|e| format!("reading {}: {e}", self.plugins.display()))?;
        let select = Selection {
            device: pick.device.as_deref(),
            strategy: pick.only.as_ref().map(|(label, _)| label.as_str()),
            seed: pick.only.as_ref().map(|(_, seed)| *seed),
            ..Selection::default()
        };
        prepare_runs(
            &loaded.catalog,
            self.machine.as_ref(),
            experiment,
            &self.runs,
            select,
        )
        .map(|(_, dirs)| dirs)
        .map_err(|e| format!("{e:#}"))
    }

    fn start_compare(
        &mut self,
        experiment: &Path,
        device: Option<&str>,
    ) -> Result<PathBuf, String> {
        let stem = experiment.file_stem().unwrap_or_default();
        let out = self.compare.join(stem);
        let c = Comparison::start(&self.plugins, experiment, &self.runs, &out, device)
            .map_err(|e| e.to_string())?;
        log(&format!(
            "started compare {} for {}",
            c.id(),
            experiment.display()
        ));
        let log_file = c.log.clone();
        self.comparisons.push(c);
        Ok(log_file)
    }

    fn archive(&mut self, run: &RunDir) -> Result<PathBuf, String> {
        let to = crate::run::notes::archive(run).map_err(|e| e.to_string())?;
        log(&format!(
            "archived {} in {}",
            run.path.display(),
            to.display()
        ));
        Ok(to)
    }

    fn delete(&mut self, run: &RunDir) -> Result<(), String> {
        crate::run::notes::delete(run).map_err(|e| e.to_string())?;
        log(&format!("deleted {}", run.path.display()));
        Ok(())
    }

    fn save_notes(&mut self, run: &RunDir, notes: &crate::run::notes::Notes) -> Result<(), String> {
        notes.save(run).map_err(|e| e.to_string())
    }

    fn export(&mut self, figure: &export_view::Figure, out: &Path) -> Result<Vec<PathBuf>, String> {
        export_view::write(figure, out)
    }

    fn edit(&mut self, file: &Path) -> Result<(), String> {
        let editor = std::env::var("VISUAL")
            .or_else(|_| std::env::var("EDITOR"))
            .unwrap_or_else(|_| "vi".into());
        restore_terminal();
        self.suspended_for_editor = true;
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(file)
            .status();
        let _ = enter_screen();
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("{editor} exited with {s}")),
            Err(e) => Err(format!("{editor}: {e}")),
        }
    }
}

/// Runs the dashboard until the user quits or the process is told to stop.
pub fn run(mut opts: Options) -> Result<()> {
    if !std::io::stdout().is_terminal() {
        anyhow::bail!("the dashboard needs a terminal; `probdrop-tui run FILE` trains without one");
    }
    open_log(&opts.runs)?;
    // Comparisons name their runs by canonical path: so does the dashboard,
    // or a comparison's runs would not be found among its own.
    opts.runs = opts.runs.canonicalize()?;
    log(&format!(
        "dashboard {} started: runs {}, experiments {}, plugins {}",
        std::process::id(),
        opts.runs.display(),
        opts.experiments.display(),
        opts.plugins.display()
    ));
    let app = open_app(&opts)?;
    let watcher = crate::plugins::trial::Trial::this_binary()
        .ok()
        .and_then(|trial| Watcher::start(&opts.plugins, trial).ok());
    let fx = RealEffects {
        plugins: opts.plugins.clone(),
        machine: opts.machine.clone(),
        runs: opts.runs.clone(),
        compare: opts.compare.clone(),
        children: Vec::new(),
        comparisons: Vec::new(),
        suspended_for_editor: false,
    };
    let stop = stop_on_signals()?;
    let guard = TerminalGuard::enter()?;
    let mut dashboard = Dashboard {
        app,
        fx,
        watcher,
        system: system::spawn(system::Probe::new(system::gpu_source()), SYSTEM),
        screen: Screen::new(ColorDepth::detect()),
        // A fresh terminal on the fresh alternate screen: its first frame draws
        // every cell. (`Terminal::clear` would query the cursor position, which
        // some terminals and slow links never answer.)
        terminal: Terminal::new(CrosstermBackend::new(std::io::stdout()))?,
    };
    let result = dashboard.run_until_quit(&stop);
    if let Err(e) = saved::Saved::of(&dashboard.app).save(&opts.runs) {
        log(&format!("could not keep the dashboard's state: {e}"));
    }
    let kept = dashboard.fx.children.len();
    drop(dashboard);
    drop(guard);
    let _ = std::io::stdout().flush();
    log(&format!(
        "dashboard {} closed; {kept} trainer(s) it started keep running",
        std::process::id(),
    ));
    result
}

/// Loads the plugins (their build output goes to the log and the Plugins view,
/// their build's progress to the loading line) and reads everything the
/// dashboard shows.
fn open_app(opts: &Options) -> Result<App> {
    let log_file = log_path(&opts.runs);
    let mut loading = loading::Loading::start(&opts.plugins, &log_file);
    let found = crate::plugins::discover(&opts.plugins, &mut loading);
    let build_log = loading.finish();
    let found = found.with_context(|| format!("reading {}", opts.plugins.display()))?;
    for f in &found {
        if let Err(e) = &f.outcome {
            log(&format!("plugin {} refused: {}", f.id, e.0));
        }
    }
    let mut app = App::new(
        opts.runs.clone(),
        opts.experiments.clone(),
        &found,
        build_log,
        opts.machine.clone(),
    );
    app.compare_dir = opts.compare.clone();
    app.refresh();
    if let Some(saved) = saved::Saved::load(&opts.runs) {
        saved.restore(&mut app);
    }
    Ok(app)
}

/// A flag that SIGTERM, SIGHUP and SIGINT raise; and a panic hook that gives the
/// terminal back before the message is printed.
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGINT,
    ] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        default_hook(info);
    }));
    Ok(stop)
}

/// The running dashboard: its state, its effects, and the terminal it draws on.
struct Dashboard {
    app: App,
    fx: RealEffects,
    watcher: Option<Watcher>,
    system: std::sync::mpsc::Receiver<system::Sample>,
    screen: Screen,
    terminal: Terminal<CrosstermBackend<std::io::Stdout>>,
}

impl Dashboard {
    fn run_until_quit(&mut self, stop: &AtomicBool) -> Result<()> {
        let mut last_refresh = Instant::now();
        let mut last_draw = Instant::now() - FRAME;
        let stdin_is_tty = std::io::stdin().is_terminal();
        // Fault injection for the tests (debug builds only): panic after N ms, to
        // check that the terminal is restored on that exit path too.
        #[cfg(debug_assertions)]
        let panic_at = std::env::var("PROBDROP_TUI_TEST_PANIC_AFTER_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        while !self.app.quit && !stop.load(Ordering::Relaxed) {
            #[cfg(debug_assertions)]
            if panic_at.is_some_and(|t| Instant::now() >= t) {
                panic!("injected panic (PROBDROP_TUI_TEST_PANIC_AFTER_MS)");
            }
            if self.app.dirty && last_draw.elapsed() >= FRAME {
                let (screen, app) = (&mut self.screen, &self.app);
                self.terminal.draw(|f| screen.draw(f, app))?;
                self.app.dirty = false;
                last_draw = Instant::now();
            }
            let wait = if self.app.catching_up() {
                // A long log is read in steps: only look for keys between them.
                Duration::ZERO
            } else {
                REFRESH.saturating_sub(last_refresh.elapsed()).min(FRAME)
            };
            // The wait is ours, not crossterm's: on a terminal that vanished
            // without a SIGHUP, crossterm's poll reads end-of-file forever and
            // never returns. (When stdin is not the terminal, crossterm reads
            // /dev/tty: wait in it.)
            if !stdin_is_tty {
                event::poll(wait)?;
            } else if wait_for_input(wait) == Poll::HungUp {
                log("the terminal hung up; closing (runs keep training)");
                break;
            }
            self.take_terminal_events()?;
            while let Ok(sample) = self.system.try_recv() {
                self.apply(Input::System(sample));
            }
            if last_refresh.elapsed() >= REFRESH {
                last_refresh = Instant::now();
                self.apply(Input::Tick);
                let news: Vec<ReloadEvent> = self.watcher.iter().flat_map(Watcher::drain).collect();
                for e in news {
                    log(&e.to_string());
                    self.apply(Input::Reload(e));
                }
            } else if self.app.catching_up() {
                self.app.refresh();
            }
        }
        Ok(())
    }

    /// Applies an input; what it says in the status line goes to the log too.
    fn apply(&mut self, input: impl Into<Input>) {
        let before = self.app.message.clone();
        self.app.apply(input, &mut self.fx);
        if self.app.message != before {
            log(&self.app.message);
        }
    }

    /// Everything crossterm has: keys, mouse, resizes (which arrive by signal).
    fn take_terminal_events(&mut self) -> Result<()> {
        while event::poll(Duration::ZERO)? {
            match event::read()? {
                Event::Key(key) if key.kind != KeyEventKind::Release => {
                    if let Some(input) = self.app.input_for(key) {
                        self.apply(input);
                        self.back_from_editor()?;
                    }
                }
                Event::Mouse(m) => {
                    let action = match m.kind {
                        MouseEventKind::ScrollDown => Some(keys::Action::Down),
                        MouseEventKind::ScrollUp => Some(keys::Action::Up),
                        MouseEventKind::Down(_) if m.row == 0 => {
                            let width = crossterm::terminal::size().map_or(80, |s| s.0);
                            views::tab_at(m.column, width).map(keys::Action::Go)
                        }
                        _ => None,
                    };
                    if let Some(action) = action {
                        self.apply(action);
                    }
                }
                Event::Resize(_, _) => self.apply(Input::Resized),
                _ => {}
            }
        }
        Ok(())
    }

    /// Back from the editor: blank the screen and start from fresh buffers so
    /// that the next frame redraws everything.
    fn back_from_editor(&mut self) -> Result<()> {
        if !self.fx.suspended_for_editor {
            return Ok(());
        }
        self.fx.suspended_for_editor = false;
        execute!(std::io::stdout(), terminal::Clear(terminal::ClearType::All))?;
        self.terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
        self.app.dirty = true;
        Ok(())
    }
}
