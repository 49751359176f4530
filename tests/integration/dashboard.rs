//! The dashboard over real run directories made by the training engine: snapshot
//! tests of every view at 80×24 and 160×48 (insta over ratatui's TestBackend),
//! every key of the help view, and resizing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use crate::common::repo_root;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use probdrop_tui::experiment::{DataFormat, Machine, MemoryFloor, ModelSpec};
use probdrop_tui::plugins::{Found, discover};
use probdrop_tui::run::control::Command as Ctl;
use probdrop_tui::run::dir::RunDir;
use probdrop_tui::train::ThisMachine;
use probdrop_tui::ui::app::{App, Effects, Input, MESSAGE_TICKS, Pick};
use probdrop_tui::ui::keys::{Action, KEYMAP, Scope, View, action_for};
use probdrop_tui::ui::views::{ColorDepth, draw};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

pub(crate) struct Fixture {
    pub root: PathBuf,
}

/// Two finished runs (no extra dropout, DropBlock) trained by the real binary's
/// `compare` (two comparison directories over them); an experiments directory
/// with a valid and a broken file.
pub(crate) fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-fixture");
        let _ = std::fs::remove_dir_all(&root);
        let experiments = root.join("experiments");
        std::fs::create_dir_all(&experiments).unwrap();
        // Through a link and a relative path, so that nothing drawn depends on
        // where the repository is.
        std::os::unix::fs::symlink(
            repo_root().join("data/fashion-mnist-subset"),
            root.join("data"),
        )
        .unwrap();
        let text = fixture_experiment("../data", 3);
        std::fs::write(experiments.join("dash.toml"), text).unwrap();
        std::fs::copy(
            repo_root().join("tests/invalid_experiments/unknown-train-key.toml"),
            experiments.join("broken.toml"),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
            .arg("--plugins")
            .arg(repo_root().join("plugins"))
            .arg("compare")
            .arg(experiments.join("dash.toml"))
            .arg("--runs")
            .arg(root.join("runs"))
            .arg("--out")
            .arg(root.join("compare/dash"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A second comparison over the same runs, for the comparison selector.
        std::fs::create_dir_all(root.join("compare/dash-again")).unwrap();
        std::fs::copy(
            root.join("compare/dash/compare.json"),
            root.join("compare/dash-again/compare.json"),
        )
        .unwrap();
        Fixture { root }
    })
}

/// A small experiment: no extra dropout and DropBlock, one seed.
pub(crate) fn fixture_experiment(data: &str, epochs: usize) -> String {
    let train = format!("epochs = {epochs}\nlog_every = 1\neval_every = 8\nsnapshot_every = 8");
    crate::common::Tiny {
        name: "dash",
        header: "description = \"dashboard fixture\"",
        seeds: "[7]",
        data: data.to_string(),
        train_limit: 256,
        train: &train,
        strategies: "[[strategy]]\nplugin = \"none\"\n[[strategy]]\nplugin = \"dropblock\"\n\
                     params = { block_size = 3 }\nschedule = { kind = \"linear\", end = 0.2 }",
        ..Default::default()
    }
    .text()
}

fn plugins() -> &'static Vec<Found> {
    static P: OnceLock<Vec<Found>> = OnceLock::new();
    P.get_or_init(|| discover(&repo_root().join("plugins"), &mut |_: &str| {}).unwrap())
}

/// This machine with one GPU, so that what the start prompt offers does not
/// depend on the machine the tests run on.
struct OneGpu;

impl Machine for OneGpu {
    fn check_data(&self, format: DataFormat, path: &Path) -> Result<(), String> {
        ThisMachine.check_data(format, path)
    }
    fn memory_floor(
        &self,
        model: &ModelSpec,
        input: [usize; 3],
        batch: usize,
    ) -> Option<MemoryFloor> {
        ThisMachine.memory_floor(model, input, batch)
    }
    fn memory(&self) -> Option<u128> {
        ThisMachine.memory()
    }
    fn devices(&self) -> Vec<String> {
        vec!["cpu".into(), "cuda:0".into()]
    }
}

pub(crate) fn app_over(runs: PathBuf, experiments: PathBuf) -> App {
    App::new(runs, experiments, plugins(), Vec::new(), Arc::new(OneGpu))
}

pub(crate) fn app() -> App {
    let f = fixture();
    app_over(f.root.join("runs"), f.root.join("experiments"))
}

