//! Dashboard state and what actions do to it (event → state; drawing is in
//! `views`). Actions that reach outside — starting a trainer, a control message,
//! the editor, archiving or deleting a run — go through `Effects`, so tests can
//! run every key without spawning.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::keys::{Action, View};
use super::manage::{Ask, Confirm, Entry, TextKey};
use super::runlist::RunList;
use super::state::{
    ChartOptions, FOLLOW_NEWEST, MaskCursor, Selected, SweepCursor, cycle, move_cursor,
};
use super::workspace::{self, DisplayState, ExperimentView, RunView};
use crate::experiment::{Catalog, DeviceName, Machine};
use crate::plugins::Found;
use crate::plugins::watch::ReloadEvent;
use crate::run::comparison::{Table, grid};
use crate::run::control::Command as Ctl;
use crate::run::dir::metric::{self, SeriesKey, Split};
use crate::run::dir::{EventKind, RunDir, State};

/// Side effects the dashboard asks for.
pub trait Effects {
    fn start_trainer(&mut self, run: &RunDir) -> Result<(), String>;
    fn control(&mut self, run: &RunDir, command: Ctl) -> Result<(), String>;
    /// Prepares the run directories of an experiment: every run, or the one
    /// picked, on the file's device or the one picked.
    fn prepare(&mut self, experiment: &Path, pick: &Pick) -> Result<Vec<RunDir>, String>;
    /// Starts `compare` over an experiment in the background; says where its
    /// output goes.
    fn start_compare(&mut self, experiment: &Path, device: Option<&str>)
    -> Result<PathBuf, String>;
    fn edit(&mut self, file: &Path) -> Result<(), String>;
    /// Moves a finished run to the archive; says where it went.
    fn archive(&mut self, run: &RunDir) -> Result<PathBuf, String>;
    /// Deletes a finished run's directory.
    fn delete(&mut self, run: &RunDir) -> Result<(), String>;
    /// Writes a run's tags and note.
    fn save_notes(&mut self, run: &RunDir, notes: &crate::run::notes::Notes) -> Result<(), String>;
    /// Writes a view's figure (the `w` key) under `out`; the paths written.
    fn export(
        &mut self,
        figure: &super::export_view::Figure,
        out: &Path,
    ) -> Result<Vec<PathBuf>, String>;
    /// Collects trainers that exited; says what was recorded about each.
    fn reap(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Which runs of an experiment to prepare, and where.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pick {
    /// `None` keeps the file's device.
    pub device: Option<String>,
    /// Only this strategy label and seed.
    pub only: Option<(String, u64)>,
}

/// Everything that changes the dashboard's state.
#[derive(Debug)]
pub enum Input {
    /// What a key asked for.
    Action(Action),
    /// A key typed into an open line (filter, tags, note).
    Text(TextKey),
    /// Time to re-read run directories, experiment files and comparisons, and
    /// to collect exited trainers.
    Tick,
    /// The plugin watcher's news: a reload, a refusal, a line of build output.
    Reload(ReloadEvent),
    /// The terminal changed size (everything is drawn again).
    Resized,
    /// A new look at the machine: CPU, memory, GPUs.
    System(super::system::Sample),
}

impl From<Action> for Input {
    fn from(action: Action) -> Input {
        Input::Action(action)
    }
}

/// One plugin as the Plugins view lists it.
#[derive(Clone, Debug)]
pub struct PluginRow {
    pub name: String,
    pub version: String,
    pub source: String,
    pub status: Result<String, String>,
    /// Why its last build or library was refused, while it keeps this one.
    pub last_build: Option<String>,
}

impl PluginRow {
    pub fn from_found(f: &Found, last_build: Option<&String>) -> PluginRow {
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
                last_build: last_build.cloned(),
            },
            Err(e) => PluginRow {
                name: f.id.clone(),
                version: "?".into(),
                source,
                status: Err(e.0.clone()),
                last_build: last_build.cloned(),
            },
        }
    }
}

