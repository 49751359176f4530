//! The dashboard: reads run directories, sends control messages, starts trainer
//! processes; never trains in its own process.

pub mod app;
pub mod keys;
pub mod series;
pub mod views;
pub mod workspace;

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
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

use crate::plugins::watch::{ReloadEvent, Watcher};
use crate::run::control::{self, Command as Ctl};
use crate::run::dir::{self, RunDir};
use crate::run::prepare::{Selection, prepare_runs};
use crate::run::trainer::Trainer;
use app::{App, Effects};
use views::ColorDepth;

/// At most this many redraws a second, and none when nothing changed.
const FRAME: Duration = Duration::from_millis(100);
/// How often run directories and experiment files are re-read.
const REFRESH: Duration = Duration::from_millis(500);

pub struct Options {
    pub plugins: PathBuf,
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
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening the log {}", path.display()))?;
    let _ = LOG.set(Mutex::new(file));
    if let Ok(fd) = nix::unistd::dup(std::io::stderr()) {
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
enum Input {
    Ready,
    Timeout,
    /// The terminal went away (its pseudo-terminal closed) without a SIGHUP
    /// reaching us.
    HungUp,
}

/// Waits up to `wait` for the terminal (stdin, which crossterm reads) to have
/// input.
fn wait_for_input(wait: Duration) -> Input {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::ZERO);
    match poll(&mut fds, timeout) {
        Ok(0) => Input::Timeout,
        Ok(_) => match fds[0].revents() {
            Some(r)
                if r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) =>
            {
                Input::HungUp
            }
            _ => Input::Ready,
        },
        // Interrupted (a signal: resize, SIGTERM): look again at once.
        Err(_) => Input::Timeout,
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
    runs: PathBuf,
    children: Vec<Trainer>,
    /// Set while an editor has the terminal.
    suspended_for_editor: bool,
}

impl RealEffects {
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
        recorded
    }
}