pub(crate) fn render(app: &App, w: u16, h: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal
        .draw(|f| draw(f, app, ColorDepth::Indexed256))
        .unwrap();
    let buffer = terminal.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        for x in 0..w {
            out.push_str(buffer[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

pub(crate) fn snapshot(name: &str, text: &str) {
    let root = fixture().root.display().to_string();
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(&root), "[FIXTURE]");
    settings.add_filter(
        &regex_escape(&repo_root().canonicalize().unwrap().display().to_string()),
        "[REPO]",
    );
    settings.add_filter(r"\d\d:\d\d:\d\d", "[HH:MM:SS]");
    settings.add_filter(r"\d\d-\d\d \d\d:\d\d", "[MM-DD HH:MM]");
    settings.add_filter(r"\d{8}-\d{6}", "[TIME]");
    settings.set_snapshot_path(repo_root().join("tests/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

#[derive(Default)]
pub(crate) struct FakeEffects {
    pub calls: Vec<String>,
    /// What `prepare` says it created.
    pub prepared: Vec<RunDir>,
}

impl Effects for FakeEffects {
    fn start_trainer(&mut self, run: &RunDir) -> Result<(), String> {
        self.calls.push(format!("start {}", run.path.display()));
        Ok(())
    }
    fn control(&mut self, run: &RunDir, command: Ctl) -> Result<(), String> {
        self.calls
            .push(format!("{command:?} {}", run.path.display()));
        Ok(())
    }
    fn prepare(&mut self, experiment: &Path, pick: &Pick) -> Result<Vec<RunDir>, String> {
        let only = match &pick.only {
            Some((label, seed)) => format!(" only {label} s{seed}"),
            None => String::new(),
        };
        let device = &pick.device;
        self.calls
            .push(format!("prepare {}{only} {device:?}", experiment.display()));
        Ok(self.prepared.clone())
    }
    fn start_compare(
        &mut self,
        experiment: &Path,
        device: Option<&str>,
    ) -> Result<PathBuf, String> {
        self.calls
            .push(format!("compare {} {device:?}", experiment.display()));
        Ok(PathBuf::from("compare/x/compare.log"))
    }
    fn edit(&mut self, file: &Path) -> Result<(), String> {
        self.calls.push(format!("edit {}", file.display()));
        Ok(())
    }
    /// Recorded, and done: the runs are the test's own copies.
    fn archive(&mut self, run: &RunDir) -> Result<PathBuf, String> {
        self.calls.push(format!("archive {}", run.path.display()));
        probdrop_tui::run::notes::archive(run).map_err(|e| e.to_string())
    }
    fn delete(&mut self, run: &RunDir) -> Result<(), String> {
        self.calls.push(format!("delete {}", run.path.display()));
        probdrop_tui::run::notes::delete(run).map_err(|e| e.to_string())
    }
    fn save_notes(
        &mut self,
        run: &RunDir,
        notes: &probdrop_tui::run::notes::Notes,
    ) -> Result<(), String> {
        self.calls.push(format!("notes {}", run.path.display()));
        notes.save(run).map_err(|e| e.to_string())
    }
    /// Writes for real: the figures are what the tests look at.
    fn export(
        &mut self,
        figure: &probdrop_tui::ui::export_view::Figure,
        out: &Path,
    ) -> Result<Vec<PathBuf>, String> {
        self.calls.push(format!("export {}", out.display()));
        probdrop_tui::ui::export_view::write(figure, out)
    }
}

/// A key as the dashboard takes it (typed into an open line, or an action).
pub(crate) fn press(app: &mut App, code: KeyCode, fx: &mut FakeEffects) {
    if let Some(input) = app.input_for(KeyEvent::new(code, KeyModifiers::NONE)) {
        app.apply(input, fx);
    }
}

/// Goes to Experiments and selects the file called `name`.
pub(crate) fn open_experiment(app: &mut App, name: &str, fx: &mut FakeEffects) {
    app.apply(Action::Go(View::Experiments), fx);
    app.selected.experiment = app
        .experiments
        .iter()
        .position(|e| e.name() == name)
        .unwrap();
}

/// Selects the first run of the strategy labelled `label`.
pub(crate) fn select_run_of(app: &mut App, label: &str) {
    app.selected.run = app.runs.iter().position(|r| r.info.label == label).unwrap();
}

/// Types `text` into the open line, then Enter.
pub(crate) fn type_line(app: &mut App, text: &str, fx: &mut FakeEffects) {
    for c in text.chars() {
        press(app, KeyCode::Char(c), fx);
    }
    press(app, KeyCode::Enter, fx);
}

#[test]
fn every_view_at_80x24_and_160x48() {
    let mut app = app();
    assert_eq!(app.runs.len(), 2, "two runs in the fixture");
    let mut fx = FakeEffects::default();
    // Select the DropBlock run (the second), overlay both in the charts.
    press(&mut app, KeyCode::Char(' '), &mut fx);
    press(&mut app, KeyCode::Down, &mut fx);
    press(&mut app, KeyCode::Char(' '), &mut fx);
    press(&mut app, KeyCode::Up, &mut fx);
    for view in View::ALL {
        app.apply(Action::Go(view), &mut fx);
        for (w, h) in [(80, 24), (160, 48)] {
            let name = format!("{}_{w}x{h}", view.title().to_lowercase());
            snapshot(&name, &render(&app, w, h));
        }
    }
    app.apply(Action::ToggleHelp, &mut fx);
    snapshot("help_80x24", &render(&app, 80, 24));
    snapshot("help_160x48", &render(&app, 160, 48));
    // The broken experiment's full error is shown with its position.
    app.apply(Action::Go(View::Experiments), &mut fx);
    press(&mut app, KeyCode::Home, &mut fx);
    let text = render(&app, 160, 48);
    let source = std::fs::read_to_string(
        repo_root().join("tests/invalid_experiments/unknown-train-key.toml"),
    )
    .unwrap();
    let at = source.lines().next().unwrap().trim_start_matches("# at: ");
    assert!(
        text.contains(&format!(
            "broken.toml:{at}: `train.epoch`: unknown key `epoch`"
        )),
        "{text}"
    );
    assert!(text.contains("did you mean `epochs`?"), "{text}");
}

/// On a 16-colour terminal (TERM=xterm, screen, linux) nothing asks for a colour
/// it cannot show, no text is drawn in its own background colour, and the
/// heatmaps still show more than one shade; on a 256-colour one (xterm-256color,
/// screen-256color) nothing asks for true colour.
#[test]
fn every_view_renders_legibly_in_16_and_256_colours() {
    use ratatui::style::Color;
    let mut app = app();
    let mut fx = FakeEffects::default();
    for depth in [ColorDepth::Basic16, ColorDepth::Indexed256] {
        for view in View::ALL {
            app.apply(Action::Go(view), &mut fx);
            let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
            terminal.draw(|f| draw(f, &app, depth)).unwrap();
            let buffer = terminal.backend().buffer();
            let mut heat_shades = std::collections::BTreeSet::new();
            for cell in buffer.content() {
                for c in [cell.fg, cell.bg] {
                    match (depth, c) {
                        (_, Color::Rgb(..)) => panic!("{view:?} asks {depth:?} for {c:?}"),
                        (ColorDepth::Basic16, Color::Indexed(_)) => {
                            panic!("{view:?} asks {depth:?} for {c:?}")
                        }
                        _ => {}
                    }
                }
                let sym = cell.symbol();
                if sym == "▀" {
                    heat_shades.insert(format!("{:?}", cell.fg));
                } else if sym.trim() != "" && cell.fg != Color::Reset {
                    assert_ne!(
                        cell.fg, cell.bg,
                        "{view:?} in {depth:?}: {sym:?} unreadable"
                    );
                }
            }
            if view == View::Masks {
                assert!(heat_shades.len() >= 2, "{depth:?}: {heat_shades:?}");
            }
        }
    }
}

#[test]
fn charts_smoothing_log_zoom_and_metric_change_the_drawing() {
    let mut app = app();
    let mut fx = FakeEffects::default();
    app.apply(Action::Go(View::Charts), &mut fx);
    let base = render(&app, 100, 30);
    assert!(base.contains("loss"), "{base}");
    for code in ['s', 'l', 'z', 'm'] {
        let mut other = self::app();
        other.apply(Action::Go(View::Charts), &mut fx);
        press(&mut other, KeyCode::Char(code), &mut fx);
        assert_ne!(render(&other, 100, 30), base, "key {code} changed nothing");
    }
}

/// "1…6" in the help: the digits go to the views in tab order.
#[test]
fn the_digit_keys_go_to_the_views_in_tab_order() {
    for (i, view) in View::ALL.iter().enumerate() {
        let digit = char::from_digit(i as u32 + 1, 10).unwrap();
        assert_eq!(
            action_for(
                KeyEvent::new(KeyCode::Char(digit), KeyModifiers::NONE),
                View::Masks,
                false
            ),
            Some(Action::Go(*view))
        );
    }
}

/// What the keys change in the dashboard, as one comparable value.
fn state_of(app: &App) -> String {
    format!(
        "{:?}",
        (
            (app.view, app.help, app.selected.run, app.selected.event),
            (app.marked.len(), app.charts, &app.sweep),
            (app.masks, app.event_open, &app.events_of),
            (app.config_open, app.log_open),
            (app.entry.is_some(), &app.run_list, app.confirm.is_some()),
        )
    )
}

#[test]
fn every_key_in_the_help_does_what_it_says() {
    // Every binding, also those that share a help line with the one before.
    for binding in KEYMAP {
        // The Sweep view's keys act on a sweep.
        let mut app = if binding.scope == Scope::In(View::Sweep) {
            crate::sweep_view::sweep_app()
        } else {
            app()
        };
        let mut fx = FakeEffects::default();
        let view = match binding.scope {
            Scope::In(v) => v,
            Scope::Global => View::Runs,
            Scope::Prompt => View::Experiments,
        };
        app.view = view;
        // Up and Top need somewhere to come from.
        app.selected.run = usize::from(matches!(binding.action, Action::Up | Action::Top));
        app.selected.experiment = app
            .experiments
            .iter()
            .position(|e| e.result.is_ok())
            .unwrap();
        // Previous slot, channel, metric and newer snapshot need somewhere to
        // come from.
        (app.masks.slot, app.masks.sample, app.masks.channel) = (1, 1, 1);
        (app.masks.back, app.charts.metric) = (1, 1);
        // Hiding the cursor needs one shown.
        app.charts.cursor = Some(0.5);
        // Left needs somewhere to come from in the sweep's grid.
        app.sweep.x = usize::from(binding.action == Action::SweepLeft);
        let prompt = binding.scope == Scope::Prompt;
        if prompt {
            app.apply(Action::StartRuns, &mut fx);
            assert!(app.prompt.is_some());
        }
        assert_eq!(
            action_for(
                KeyEvent::new(binding.code, KeyModifiers::NONE),
                view,
                prompt
            ),
            Some(binding.action)
        );
        let before = state_of(&app);
        app.apply(binding.action, &mut fx);
        let after = state_of(&app);
        let acted = match binding.action {
            Action::Quit => app.quit,
            Action::ToggleHelp => app.help,
            Action::NextView => app.view == View::Charts,
            Action::PrevView => app.view == View::Sweep,
            Action::Go(v) => app.view == v,
            Action::Up => app.selected.run == 0,
            Action::Down | Action::Bottom => app.selected.run == 1,
            Action::Top => app.selected.run == 0,
            Action::Mark => app.marked.len() == 1,
            Action::MarkStrategy => app.marked.len() == 1 && app.message.contains("marked"),
            Action::NextComparison | Action::PrevComparison => app.selected.comparison == 1,
            Action::MarkCell => app.marked.len() == 4 && app.message.contains("marked"),
            // Finished runs have no trainer: the dashboard says so instead of sending.
            Action::Pause | Action::Resume | Action::Stop => {
                fx.calls.is_empty() && app.message.contains("no trainer running")
            }
            Action::Restart => app.message.contains("nothing to restart"),
            // The fixture's runs have no saved change waiting for a restart.
            Action::Rerun => app.message.contains("no saved change") && app.confirm.is_none(),
            Action::StartCompare => app.prompt.as_ref().is_some_and(|p| p.compare),
            // It asks first: nothing is started until the device is chosen.
            Action::StartRuns => app.prompt.is_some() && fx.calls.is_empty(),
            Action::PromptNext => app.prompt.as_ref().is_some_and(|p| p.selected == 1),
            Action::PromptPrev => app
                .prompt
                .as_ref()
                .is_some_and(|p| p.selected == p.choices.len() - 1),
            Action::PromptConfirm => {
                app.prompt.is_none()
                    && fx
                        .calls
                        .first()
                        .is_some_and(|c| c.starts_with("prepare") && c.ends_with("None"))
            }
            Action::PromptCancel => app.prompt.is_none() && fx.calls.is_empty(),
            Action::Edit => fx.calls.first().is_some_and(|c| c.starts_with("edit")),
            // Runs has no figure: it says which views do.
            Action::ExportView => app
                .message
                .contains("w writes the Charts, Masks, Compare and Sweep"),
            _ => before != after,
        };
        assert!(
            acted,
            "{} ({:?}) did not do what the help says: {}",
            binding.label, binding.action, binding.help
        );
    }
}

#[test]
fn the_start_prompt_overrides_the_device_and_takes_every_key() {
    let mut app = app();
    let mut fx = FakeEffects::default();
    open_experiment(&mut app, "dash.toml", &mut fx);
    press(&mut app, KeyCode::Char('n'), &mut fx);
    snapshot("start_prompt_80x24", &render(&app, 80, 24));
    let labels: Vec<String> = {
        let p = app.prompt.as_ref().unwrap();
        (0..p.choices.len()).map(|i| p.choice_label(i)).collect()
    };
    // The file's own device first, then the others (the file's not repeated).
    assert_eq!(labels, ["as in the file (cpu)", "cuda:0"]);
    // Keys outside the prompt do nothing while it is open.
    for code in [KeyCode::Char('q'), KeyCode::Char('1'), KeyCode::Char('e')] {
        press(&mut app, code, &mut fx);
    }
    assert!(!app.quit && app.view == View::Experiments && fx.calls.is_empty());
    press(&mut app, KeyCode::Right, &mut fx);
    press(&mut app, KeyCode::Enter, &mut fx);
    assert_eq!(fx.calls.len(), 1, "{:?}", fx.calls);
    assert!(
        fx.calls[0].ends_with("dash.toml Some(\"cuda:0\")"),
        "{:?}",
        fx.calls
    );
    assert!(app.prompt.is_none());
    assert!(app.message.contains("on cuda:0"), "{}", app.message);
    // A comparison may also go over every GPU (`compare --devices all`).
    press(&mut app, KeyCode::Char('C'), &mut fx);
    let p = app.prompt.as_ref().unwrap();
    let last = p.choice_label(p.choices.len() - 1);
    assert_eq!(last, probdrop_tui::run::trainer::ALL_GPUS);
    press(&mut app, KeyCode::Left, &mut fx);
    press(&mut app, KeyCode::Enter, &mut fx);
    assert!(
        fx.calls[1].ends_with("dash.toml Some(\"all GPUs\")"),
        "{:?}",
        fx.calls
    );
}

/// A saved change to a file with a run going: the Experiments view says, for that
/// run, what was applied live and what needs a restart (a real trainer process).
#[test]
fn experiments_view_shows_what_a_saved_change_did_to_running_runs() {
    use probdrop_tui::run::control;
    use probdrop_tui::run::dir::State;
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-live-change");
    let _ = std::fs::remove_dir_all(&root);
    let experiments = root.join("experiments");
    std::fs::create_dir_all(&experiments).unwrap();
    let data = repo_root().join("data/fashion-mnist-subset");
    let file = experiments.join("dash.toml");
    let text = fixture_experiment(&data.display().to_string(), 200);
    std::fs::write(&file, &text).unwrap();
    let plugins_dir = repo_root().join("plugins");
    let catalog = probdrop_tui::plugins::load(&plugins_dir, &mut |_: &str| {})
        .unwrap()
        .catalog;
    let select = probdrop_tui::run::prepare::Selection {
        strategy: Some("dropblock"),
        ..Default::default()
    };
    let (_, dirs) = probdrop_tui::run::prepare::prepare_runs(
        &catalog,
        &ThisMachine,
        &file,
        &root.join("runs"),
        select,
    )
    .unwrap();
    let run = dirs[0].clone();
    let mut trainer = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
        .arg("--plugins")
        .arg(&plugins_dir)
        .arg("train")
        .arg(&run.path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let long = std::time::Duration::from_secs(60);
    crate::common::wait_for("training", long, || {
        run.status()
            .is_some_and(|s| s.state == State::Training && s.step > 0)
    });

    let mut app = app_over(root.join("runs"), experiments.clone());
    app.apply(Action::Go(View::Experiments), &mut FakeEffects::default());
    let before = render(&app, 160, 48);
    assert!(before.contains("no change since it started"), "{before}");

    // A live field (the schedule) and one that needs a restart (the batch size).
    let changed = text
        .replace("end = 0.2", "end = 0.3")
        .replace("batch_size = 32", "batch_size = 16");
    assert_ne!(changed, text);
    std::fs::write(&file, changed).unwrap();
    crate::common::wait_for("the change handled", long, || {
        let kinds: Vec<String> = run
            .events()
            .into_iter()
            .map(|e| e.kind.to_string())
            .collect();
        kinds.iter().any(|k| k == "config_applied") && kinds.iter().any(|k| k == "needs_restart")
    });
    app.refresh();
    let after = render(&app, 160, 48);

    // Issue 16, defect 17: while the file is broken, the view still lists the
    // run, which keeps its last valid configuration.
    std::fs::write(&file, "bogus_key = 1\n".to_string() + &text).unwrap();
    crate::common::wait_for("the broken file refused", long, || {
        run.events().iter().any(|e| e.kind == "config_invalid")
    });
    app.refresh();
    let broken = [render(&app, 160, 48), render(&app, 80, 24)];
    control::send(&run.file(probdrop_tui::run::dir::SOCKET), &Ctl::Stop).unwrap();
    trainer.wait().unwrap();
    for screen in &broken {
        assert!(screen.contains("bogus_key"), "the error: {screen}");
        assert!(screen.contains("running from this file"), "{screen}");
        assert!(screen.contains("dropblock s7 (training):"), "{screen}");
    }
    assert!(
        broken[0].contains("keep their last valid configuration"),
        "{}",
        broken[0]
    );
    assert!(after.contains("dropblock s7 (training):"), "{after}");
    assert!(after.contains("applied live: applied at step"), "{after}");
    assert!(
        after.contains("needs restart: changed, needs a restart: train.batch_size"),
        "{after}"
    );
}

#[test]
fn resizing_to_tiny_sizes_and_back_does_not_panic() {
    let mut app = app();
    let mut fx = FakeEffects::default();
    for view in View::ALL {
        app.apply(Action::Go(view), &mut fx);
        for (w, h) in [(20, 5), (1, 1), (80, 24), (3, 40), (200, 2)] {
            render(&app, w, h);
        }
    }
    app.apply(Action::Go(View::Experiments), &mut fx);
    app.selected.experiment = app
        .experiments
        .iter()
        .position(|e| e.result.is_ok())
        .unwrap();
    app.apply(Action::StartRuns, &mut fx);
    assert!(app.prompt.is_some());
    for (w, h) in [(20, 5), (1, 1), (21, 6), (80, 24)] {
        render(&app, w, h);
    }
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Issue 16, defect 3: `s` asks before stopping a running run; n or Esc keeps
/// it running, y or Enter stops it.
#[test]
fn stopping_a_run_asks_first() {
    let mut app = app();
    let mut fx = FakeEffects::default();
    app.apply(Action::Go(View::Runs), &mut fx);
    app.runs[0].alive = true;
    press(&mut app, KeyCode::Char('s'), &mut fx);
    assert!(app.confirm.is_some() && fx.calls.is_empty());
    snapshot("stop_confirm_80x24", &render(&app, 80, 24));
    snapshot("stop_confirm_160x48", &render(&app, 160, 48));
    for (no, yes) in [
        (KeyCode::Esc, KeyCode::Char('y')),
        (KeyCode::Char('n'), KeyCode::Enter),
    ] {
        // Other keys do nothing while the question is open.
        press(&mut app, KeyCode::Char('q'), &mut fx);
        press(&mut app, KeyCode::Char('2'), &mut fx);
        assert!(!app.quit && app.view == View::Runs);
        press(&mut app, no, &mut fx);
        assert!(app.confirm.is_none() && fx.calls.is_empty(), "{no:?}");
        assert_eq!(app.message, "nothing stopped");
        press(&mut app, KeyCode::Char('s'), &mut fx);
        press(&mut app, yes, &mut fx);
        let stop = format!("Stop {}", app.runs[0].dir.path.display());
        assert_eq!(fx.calls, [stop], "{yes:?}");
        fx.calls.clear();
        press(&mut app, KeyCode::Char('s'), &mut fx);
    }
}

/// Issue 16, defect 16: a run just started is selected in the Runs view, and a
/// status-line message goes after ten seconds of ticks.
#[test]
fn a_started_run_is_selected_and_messages_do_not_stay() {
    let mut app = app();
    let mut fx = FakeEffects {
        prepared: vec![app.runs[1].dir.clone()],
        ..Default::default()
    };
    open_experiment(&mut app, "dash.toml", &mut fx);
    press(&mut app, KeyCode::Char('n'), &mut fx);
    press(&mut app, KeyCode::Enter, &mut fx);
    assert_eq!((app.view, app.selected.run), (View::Runs, 1));
    assert!(app.message.contains("started 1 run(s)"), "{}", app.message);
    for _ in 1..MESSAGE_TICKS {
        app.apply(Input::Tick, &mut fx);
    }
    assert!(!app.message.is_empty(), "still there before ten seconds");
    app.apply(Input::Tick, &mut fx);
    assert!(app.message.is_empty(), "{}", app.message);
    assert!(render(&app, 80, 24).contains("? help  q quit"));
}

/// Issue 16, defect 13: a long experiment file name is whole at 160 columns,
/// and the list still leaves the details most of an 80-column screen.
#[test]
fn long_experiment_names_are_whole_on_a_wide_terminal() {
    let f = fixture();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-long-names");
    let _ = std::fs::remove_dir_all(&root);
    let experiments = root.join("experiments");
    std::fs::create_dir_all(&experiments).unwrap();
    let name = "compare-cifar10-resnet18-probdropblock.toml";
    std::fs::write(experiments.join(name), fixture_experiment("../data", 1)).unwrap();
    let mut app = app_over(f.root.join("runs"), experiments);
    app.apply(Action::Go(View::Experiments), &mut FakeEffects::default());
    let wide = render(&app, 160, 48);
    let first_row = wide.lines().nth(2).unwrap();
    let list_part = &first_row[..first_row.find("││").unwrap()];
    assert!(list_part.contains(name), "{wide}");
    let narrow = render(&app, 80, 24);
    let list = narrow.lines().nth(1).unwrap().find("┐").unwrap();
    assert!(
        narrow.lines().nth(1).unwrap()[..list].chars().count() <= 36,
        "{narrow}"
    );
}

/// A runs directory under the test target directory named `name`, holding `n`
/// copies of the fixture's real runs (`run-00`, `run-01`, …, cycling through them).
pub(crate) fn copies_of_the_fixture_runs(name: &str, n: usize) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&root);
    let runs = root.join("runs");
    let originals = probdrop_tui::run::dir::list_runs(&fixture().root.join("runs"));
    for i in 0..n {
        let from = &originals[i % originals.len()];
        copy_dir(&from.path, &runs.join(format!("run-{i:02}")));
    }
    runs
}

/// Issue 16, defect 11: Events opens on the newest entries and follows them;
/// ↑ selects an older one (drawn selected), G follows the newest again.
#[test]
fn events_open_on_the_newest_and_follow_them() {
    let f = fixture();
    let runs = copies_of_the_fixture_runs("dashboard-events", 12);
    let log = runs.join("run-00").join(probdrop_tui::run::dir::EVENTS);
    let mut text = std::fs::read_to_string(&log).unwrap();
    for (wall, message) in [(1.0, "the oldest event"), (4e9, "the newest event")] {
        text.push_str(&format!(
            "{{\"wall\":{wall},\"step\":0,\"kind\":\"note\",\"message\":\"{message}\"}}\n"
        ));
    }
    std::fs::write(&log, text).unwrap();
    let mut app = app_over(runs, f.root.join("experiments"));
    let mut fx = FakeEffects::default();
    app.apply(Action::Go(View::Events), &mut fx);
    assert!(app.all_events().len() > 22, "more events than rows");
    let screen = render(&app, 80, 24);
    assert!(screen.contains("following the newest"), "{screen}");
    assert!(screen.contains("the newest event"), "{screen}");
    assert!(!screen.contains("the oldest event"), "{screen}");
    assert!(
        selected_rows(&app, 80, 24).is_empty(),
        "nothing selected while following"
    );
    app.apply(Action::Up, &mut fx);
    assert_eq!(selected_rows(&app, 80, 24).len(), 1);
    assert!(!render(&app, 80, 24).contains("following"));
    app.apply(Action::Bottom, &mut fx);
    assert!(render(&app, 160, 48).contains("following the newest"));
}

/// Issue 16, defects 4 and 5: with four overlaid runs at 80×24 the legend
/// still names every run, above the plot rather than over the newest data.
#[test]
fn the_legend_names_every_overlaid_run_above_the_plot() {
    let f = fixture();
    let runs = copies_of_the_fixture_runs("dashboard-legend", 4);
    let mut app = app_over(runs, f.root.join("experiments"));
    let mut fx = FakeEffects::default();
    for i in 0..4 {
        app.selected.run = i;
        app.apply(Action::Mark, &mut fx);
    }
    app.apply(Action::Go(View::Charts), &mut fx);
    for (w, h) in [(80, 24), (160, 48)] {
        let screen = render(&app, w, h);
        // The rows above the plot (its top label row starts the y axis); on a
        // large terminal the legend is above the grid of charts.
        let legend: String = screen
            .lines()
            .skip(1)
            .take_while(|l| !l.contains("│loss"))
            .collect();
        assert_eq!(
            legend.matches("━").count(),
            5,
            "4 runs and the train key:\n{screen}"
        );
        assert!(legend.contains("• val"), "{screen}");
    }
}

/// Issue 16, defect 15: R says where a run continues from: its checkpoint's
/// step, or step 0 when it was killed before its first checkpoint.
#[test]
fn restart_says_where_the_run_continues_from() {
    let f = fixture();
    let runs = copies_of_the_fixture_runs("dashboard-restart", 2);
    for i in 0..2 {
        let dir = runs.join(format!("run-{i:02}"));
        let status = dir.join(probdrop_tui::run::dir::STATUS);
        let text = std::fs::read_to_string(&status).unwrap();
        std::fs::write(&status, text.replace("\"done\"", "\"failed\"")).unwrap();
    }
    std::fs::remove_file(runs.join("run-01").join(probdrop_tui::run::dir::CHECKPOINT)).unwrap();
    let mut app = app_over(runs, f.root.join("experiments"));
    let mut fx = FakeEffects::default();
    let step = app.runs[0].dir.checkpoint().unwrap().step;
    app.apply(Action::Restart, &mut fx);
    assert!(
        app.message
            .contains(&format!("from its checkpoint after step {step}")),
        "{}",
        app.message
    );
    app.selected.run = 1;
    app.apply(Action::Restart, &mut fx);
    assert!(app.message.contains("from step 0"), "{}", app.message);
    assert_eq!(fx.calls.len(), 2);
}

/// A finished run directory whose training loss was logged at steps 1..=`steps`.
pub(crate) fn synthetic_run(runs: &Path, label: &str, steps: u64) -> RunDir {
    use probdrop_tui::run::dir::{self, JsonLog, MetricLine, RunInfo, State, Status};
    let info = RunInfo {
        experiment: "zoom".into(),
        source: "zoom.toml".into(),
        label: label.into(),
        strategy_index: 0,
        seed: 1,
        created: String::new(),
        slurm_job: None,
    };
    let d = RunDir::create(runs, &info, "name = \"zoom\"\n").unwrap();
    let status = Status {
        state: State::Done,
        step: steps,
        total_steps: steps,
        ..Status::new(0)
    };
    dir::write_json(&d.file(dir::STATUS), &status).unwrap();
    let lines: Vec<MetricLine> = (1..=steps)
        .map(|step| MetricLine {
            step,
            epoch: 0,
            split: "train".into(),
            metric: "loss".into(),
            value: 1.0 / step as f64,
            wall: 0.0,
            p: 0.1,
            plugin_version: "1.0.0".into(),
        })
        .collect();
    JsonLog::open(&d.file(dir::METRICS))
        .unwrap()
        .append_all(&lines)
        .unwrap();
    d
}

/// Issue 16, defect 10: "last 100 steps" is one window for every overlaid run,
/// not each run's own last 100. Issue 34, item 14: it ends at the run
/// furthest behind, so that every run stays in sight.
#[test]
fn zooming_shows_every_run_over_the_same_steps() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-zoom");
    let _ = std::fs::remove_dir_all(&root);
    let runs = root.join("runs");
    synthetic_run(&runs, "long", 752);
    synthetic_run(&runs, "short", 520);
    let mut app = app_over(runs, root.join("experiments"));
    let mut fx = FakeEffects::default();
    for i in 0..2 {
        app.selected.run = i;
        app.apply(Action::Mark, &mut fx);
    }
    app.apply(Action::Go(View::Charts), &mut fx);
    app.apply(Action::CycleZoom, &mut fx);
    app.apply(Action::CycleZoom, &mut fx);
    assert_eq!(app.charts.last_steps(), Some(100.0));
    let screen = render(&app, 80, 24);
    let axis = screen.lines().rev().nth(2).unwrap();
    assert!(axis.contains("420") && axis.contains("520"), "{screen}");
    assert!(!axis.contains("752"), "the long run's own window: {screen}");
}

/// The rows below the tab bar drawn as selected (reversed) at `w`×`h`.
pub(crate) fn selected_rows(app: &App, w: u16, h: u16) -> Vec<u16> {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal
        .draw(|f| draw(f, app, ColorDepth::Indexed256))
        .unwrap();
    let buffer = terminal.backend().buffer().clone();
    (1..h)
        .filter(|&y| {
            (1..w - 1).any(|x| {
                buffer[(x, y)]
                    .modifier
                    .contains(ratatui::style::Modifier::REVERSED)
            })
        })
        .collect()
}

/// Issue 16, defect 1: with more runs than rows the table scrolls, so the run
/// that p, s and R act on is always on screen.
#[test]
fn the_selected_run_stays_on_screen_when_the_runs_do_not_fit() {
    let f = fixture();
    let runs = copies_of_the_fixture_runs("dashboard-scroll", 60);
    let mut app = app_over(runs, f.root.join("experiments"));
    let mut fx = FakeEffects::default();
    app.apply(Action::Go(View::Runs), &mut fx);
    for (w, h) in [(80, 24), (160, 48)] {
        for action in [Action::Bottom, Action::Up, Action::Top, Action::Down] {
            app.apply(action, &mut fx);
            let rows = selected_rows(&app, w, h);
            assert_eq!(rows.len(), 1, "{action:?} at {w}x{h}: {rows:?}");
        }
    }
}

/// 50 runs (copies of the fixture's real ones), one with a 100k-line event log,
/// and a run directory deleted while it is shown: every view draws, nothing panics.
#[test]
fn fifty_runs_a_huge_event_log_and_a_deleted_run_directory() {
    let f = fixture();
    let runs = copies_of_the_fixture_runs("dashboard-stress", 50);
    let big = runs.join("run-07").join(probdrop_tui::run::dir::EVENTS);
    let mut text = std::fs::read_to_string(&big).unwrap();
    for i in 0..100_000 {
        text.push_str(&format!(
            "{{\"wall\":{}.5,\"step\":{i},\"kind\":\"error\",\"message\":\"event {i}\"}}\n",
            1_800_000_000 + i
        ));
    }
    std::fs::write(&big, text).unwrap();

    let mut app = app_over(runs.clone(), f.root.join("experiments"));
    assert_eq!(app.runs.len(), 50);
    assert!(app.all_events().len() > 100_000);
    let mut fx = FakeEffects::default();
    app.apply(Action::Bottom, &mut fx);
    for view in View::ALL {
        app.apply(Action::Go(view), &mut fx);
        app.apply(Action::Bottom, &mut fx);
        for (w, h) in [(80, 24), (160, 48), (1, 1)] {
            render(&app, w, h);
        }
    }
    // The selected run's directory disappears between two refreshes.
    app.apply(Action::Go(View::Runs), &mut fx);
    app.selected.run = 49;
    std::fs::remove_dir_all(runs.join("run-49")).unwrap();
    std::fs::remove_dir_all(runs.join("run-07")).unwrap();
    app.refresh();
    assert_eq!(app.runs.len(), 48);
    assert!(app.selected.run < 48);
    assert!(
        app.runs
            .iter()
            .all(|r| !r.dir.path.ends_with("run-49") && !r.dir.path.ends_with("run-07"))
    );
    assert!(
        app.all_events().len() < 1000,
        "the big log went with its run"
    );
    for view in View::ALL {
        app.apply(Action::Go(view), &mut fx);
        render(&app, 120, 40);
    }
}

/// A text run (a few steps of the transformer on the Austen sentences): the
/// Masks view draws one line per real token, labelled with the token.
#[test]
fn a_text_run_shows_token_by_hidden_masks_labelled_with_the_tokens() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-text");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("experiments")).unwrap();
    std::os::unix::fs::symlink(repo_root().join("data/austen-sentences"), root.join("data"))
        .unwrap();
    let file = root.join("experiments/text.toml");
    std::fs::write(
        &file,
        r#"name = "text"
seeds = [2]
[data]
format = "text"
path = "../data"
train_limit = 256
val_limit = 64
max_len = 24
vocab_size = 1000
workers = 1
[model]
kind = "transformer"
hidden = 32
heads = 2
layers = 1
ff = 64
[optimizer]
kind = "adamw"
lr = 1e-3
[train]
epochs = 1
batch_size = 16
snapshot_every = 4
max_steps = 8
[[strategy]]
plugin = "dropblock1d"
params = { block_size = 4 }
schedule = { kind = "constant", p = 0.3 }
slots = ["layer1"]
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
        .arg("--plugins")
        .arg(repo_root().join("plugins"))
        .args(["run", "-q", "--runs"])
        .arg(root.join("runs"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut app = app_over(root.join("runs"), root.join("experiments"));
    let mut fx = FakeEffects::default();
    app.apply(Action::Go(View::Masks), &mut fx);
    let run = RunDir {
        path: app.runs[0].dir.path.clone(),
    };
    let snap = run
        .snapshots()
        .into_iter()
        .rev()
        .find(|s| s.sample == 0)
        .unwrap();
    let text = render(&app, 80, 24);
    // One line per token, from [CLS], each labelled with its token.
    let first = snap.tokens.iter().position(|t| t == "[CLS]").unwrap();
    assert_eq!(first, 0);
    let lines: Vec<&str> = text.lines().collect();
    let header = lines.iter().position(|l| l.contains("token")).unwrap();
    let mut shown = 0;
    for (line, token) in lines[header + 1..].iter().zip(&snap.tokens) {
        let line = line.trim_start_matches('│');
        if line.starts_with('…') || line.starts_with('└') {
            break;
        }
        let label: String = token.chars().take(12).collect();
        assert!(line.starts_with(&label), "{token:?} in {line:?}:\n{text}");
        shown += 1;
    }
    assert!(shown >= 10.min(snap.tokens.len()), "{shown} rows:\n{text}");
    assert!(text.contains("keep-mask"), "{text}");
    // The salience scale's top varies in its last digit between runs (sums
    // in another order); everything else is exact.
    let bar = "salience 0 ██████████ ";
    let at = text.find(bar).expect("a colour bar") + bar.len();
    let end = at + text[at..].find(' ').unwrap();
    let text = format!("{}[TOP]{}", &text[..at], &text[end..]);
    snapshot("masks_text_80x24", &text);
}

/// Issue 19: `w` writes what the view shows — the chart, the mask snapshot,
/// the comparison — as a PNG (1200×480, decodable) and an SVG, under
/// exports/ beside the runs, and says where (issue 34: from the workspace).
#[test]
fn w_writes_the_chart_the_mask_and_the_comparison_as_figures() {
    let runs = copies_of_the_fixture_runs("export-key", 2);
    let root = runs.parent().unwrap().to_path_buf();
    copy_dir(&fixture().root.join("compare"), &root.join("compare"));
    let mut app = app_over(runs, fixture().root.join("experiments"));
    let mut fx = FakeEffects::default();
    let exports = root.join("exports");
    for (view, stem) in [('2', "chart-loss-"), ('3', "mask-"), ('7', "comparison")] {
        press(&mut app, KeyCode::Char(view), &mut fx);
        press(&mut app, KeyCode::Char('w'), &mut fx);
        assert!(app.message.starts_with("wrote "), "{view}: {}", app.message);
        // "wrote exports/<stem>.png and .svg", from the workspace.
        let named = app.message.trim_start_matches("wrote ");
        let (png, svg) = named.split_once(" and ").unwrap();
        let png = root.join(png);
        let written = vec![png.clone(), png.with_extension(svg.trim_start_matches('.'))];
        assert_eq!(written.len(), 2, "{}", app.message);
        for path in &written {
            assert!(path.starts_with(&exports), "{}", path.display());
            let name = path.file_name().unwrap().to_string_lossy();
            assert!(name.starts_with(stem), "{name}");
        }
        let png = image::open(&written[0]).unwrap();
        assert_eq!((png.width(), png.height()), (1200, 480));
        let svg = std::fs::read_to_string(&written[1]).unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"));
    }
    press(&mut app, KeyCode::Char('5'), &mut fx);
    press(&mut app, KeyCode::Char('w'), &mut fx);
    assert!(
        app.message
            .contains("w writes the Charts, Masks, Compare and Sweep views")
    );
}

/// Issue 20: a run training on another host shows as training while its
/// heartbeat is recent, and as lost (naming the host) once it is silent,
/// never "training" forever. Issue 32: the stamp is 150 s behind this host's
/// clock (another host's clock) and the run is alive all the same.
#[test]
fn a_run_on_another_host_is_lost_when_its_heartbeat_stops() {
    use probdrop_tui::run::dir::{self, LOST_AFTER_SECS, State};
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-remote");
    let _ = std::fs::remove_dir_all(&root);
    let runs = root.join("runs");
    let d = synthetic_run(&runs, "dropblock", 40);
    let mut status = d.status().unwrap();
    status.state = State::Training;
    status.host = "node7".into();
    status.heartbeat = dir::now() - 150.0;
    dir::write_json(&d.file(dir::STATUS), &status).unwrap();
    let mut app = app_over(runs.clone(), root.join("experiments"));
    assert_eq!(app.runs[0].state().label(), "training");
    // Issue 32: silence is measured by this host's clock, from the last
    // time the heartbeat changed; the test cannot wait two minutes.
    let silent_since = std::time::Instant::now()
        .checked_sub(std::time::Duration::from_secs_f64(LOST_AFTER_SECS + 60.0))
        .unwrap();
    // As read back: serde_json's default float parsing may differ from what
    // was written in the last bit, which would count as a change.
    let heartbeat = d.status().unwrap().heartbeat;
    dir::note_heartbeat(&d.path, heartbeat, silent_since);
    app.apply(Input::Tick, &mut FakeEffects::default());
    assert_eq!(app.runs[0].state().label(), "lost");
    let screen = render(&app, 120, 30);
    assert!(screen.contains("lost"), "{screen}");
    assert!(
        screen.contains("no heartbeat from node7 for 18"),
        "{screen}"
    );
}

/// Issue 20: runs a Slurm array trains — queued (its job state and reason,
/// as compare writes them), running on a node, finished — each with its task
/// id, in the Runs view.
#[test]
fn slurm_tasks_show_their_job_ids_and_queue_state() {
    use probdrop_tui::run::dir::{self, State};
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-slurm");
    let _ = std::fs::remove_dir_all(&root);
    let runs = root.join("runs");
    let states = [
        (State::Done, "41_0", ""),
        (State::Training, "41_1", ""),
        (State::Queued, "41_2", "Slurm 41_2 PENDING (Resources)"),
    ];
    for (i, (state, task, message)) in states.into_iter().enumerate() {
        let d = synthetic_run(&runs, &format!("arm{i}"), 8);
        let mut info = d.info().unwrap();
        info.slurm_job = Some(task.into());
        d.write_info(&info).unwrap();
        let mut status = d.status().unwrap();
        status.state = state;
        status.message = message.into();
        if state == State::Training {
            (status.host, status.heartbeat) = ("node3".into(), dir::now());
        }
        dir::write_json(&d.file(dir::STATUS), &status).unwrap();
    }
    let mut app = app_over(runs, root.join("experiments"));
    let mut seen = Vec::new();
    for label in ["arm0", "arm1", "arm2"] {
        select_run_of(&mut app, label);
        let screen = render(&app, 120, 30);
        let detail: Vec<&str> = screen.lines().filter(|l| l.contains("Slurm")).collect();
        seen.push(detail.join("\n"));
    }
    assert!(seen[0].contains("Slurm 41_0"), "{}", seen[0]);
    assert!(seen[1].contains("Slurm 41_1 on node3"), "{}", seen[1]);
    assert!(
        seen[2].contains("Slurm 41_2") && seen[2].contains("PENDING (Resources)"),
        "{}",
        seen[2]
    );
    let screen = render(&app, 120, 30);
    for state in ["done", "training", "queued"] {
        assert!(screen.contains(state), "{state}:\n{screen}");
    }
}

/// Issue 32, case 10: a FIFO in a run directory (as notes.json and
/// metrics.jsonl in one run; as every other file the dashboard opens in
/// another) is never opened: the dashboard draws every run and says which
/// files it did not read. Run in a thread with a deadline, so that a
/// dashboard blocked in `open` fails the test instead of hanging it.
#[test]
fn fifos_in_run_directories_do_not_stop_the_dashboard_drawing_the_others() {
    use probdrop_tui::run::{dir, lock, notes};
    use std::sync::mpsc;
    use std::time::Duration;
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-fifos");
    let _ = std::fs::remove_dir_all(&root);
    let runs = root.join("runs");
    synthetic_run(&runs, "before", 50);
    let one = synthetic_run(&runs, "fifo-notes-metrics", 50);
    let other = synthetic_run(&runs, "fifo-everything", 50);
    synthetic_run(&runs, "after", 50);
    let fifos: Vec<PathBuf> = [notes::NOTES, dir::METRICS]
        .iter()
        .map(|f| one.file(f))
        .chain(
            [
                dir::STATUS,
                dir::EVENTS,
                dir::SNAPSHOTS,
                dir::TRAINER_LOG,
                dir::EXPERIMENT,
                dir::CHECKPOINT,
                lock::LOCK,
                notes::NOTES,
            ]
            .iter()
            .map(|f| other.file(f)),
        )
        .collect();
    for f in &fifos {
        let _ = std::fs::remove_file(f);
        nix::unistd::mkfifo(f, nix::sys::stat::Mode::S_IRWXU).unwrap();
    }
    // Built and discovered first: the deadline is for reading the runs.
    plugins();
    let (tx, rx) = mpsc::channel();
    let experiments = root.join("experiments");
    let worker = std::thread::spawn(move || {
        let mut app = app_over(runs, experiments);
        let mut fx = FakeEffects::default();
        app.refresh();
        let mut screens = Vec::new();
        for view in View::ALL {
            app.apply(Action::Go(view), &mut fx);
            app.apply(Action::Mark, &mut fx);
            screens.push(render(&app, 160, 48));
        }
        app.apply(Action::Go(View::Runs), &mut fx);
        select_run_of(&mut app, "fifo-everything");
        screens.insert(0, render(&app, 200, 30));
        select_run_of(&mut app, "fifo-notes-metrics");
        screens.insert(0, render(&app, 200, 30));
        let _ = tx.send((app.runs.len(), screens));
    });
    let Ok((count, screens)) = rx.recv_timeout(Duration::from_secs(30)) else {
        // Let a reader blocked on a FIFO go (a writer opening it), then fail.
        for f in &fifos {
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(f);
        }
        panic!("the dashboard blocked on a FIFO in a run directory");
    };
    worker.join().unwrap();
    assert_eq!(count, 4, "every run listed");
    let runs_view = &screens[0];
    for label in ["before", "fifo-notes-metrics", "fifo-everything", "after"] {
        assert!(runs_view.contains(label), "{label} missing:\n{runs_view}");
    }
    assert!(
        runs_view.contains("metrics.jsonl is not a regular file; not read"),
        "{runs_view}"
    );
    assert!(
        runs_view.contains("notes.json is not a regular file; not read"),
        "{runs_view}"
    );
    let everything = &screens[1];
    assert!(
        everything.contains("status.json is not a regular file; not read"),
        "{everything}"
    );
}
