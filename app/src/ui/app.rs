//! Dashboard state and what actions do to it (event → state; drawing is in
//! `views`). Actions that reach outside — starting a trainer, a control message,
//! the editor — go through `Effects`, so tests can run every key without spawning.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::keys::{Action, View};
use super::workspace::{self, DisplayState, ExperimentView, RunView};
use crate::experiment::Catalog;
use crate::plugins::Found;
use crate::run::control::Command as Ctl;
use crate::run::dir::metric::val_acc;
use crate::run::dir::{EventKind, RunDir, State};

/// Side effects the dashboard asks for.
pub trait Effects {
    fn start_trainer(&mut self, run: &RunDir) -> Result<(), String>;
    fn control(&mut self, run: &RunDir, command: Ctl) -> Result<(), String>;
    /// Prepares the run directories of an experiment (device override optional).
    fn prepare(&mut self, experiment: &Path, device: Option<&str>) -> Result<Vec<RunDir>, String>;
    fn edit(&mut self, file: &Path) -> Result<(), String>;
}

pub const SMOOTHING: [f64; 4] = [0.0, 0.6, 0.9, 0.98];
pub const ZOOM: [Option<f64>; 3] = [None, Some(1000.0), Some(100.0)];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Loss,
    Accuracy,
    DropRate,
}

/// One plugin as the Plugins view lists it.
#[derive(Clone, Debug)]
pub struct PluginRow {
    pub name: String,
    pub version: String,
    pub source: String,
    pub status: Result<String, String>,
}

impl PluginRow {
    pub fn from_found(f: &Found) -> PluginRow {
        let source = serde_json::to_value(f.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        match &f.outcome {
            Ok(lib) => PluginRow {
                name: lib.info.name.clone(),
                version: lib.info.version.clone(),
                source,
                status: Ok(format!("loaded, interface {}", lib.interface)),
            },
            Err(e) => PluginRow {
                name: f.id.clone(),
                version: "?".into(),
                source,
                status: Err(e.0.clone()),
            },
        }
    }
}

/// The open question "start this experiment's runs on which device?".
#[derive(Clone, Debug)]
pub struct StartPrompt {
    pub experiment: PathBuf,
    pub name: String,
    pub runs: usize,
    /// The device the file asks for.
    pub file_device: String,
    /// `None` keeps the file's device; `Some` overrides it.
    pub choices: Vec<Option<String>>,
    pub selected: usize,
}

impl StartPrompt {
    pub fn choice_label(&self, i: usize) -> String {
        match &self.choices[i] {
            None => format!("as in the file ({})", self.file_device),
            Some(d) => d.clone(),
        }
    }
}

/// One comparison (`probdrop-tui compare`) the Compare view shows.
#[derive(Clone, Debug)]
pub struct ComparisonView {
    pub dir: PathBuf,
    pub manifest: crate::compare::Manifest,
}

impl ComparisonView {
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

pub struct App {
    pub runs_dir: PathBuf,
    /// Where `compare` writes its directories (beside the runs by default).
    pub compare_dir: PathBuf,
    pub comparisons: Vec<ComparisonView>,
    pub selected_comparison: usize,
    pub selected_strategy: usize,
    pub experiments_dir: PathBuf,
    pub view: View,
    pub help: bool,
    pub quit: bool,
    pub runs: Vec<RunView>,
    pub experiments: Vec<ExperimentView>,
    pub plugins: Vec<PluginRow>,
    /// Lines of plugin build output (latest last).
    pub build_log: Vec<String>,
    pub catalog: Catalog,
    pub selected_run: usize,
    pub selected_experiment: usize,
    pub selected_plugin: usize,
    pub event_scroll: usize,
    /// Runs overlaid in the charts, by directory.
    pub marked: BTreeSet<PathBuf>,
    pub smoothing: usize,
    pub zoom: usize,
    pub log_scale: bool,
    pub metric: Metric,
    pub slot: usize,
    pub sample: usize,
    pub channel: usize,
    /// The last thing an action said (shown in the status line).
    pub message: String,
    /// Devices this build can open, offered when starting runs.
    pub devices: Vec<String>,
    pub prompt: Option<StartPrompt>,
    /// Anything changed since the last draw.
    pub dirty: bool,
    /// Zoomed, smoothed, downsampled curves, reused until their data or options
    /// change (drawing 8 × 100k points from scratch costs several ms a frame).
    pub curve_cache:
        std::cell::RefCell<std::collections::HashMap<super::views::CurveKey, Vec<(f64, f64)>>>,
}

impl App {
    pub fn new(
        runs_dir: PathBuf,
        experiments_dir: PathBuf,
        found: &[Found],
        build_log: Vec<String>,
    ) -> App {
        let catalog = crate::plugins::catalog_of(found);
        let mut app = App {
            compare_dir: runs_dir.with_file_name("compare"),
            comparisons: Vec::new(),
            selected_comparison: 0,
            selected_strategy: 0,
            runs_dir,
            experiments_dir,
            view: View::Runs,
            help: false,
            quit: false,
            runs: Vec::new(),
            experiments: Vec::new(),
            plugins: found.iter().map(PluginRow::from_found).collect(),
            build_log,
            catalog,
            selected_run: 0,
            selected_experiment: 0,
            selected_plugin: 0,
            event_scroll: 0,
            marked: BTreeSet::new(),
            smoothing: 0,
            zoom: 0,
            log_scale: false,
            metric: Metric::Loss,
            slot: 0,
            sample: 0,
            channel: 0,
            message: String::new(),
            devices: crate::train::device::available_devices(),
            prompt: None,
            dirty: true,
            curve_cache: Default::default(),
        };
        app.refresh();
        // A fresh checkout has no runs: open where the next step is, on the quickstart.
        if app.runs.is_empty() {
            app.view = View::Experiments;
            if let Some(i) = app
                .experiments
                .iter()
                .position(|e| e.name() == "quickstart.toml")
            {
                app.selected_experiment = i;
            }
        }
        app
    }