impl Effects for RealEffects {
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
        let reply = control::send(&run.file(dir::SOCKET), &command)?;
        if reply.ok { Ok(()) } else { Err(reply.message) }
    }

    fn prepare(&mut self, experiment: &Path, device: Option<&str>) -> Result<Vec<RunDir>, String> {
        let loaded = crate::plugins::load(&self.plugins, &mut |_| {})
            .map_err(|e| format!("reading {}: {e}", self.plugins.display()))?;
        let select = Selection {
            device,
            ..Selection::default()
        };
        prepare_runs(&loaded.catalog, experiment, &self.runs, select)
            .map(|(_, dirs)| dirs)
            .map_err(|e| format!("{e:#}"))
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
pub fn run(opts: Options) -> Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        anyhow::bail!("the dashboard needs a terminal; `probdrop-tui run FILE` trains without one");
    }
    open_log(&opts.runs)?;
    eprintln!(
        "probdrop-tui: loading plugins from {} … (log: {})",
        opts.plugins.display(),
        log_path(&opts.runs).display()
    );
    log(&format!(
        "dashboard {} started: runs {}, experiments {}, plugins {}",
        std::process::id(),
        opts.runs.display(),
        opts.experiments.display(),
        opts.plugins.display()
    ));
    let mut build_log = Vec::new();
    let found = crate::plugins::discover(&opts.plugins, &mut |l| {
        log(l);
        build_log.push(l.to_string())
    })
    .with_context(|| format!("reading {}", opts.plugins.display()))?;
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
    );
    app.compare_dir = opts.compare.clone();
    app.refresh();
    let watcher = crate::plugins::trial::Trial::this_binary()
        .ok()
        .and_then(|trial| Watcher::start(&opts.plugins, trial).ok());
    let mut fx = RealEffects {
        plugins: opts.plugins.clone(),
        runs: opts.runs.clone(),
        children: Vec::new(),
        suspended_for_editor: false,
    };

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

    let guard = TerminalGuard::enter()?;
    // A fresh terminal on the fresh alternate screen: its first frame draws every
    // cell. (`Terminal::clear` would query the cursor position, which some
    // terminals and slow links never answer.)
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    let depth = ColorDepth::detect();
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
    while !app.quit && !stop.load(Ordering::Relaxed) {
        #[cfg(debug_assertions)]
        if panic_at.is_some_and(|t| Instant::now() >= t) {
            panic!("injected panic (PROBDROP_TUI_TEST_PANIC_AFTER_MS)");
        }
        if app.dirty && last_draw.elapsed() >= FRAME {
            terminal.draw(|f| views::draw(f, &app, depth))?;
            app.dirty = false;
            last_draw = Instant::now();
        }
        let wait = REFRESH.saturating_sub(last_refresh.elapsed()).min(FRAME);
        // The wait is ours, not crossterm's: on a terminal that vanished without a
        // SIGHUP, crossterm's poll reads end-of-file forever and never returns.
        // (When stdin is not the terminal, crossterm reads /dev/tty: wait in it.)
        if !stdin_is_tty {
            event::poll(wait)?;
        } else if wait_for_input(wait) == Input::HungUp {
            log("the terminal hung up; closing (runs keep training)");
            break;
        }
        // Everything crossterm has (keys; resizes, which arrive by signal).
        while event::poll(Duration::ZERO)? {
            match event::read()? {
                Event::Key(key) if key.kind != KeyEventKind::Release => {
                    if let Some(action) = keys::action_for(key, app.view, app.prompt.is_some()) {
                        let before = app.message.clone();
                        app.apply(action, &mut fx);
                        if app.message != before {
                            log(&app.message);
                        }
                        if fx.suspended_for_editor {
                            // Back from the editor: blank the screen and start from
                            // fresh buffers so that the next frame redraws everything.
                            fx.suspended_for_editor = false;
                            execute!(std::io::stdout(), terminal::Clear(terminal::ClearType::All))?;
                            terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
                            app.dirty = true;
                        }
                    }
                }
                Event::Mouse(m) => match m.kind {
                    MouseEventKind::ScrollDown => app.apply(keys::Action::Down, &mut fx),
                    MouseEventKind::ScrollUp => app.apply(keys::Action::Up, &mut fx),
                    MouseEventKind::Down(_) if m.row == 0 => {
                        // A click on the tab bar: tabs are laid out evenly enough to map by text.
                        let mut x = 0u16;
                        for (i, v) in keys::View::ALL.iter().enumerate() {
                            let w = (format!("{} {}", i + 1, v.title()).len() + 3) as u16;
                            if m.column < x + w {
                                app.apply(keys::Action::Go(*v), &mut fx);
                                break;
                            }
                            x += w;
                        }
                    }
                    _ => {}
                },
                Event::Resize(_, _) => app.dirty = true,
                _ => {}
            }
        }
        if last_refresh.elapsed() >= REFRESH {
            last_refresh = Instant::now();
            app.refresh();
            let recorded = fx.reap();
            if !recorded.is_empty() {
                for r in &recorded {
                    log(r);
                }
                app.message = recorded.join("; ");
                app.refresh();
            }
            if let Some(w) = &watcher {
                for e in w.drain() {
                    app.dirty = true;
                    match e {
                        ReloadEvent::Ready { library, .. } => {
                            let line =
                                format!("reloaded {} {}", library.info.name, library.info.version);
                            if let Some(row) =
                                app.plugins.iter_mut().find(|p| p.name == library.info.name)
                            {
                                row.version = library.info.version.clone();
                                row.status =
                                    Ok(format!("reloaded, interface {}", library.interface));
                            }
                            log(&line);
                            app.build_log.push(line);
                        }
                        ReloadEvent::Refused { path, reason } => {
                            let line = format!("refused {}: {reason}", path.display());
                            log(&line);
                            app.build_log.push(line);
                        }
                        ReloadEvent::BuildOutput { line } => {
                            log(&line);
                            app.build_log.push(line)
                        }
                    }
                }
            }
        }
    }
    drop(terminal);
    drop(guard);
    let _ = std::io::stdout().flush();
    log(&format!(
        "dashboard {} closed; {} trainer(s) it started keep running",
        std::process::id(),
        fx.children.len()
    ));
    Ok(())
}
