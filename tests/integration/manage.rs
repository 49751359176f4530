//! Issue 16, what users expect 2, 7 and 10: run management in the Runs view
//! (filter, sort, tags and notes, archive and delete, rerun with the saved
//! file), a comparison started from the Experiments view, and the chart
//! cursor, x axis and legend; over copies of the fixture's real runs.

use std::path::Path;

use crate::dashboard::{
    FakeEffects, app_over, copies_of_the_fixture_runs, fixture, open_experiment, press, render,
    select_run_of, snapshot, type_line,
};
use crossterm::event::KeyCode;
use probdrop_tui::run::dir::metric::{SeriesKey, Split};
use probdrop_tui::run::dir::{self, State, Status};
use probdrop_tui::run::lock::RunLock;
use probdrop_tui::run::notes::{ARCHIVE, NOTES, Notes};
use probdrop_tui::ui::app::App;
use probdrop_tui::ui::keys::{Action, KEYMAP, View};

fn labels_shown(app: &App) -> Vec<String> {
    app.shown_runs()
        .iter()
        .map(|&i| app.runs[i].info.label.clone())
        .collect()
}

fn app_with(name: &str, runs: usize) -> App {
    let runs = copies_of_the_fixture_runs(name, runs);
    app_over(runs, fixture().root.join("experiments"))
}

/// Makes a copied run look as if its trainer were training: its status says
/// so and its lock is held (by this process, which the lock tells apart from
/// the lock's other open files as it would another process).
fn hold_as_training(run: &Path) -> RunLock {
    let path = run.join(dir::STATUS);
    let mut status: Status =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    status.state = State::Training;
    // The fixture's speed differs from one build of it to the next.
    status.samples_per_s = None;
    std::fs::write(&path, serde_json::to_string(&status).unwrap()).unwrap();
    RunLock::acquire(run).unwrap()
}

#[test]
fn runs_are_filtered_sorted_tagged_and_noted() {
    let mut app = app_with("manage-filter", 4);
    let mut fx = FakeEffects::default();
    assert_eq!(app.view, View::Runs);
    press(&mut app, KeyCode::Char('/'), &mut fx);
    type_line(&mut app, "dropblock", &mut fx);
    assert_eq!(labels_shown(&app), ["dropblock", "dropblock"]);
    for (w, h) in [(80, 24), (160, 48)] {
        let screen = render(&app, w, h);
        assert!(screen.contains("Runs (2 of 4) /dropblock"), "{screen}");
        assert!(!screen.contains("none s7"), "{screen}");
    }
    snapshot("runs_filtered_80x24", &render(&app, 80, 24));
    // The cursor moves through the listed runs only.
    press(&mut app, KeyCode::Char('g'), &mut fx);
    press(&mut app, KeyCode::Down, &mut fx);
    press(&mut app, KeyCode::Down, &mut fx);
    assert_eq!(app.selected_run().unwrap().info.label, "dropblock");

    // Tags and a note on the selected run, kept in its directory.
    press(&mut app, KeyCode::Char('t'), &mut fx);
    assert!(render(&app, 80, 24).contains("Tags"));
    type_line(&mut app, "#wide, baseline", &mut fx);
    press(&mut app, KeyCode::Char('N'), &mut fx);
    type_line(&mut app, "lr too high?", &mut fx);
    let run = app.selected_run().unwrap().dir.clone();
    let notes = Notes::of(&run);
    assert_eq!(notes.tags, ["wide", "baseline"]);
    assert_eq!(notes.note, "lr too high?");
    assert!(run.file(NOTES).is_file());
    // Written through Effects, as every outside action.
    let through = format!("notes {}", run.path.display());
    assert_eq!(fx.calls.iter().filter(|c| **c == through).count(), 2);
    let screen = render(&app, 80, 24);
    assert!(screen.contains("#wide #baseline"), "{screen}");
    assert!(screen.contains("note: lr too high?"), "{screen}");
    // The line opens with the tags as they are; erased and kept, they go;
    // Esc changes nothing.
    press(&mut app, KeyCode::Char('t'), &mut fx);
    assert_eq!(app.entry.as_ref().unwrap().text, "wide baseline");
    for _ in 0.."wide baseline".len() {
        press(&mut app, KeyCode::Backspace, &mut fx);
    }
    type_line(&mut app, "", &mut fx);
    assert!(
        Notes::of(&run).tags.is_empty(),
        "Enter on an empty line clears"
    );
    press(&mut app, KeyCode::Char('t'), &mut fx);
    press(&mut app, KeyCode::Char('x'), &mut fx);
    press(&mut app, KeyCode::Esc, &mut fx);
    assert!(Notes::of(&run).tags.is_empty(), "Esc keeps what was there");
    assert_eq!(Notes::of(&run).note, "lr too high?");

    // A tag filters; Esc while typing a filter puts the old one back.
    press(&mut app, KeyCode::Char('N'), &mut fx);
    press(&mut app, KeyCode::Esc, &mut fx);
    press(&mut app, KeyCode::Char('t'), &mut fx);
    type_line(&mut app, "wide", &mut fx);
    press(&mut app, KeyCode::Char('/'), &mut fx);
    for _ in 0.."dropblock".len() {
        press(&mut app, KeyCode::Backspace, &mut fx);
    }
    type_line(&mut app, "#wide", &mut fx);
    assert_eq!(app.shown_runs(), [app.selected.run]);
    press(&mut app, KeyCode::Char('/'), &mut fx);
    press(&mut app, KeyCode::Char('z'), &mut fx);
    assert!(app.shown_runs().is_empty(), "filtered as it is typed");
    assert!(render(&app, 80, 24).contains("No run matches"));
    press(&mut app, KeyCode::Esc, &mut fx);
    assert_eq!(app.run_list.filter, "#wide");
    press(&mut app, KeyCode::Char('/'), &mut fx);
    for _ in 0..5 {
        press(&mut app, KeyCode::Backspace, &mut fx);
    }
    type_line(&mut app, "", &mut fx);
    assert_eq!(app.shown_runs().len(), 4);
}