    /// Re-reads run directories and experiment files; true if anything changed.
    pub fn refresh(&mut self) -> bool {
        let mut changed = workspace::scan_runs(&self.runs_dir, &mut self.runs);
        changed |= workspace::scan_experiments(
            &self.experiments_dir,
            &self.catalog,
            &mut self.experiments,
        );
        changed |= self.scan_comparisons();
        self.selected_run = self.selected_run.min(self.runs.len().saturating_sub(1));
        self.selected_experiment = self
            .selected_experiment
            .min(self.experiments.len().saturating_sub(1));
        self.dirty |= changed;
        changed
    }

    /// Re-reads the comparisons' manifests (small files); true if any changed.
    fn scan_comparisons(&mut self) -> bool {
        let found: Vec<ComparisonView> = crate::compare::list(&self.compare_dir)
            .into_iter()
            .filter_map(|dir| {
                let manifest = crate::compare::Manifest::load(&dir).ok()?;
                Some(ComparisonView { dir, manifest })
            })
            .collect();
        let changed = found.len() != self.comparisons.len()
            || found
                .iter()
                .zip(&self.comparisons)
                .any(|(a, b)| a.dir != b.dir || a.manifest != b.manifest);
        self.comparisons = found;
        self.selected_comparison = self
            .selected_comparison
            .min(self.comparisons.len().saturating_sub(1));
        changed
    }

    /// The selected comparison's table, from the runs as the dashboard has read them.
    pub fn comparison_table(&self) -> Option<(&ComparisonView, crate::compare::Table)> {
        let c = self.comparisons.get(self.selected_comparison)?;
        let table = crate::compare::table(&c.manifest, |e| self.outcome(&e.dir));
        Some((c, table))
    }

    fn outcome(&self, dir: &Path) -> crate::compare::Outcome {
        let Some(r) = self.runs.iter().find(|r| r.dir.path == dir) else {
            return crate::compare::Outcome::default();
        };
        let accs: Vec<f64> = r
            .series
            .get(&val_acc())
            .map(|s| s.points.iter().map(|p| p.1).collect())
            .unwrap_or_default();
        crate::compare::Outcome::from_val_acc(r.status.as_ref().map(|s| s.state), &accs)
    }

    pub fn selected_run(&self) -> Option<&RunView> {
        self.runs.get(self.selected_run)
    }

    /// The runs the charts overlay: the marked ones, else the selected one.
    pub fn chart_runs(&self) -> Vec<&RunView> {
        let marked: Vec<&RunView> = self
            .runs
            .iter()
            .filter(|r| self.marked.contains(&r.dir.path))
            .collect();
        if marked.is_empty() {
            self.selected_run().into_iter().collect()
        } else {
            marked
        }
    }