/// The open question "start this experiment's runs (or a comparison of
/// them) on which device?".
#[derive(Clone, Debug)]
pub struct StartPrompt {
    /// A comparison over seeds (`compare`), not the file's runs alone.
    pub compare: bool,
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
    pub manifest: crate::run::comparison::Manifest,
    /// Its manifest's stamp when read: read again only when it changes.
    stamp: Option<crate::run::files::Stamp>,
}

impl ComparisonView {
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// One event as the Events view lists it.
#[derive(Clone, Debug)]
pub struct EventRow {
    pub wall: f64,
    pub step: u64,
    /// The run's directory (what the filter compares).
    pub run: PathBuf,
    /// Strategy, seed and start time.
    pub name: String,
    pub kind: EventKind,
    pub message: String,
}

/// A status-line message stays this many ticks (10 s at the dashboard's two
/// ticks a second), then the line shows the key hint again.
pub const MESSAGE_TICKS: u32 = 20;

pub struct App {
    pub runs_dir: PathBuf,
    pub experiments_dir: PathBuf,
    /// Where `compare` writes its directories (beside the runs by default).
    pub compare_dir: PathBuf,
    /// Where `w` writes figures (beside the runs, as `export`'s default).
    pub exports_dir: PathBuf,

    // What the dashboard has read.
    pub runs: Vec<RunView>,
    pub experiments: Vec<ExperimentView>,
    pub comparisons: Vec<ComparisonView>,
    pub plugins: Vec<PluginRow>,
    /// Every strategy of the plugins directory as last heard of (at start,
    /// then from the watcher): the one source of `plugins` and `catalog`.
    pub found: Vec<Found>,
    /// Why the last build (or library) of a loaded strategy was refused, by
    /// its crate directory or file: it keeps the library it had.
    pub last_builds: std::collections::BTreeMap<PathBuf, String>,
    /// Lines of plugin build output (latest last).
    pub build_log: Vec<String>,
    pub catalog: Catalog,
    /// What experiments are checked against besides the catalog.
    pub machine: Arc<dyn Machine>,
    /// Devices this build can open, offered when starting runs.
    pub devices: Vec<String>,
    /// The machine's latest figures (none before the first sample).
    pub system: Option<super::system::Sample>,

    // Where the user is and what they chose.
    pub view: View,
    pub help: bool,
    /// Which page of the help (when it does not fit the terminal).
    pub help_page: usize,
    pub quit: bool,
    pub prompt: Option<StartPrompt>,
    /// A yes/no question about a run (stop, archive, delete, start again).
    pub confirm: Option<Confirm>,
    /// A line being typed (the runs filter, a run's tags or note).
    pub entry: Option<Entry>,
    /// The Runs view's filter and order.
    pub run_list: RunList,
    pub selected: Selected,
    /// Runs overlaid in the charts, by directory.
    pub marked: BTreeSet<PathBuf>,
    pub charts: ChartOptions,
    pub masks: MaskCursor,
    pub sweep: SweepCursor,
    /// Runs: the config panel is open.
    pub config_open: bool,
    /// Runs: the selected run's trainer.log is shown under the table.
    pub log_open: bool,
    /// Events: the selected entry is open in full.
    pub event_open: bool,
    /// Events: only this run's entries (by directory).
    pub events_of: Option<PathBuf>,
    /// The last thing an action said (shown in the status line).
    pub message: String,
    /// Ticks since the message last changed; it goes after [`MESSAGE_TICKS`].
    pub message_age: u32,
    /// Anything changed since the last draw.
    pub dirty: bool,
    /// Wall-clock seconds at the last tick: what the views measure how long
    /// ago something happened against (tests set it).
    pub now: f64,
}

impl App {
    pub fn new(
        runs_dir: PathBuf,
        experiments_dir: PathBuf,
        found: &[Found],
        build_log: Vec<String>,
        machine: Arc<dyn Machine>,
    ) -> App {
        let mut app = App {
            compare_dir: runs_dir.with_file_name("compare"),
            exports_dir: runs_dir.with_file_name("exports"),
            runs_dir,
            experiments_dir,
            runs: Vec::new(),
            experiments: Vec::new(),
            comparisons: Vec::new(),
            plugins: Vec::new(),
            found: found.to_vec(),
            last_builds: Default::default(),
            build_log,
            catalog: Catalog::default(),
            devices: machine.devices(),
            system: None,
            machine,
            view: View::Runs,
            help: false,
            help_page: 0,
            quit: false,
            prompt: None,
            confirm: None,
            entry: None,
            run_list: RunList::default(),
            selected: Selected::default(),
            marked: BTreeSet::new(),
            charts: ChartOptions::default(),
            masks: MaskCursor::default(),
            sweep: SweepCursor::default(),
            config_open: false,
            log_open: false,
            event_open: false,
            events_of: None,
            message: String::new(),
            message_age: 0,
            dirty: true,
            now: crate::run::dir::now(),
        };
        app.take_in_plugins();
        app.refresh();
        app.open_where_the_next_step_is();
        app
    }

