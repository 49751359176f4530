//! Issue 34's defects of a researcher's second day that live in the
//! dashboard's views: a stalled run, reload marks, durations, text cut at
//! 80 columns, `w`'s figure, axes, the comparison's unfinished runs, zoom
//! and a change waiting for a restart. Runs are written here, stamped by a
//! fixed clock the dashboard is set to (no test waits).

use std::path::{Path, PathBuf};

use crate::dashboard::{FakeEffects, app_over, press, render, snapshot};
use crossterm::event::KeyCode;
use probdrop_tui::run::dir::{self, EventKind, EventLine, JsonLog, MetricLine, RunDir, RunInfo};
use probdrop_tui::run::dir::{State, Status};
use probdrop_tui::ui::app::App;
use probdrop_tui::ui::keys::{Action, View};

/// When the runs here logged their first step.
const T0: f64 = 1_800_000_000.0;
/// Seconds between two logged steps.
const STEP_SECS: f64 = 0.5;

/// A fresh folder for one test's runs, experiments and comparisons.
fn workspace(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("second-day-{name}"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("experiments")).unwrap();
    root
}

/// One run of `label` on `experiment` that logged steps 1..=`steps` of
/// `total` (loss, drop rate rising from 0, validation accuracy every 8
/// steps), one step every [`STEP_SECS`] from [`T0`]; training in this
/// process (alive) unless `steps` is `total`.
fn run(root: &Path, experiment: &str, label: &str, steps: u64, total: u64) -> RunDir {
    let info = RunInfo {
        experiment: experiment.into(),
        source: root.join("experiments").join(format!("{experiment}.toml")),
        label: label.into(),
        strategy_index: 0,
        seed: 1,
        created: "20261207-120000".into(),
        slurm_job: None,
    };
    let d = RunDir::create(&root.join("runs"), &info, "name = \"x\"\n").unwrap();
    let live = steps < total;
    let status = Status {
        state: if live { State::Training } else { State::Done },
        step: steps,
        total_steps: total,
        pid: std::process::id(),
        samples_per_s: Some(512.0),
        ..Status::new(0)
    };
    dir::write_json(&d.file(dir::STATUS), &status).unwrap();
    let line = |step: u64, split: &str, metric: &str, value: f64| MetricLine {
        step,
        epoch: 0,
        split: split.into(),
        metric: metric.into(),
        value,
        wall: T0 + STEP_SECS * step as f64,
        p: 0.1,
        plugin_version: "1.0.0".into(),
    };
    let mut lines = Vec::new();
    for step in 1..=steps {
        lines.push(line(
            step,
            "train",
            "loss",
            2.0 / (1.0 + step as f64 / 50.0),
        ));
        // A drop rate that starts at 0, wobbling by step.
        let p = 0.2 * step as f64 / total as f64 * (1.0 + 0.3 * ((step % 7) as f64 - 3.0) / 3.0);
        lines.push(line(step, "train", "p", p.max(0.0)));
        if step % 8 == 0 {
            lines.push(line(
                step,
                "val",
                "acc",
                0.5 + step as f64 / (4.0 * total as f64),
            ));
        }
    }
    JsonLog::open(&d.file(dir::METRICS))
        .unwrap()
        .append_all(&lines)
        .unwrap();
    event(&d, 0, EventKind::Started, "started");
    d
}

fn event(d: &RunDir, step: u64, kind: EventKind, message: &str) {
    JsonLog::open(&d.file(dir::EVENTS))
        .unwrap()
        .append(&EventLine {
            wall: T0 + STEP_SECS * step as f64,
            step,
            kind,
            message: message.into(),
        })
        .unwrap();
}

/// The dashboard over `root`, its clock `seconds` after the last step of
/// a run `steps` long.
fn app_at(root: &Path, steps: u64, seconds: f64) -> App {
    let mut app = app_over(root.join("runs"), root.join("experiments"));
    app.now = T0 + STEP_SECS * steps as f64 + seconds;
    app
}