#[test]
fn runs_sort_by_strategy_state_and_best_accuracy() {
    let mut app = app_with("manage-sort", 4);
    let mut fx = FakeEffects::default();
    assert_eq!(app.shown_runs(), [0, 1, 2, 3], "oldest first");
    press(&mut app, KeyCode::Char('S'), &mut fx);
    assert_eq!(
        labels_shown(&app),
        ["dropblock", "dropblock", "none", "none"]
    );
    assert!(render(&app, 80, 24).contains("by strategy"));
    // One run training (its lock held): it comes first by state.
    let last = app.runs[3].dir.path.clone();
    let _lock = hold_as_training(&last);
    app.refresh();
    press(&mut app, KeyCode::Char('S'), &mut fx);
    assert_eq!(app.runs[app.shown_runs()[0]].dir.path, last);
    press(&mut app, KeyCode::Char('S'), &mut fx);
    let best: Vec<f64> = app
        .shown_runs()
        .iter()
        .map(|&i| app.runs[i].best_val_acc().unwrap())
        .collect();
    assert!(best.windows(2).all(|w| w[0] >= w[1]), "{best:?}");
    assert!(render(&app, 160, 48).contains("by best accuracy"));
    press(&mut app, KeyCode::Char('S'), &mut fx);
    assert_eq!(app.shown_runs(), [0, 1, 2, 3], "back to the start order");
}

#[test]
fn finished_runs_are_archived_or_deleted_after_asking_and_live_ones_are_not() {
    let mut app = app_with("manage-archive", 3);
    let runs = app.runs_dir.clone();
    let mut fx = FakeEffects::default();
    let first = app.runs[0].dir.path.clone();
    press(&mut app, KeyCode::Char('A'), &mut fx);
    assert!(app.confirm.is_some());
    snapshot("archive_confirm_80x24", &render(&app, 80, 24));
    press(&mut app, KeyCode::Char('n'), &mut fx);
    assert!(first.is_dir() && app.message == "nothing changed");
    press(&mut app, KeyCode::Char('A'), &mut fx);
    press(&mut app, KeyCode::Char('y'), &mut fx);
    let archived = runs.join(ARCHIVE).join(first.file_name().unwrap());
    assert!(archived.join(dir::METRICS).is_file(), "{}", app.message);
    assert!(!first.exists());
    assert_eq!(app.runs.len(), 2);
    // Through `Effects`, as every outside action.
    assert_eq!(fx.calls, [format!("archive {}", first.display())]);

    // Delete asks too, and names what goes.
    let second = app.selected_run().unwrap().dir.path.clone();
    press(&mut app, KeyCode::Char('D'), &mut fx);
    assert!(render(&app, 80, 24).contains("Delete"));
    press(&mut app, KeyCode::Enter, &mut fx);
    assert!(!second.exists(), "{}", app.message);
    assert_eq!(app.runs.len(), 1);
    assert_eq!(
        fx.calls.last(),
        Some(&format!("delete {}", second.display()))
    );

    // A training run is neither.
    let live = app.runs[0].dir.path.clone();
    let _lock = hold_as_training(&live);
    app.refresh();
    app.selected.run = 0;
    for key in ['A', 'D'] {
        press(&mut app, KeyCode::Char(key), &mut fx);
        assert!(app.confirm.is_none(), "{key} asked about a live run");
        assert!(app.message.contains("stop it first"), "{}", app.message);
    }
    assert!(live.is_dir());
}

