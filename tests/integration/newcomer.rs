//! Issue 34's defects of a newcomer's hour that live in the dashboard's state:
//! a strategy that appears (or goes) while it runs, the experiment selection,
//! the Plugins view's account of builds, and diagnostics kept whole.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::common::Tiny;
use crate::common::fixtures::fixture;
use crate::dashboard::{FakeEffects, render};
use probdrop_tui::plugins::Library;
use probdrop_tui::plugins::watch::ReloadEvent;
use probdrop_tui::run::dir;
use probdrop_tui::run::provenance::LibraryUse;
use probdrop_tui::train::ThisMachine;
use probdrop_tui::ui::app::{App, Input};
use probdrop_tui::ui::keys::{Action, View};

/// A dashboard over `root`'s runs and experiments with no strategy at all.
fn bare_app(root: &Path) -> App {
    App::new(
        root.join("runs"),
        root.join("experiments"),
        &[],
        Vec::new(),
        Arc::new(ThisMachine),
    )
}

fn probe_experiment(root: &Path, name: &str) {
    std::fs::create_dir_all(root.join("experiments")).unwrap();
    Tiny {
        name,
        train: "epochs = 1",
        strategies: "[[strategy]]\nplugin = \"probe\"\nschedule = { kind = \"constant\", p = 0.1 }",
        ..Tiny::default()
    }
    .write(&root.join("experiments").join(format!("{name}.toml")));
}

fn ready(path: &Path) -> Input {
    Input::Reload(ReloadEvent::Ready {
        library: Library::load(path).unwrap(),
        detected_at: Instant::now(),
    })
}

/// Item 1: a library the watcher loads while the dashboard runs joins the one
/// catalogue: the Plugins view lists it, the experiment using it turns valid
/// (so `n` may start it); removed, it leaves again.
#[test]
fn a_strategy_that_appears_while_the_dashboard_runs_becomes_usable_and_leaves_when_removed() {
    let tmp = tempfile::tempdir().unwrap();
    probe_experiment(tmp.path(), "uses-probe");
    let mut app = bare_app(tmp.path());
    let mut fx = FakeEffects::default();
    let invalid = |app: &App| {
        app.experiments[0]
            .result
            .as_ref()
            .err()
            .map(|e| e[0].message.clone())
    };
    assert!(
        invalid(&app).is_some_and(|m| m.contains("unknown strategy \"probe\"")),
        "{:?}",
        invalid(&app)
    );
    let library = tmp.path().join("libprobe.so");
    std::fs::copy(fixture("probe-v1"), &library).unwrap();
    app.apply(ready(&library), &mut fx);
    assert_eq!(invalid(&app), None, "valid once probe is loaded");
    app.apply(Action::Go(View::Plugins), &mut fx);
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("probe") && screen.contains("1.0.0"),
        "{screen}"
    );
    app.apply(Action::Go(View::Experiments), &mut fx);
    app.apply(Action::StartRuns, &mut fx);
    assert!(
        app.prompt.is_some(),
        "n asks where to start it: {}",
        app.message
    );

    app.apply(
        Input::Reload(ReloadEvent::Gone {
            path: library.clone(),
        }),
        &mut fx,
    );
    assert!(app.plugins.is_empty());
    assert!(invalid(&app).is_some(), "unknown again once removed");
}

/// Item 7: a rebuilt library refused (by its trial, or a failed build) keeps
/// the loaded one and says why; a version that passed is "loaded", not
/// "reloaded" (a run may still refuse it: the column of what runs use says).
#[test]
fn the_plugins_view_shows_a_refused_build_beside_the_library_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let mut app = bare_app(tmp.path());
    let mut fx = FakeEffects::default();
    let library = tmp.path().join("libprobe.so");
    std::fs::copy(fixture("probe-v1"), &library).unwrap();
    app.apply(ready(&library), &mut fx);
    app.apply(
        Input::Reload(ReloadEvent::Refused {
            path: library.clone(),
            reason: "mask has the wrong shape".into(),
        }),
        &mut fx,
    );
    app.apply(Action::Go(View::Plugins), &mut fx);
    let screen = render(&app, 160, 48);
    let row = screen.lines().find(|l| l.contains("probe")).unwrap();
    assert!(
        row.contains("1.0.0") && row.contains("last build refused: mask has the wrong shape"),
        "{screen}"
    );
    // A new good build clears it.
    app.apply(ready(&library), &mut fx);
    let screen = render(&app, 160, 48);
    assert!(!screen.contains("last build refused"), "{screen}");
}

/// Item 6: the Experiments selection follows its file when a new file sorts
/// before it, so `n` never starts another experiment than the one selected.
#[test]
fn the_experiment_selection_follows_its_file() {
    let tmp = tempfile::tempdir().unwrap();
    probe_experiment(tmp.path(), "m-one");
    probe_experiment(tmp.path(), "z-two");
    let mut app = bare_app(tmp.path());
    let mut fx = FakeEffects::default();
    app.apply(Action::Go(View::Experiments), &mut fx);
    app.apply(Action::Down, &mut fx);
    assert_eq!(
        app.experiments[app.selected.experiment].name(),
        "z-two.toml"
    );
    probe_experiment(tmp.path(), "a-new");
    app.refresh();
    assert_eq!(app.experiments.len(), 3);
    assert_eq!(
        app.experiments[app.selected.experiment].name(),
        "z-two.toml"
    );
}