/// Item 3: a run whose `mask()` hangs shows as stalled — how long since its
/// last step, in its row and its detail line — once it has gone three
/// median steps and 30 s without one, not as training with an ETA.
#[test]
fn a_run_without_a_step_for_long_shows_as_stalled() {
    let root = workspace("stall");
    run(&root, "quickstart", "dropblock", 300, 752);
    let app = app_at(&root, 300, 10.0);
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("training") && !screen.contains("stalled"),
        "{screen}"
    );
    assert!(screen.contains("samples/s"), "{screen}");

    let app = app_at(&root, 300, 600.0);
    for (w, h) in [(80, 24), (160, 48)] {
        let screen = render(&app, w, h);
        let row = screen.lines().nth(3).unwrap();
        assert!(row.contains("stalled 10m00s"), "{screen}");
        assert!(!row.contains("training"), "{screen}");
        let detail = screen.lines().nth(h as usize - 2).unwrap();
        assert!(detail.contains("stalled: no step for 10m00s"), "{screen}");
        assert!(!screen.contains("samples/s"), "a stale speed: {screen}");
    }
    snapshot("runs_stalled_80x24", &render(&app, 80, 24));
    snapshot("runs_stalled_160x48", &render(&app, 160, 48));
}

/// Item 16: a saved change the run cannot take live marks the run in its
/// row (and says so under the table) until the run starts again.
#[test]
fn a_change_waiting_for_a_restart_marks_the_run() {
    let root = workspace("restart");
    let d = run(&root, "quickstart", "dropblock", 100, 752);
    event(
        &d,
        90,
        EventKind::NeedsRestart,
        "train.batch_size 32 → 64 takes effect on restart",
    );
    let app = app_at(&root, 100, 1.0);
    for (w, h) in [(80, 24), (160, 48)] {
        let screen = render(&app, w, h);
        let row = screen.lines().nth(3).unwrap();
        assert!(row.contains("↻ "), "{screen}");
        assert!(screen.contains("saved change: u restarts"), "{screen}");
    }
    event(&d, 100, EventKind::Resumed, "resumed from step 96");
    let mut app = app_at(&root, 100, 1.0);
    app.refresh();
    assert!(!render(&app, 80, 24).contains('↻'));
}

/// Item 9: at 80×24 a long strategy and experiment name, a long experiment
/// file, the Config title, a `strategy_failed` event and the status line
/// after `w` each fit: shortened in the middle, paths from the workspace.
#[test]
fn long_names_fit_80_columns() {
    let root = workspace("names");
    let d = run(&root, "quickstart", "probdropblock", 752, 752);
    event(&d, 400, EventKind::StrategyFailed, "mask() panicked");
    std::fs::write(
        root.join("experiments/compare-cifar10-resnet18-long.toml"),
        "name = \"x\"\n",
    )
    .unwrap();
    let mut app = app_at(&root, 752, 1.0);
    let mut fx = FakeEffects::default();
    let screen = render(&app, 80, 24);
    let row = screen.lines().nth(3).unwrap();
    assert!(row.contains("probdropblock s1 "), "{screen}");
    assert!(!row.contains("quicks"), "cut mid-word: {screen}");

    app.apply(Action::ToggleConfig, &mut fx);
    let screen = render(&app, 80, 24);
    assert!(
        screen
            .lines()
            .nth(1)
            .unwrap()
            .contains("(c closes; mark runs to compare)"),
        "{screen}"
    );
    app.apply(Action::ToggleConfig, &mut fx);

    app.apply(Action::Go(View::Experiments), &mut fx);
    let screen = render(&app, 80, 24);
    assert!(screen.contains("compare-cifa…t18-long.toml"), "{screen}");

    app.apply(Action::Go(View::Events), &mut fx);
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("strategy_failed probdropblock s1"),
        "{screen}"
    );
    snapshot("events_long_kind_80x24", &screen);

    press(&mut app, KeyCode::Char('2'), &mut fx);
    press(&mut app, KeyCode::Char('w'), &mut fx);
    assert!(
        app.message.starts_with("wrote exports/chart-loss-")
            && app.message.ends_with(".png and .svg"),
        "{}",
        app.message
    );
    assert!(app.message.chars().count() <= 80, "{}", app.message);
    assert!(
        fx.calls.iter().any(|c| c.starts_with("export ")),
        "through Effects"
    );
}