#[test]
fn a_change_that_needs_a_restart_reruns_the_run_from_its_file() {
    let mut app = app_with("manage-rerun", 2);
    let mut fx = FakeEffects::default();
    select_run_of(&mut app, "dropblock");
    press(&mut app, KeyCode::Char('u'), &mut fx);
    assert!(app.confirm.is_none() && app.message.contains("no saved change"));
    // The trainer's word after a saved change of the model.
    let run = app.selected_run().unwrap().dir.clone();
    let mut events = std::fs::read_to_string(run.file(dir::EVENTS)).unwrap();
    events.push_str(
        "{\"wall\":5e9,\"step\":9,\"kind\":\"needs_restart\",\"message\":\"changed, needs a restart: model.hidden\"}\n",
    );
    std::fs::write(run.file(dir::EVENTS), events).unwrap();
    let _lock = hold_as_training(&run.path);
    app.refresh();
    // Seen just after its last step: not stalled, whenever the test runs.
    app.now = app.selected_run().unwrap().last_step_wall().unwrap();
    press(&mut app, KeyCode::Char('u'), &mut fx);
    snapshot("rerun_confirm_80x24", &render(&app, 80, 24));
    press(&mut app, KeyCode::Char('y'), &mut fx);
    let source = app
        .selected_run()
        .unwrap()
        .info
        .source
        .display()
        .to_string();
    assert_eq!(
        fx.calls,
        [
            format!("Stop {}", run.path.display()),
            format!("prepare {source} only dropblock s7 Some(\"cpu\")"),
        ],
        "{}",
        app.message
    );
}

#[test]
fn a_comparison_starts_from_the_experiments_view() {
    let mut app = app_with("manage-compare", 2);
    let mut fx = FakeEffects::default();
    open_experiment(&mut app, "dash.toml", &mut fx);
    press(&mut app, KeyCode::Char('C'), &mut fx);
    snapshot("start_compare_80x24", &render(&app, 80, 24));
    press(&mut app, KeyCode::Enter, &mut fx);
    let file = fixture().root.join("experiments/dash.toml");
    assert_eq!(fx.calls, [format!("compare {} None", file.display())]);
    assert!(
        app.message.contains("comparison started"),
        "{}",
        app.message
    );
}

#[test]
fn the_chart_cursor_reads_values_and_x_counts_epochs_or_minutes() {
    let mut app = app_with("manage-charts", 2);
    let mut fx = FakeEffects::default();
    for i in 0..2 {
        app.selected.run = i;
        app.apply(Action::Mark, &mut fx);
    }
    app.apply(Action::Go(View::Charts), &mut fx);
    press(&mut app, KeyCode::Left, &mut fx);
    let screen = render(&app, 80, 24);
    let train_loss = SeriesKey::new(Split::Train, "loss");
    let newest = app.runs[0].series[&train_loss].last().unwrap().0;
    let read_at = format!("step {newest:.0}:");
    assert!(screen.contains(&read_at), "{screen}");
    // At the newest step: each run's last training loss and validation loss.
    for r in &app.runs {
        let last = |split: Split| r.series[&SeriesKey::new(split, "loss")].last().unwrap();
        let loss = last(Split::Train).1;
        // Four significant digits: losses here are between 1 and 10.
        assert!((1.0..10.0).contains(&loss), "{loss}");
        let loss = format!("{loss:.3}");
        let val = format!("•{:.3}", last(Split::Val).1);
        let flat = screen.replace('\u{a0}', " ");
        assert!(
            flat.contains(&loss) && flat.contains(&val),
            "{loss} {val}\n{screen}"
        );
    }
    snapshot("charts_cursor_80x24", &render(&app, 80, 24));
    press(&mut app, KeyCode::Esc, &mut fx);
    assert!(!render(&app, 80, 24).contains(&read_at));

    press(&mut app, KeyCode::Char('x'), &mut fx);
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("epoch") && screen.contains("3.0"),
        "{screen}"
    );
    press(&mut app, KeyCode::Char('x'), &mut fx);
    assert!(render(&app, 160, 48).contains("minutes"));
    press(&mut app, KeyCode::Char('x'), &mut fx);
    assert!(render(&app, 80, 24).contains("step"));

    assert!(render(&app, 80, 24).contains("━ train"));
    press(&mut app, KeyCode::Char('L'), &mut fx);
    for (w, h) in [(80, 24), (160, 48)] {
        assert!(!render(&app, w, h).contains("━ train"), "legend hidden");
    }
}

#[test]
fn the_help_turns_pages_at_80x24_and_shows_every_key() {
    let mut app = app_with("manage-help", 1);
    let mut fx = FakeEffects::default();
    press(&mut app, KeyCode::Char('?'), &mut fx);
    let first = render(&app, 80, 24);
    assert!(first.contains("Keys 1/"), "{first}");
    // ↓ turns the pages until it comes back to the first.
    let mut pages = vec![first.clone()];
    loop {
        press(&mut app, KeyCode::Down, &mut fx);
        let page = render(&app, 80, 24);
        if page == first {
            break;
        }
        assert!(pages.len() < 5, "the pages never came back to the first");
        pages.push(page);
    }
    assert!(pages.len() >= 2);
    assert!(
        first.contains(&format!("Keys 1/{}", pages.len())),
        "{first}"
    );
    snapshot("help_80x24_page2", &pages[1]);
    assert_eq!(app.selected.run, 0, "↓ turned the page, not the run");
    for b in KEYMAP.iter().filter(|b| !b.label.is_empty()) {
        let line = format!("{:<8} {}", b.label, b.help);
        assert!(
            pages.iter().any(|p| p.contains(&line)),
            "{line:?} on no page"
        );
    }
    // At 160×48 one page holds them all.
    assert!(render(&app, 160, 48).contains("Keys (? to close)"));
}