    /// The catalog and the Plugins view from `found` (two libraries giving
    /// one name refused, as `load` refuses them), and every experiment file
    /// checked again against it.
    fn take_in_plugins(&mut self) {
        let mut found = self.found.clone();
        crate::plugins::registry::refuse_name_clashes(&mut found);
        self.catalog = crate::plugins::catalog_of(&found);
        self.plugins = found
            .iter()
            .map(|f| PluginRow::from_found(f, self.last_builds.get(&f.origin)))
            .collect();
        for e in &mut self.experiments {
            e.modified = None;
        }
        self.dirty = true;
    }

    /// A fresh checkout has no runs: open on the quickstart experiment.
    fn open_where_the_next_step_is(&mut self) {
        if !self.runs.is_empty() {
            return;
        }
        self.view = View::Experiments;
        if let Some(i) = self
            .experiments
            .iter()
            .position(|e| e.name() == "quickstart.toml")
        {
            self.selected.experiment = i;
        }
    }

    /// A path as the status line names it: from the workspace (the folder
    /// holding the runs) when it lies inside it, so that it fits 80 columns.
    pub fn shown_path(&self, path: &Path) -> String {
        let workspace = self.runs_dir.parent().unwrap_or(Path::new(""));
        let shown = match path.strip_prefix(workspace) {
            Ok(inside) if !workspace.as_os_str().is_empty() => inside,
            _ => path,
        };
        shown.display().to_string()
    }

    /// Whether some run's logs are still being read in (refresh sooner).
    pub fn catching_up(&self) -> bool {
        self.runs.iter().any(RunView::behind)
    }

    /// Re-reads run directories and experiment files; true if anything changed.
    pub fn refresh(&mut self) -> bool {
        let mut changed = workspace::scan_runs(&self.runs_dir, &mut self.runs);
        // The selection follows its file, not its place: a new file that
        // sorts before it must not make `n` start another experiment.
        let chosen = self
            .experiments
            .get(self.selected.experiment)
            .map(|e| e.path.clone());
        changed |= workspace::scan_experiments(
            &self.experiments_dir,
            &self.catalog,
            self.machine.as_ref(),
            &mut self.experiments,
        );
        if let Some(i) = chosen.and_then(|p| self.experiments.iter().position(|e| e.path == p)) {
            self.selected.experiment = i;
        }
        changed |= self.scan_comparisons();
        let s = &mut self.selected;
        s.run = s.run.min(self.runs.len().saturating_sub(1));
        s.experiment = s.experiment.min(self.experiments.len().saturating_sub(1));
        self.dirty |= changed;
        changed
    }

    /// Re-reads the comparisons' manifests that changed; true if any did.
    fn scan_comparisons(&mut self) -> bool {
        use crate::run::comparison::{MANIFEST, Manifest, list};
        let mut old = std::mem::take(&mut self.comparisons);
        let before = old.len();
        let mut changed = false;
        let found: Vec<ComparisonView> = list(&self.compare_dir)
            .into_iter()
            .filter_map(|dir| {
                let stamp = crate::run::files::stamp(&dir.join(MANIFEST));
                let known = old.iter().position(|c| c.dir == dir);
                let known = known.map(|i| old.swap_remove(i));
                if known.as_ref().is_some_and(|c| c.stamp == stamp) {
                    return known;
                }
                let manifest = Manifest::load(&dir).ok()?;
                changed |= known.is_none_or(|c| c.manifest != manifest);
                Some(ComparisonView {
                    dir,
                    manifest,
                    stamp,
                })
            })
            .collect();
        changed |= found.len() != before;
        self.comparisons = found;
        self.selected.comparison = self
            .selected
            .comparison
            .min(self.comparisons.len().saturating_sub(1));
        changed
    }