/// The runs of `root`, every one marked, in Charts.
fn charts_of_all(root: &Path, steps: u64) -> (App, FakeEffects) {
    let mut app = app_at(root, steps, 1.0);
    let mut fx = FakeEffects::default();
    for i in 0..app.runs.len() {
        app.selected.run = i;
        app.apply(Action::Mark, &mut fx);
    }
    app.apply(Action::Go(View::Charts), &mut fx);
    (app, fx)
}

/// The x axis's labels: the row under the plot.
fn x_axis(screen: &str) -> String {
    screen.lines().rev().nth(2).unwrap().to_string()
}

/// The colours of the curves drawn (braille and dot cells) at `w`×`h`.
fn colours_drawn(app: &App, w: u16, h: u16) -> std::collections::BTreeSet<String> {
    use probdrop_tui::ui::views::{ColorDepth, draw};
    let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
    terminal
        .draw(|f| draw(f, app, ColorDepth::Indexed256))
        .unwrap();
    let buffer = terminal.backend().buffer();
    buffer
        .content()
        .iter()
        .filter(|c| {
            let ch = c.symbol().chars().next().unwrap_or(' ');
            ('\u{2801}'..='\u{28ff}').contains(&ch) || ch == '•'
        })
        .map(|c| format!("{:?}", c.fg))
        .collect()
}

/// Item 14: zoomed to the last 100 steps, a live run at step 300 beside a
/// finished one of 752 stays in sight: the window ends at the run furthest
/// behind, the same steps for both.
#[test]
fn zoom_keeps_a_live_run_beside_a_finished_one() {
    let root = workspace("zoom");
    run(&root, "quickstart", "long", 752, 752);
    run(&root, "quickstart", "live", 300, 752);
    let (mut app, mut fx) = charts_of_all(&root, 300);
    app.apply(Action::CycleZoom, &mut fx);
    app.apply(Action::CycleZoom, &mut fx);
    assert_eq!(app.charts.last_steps(), Some(100.0));
    let screen = render(&app, 80, 24);
    let axis = x_axis(&screen);
    assert!(axis.contains("200") && axis.contains("300"), "{screen}");
    assert!(!axis.contains("752"), "{screen}");
    let drawn = colours_drawn(&app, 80, 24);
    assert!(drawn.len() >= 2, "both curves drawn: {drawn:?}\n{screen}");
}

/// Item 4: reload and config marks are drawn as the legend says (⋮), not as
/// dots like validation points, and the legend says what they are.
#[test]
fn reload_marks_look_as_the_legend_says() {
    let root = workspace("marks");
    let d = run(&root, "quickstart", "dropblock", 400, 400);
    event(&d, 200, EventKind::Reload, "dropblock 1.0.0 → 1.1.0");
    let (app, _) = charts_of_all(&root, 400);
    let screen = render(&app, 80, 24);
    assert!(screen.contains("⋮ reload/config change"), "{screen}");
    let column = screen.lines().skip(4).filter(|l| l.contains('⋮')).count();
    assert!(column >= 10, "a column of ⋮ across the plot:\n{screen}");
    snapshot("charts_marks_80x24", &screen);
}