    /// Events of every run, newest last: (wall, run name, kind, message).
    pub fn all_events(&self) -> Vec<(f64, String, EventKind, String)> {
        let mut all: Vec<(f64, String, EventKind, String)> = self
            .runs
            .iter()
            .flat_map(|r| {
                let name = r.info.label.clone() + " s" + &r.info.seed.to_string();
                r.events
                    .iter()
                    .map(move |e| (e.wall, name.clone(), e.kind.clone(), e.message.clone()))
            })
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        all
    }

    fn list_len(&self) -> usize {
        match self.view {
            View::Runs | View::Charts | View::Masks => self.runs.len(),
            View::Experiments => self.experiments.len(),
            View::Plugins => self.plugins.len(),
            View::Events => self.all_events().len(),
            View::Compare => self
                .comparisons
                .get(self.selected_comparison)
                .map_or(0, |c| c.manifest.strategies.len()),
        }
    }

    fn cursor(&mut self) -> &mut usize {
        match self.view {
            View::Runs | View::Charts | View::Masks => &mut self.selected_run,
            View::Experiments => &mut self.selected_experiment,
            View::Plugins => &mut self.selected_plugin,
            View::Events => &mut self.event_scroll,
            View::Compare => &mut self.selected_strategy,
        }
    }

    /// Applies one action.
    pub fn apply(&mut self, action: Action, fx: &mut dyn Effects) {
        self.dirty = true;
        let len = self.list_len();
        match action {
            Action::Quit => self.quit = true,
            Action::ToggleHelp => self.help = !self.help,
            Action::NextView | Action::PrevView => {
                let i = View::ALL.iter().position(|v| *v == self.view).unwrap_or(0);
                let n = View::ALL.len();
                let next = if action == Action::NextView {
                    (i + 1) % n
                } else {
                    (i + n - 1) % n
                };
                self.view = View::ALL[next];
                self.help = false;
            }
            Action::Go(v) => {
                self.view = v;
                self.help = false;
            }
            Action::Up => {
                let c = self.cursor();
                *c = c.saturating_sub(1);
            }
            Action::Down => {
                let c = self.cursor();
                *c = (*c + 1).min(len.saturating_sub(1));
            }
            Action::Top => *self.cursor() = 0,
            Action::Bottom => *self.cursor() = len.saturating_sub(1),
            Action::Mark => {
                if let Some(r) = self.selected_run() {
                    let p = r.dir.path.clone();
                    if !self.marked.remove(&p) {
                        self.marked.insert(p);
                    }
                }
            }
            Action::MarkStrategy => {
                let Some(c) = self.comparisons.get(self.selected_comparison) else {
                    return;
                };
                let Some(label) = c.manifest.strategies.get(self.selected_strategy) else {
                    return;
                };
                let dirs: Vec<PathBuf> = c
                    .manifest
                    .current()
                    .filter(|e| &e.label == label)
                    .map(|e| e.dir.clone())
                    .collect();
                let all_marked = dirs.iter().all(|d| self.marked.contains(d));
                for d in &dirs {
                    if all_marked {
                        self.marked.remove(d);
                    } else {
                        self.marked.insert(d.clone());
                    }
                }
                self.message = format!(
                    "{label}: {} run(s) {} for the charts",
                    dirs.len(),
                    if all_marked { "unmarked" } else { "marked" }
                );
            }
            Action::NextComparison | Action::PrevComparison => {
                let n = self.comparisons.len().max(1);
                self.selected_comparison = if action == Action::NextComparison {
                    (self.selected_comparison + 1) % n
                } else {
                    (self.selected_comparison + n - 1) % n
                };
                self.selected_strategy = 0;
            }
            Action::Pause | Action::Resume | Action::Stop => {
                let Some(r) = self.selected_run() else { return };
                let (cmd, verb) = match action {
                    Action::Pause => (Ctl::Pause, "pause"),
                    Action::Resume => (Ctl::Resume, "resume"),
                    _ => (Ctl::Stop, "stop"),
                };
                let name = r.name();
                let dir = r.dir.clone();
                if !r.alive {
                    self.message = format!("{name}: no trainer running");
                    return;
                }
                self.message = match fx.control(&dir, cmd) {
                    Ok(()) => format!("{verb} sent to {name}"),
                    Err(e) => format!("{verb} failed: {e}"),
                };
            }
            Action::Restart => {
                let Some(r) = self.selected_run() else { return };
                let name = r.name();
                let dir = r.dir.clone();
                let restartable = match r.state() {
                    DisplayState::Lost | DisplayState::Unknown => true,
                    DisplayState::Is(s) => {
                        matches!(s, State::Stopped | State::Failed | State::Queued)
                    }
                };
                if r.alive || !restartable {
                    self.message = format!("{name} is {}: nothing to restart", r.state().label());
                    return;
                }
                self.message = match fx.start_trainer(&dir) {
                    Ok(()) => format!("{name}: trainer started (from its checkpoint)"),
                    Err(e) => format!("{name}: could not start: {e}"),
                };
            }
            Action::StartRuns => {
                let Some(e) = self.experiments.get(self.selected_experiment) else {
                    return;
                };
                let name = e.name();
                let exp = match &e.result {
                    Ok(exp) => exp,
                    Err(_) => {
                        self.message = format!("{name} is invalid: fix it first (see the errors)");
                        return;
                    }
                };
                if exp.data_missing.is_some() {
                    self.message = format!("{name}: its data is not on this machine (see details)");
                    return;
                }
                let file_device = exp.file.device.clone();
                let mut choices = vec![None];
                choices.extend(
                    self.devices
                        .iter()
                        .filter(|d| **d != file_device)
                        .map(|d| Some(d.clone())),
                );
                self.prompt = Some(StartPrompt {
                    experiment: e.path.clone(),
                    name,
                    runs: exp.runs().len(),
                    file_device,
                    choices,
                    selected: 0,
                });
            }
            Action::PromptNext | Action::PromptPrev => {
                if let Some(p) = &mut self.prompt {
                    let n = p.choices.len();
                    p.selected = if action == Action::PromptNext {
                        (p.selected + 1) % n
                    } else {
                        (p.selected + n - 1) % n
                    };
                }
            }
            Action::PromptCancel => {
                if self.prompt.take().is_some() {
                    self.message = "nothing started".into();
                }
            }
            Action::PromptConfirm => {
                let Some(p) = self.prompt.take() else { return };
                let device = p.choices[p.selected].clone();
                let name = p.name;
                self.message = match fx.prepare(&p.experiment, device.as_deref()) {
                    Ok(dirs) => {
                        let mut started = 0;
                        let mut errors = Vec::new();
                        for d in &dirs {
                            match fx.start_trainer(d) {
                                Ok(()) => started += 1,
                                Err(e) => errors.push(e),
                            }
                        }
                        let on = device.as_deref().unwrap_or(&p.file_device);
                        if errors.is_empty() {
                            format!("{name}: started {started} run(s) on {on}")
                        } else {
                            format!("{name}: started {started}, failed: {}", errors.join("; "))
                        }
                    }
                    Err(e) => format!("{name}: {e}"),
                };
                self.refresh();
            }
            Action::Edit => {
                let Some(e) = self.experiments.get(self.selected_experiment) else {
                    return;
                };
                let path = e.path.clone();
                if let Err(err) = fx.edit(&path) {
                    self.message = format!("editor: {err}");
                }
                self.refresh();
                if let Some(e) = self.experiments.iter().find(|e| e.path == path) {
                    self.message = match &e.result {
                        Ok(_) => format!(
                            "{}: valid; running runs take live changes at their next step",
                            e.name()
                        ),
                        Err(errors) => format!("{}: {} error(s)", e.name(), errors.len()),
                    };
                }
            }
            Action::CycleSmoothing => self.smoothing = (self.smoothing + 1) % SMOOTHING.len(),
            Action::ToggleLog => self.log_scale = !self.log_scale,
            Action::CycleZoom => self.zoom = (self.zoom + 1) % ZOOM.len(),
            Action::CycleMetric => {
                self.metric = match self.metric {
                    Metric::Loss => Metric::Accuracy,
                    Metric::Accuracy => Metric::DropRate,
                    Metric::DropRate => Metric::Loss,
                }
            }
            Action::NextSlot => self.slot += 1,
            Action::PrevSlot => self.slot = self.slot.saturating_sub(1),
            Action::NextSample => self.sample += 1,
            Action::PrevSample => self.sample = self.sample.saturating_sub(1),
            Action::NextChannel => self.channel += 1,
            Action::PrevChannel => self.channel = self.channel.saturating_sub(1),
        }
    }
}