/// Item 8: two syntax errors are both reported, each at its own line and key;
/// the Experiments view keeps each diagnostic's lines (the caret under its
/// column), as the Events view's entry does.
#[test]
fn every_syntax_error_is_reported_where_it_is_and_shown_line_by_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("experiments")).unwrap();
    let text = Tiny {
        name: "broken",
        strategies: "[[strategy]]\nplugin = \"none\"",
        ..Tiny::default()
    }
    .text()
    .replace("lr = 0.05", "lr = 0.05 0.1")
    .replace("batch_size = 32", "batch_size = = 32");
    let file = tmp.path().join("experiments/broken.toml");
    std::fs::write(&file, &text).unwrap();
    let errors = probdrop_tui::experiment::parse(&file, &text).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert_eq!(errors[0].line, line_of("lr = 0.05 0.1"), "{:?}", errors[0]);
    assert_eq!(
        errors[1].line,
        line_of("batch_size = = 32"),
        "{:?}",
        errors[1]
    );

    let mut app = bare_app(tmp.path());
    let mut fx = FakeEffects::default();
    app.apply(Action::Go(View::Experiments), &mut fx);
    let screen = render(&app, 160, 48);
    let quoted = screen
        .lines()
        .position(|l| l.contains("| lr = 0.05 0.1"))
        .unwrap_or_else(|| panic!("{screen}"));
    let lines: Vec<&str> = screen.lines().collect();
    let caret = lines[quoted + 1]
        .find('^')
        .expect("the caret on the next line");
    let column = lines[quoted].find("lr = ").unwrap() + errors[0].column - 1;
    assert_eq!(caret, column, "the caret under the error:\n{screen}");
}

/// Item 7: the Plugins view says which version each live run trains with
/// (a run may have refused the version loaded here), beside the one loaded.
#[test]
fn the_plugins_view_shows_what_live_runs_use() {
    let mut app = crate::dashboard::app();
    let mut fx = FakeEffects::default();
    let loaded = app
        .plugins
        .iter()
        .find(|p| p.name == "probdropblock")
        .unwrap();
    let loaded = loaded.version.clone();
    for run in app.runs.iter_mut().take(2) {
        run.alive = true;
        run.provenance.use_library(LibraryUse {
            after_step: 0,
            name: "probdropblock".into(),
            version: "0.9.4".into(),
            interface: "1.4.0".into(),
            path: "/elsewhere/libprobdropblock.so".into(),
            sha256: "0".repeat(64),
            sources: None,
        });
    }
    app.apply(Action::Go(View::Plugins), &mut fx);
    let screen = render(&app, 80, 24);
    let row = screen
        .lines()
        .find(|l| l.contains("probdropblock "))
        .unwrap();
    assert!(
        row.contains(&loaded) && row.contains("0.9.4 ×2"),
        "{screen}"
    );
}

/// Item 8, in Events: a run's diagnostic lists as its first line and " …";
/// opened, its lines stay lines, the caret under the quoted column.
#[test]
fn a_diagnostic_in_events_keeps_its_lines() {
    let runs = crate::dashboard::copies_of_the_fixture_runs("newcomer-events", 1);
    let mut app =
        crate::dashboard::app_over(runs, crate::dashboard::fixture().root.join("experiments"));
    let mut fx = FakeEffects::default();
    let run = app.runs[0].dir.clone();
    let message = "dash.toml:18:6: `optimizer.lr`: invalid TOML: string values must be quoted\\n  18 | lr = 0.05 0.1\\n     |      ^";
    let mut events = std::fs::read_to_string(run.file(dir::EVENTS)).unwrap();
    events.push_str(&format!(
        "{{\"wall\":9e9,\"step\":9,\"kind\":\"config_invalid\",\"message\":\"{message}\"}}\n"
    ));
    std::fs::write(run.file(dir::EVENTS), events).unwrap();
    app.refresh();
    app.apply(Action::Go(View::Events), &mut fx);
    let screen = render(&app, 160, 48);
    let row = screen
        .lines()
        .find(|l| l.contains("config_invalid"))
        .unwrap();
    assert!(
        row.contains("must be quoted …") && !row.contains("| lr"),
        "{screen}"
    );
    app.apply(Action::Bottom, &mut fx);
    app.apply(Action::OpenEvent, &mut fx);
    let screen = render(&app, 160, 48);
    let lines: Vec<&str> = screen.lines().collect();
    let quoted = lines
        .iter()
        .position(|l| l.contains("18 | lr = 0.05 0.1"))
        .unwrap_or_else(|| panic!("{screen}"));
    let caret = lines[quoted + 1].find('^').expect("the caret's own line");
    assert_eq!(caret, lines[quoted].find("0.05").unwrap(), "{screen}");
}