/// Item 12: the drop rate (never negative) keeps its axis at 0 with the
/// percentile range (`o`), where the head-room went below zero before.
#[test]
fn a_drop_rate_axis_never_goes_negative() {
    let root = workspace("axes");
    run(&root, "quickstart", "dropblock", 400, 400);
    let (mut app, mut fx) = charts_of_all(&root, 400);
    app.apply(Action::CycleMetric, &mut fx);
    app.apply(Action::CycleMetric, &mut fx);
    app.apply(Action::ClipOutliers, &mut fx);
    for (w, h) in [(80, 24), (160, 48)] {
        let screen = render(&app, w, h);
        assert!(screen.contains("drop rate"), "{screen}");
        assert!(!screen.contains("-0."), "a negative label:\n{screen}");
    }
}

/// Item 13: in Compare, a run still training shows its accuracy now, not
/// as final.
#[test]
fn a_comparisons_unfinished_run_is_not_shown_as_final() {
    use probdrop_tui::run::comparison::{Entry, Manifest};
    let root = workspace("compare");
    let done = run(&root, "quickstart", "none", 64, 64);
    let live = run(&root, "quickstart", "dropblock", 32, 64);
    let entry = |label: &str, d: &RunDir| Entry {
        label: label.into(),
        seed: 1,
        dir: d.path.clone(),
    };
    Manifest {
        experiment: "quickstart".into(),
        source: root.join("experiments/quickstart.toml"),
        created: "20261207-120000".into(),
        baseline: "none".into(),
        strategies: vec!["none".into(), "dropblock".into()],
        seeds: vec![1],
        runs: vec![entry("none", &done), entry("dropblock", &live)],
        cells: Default::default(),
        halted: Default::default(),
        cleared: Default::default(),
    }
    .save(&root.join("compare/quickstart"))
    .unwrap();
    let mut app = app_at(&root, 32, 1.0);
    app.apply(Action::Go(View::Compare), &mut FakeEffects::default());
    for (w, h) in [(80, 24), (160, 48)] {
        let screen = render(&app, w, h);
        let row = |label: &str| {
            screen
                .lines()
                .filter(|l| l.contains(label) && l.contains("/64"))
                .collect::<String>()
        };
        assert!(row("dropblock").contains("now 62.50"), "{screen}");
        assert!(!row("none").contains("now"), "{screen}");
    }
    snapshot("compare_unfinished_80x24", &render(&app, 80, 24));
}

/// Item 11: `w` writes the chart the view shows: smoothed (the raw curve
/// faint beneath), over the percentile range, not the raw curve over every
/// value; and asks `Effects` to write it.
#[test]
fn w_writes_the_chart_as_shown() {
    use probdrop_tui::ui::export_view::{Figure, figure};
    let root = workspace("figure");
    run(&root, "quickstart", "dropblock", 400, 400);
    let (mut app, mut fx) = charts_of_all(&root, 400);
    let Ok(Figure::Chart { panel: raw, .. }) = figure(&app) else {
        panic!("a chart")
    };
    app.apply(Action::CycleSmoothing, &mut fx);
    app.apply(Action::CycleSmoothing, &mut fx);
    app.apply(Action::ClipOutliers, &mut fx);
    let Ok(Figure::Chart { panel, .. }) = figure(&app) else {
        panic!("a chart")
    };
    let train = |p: &probdrop_tui::export::figures::Panel, faint: bool| {
        p.curves
            .iter()
            .find(|c| c.faint == faint && c.name.ends_with("train"))
            .map(|c| c.points.clone())
    };
    let smoothed = train(&panel, false).unwrap();
    assert_ne!(Some(smoothed), train(&raw, false), "smoothed as on screen");
    assert!(
        panel.curves.iter().any(|c| c.faint),
        "the raw curve beneath"
    );
    assert!(raw.y_range.is_some() && panel.y_range.is_some());
    assert_ne!(panel.y_range, raw.y_range, "the percentile range");
    app.apply(Action::ExportView, &mut fx);
    assert!(app.message.starts_with("wrote "), "{}", app.message);
    assert_eq!(fx.calls.len(), 1, "{:?}", fx.calls);
}