    /// The selected comparison's table, from the runs as the dashboard has read them.
    pub fn comparison_table(&self) -> Option<(&ComparisonView, Table)> {
        let c = self.comparisons.get(self.selected.comparison)?;
        let table = crate::run::comparison::table(&c.manifest, |e| self.outcome(&e.dir));
        Some((c, table))
    }

    /// The Sweep view's grid as its cursor picks it, with the comparison
    /// and table it comes from.
    pub fn sweep_grid(&self) -> Option<(&ComparisonView, Table, grid::Grid)> {
        let (c, t) = self.comparison_table()?;
        let arms = grid::arms(&t);
        let arm = arms.get(self.sweep.arm % arms.len().max(1))?;
        let axes = self.sweep.axes_of(arm.keys.len());
        let g = grid::grid(&t, arm, axes, &self.sweep.held, self.sweep.measure);
        Some((c, t, g))
    }

    /// The Sweep view's keys, there (not while the help is open).
    fn sweep_keys(&mut self, action: Action) -> bool {
        if self.view != View::Sweep || self.help {
            return false;
        }
        let arms = self
            .comparison_table()
            .map(|(_, t)| grid::arms(&t))
            .unwrap_or_default();
        self.sweep.apply(action, &arms)
    }

    /// A run's outcome from its series: the last and the best validation
    /// accuracy and the mean drop rates are exact however the series are
    /// downsampled (each keeps its last value, maximum, sum and count).
    pub fn outcome(&self, dir: &Path) -> crate::run::comparison::Outcome {
        use crate::run::comparison::{Dropping, Outcome};
        let Some(r) = self.runs.iter().find(|r| r.dir.path == dir) else {
            return Outcome::default();
        };
        let mean = |is: &dyn Fn(&str) -> bool| -> Option<f64> {
            // Over the training split's series whose metric `is` picks.
            let (sum, n) = r
                .series
                .iter()
                .filter(|(key, _)| key.split == Split::Train && is(&key.metric))
                .map(|(_, s)| s.sum_count())
                .fold((0.0, 0), |(s, n), (s1, n1)| (s + s1, n + n1));
            (n > 0).then(|| sum / n as f64)
        };
        let accs = r.series.get(&SeriesKey::val_acc());
        let p = mean(&|name| name == metric::P);
        let dropped = mean(&|name| metric::is_dropped(name));
        Outcome {
            state: r.status.as_ref().map(|s| s.state),
            final_acc: accs.and_then(|s| s.last()).map(|p| p.1),
            best_acc: accs.and_then(|s| s.max()),
            dropping: p.zip(dropped).map(|(p, dropped)| Dropping { p, dropped }),
            changed_mid_run: r.provenance.changed_mid_run(),
        }
    }

    /// Whether a question is open (it takes every key).
    pub fn prompt_open(&self) -> bool {
        self.prompt.is_some() || self.confirm.is_some()
    }

    /// What a key means now: a typed character while a line is open, else
    /// the key map's action.
    pub fn input_for(&self, key: crossterm::event::KeyEvent) -> Option<Input> {
        if self.entry.is_some() {
            return TextKey::of(key).map(Input::Text);
        }
        super::keys::action_for(key, self.view, self.prompt_open()).map(Input::Action)
    }

    pub fn selected_run(&self) -> Option<&RunView> {
        self.runs.get(self.selected.run)
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

    /// Names that tell groups of runs apart (a group: one run, or the seeds
    /// of one configuration averaged, named by how many).
    pub fn names_of_groups(&self, groups: &[Vec<&RunView>]) -> Vec<String> {
        let named: Vec<_> = groups
            .iter()
            .filter_map(|g| {
                let mut n = g.first()?.named();
                n.seeds = g.iter().map(|r| r.info.seed).collect();
                Some(n)
            })
            .collect();
        super::identity::names(&named)
    }

    /// Events of every run, oldest first.
    pub fn all_events(&self) -> Vec<EventRow> {
        let mut all: Vec<EventRow> = self
            .runs
            .iter()
            .flat_map(|r| {
                let name = format!("{} s{} {}", r.info.label, r.info.seed, r.started);
                r.events.iter().map(move |e| EventRow {
                    wall: e.wall,
                    step: e.step,
                    run: r.dir.path.clone(),
                    name: name.clone(),
                    kind: e.kind.clone(),
                    message: e.message.clone(),
                })
            })
            .collect();
        all.sort_by(|a, b| a.wall.total_cmp(&b.wall));
        all
    }

    /// The events the Events view lists: every run's, or only the run it is
    /// filtered to.
    pub fn events(&self) -> Vec<EventRow> {
        let mut all = self.all_events();
        if let Some(run) = &self.events_of {
            all.retain(|e| &e.run == run);
        }
        all
    }

    /// The event the Events cursor is on (the newest while following).
    pub fn selected_event(&self) -> Option<EventRow> {
        let mut events = self.events();
        let i = self.selected.event.min(events.len().checked_sub(1)?);
        Some(events.swap_remove(i))
    }

    /// The list the current view moves through: its length and its cursor;
    /// `None` for the views of runs, which move through the runs as listed
    /// (`move_in_runs`).
    fn list(&mut self) -> Option<(usize, &mut usize)> {
        let len = match self.view {
            View::Runs | View::Charts | View::Masks => return None,
            View::Experiments => self.experiments.len(),
            View::Plugins => self.plugins.len(),
            View::Events => self.events().len(),
            // Its keys are taken before (`sweep_keys`).
            View::Sweep => 0,
            View::Compare => self
                .comparisons
                .get(self.selected.comparison)
                .map_or(0, |c| c.manifest.strategies.len()),
        };
        let s = &mut self.selected;
        let cursor = match self.view {
            View::Experiments => &mut s.experiment,
            View::Plugins => &mut s.plugin,
            View::Events => &mut s.event,
            _ => &mut s.strategy,
        };
        Some((len, cursor))
    }

    /// Applies one input: the one way the dashboard's state changes.
    pub fn apply(&mut self, input: impl Into<Input>, fx: &mut dyn Effects) {
        self.dirty = true;
        let said = self.message.clone();
        match input.into() {
            Input::Action(action) => self.act(action, fx),
            Input::Text(key) => self.type_key(key, fx),
            Input::Tick => self.tick(fx),
            Input::Reload(event) => self.reloaded(event),
            Input::Resized => {}
            Input::System(sample) => self.system = Some(sample),
        }
        if self.message != said {
            self.message_age = 0;
        }
    }

    fn act(&mut self, action: Action, fx: &mut dyn Effects) {
        if self.charts.apply(action)
            || self.masks.apply(action)
            || self.navigate(action)
            || self.sweep_keys(action)
        {
            return;
        }
        if matches!(
            action,
            Action::Up | Action::Down | Action::Top | Action::Bottom
        ) {
            if self.help {
                // A counter through the help's pages: the view takes it
                // modulo how many the terminal needs.
                self.help_page = match action {
                    Action::Down => self.help_page + 1,
                    Action::Up => self.help_page.saturating_sub(1),
                    _ => 0,
                };
                return;
            }
            self.move_in_list(action);
            return;
        }
        match action {
            Action::Mark => self.mark_run(),
            Action::MarkStrategy => self.mark_strategy(),
            Action::MarkCell => self.mark_cell(),
            Action::NextComparison | Action::PrevComparison => {
                let n = self.comparisons.len();
                let forward = action == Action::NextComparison;
                self.selected.comparison = cycle(self.selected.comparison, n, forward);
                self.selected.strategy = 0;
                self.sweep = SweepCursor::default();
            }
            Action::Pause | Action::Resume | Action::Stop => self.control_run(action, fx),
            Action::Restart => self.restart_run(fx),
            Action::StartRuns => self.open_start_prompt(false),
            Action::PromptNext | Action::PromptPrev => {
                if let Some(p) = &mut self.prompt {
                    let forward = action == Action::PromptNext;
                    p.selected = cycle(p.selected, p.choices.len(), forward);
                }
            }
            Action::PromptCancel if self.confirm.is_some() => {
                let asked = self.confirm.take().map(|c| c.ask);
                self.message = match asked {
                    Some(Ask::Stop) => "nothing stopped",
                    _ => "nothing changed",
                }
                .into();
            }
            Action::PromptCancel if self.prompt.take().is_some() => {
                self.message = "nothing started".into();
            }
            Action::PromptConfirm if self.confirm.is_some() => self.answer_yes(fx),
            Action::PromptConfirm => self.start_runs(fx),
            Action::StartCompare => self.open_start_prompt(true),
            Action::FilterRuns | Action::TagRun | Action::NoteRun => self.open_entry(action),
            Action::SortRuns => self.cycle_sort(),
            Action::Archive => self.ask_about_run(Ask::Archive),
            Action::Delete => self.ask_about_run(Ask::Delete),
            Action::Rerun => self.ask_about_run(Ask::Rerun),
            Action::Edit => self.edit_experiment(fx),
            Action::OpenEvent => self.event_open = !self.event_open,
            Action::ToggleConfig => self.config_open = !self.config_open,
            Action::ToggleLogPane => self.log_open = !self.log_open,
            Action::FilterEvents => self.filter_events(),
            Action::ExportView => self.export_view(fx),
            Action::NextDropped => self.jump_to_drops(),
            _ => {}
        }
    }

    /// Moves the current view's cursor. In Events, moving from "the newest"
    /// starts at the newest, and reaching the newest follows it again.
    fn move_in_list(&mut self, action: Action) {
        let events = self.view == View::Events;
        let Some((len, cursor)) = self.list() else {
            return self.move_in_runs(action);
        };
        *cursor = (*cursor).min(len.saturating_sub(1));
        move_cursor(cursor, action, len);
        if events && *cursor + 1 >= len {
            *cursor = FOLLOW_NEWEST;
        }
    }

    /// Views, help and quitting; true if `action` was one of them.
    fn navigate(&mut self, action: Action) -> bool {
        match action {
            Action::Quit => self.quit = true,
            Action::ToggleHelp => self.help = !self.help,
            Action::NextView | Action::PrevView => {
                let i = View::ALL.iter().position(|v| *v == self.view).unwrap_or(0);
                let next = cycle(i, View::ALL.len(), action == Action::NextView);
                self.view = View::ALL[next];
                self.help = false;
            }
            Action::Go(v) => {
                self.view = v;
                self.help = false;
            }
            _ => return false,
        }
        true
    }

    fn tick(&mut self, fx: &mut dyn Effects) {
        self.now = crate::run::dir::now();
        self.message_age += 1;
        if self.message_age >= MESSAGE_TICKS {
            self.message.clear();
        }
        self.refresh();
        let recorded = fx.reap();
        if !recorded.is_empty() {
            self.message = recorded.join("; ");
            self.refresh();
        }
    }

    /// The watcher's news: a new or rebuilt library joins the catalog (a
    /// strategy added while the dashboard runs becomes usable at once), a
    /// refused one is shown with its reason, a removed one leaves.
    fn reloaded(&mut self, event: ReloadEvent) {
        self.build_log.push(event.to_string());
        match event {
            ReloadEvent::Ready { library, .. } => self.take_library(library),
            ReloadEvent::Refused { path, reason } => self.refused(path, reason),
            ReloadEvent::Gone { path } => self
                .found
                .retain(|f| f.origin != path && f.library_path.as_ref() != Some(&path)),
            ReloadEvent::BuildOutput { .. } => return,
        }
        self.take_in_plugins();
        self.refresh();
    }

    fn take_library(&mut self, library: crate::plugins::Library) {
        let origin = library
            .built_from
            .as_ref()
            .map_or(library.path.clone(), |s| s.dir.clone());
        self.last_builds.remove(&origin);
        let known = self
            .found
            .iter_mut()
            .find(|f| f.origin == origin || f.library_path.as_ref() == Some(&library.path));
        match known {
            Some(f) => {
                f.library_path = Some(library.path.clone());
                f.outcome = Ok(library);
            }
            None => self.found.push(Found {
                id: library.info.name.clone(),
                source: if library.built_from.is_some() {
                    crate::plugins::Source::Crate
                } else {
                    crate::plugins::Source::Prebuilt
                },
                origin,
                library_path: Some(library.path.clone()),
                outcome: Ok(library),
            }),
        }
    }

    /// A build or library refused: a strategy already loaded keeps its
    /// library (runs still use it) and shows why the new one was not taken.
    fn refused(&mut self, path: PathBuf, reason: String) {
        let known = self
            .found
            .iter_mut()
            .find(|f| f.origin == path || f.library_path.as_ref() == Some(&path));
        match known {
            Some(f) => {
                self.last_builds.insert(f.origin.clone(), reason);
            }
            None => self.found.push(Found {
                id: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                source: crate::plugins::Source::Prebuilt,
                origin: path,
                library_path: None,
                outcome: Err(crate::plugins::LoadError(reason)),
            }),
        }
    }

    /// Masks: the next channel (or sample) with a dropped position, or why
    /// the cursor stays.
    fn jump_to_drops(&mut self) {
        let Some(run) = self.selected_run() else {
            return;
        };
        match super::views::masks::next_with_drops(run, &self.masks) {
            Some(cursor) => self.masks = cursor,
            None => {
                self.message =
                    "nothing dropped in any sample or channel of this slot at this step".into()
            }
        }
    }

    /// Writes the view as figures; says where, or why not.
    fn export_view(&mut self, fx: &mut dyn Effects) {
        let written =
            super::export_view::figure(self).and_then(|f| fx.export(&f, &self.exports_dir));
        self.message = match written {
            Ok(paths) => format!("wrote {}", self.shown_files(&paths)),
            Err(why) => why,
        };
    }

    /// Files as the status line names them: one figure's formats once
    /// (`exports/chart-loss-….png and .svg`).
    fn shown_files(&self, paths: &[PathBuf]) -> String {
        let mut shown: Vec<String> = Vec::new();
        let mut last_stem = None;
        for p in paths {
            let stem = p.with_extension("");
            let ext = p.extension().map(|e| e.to_string_lossy().into_owned());
            match (last_stem.as_ref() == Some(&stem), ext) {
                (true, Some(ext)) => {
                    if let Some(prev) = shown.last_mut() {
                        prev.push_str(&format!(" and .{ext}"));
                    }
                }
                _ => shown.push(self.shown_path(p)),
            }
            last_stem = Some(stem);
        }
        shown.join(", ")
    }

    /// Lists only the selected event's run, or every run's again.
    fn filter_events(&mut self) {
        if self.events_of.take().is_some() {
            self.message = "events of every run".into();
        } else if let Some(e) = self.selected_event() {
            self.message = format!("events of {} only (f: every run)", e.name);
            self.events_of = Some(e.run);
        }
        self.selected.event = FOLLOW_NEWEST;
    }

    fn mark_run(&mut self) {
        if let Some(r) = self.selected_run() {
            let p = r.dir.path.clone();
            if !self.marked.remove(&p) {
                self.marked.insert(p);
            }
        }
    }

    /// Marks every run of the selected comparison row, or unmarks them if all are.
    fn mark_strategy(&mut self) {
        let Some(c) = self.comparisons.get(self.selected.comparison) else {
            return;
        };
        let Some(label) = c.manifest.strategies.get(self.selected.strategy) else {
            return;
        };
        let dirs: Vec<PathBuf> = (c.manifest.current())
            .filter(|e| &e.label == label)
            .map(|e| e.dir.clone())
            .collect();
        let what = label.clone();
        self.toggle_marks(&what, &dirs);
    }

    /// Marks `dirs` for the charts, or unmarks them if all are marked
    /// already; says so, naming them `what`.
    fn toggle_marks(&mut self, what: &str, dirs: &[PathBuf]) {
        let all_marked = !dirs.is_empty() && dirs.iter().all(|d| self.marked.contains(d));
        for d in dirs {
            if all_marked {
                self.marked.remove(d);
            } else {
                self.marked.insert(d.clone());
            }
        }
        self.message = format!(
            "{what}: {} run(s) {} for the charts",
            dirs.len(),
            if all_marked { "unmarked" } else { "marked" }
        );
    }

    /// Marks (or unmarks) the runs of the Sweep view's place under the cursor.
    fn mark_cell(&mut self) {
        let Some((c, _, g)) = self.sweep_grid() else {
            self.message = "no sweep here to mark".into();
            return;
        };
        let (x, y) = self.sweep.at(&g);
        let place = &g.places[y][x];
        let dirs: Vec<PathBuf> = (c.manifest.current())
            .filter(|e| place.labels.contains(&e.label))
            .map(|e| e.dir.clone())
            .collect();
        let what = match place.labels.as_slice() {
            [one] => one.clone(),
            many => format!("{} cells", many.len()),
        };
        self.toggle_marks(&what, &dirs);
    }

    fn control_run(&mut self, action: Action, fx: &mut dyn Effects) {
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
        if cmd == Ctl::Stop {
            return self.ask_stop();
        }
        self.message = match fx.control(&dir, cmd) {
            Ok(()) => format!("{verb} sent to {name}"),
            Err(e) => format!("{verb} failed: {e}"),
        };
    }

    fn restart_run(&mut self, fx: &mut dyn Effects) {
        let Some(r) = self.selected_run() else { return };
        let name = r.name();
        let dir = r.dir.clone();
        let restartable = match r.state() {
            DisplayState::Lost | DisplayState::Unheard | DisplayState::Unknown => true,
            DisplayState::Is(s) => matches!(s, State::Stopped | State::Failed | State::Queued),
        };
        if r.alive || !restartable {
            self.message = format!("{name} is {}: nothing to restart", r.state().label());
            return;
        }
        // Where it continues from: its checkpoint, or the start without one.
        let from = match dir.checkpoint() {
            Some(ck) => format!("from its checkpoint after step {}", ck.step),
            None => "from step 0: it has no checkpoint".to_string(),
        };
        self.message = match fx.start_trainer(&dir) {
            Ok(()) => format!("{name}: trainer started ({from})"),
            Err(e) => format!("{name}: could not start: {e}"),
        };
    }

    /// Asks on which device to start the selected experiment's runs (or a
    /// comparison of them).
    fn open_start_prompt(&mut self, compare: bool) {
        let Some(e) = self.experiments.get(self.selected.experiment) else {
            return;
        };
        let name = e.name();
        let Ok(exp) = &e.result else {
            self.message = format!("{name} is invalid: fix it first (see the errors)");
            return;
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
        if compare && self.devices.iter().any(|d| DeviceName::is_gpu(d)) {
            choices.push(Some(crate::run::trainer::ALL_GPUS.to_string()));
        }
        self.prompt = Some(StartPrompt {
            compare,
            experiment: e.path.clone(),
            name,
            runs: exp.runs().len(),
            file_device,
            choices,
            selected: 0,
        });
    }

    /// The start prompt's answer: prepares the runs and starts a trainer for each.
    fn start_runs(&mut self, fx: &mut dyn Effects) {
        let Some(p) = self.prompt.take() else { return };
        let device = p.choices[p.selected].clone();
        let on = device.clone().unwrap_or_else(|| p.file_device.clone());
        let name = p.name;
        if p.compare {
            self.message = match fx.start_compare(&p.experiment, device.as_deref()) {
                Ok(log) => format!(
                    "{name}: comparison started on {on} (7 Compare; output in {})",
                    self.shown_path(&log)
                ),
                Err(e) => format!("{name}: comparison not started: {e}"),
            };
            return;
        }
        let pick = Pick { device, only: None };
        self.message = match fx.prepare(&p.experiment, &pick) {
            Ok(dirs) => {
                let mut started = 0;
                let mut errors = Vec::new();
                for d in &dirs {
                    match fx.start_trainer(d) {
                        Ok(()) => started += 1,
                        Err(e) => errors.push(e),
                    }
                }
                self.refresh();
                if let Some(first) = dirs.first() {
                    self.show_run(&first.path);
                }
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

    /// Opens the selected experiment in the editor, then says whether it is valid.
    fn edit_experiment(&mut self, fx: &mut dyn Effects) {
        let Some(e) = self.experiments.get(self.selected.experiment) else {
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
}
