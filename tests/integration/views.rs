//! Issue 16's defects in the dashboard's views, each at 80×24 and 160×48 over
//! copies of the fixture's real runs (see `dashboard` for the fixture).

use std::path::{Path, PathBuf};

use crate::dashboard::{
    FakeEffects, app_over, copies_of_the_fixture_runs, fixture, render, select_run_of, snapshot,
};
use probdrop_tui::run::dir::{self, RunInfo};
use probdrop_tui::ui::app::{App, Input};
use probdrop_tui::ui::keys::{Action, View};
use probdrop_tui::ui::system::{Gpu, GpuSource, NoGpu, Probe, Sample};
use probdrop_tui::ui::views::{ColorDepth, draw};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

/// The screen's text as wrapped prose reads: borders gone, rows joined by a space.
fn flat(screen: &str) -> String {
    screen
        .lines()
        .map(|l| l.trim_matches(|c: char| "│┌┐└┘─ ".contains(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// Sets a copied run's start stamp (`created`, `YYYYMMDD-HHMMSS`).
fn set_created(run: &Path, created: &str) {
    let path = run.join(dir::RUN);
    let mut info: RunInfo = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    info.created = created.into();
    std::fs::write(&path, serde_json::to_string(&info).unwrap()).unwrap();
}

/// Four runs: none, DropBlock with block_size 3 twice (started at different
/// times), DropBlock with block_size 5; every one marked for the charts.
fn four_alike(name: &str) -> App {
    let runs = copies_of_the_fixture_runs(name, 4);
    // copies cycle through the fixture's runs: 00 and 02 are one, 01 and 03 the other.
    let originals = dir::list_runs(&runs);
    let dropblock: Vec<PathBuf> = originals
        .iter()
        .filter(|d| d.info().unwrap().label == "dropblock")
        .map(|d| d.path.clone())
        .collect();
    assert_eq!(dropblock.len(), 2);
    let none = originals
        .iter()
        .find(|d| d.info().unwrap().label == "none")
        .unwrap()
        .path
        .clone();
    // The other "none" copy becomes a third DropBlock run, block size 5.
    let third = originals
        .iter()
        .rfind(|d| d.info().unwrap().label == "none")
        .unwrap()
        .path
        .clone();
    assert_ne!(none, third);
    std::fs::remove_dir_all(&third).unwrap();
    crate::dashboard::copy_dir(&dropblock[0], &third);
    edit(
        &third.join(dir::EXPERIMENT),
        "block_size = 3",
        "block_size = 5",
    );
    set_created(&none, "20261201-080000");
    set_created(&dropblock[0], "20261201-090000");
    set_created(&dropblock[1], "20261201-100000");
    set_created(&third, "20261201-110000");
    let mut app = app_over(runs, fixture().root.join("experiments"));
    let mut fx = FakeEffects::default();
    for i in 0..4 {
        app.selected.run = i;
        app.apply(Action::Mark, &mut fx);
    }
    app
}

/// Issue 16, defect 2: runs that differ in a parameter are named by it in the
/// legend, identical ones by their start time; the Runs table shows when each
/// started.
#[test]
fn overlaid_runs_are_named_by_what_differs() {
    let mut app = four_alike("views-identity");
    let mut fx = FakeEffects::default();
    app.apply(Action::Go(View::Charts), &mut fx);
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        // Names do not break across legend lines (their spaces do not break).
        let legend: String = screen
            .lines()
            .skip(1)
            .take(4)
            .map(|l| l.replace('\u{a0}', " "))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(legend.contains("block_size=5"), "{screen}");
        assert!(legend.contains("block_size=3 s7 @09:00:00"), "{screen}");
        assert!(legend.contains("block_size=3 s7 @10:00:00"), "{screen}");
        assert!(legend.contains("none s7"), "{screen}");
    }
    app.apply(Action::Go(View::Runs), &mut fx);
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        let stamp = if w < 120 { "09:00:00" } else { "12-01 09:00" };
        assert!(screen.contains(stamp), "{screen}");
        let rows: Vec<&str> = screen.lines().skip(3).take(4).collect();
        for (i, a) in rows.iter().enumerate() {
            for b in &rows[i + 1..] {
                assert_ne!(a, b, "two rows alike:\n{screen}");
            }
        }
    }
}

/// Issue 16, defect 16: ETA, device and epoch are columns at 80 too, and the
/// line under the table says which run it is even when its trainer said nothing.
#[test]
fn the_runs_table_keeps_eta_device_and_epoch_at_80_columns() {
    let runs = copies_of_the_fixture_runs("views-runs-columns", 2);
    let status = runs.join("run-00").join(dir::STATUS);
    let text = std::fs::read_to_string(&status).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["message"] = "".into();
    std::fs::write(&status, value.to_string()).unwrap();
    let app = app_over(runs, fixture().root.join("experiments"));
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        let header = screen.lines().nth(2).unwrap();
        for column in ["started", "state", "eta", "best", "device"] {
            assert!(header.contains(column), "{column} at {w}: {screen}");
        }
        let detail = screen.lines().nth(h as usize - 3).unwrap();
        assert!(detail.contains("run-00 · step 24/24"), "{screen}");
        assert!(
            screen.lines().nth(h as usize - 2).unwrap().contains("done"),
            "{screen}"
        );
    }
    snapshot("runs_columns_80x24", &render(&app, 80, 24));
}

/// The foreground colours of the braille cells drawn at `w`×`h`.
fn braille_colours(app: &App, w: u16, h: u16) -> std::collections::BTreeSet<String> {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal
        .draw(|f| draw(f, app, ColorDepth::Indexed256))
        .unwrap();
    terminal
        .backend()
        .buffer()
        .content()
        .iter()
        .filter(|c| {
            c.symbol()
                .chars()
                .next()
                .is_some_and(|ch| ('\u{2801}'..='\u{28ff}').contains(&ch))
        })
        .map(|c| format!("{:?}", c.fg))
        .collect()
}

/// Issue 16, defect 7: with smoothing, the raw curve is drawn beneath in a
/// darker colour of the run's, not a second full-strength curve.
#[test]
fn smoothing_draws_the_raw_curve_faint_beneath() {
    let f = fixture();
    let mut app = app_over(f.root.join("runs"), f.root.join("experiments"));
    let mut fx = FakeEffects::default();
    app.apply(Action::Go(View::Charts), &mut fx);
    for (w, h) in SIZES {
        let raw = braille_colours(&app, w, h);
        assert_eq!(raw.len(), 1, "one run, one colour: {raw:?}");
        app.apply(Action::CycleSmoothing, &mut fx);
        let smoothed = braille_colours(&app, w, h);
        app.apply(Action::CycleSmoothing, &mut fx);
        app.apply(Action::CycleSmoothing, &mut fx);
        app.apply(Action::CycleSmoothing, &mut fx);
        assert!(smoothed.is_superset(&raw), "{smoothed:?}");
        assert_eq!(
            smoothed.len(),
            2,
            "the run's colour and its faint one: {smoothed:?}"
        );
    }
}

/// Issue 16, defect 8: every overlaid run's reloads and config changes are
/// marked, at their steps, in the run's colour.
#[test]
fn every_overlaid_run_has_its_reload_marks() {
    let f = fixture();
    let runs = copies_of_the_fixture_runs("views-marks", 2);
    for (run, step, kind) in [("run-00", 6, "reload"), ("run-01", 18, "config_applied")] {
        let log = runs.join(run).join(dir::EVENTS);
        let mut text = std::fs::read_to_string(&log).unwrap();
        text.push_str(&format!(
            "{{\"wall\":1.0,\"step\":{step},\"kind\":\"{kind}\",\"message\":\"x\"}}\n"
        ));
        std::fs::write(&log, text).unwrap();
    }
    let mut app = app_over(runs, f.root.join("experiments"));
    let mut fx = FakeEffects::default();
    for i in 0..2 {
        app.selected.run = i;
        app.apply(Action::Mark, &mut fx);
    }
    app.apply(Action::Go(View::Charts), &mut fx);
    for (w, h) in SIZES {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
        terminal
            .draw(|fr| draw(fr, &app, ColorDepth::Indexed256))
            .unwrap();
        let buffer = terminal.backend().buffer();
        // A mark is a column of ⋮ (as the legend draws it; issue 34, item 4:
        // not the validation curves' dots), several rows tall, in one run
        // colour.
        let mut columns = std::collections::BTreeMap::<(u16, String), usize>::new();
        for y in 0..h {
            for x in 0..w {
                let cell = &buffer[(x, y)];
                if cell.symbol() == "⋮" {
                    *columns.entry((x, format!("{:?}", cell.fg))).or_default() += 1;
                }
            }
        }
        let tall: Vec<(u16, String)> = columns
            .into_iter()
            // A quarter of the screen: the plots of the 2×2 grid at 160×48.
            .filter(|(_, n)| *n >= usize::from(h) / 4)
            .map(|(k, _)| k)
            .collect();
        let colours: std::collections::BTreeSet<&String> = tall.iter().map(|(_, c)| c).collect();
        assert_eq!(colours.len(), 2, "a mark of each run at {w}x{h}: {tall:?}");
        let (first, second) = (tall[0].0, tall[tall.len() - 1].0);
        assert!(first < second, "step 6 left of step 18: {tall:?}");
        assert!(render(&app, w, h).contains("reload/config"));
    }
}

/// Issue 16, defect 11: Enter shows the whole selected entry (wrapped); f
/// lists only that entry's run, f again every run.
#[test]
fn an_event_opens_in_full_and_filters_by_its_run() {
    let f = fixture();
    let runs = copies_of_the_fixture_runs("views-events", 3);
    let long = "a long message that does not fit on one line of the event list at any width: "
        .repeat(4)
        + "THE END";
    let log = runs.join("run-01").join(dir::EVENTS);
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str(&format!(
        "{{\"wall\":4e9,\"step\":5,\"kind\":\"error\",\"message\":\"{long}\"}}\n"
    ));
    std::fs::write(&log, text).unwrap();
    let mut app = app_over(runs, f.root.join("experiments"));
    let mut fx = FakeEffects::default();
    app.apply(Action::Go(View::Events), &mut fx);
    let all = app.events().len();
    for (w, h) in SIZES {
        assert!(!render(&app, w, h).contains("THE END"), "cut in the list");
        app.apply(Action::OpenEvent, &mut fx);
        let screen = render(&app, w, h);
        assert!(flat(&screen).contains("THE END"), "{screen}");
        assert!(screen.contains("at step 5"), "{screen}");
        app.apply(Action::OpenEvent, &mut fx);
    }
    snapshot("events_open_80x24", &{
        app.apply(Action::OpenEvent, &mut fx);
        let s = render(&app, 80, 24);
        app.apply(Action::OpenEvent, &mut fx);
        s
    });
    app.apply(Action::FilterEvents, &mut fx);
    let run01 = app.runs[1].dir.path.clone();
    assert_eq!(app.events_of.as_ref(), Some(&run01));
    let only = app.events();
    assert!(only.len() < all && only.iter().all(|e| e.run == run01));
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert!(
            screen.contains("Events of ") && screen.contains("; f: all)"),
            "{screen}"
        );
    }
    app.apply(Action::FilterEvents, &mut fx);
    assert_eq!(app.events().len(), all);
}

/// Issue 16, defect 12: the Masks header fits 80 columns, each map has a colour
/// bar with its values, older snapshots can be shown, and the hint of a run
/// without snapshots is whole.
#[test]
fn masks_have_a_scale_a_history_and_fit_80_columns() {
    let f = fixture();
    let mut app = app_over(f.root.join("runs"), f.root.join("experiments"));
    let mut fx = FakeEffects::default();
    select_run_of(&mut app, "dropblock");
    app.apply(Action::Go(View::Masks), &mut fx);
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        let lines: Vec<&str> = screen.lines().collect();
        assert!(
            lines[2].contains("slot") && lines[2].contains("channel"),
            "{screen}"
        );
        assert!(
            lines[3].contains("step 24 (newest") && lines[3].contains("dropped"),
            "{screen}"
        );
        assert_eq!(screen.matches("0 ██████████ ").count(), 2, "{screen}");
    }
    app.apply(Action::OlderSnapshot, &mut fx);
    let older = render(&app, 80, 24);
    assert!(older.contains("step 16 (2/3; > newer)"), "{older}");
    for _ in 0..5 {
        app.apply(Action::OlderSnapshot, &mut fx);
    }
    assert!(
        render(&app, 80, 24).contains("step 8 (1/3"),
        "the oldest, no further"
    );
    snapshot("masks_older_80x24", &older);

    // A run with no snapshots says so in full.
    let runs = copies_of_the_fixture_runs("views-no-snapshots", 1);
    std::fs::remove_file(runs.join("run-00").join(dir::SNAPSHOTS)).unwrap();
    let mut app = app_over(runs, f.root.join("experiments"));
    app.apply(Action::Go(View::Masks), &mut fx);
    let screen = flat(&render(&app, 80, 24));
    assert!(
        screen.contains("every train.snapshot_every steps)"),
        "{screen}"
    );
}

/// Issue 34, item 10: the maps grow to the space there is (whole pixels per
/// value, as many across as down), and the header gives the whole snapshot's
/// dropped fraction beside the channel's.
#[test]
fn masks_fill_the_space_and_say_the_snapshots_dropped_fraction() {
    let f = fixture();
    let mut app = app_over(f.root.join("runs"), f.root.join("experiments"));
    let mut fx = FakeEffects::default();
    select_run_of(&mut app, "dropblock");
    app.apply(Action::Go(View::Masks), &mut fx);
    let run = app.selected_run().unwrap();
    let newest = run
        .dir
        .snapshots()
        .into_iter()
        .rfind(|s| s.sample == 0)
        .unwrap();
    let whole = newest.mask.iter().filter(|m| **m == 0.0).count() as f64 / newest.mask.len() as f64;
    let said = format!("(snapshot {:.1} %)", 100.0 * whole);
    let (h, w) = (newest.height, newest.width);
    for (cols, rows) in SIZES {
        let screen = render(&app, cols, rows);
        assert!(screen.contains(&said), "{said} not in\n{screen}");
        let map_rows = screen.lines().filter(|l| l.contains('▀')).count();
        let map_cols = screen
            .lines()
            .find(|l| l.contains('▀'))
            .unwrap()
            .split(|c| c != '▀')
            .map(|run| run.chars().count())
            .max()
            .unwrap();
        // Each map has half the width; the rest of the height less the
        // header, its title and its colour bar (two pixels a row).
        let room_cols = (cols as usize - 2) / 2;
        let room_rows = rows as usize - 4 - 2 - 2;
        let scale = (room_cols / w).min(2 * room_rows / h);
        assert_eq!(map_cols, w * scale, "square pixels across\n{screen}");
        assert_eq!(map_rows, (h * scale).div_ceil(2), "and down\n{screen}");
        assert!(map_rows * 2 > room_rows, "over half the height\n{screen}");
    }
}

/// Issue 34, item 10: `d` goes to the next channel with a dropped position,
/// on through the samples and round again; where none has one it says so.
#[test]
fn d_jumps_to_the_next_channel_with_drops() {
    use probdrop_tui::run::dir::SnapshotLine;
    let runs = copies_of_the_fixture_runs("views-next-dropped", 2);
    let run = dir::list_runs(&runs)
        .into_iter()
        .find(|d| d.info().unwrap().label == "dropblock")
        .unwrap();
    // Nothing dropped but in channel 2 of sample 0 and channel 1 of sample 2.
    let lines: Vec<String> = run
        .snapshots()
        .into_iter()
        .map(|mut s: SnapshotLine| {
            let plane = s.height * s.width;
            s.mask.iter_mut().for_each(|m| *m = 1.0);
            let c = match s.sample {
                0 => Some(2),
                2 => Some(1),
                _ => None,
            };
            if let Some(c) = c {
                s.mask[c * plane + 5] = 0.0;
            }
            serde_json::to_string(&s).unwrap()
        })
        .collect();
    std::fs::write(run.file(dir::SNAPSHOTS), lines.join("\n") + "\n").unwrap();
    let mut app = app_over(runs, fixture().root.join("experiments"));
    let mut fx = FakeEffects::default();
    select_run_of(&mut app, "dropblock");
    app.apply(Action::Go(View::Masks), &mut fx);
    let at = |app: &App| {
        let screen = render(app, 80, 24);
        let line = screen.lines().nth(2).unwrap().to_string();
        let sample = line
            .split("sample ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string();
        let channel = line
            .split("channel ")
            .nth(1)
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .to_string();
        (sample, channel)
    };
    let mut seen = Vec::new();
    for _ in 0..3 {
        app.apply(Action::NextDropped, &mut fx);
        seen.push(at(&app));
    }
    let want = |s: &str, c: &str| (s.to_string(), c.to_string());
    assert_eq!(
        seen,
        [want("0", "(3/4)"), want("2", "(2/4)"), want("0", "(3/4)")]
    );

    // A run that dropped nothing stays where it is, and says why.
    let none = copies_of_the_fixture_runs("views-none-dropped", 2);
    let mut quiet = app_over(none, fixture().root.join("experiments"));
    select_run_of(&mut quiet, "none");
    quiet.apply(Action::Go(View::Masks), &mut fx);
    quiet.apply(Action::NextDropped, &mut fx);
    assert_eq!(quiet.masks, probdrop_tui::ui::state::MaskCursor::default());
    assert!(
        quiet.message.contains("nothing dropped"),
        "{}",
        quiet.message
    );
}

/// Issue 16, what users expect 1: `c` shows the selected run's whole config,
/// and with runs marked only what differs between them.
#[test]
fn the_config_panel_shows_a_run_or_what_differs() {
    let mut app = four_alike("views-config");
    let mut fx = FakeEffects::default();
    app.apply(Action::Go(View::Runs), &mut fx);
    app.apply(Action::ToggleConfig, &mut fx);
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert!(
            screen.contains("What differs between the 4 marked runs"),
            "{screen}"
        );
        let row = screen
            .lines()
            .find(|l| l.contains("strategy.params.block_size"))
            .unwrap_or_else(|| panic!("{screen}"));
        assert!(
            row.contains('3') && row.contains('5') && row.contains('-'),
            "{row}"
        );
        assert!(
            !screen.contains("batch_size"),
            "alike keys left out:\n{screen}"
        );
    }
    snapshot("config_diff_80x24", &render(&app, 80, 24));
    app.marked.clear();
    app.selected.run = 0;
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert!(screen.contains("Config of run-00"), "{screen}");
        assert!(flat(&screen).contains("batch_size=32"), "{screen}");
    }
    app.apply(Action::ToggleConfig, &mut fx);
    assert!(!render(&app, 80, 24).contains("Config of"));
}

/// Issue 16, what users expect 6: `l` shows the end of the selected run's
/// trainer.log under the table, and new lines as they are written.
#[test]
fn the_log_pane_follows_the_trainer_log() {
    let runs = copies_of_the_fixture_runs("views-log", 2);
    let log = runs.join("run-00").join(dir::TRAINER_LOG);
    let text: String = (0..300)
        .map(|i| format!("step {i} of the old log\n"))
        .collect();
    std::fs::write(&log, text).unwrap();
    let mut app = app_over(runs, fixture().root.join("experiments"));
    let mut fx = FakeEffects::default();
    app.apply(Action::ToggleLogPane, &mut fx);
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert!(screen.contains("trainer.log of run-00"), "{screen}");
        assert!(screen.contains("step 299 of the old log"), "{screen}");
        assert!(!screen.contains("step 0 of the old log"), "{screen}");
    }
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, b"a line written just now\n").unwrap();
    app.apply(Input::Tick, &mut fx);
    let screen = render(&app, 80, 24);
    assert!(screen.contains("a line written just now"), "{screen}");
    snapshot("runs_log_80x24", &screen);
    app.apply(Action::ToggleLogPane, &mut fx);
    assert!(!render(&app, 80, 24).contains("trainer.log of"));
}

/// Two H200s, as a fake NVML source reports them.
struct FakeNvml;

impl GpuSource for FakeNvml {
    fn gpus(&mut self) -> Result<Vec<Gpu>, String> {
        Ok((0..2)
            .map(|index| Gpu {
                index,
                name: "NVIDIA H200".into(),
                utilisation_percent: Some(87),
                memory: Some((40 << 30, 140 << 30)),
                temperature_c: Some(61),
                power_w: Some(350.4),
                processes: Vec::new(),
            })
            .collect())
    }
}

/// Issue 16, what users expect 5: the machine above the Runs table: CPU,
/// memory, and a line per GPU from NVML (a fake source here); without a GPU,
/// a line saying why none is shown.
#[test]
fn the_runs_view_shows_the_machine_and_its_gpus() {
    let f = fixture();
    let mut app = app_over(f.root.join("runs"), f.root.join("experiments"));
    let mut fx = FakeEffects::default();
    let sample = Probe::new(Box::new(FakeNvml)).sample();
    app.apply(Input::System(sample), &mut fx);
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert!(
            screen.contains("cpu ") && screen.contains(" GiB"),
            "{screen}"
        );
        for gpu in ["gpu0", "gpu1"] {
            let line = format!("{gpu} NVIDIA H200 · 87 % · 40.0/140.0 GiB · 61 °C · 350 W");
            assert!(screen.contains(&line), "{screen}");
        }
        assert!(screen.contains("Runs (2)"), "the table is still there");
    }
    let fixed = Sample {
        cpu_percent: Some(12.0),
        memory: Some((10 << 30, 24 << 30)),
        gpus: FakeNvml.gpus(),
    };
    app.apply(Input::System(fixed), &mut fx);
    snapshot("runs_system_80x24", &render(&app, 80, 24));
    let none = Probe::new(Box::new(NoGpu("no NVIDIA GPU (no driver)".into()))).sample();
    app.apply(Input::System(none), &mut fx);
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert!(
            screen
                .lines()
                .nth(1)
                .unwrap()
                .contains("no NVIDIA GPU (no driver)"),
            "{screen}"
        );
    }
}

/// Issue 16, what users expect 3: every logged metric can be charted (m and M
/// go through them), and a large terminal shows four charts at once.
#[test]
fn every_logged_metric_can_be_charted_and_large_terminals_show_four() {
    let f = fixture();
    let mut app = app_over(f.root.join("runs"), f.root.join("experiments"));
    let mut fx = FakeEffects::default();
    for i in 0..2 {
        app.selected.run = i;
        app.apply(Action::Mark, &mut fx);
    }
    app.apply(Action::Go(View::Charts), &mut fx);
    let mut titles = Vec::new();
    loop {
        let screen = render(&app, 80, 24);
        let title = screen
            .lines()
            .nth(1)
            .unwrap()
            .trim_start_matches('┌')
            .to_string();
        if titles.contains(&title) {
            break;
        }
        assert!(!screen.contains("no metrics yet"), "{screen}");
        titles.push(title);
        app.apply(Action::CycleMetric, &mut fx);
        assert!(titles.len() < 40, "m cycles back to the first metric");
    }
    let all = titles.join("\n");
    for label in [
        "loss (1/",
        "accuracy (2/",
        "drop rate (3/",
        "learning rate",
        "samples/s",
        "dropped at block2",
    ] {
        assert!(all.contains(label), "{label} missing from:\n{all}");
    }
    app.apply(Action::CycleMetricBack, &mut fx);
    assert!(
        render(&app, 80, 24).contains(&titles[titles.len() - 1][..12]),
        "M goes back"
    );
    app.charts.metric = 0;
    let screen = render(&app, 160, 48);
    for label in ["loss (1/", "accuracy (2/", "drop rate (3/", "(4/"] {
        assert!(screen.contains(label), "{label}:\n{screen}");
    }
    assert_eq!(
        screen.lines().nth(1).unwrap().matches("━").count(),
        3,
        "one legend:\n{screen}"
    );
}

/// A finished run of `label` with seed `seed` whose training loss is
/// `offset + 1/step` over 100 steps.
fn seeded_run(runs: &Path, label: &str, seed: u64, offset: f64) {
    use probdrop_tui::run::dir::{JsonLog, MetricLine, RunDir, State, Status};
    let info = RunInfo {
        experiment: "avg".into(),
        source: "avg.toml".into(),
        label: label.into(),
        strategy_index: 0,
        seed,
        created: format!("20261201-0{seed}0000"),
        slurm_job: None,
    };
    let toml = format!("name = \"avg\"\nseeds = [{seed}]\n[[strategy]]\nplugin = \"{label}\"\n");
    let d = RunDir::create(runs, &info, &toml).unwrap();
    let status = Status {
        state: State::Done,
        step: 100,
        total_steps: 100,
        ..Status::new(0)
    };
    dir::write_json(&d.file(dir::STATUS), &status).unwrap();
    let lines: Vec<MetricLine> = (1..=100)
        .map(|step| MetricLine {
            step,
            epoch: 0,
            split: "train".into(),
            metric: "loss".into(),
            value: offset + 1.0 / step as f64,
            wall: 0.0,
            p: 0.1,
            plugin_version: "1.0.0".into(),
        })
        .collect();
    JsonLog::open(&d.file(dir::METRICS))
        .unwrap()
        .append_all(&lines)
        .unwrap();
}

/// Issue 16, what users expect 4: `a` draws the seeds of one configuration as
/// their mean with a band of one standard deviation either side, named by how
/// many seeds it averages.
#[test]
fn seeds_of_one_configuration_average_into_a_band() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("views-seed-groups");
    let _ = std::fs::remove_dir_all(&root);
    let runs = root.join("runs");
    for (seed, offset) in [(1, 0.0), (2, 1.0), (3, 5.0)] {
        seeded_run(&runs, "dropblock", seed, offset);
    }
    seeded_run(&runs, "none", 1, 0.5);
    let mut app = app_over(runs, root.join("experiments"));
    let mut fx = FakeEffects::default();
    for i in 0..4 {
        app.selected.run = i;
        app.apply(Action::Mark, &mut fx);
    }
    app.apply(Action::Go(View::Charts), &mut fx);
    for (w, h) in SIZES {
        assert_eq!(
            braille_colours(&app, w, h).len(),
            4,
            "four runs, four colours"
        );
        assert!(
            !render(&app, w, h).contains("-0."),
            "every loss is positive"
        );
    }
    app.apply(Action::AverageSeeds, &mut fx);
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert!(screen.contains("seeds averaged"), "{screen}");
        let legend = screen
            .lines()
            .take(4)
            .collect::<String>()
            .replace('\u{a0}', " ");
        assert!(legend.contains("dropblock ×3 seeds"), "{screen}");
        assert!(legend.contains("none s1"), "{screen}");
        // Two groups: each its colour; the three-seed one also its faint band.
        assert_eq!(braille_colours(&app, w, h).len(), 3, "{screen}");
        // Offsets 0, 1 and 5: mean 2, sd √7 ≈ 2.65, so the band's lower edge
        // (2 − 2.65 + 1/step) goes below zero; the axis of a loss does not
        // (issue 34, item 12).
        assert!(!screen.contains("-0."), "{screen}");
    }
    snapshot("charts_seeds_80x24", &render(&app, 80, 24));
}

/// The numbers on the charts' y axes.
fn y_labels(screen: &str) -> Vec<f64> {
    screen
        .lines()
        .filter_map(|l| l.split('│').nth(1)?.trim().parse().ok())
        .collect()
}

/// Issue 16, what users expect 7: `o` fits the y axis to the 1st–99th
/// percentile of what is drawn, so one spike does not flatten the curve.
#[test]
fn clipping_outliers_fits_the_axis_to_the_curve() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("views-clip");
    let _ = std::fs::remove_dir_all(&root);
    let runs = root.join("runs");
    seeded_run(&runs, "dropblock", 1, 0.0);
    let metrics = dir::list_runs(&runs)[0].file(dir::METRICS);
    let text = std::fs::read_to_string(&metrics).unwrap();
    let spiked: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if v["step"] == 50 {
                v["value"] = 1000.0.into();
            }
            v.to_string()
        })
        .collect();
    std::fs::write(&metrics, spiked.join("\n") + "\n").unwrap();
    let mut app = app_over(runs, root.join("experiments"));
    let mut fx = FakeEffects::default();
    app.apply(Action::Go(View::Charts), &mut fx);
    for (w, h) in SIZES {
        let top = |app: &App| y_labels(&render(app, w, h)).into_iter().fold(0.0, f64::max);
        assert!(top(&app) >= 1000.0, "{}", render(&app, w, h));
        app.apply(Action::ClipOutliers, &mut fx);
        let screen = render(&app, w, h);
        assert!(top(&app) < 2.0, "{screen}");
        assert!(screen.contains("y 1–99 %"), "{screen}");
        app.apply(Action::ClipOutliers, &mut fx);
    }
}

/// Issue 16, what users expect 10: the view, the selected and marked runs,
/// the chart options and the Events filter come back in the next session; a
/// run deleted meanwhile is left out, and a damaged state file is ignored.
#[test]
fn the_dashboard_state_outlives_a_session() {
    use probdrop_tui::ui::saved::{FILE, Saved};
    let f = fixture();
    let runs = copies_of_the_fixture_runs("views-saved", 3);
    let mut app = app_over(runs.clone(), f.root.join("experiments"));
    let mut fx = FakeEffects::default();
    for i in [0, 2] {
        app.selected.run = i;
        app.apply(Action::Mark, &mut fx);
    }
    app.apply(Action::Go(View::Events), &mut fx);
    app.apply(Action::FilterEvents, &mut fx);
    app.apply(Action::Go(View::Charts), &mut fx);
    for a in [
        Action::CycleSmoothing,
        Action::CycleMetric,
        Action::AverageSeeds,
        Action::ClipOutliers,
    ] {
        app.apply(a, &mut fx);
    }
    app.selected.run = 1;
    let saved = Saved::of(&app);
    saved.save(&runs).unwrap();

    let mut again = app_over(runs.clone(), f.root.join("experiments"));
    assert_ne!(again.view, View::Charts);
    Saved::load(&runs).unwrap().restore(&mut again);
    assert_eq!(again.view, View::Charts);
    assert_eq!(again.selected.run, 1);
    assert_eq!(again.marked, app.marked);
    assert_eq!(again.charts, app.charts);
    assert_eq!(again.events_of, app.events_of);
    app.message.clear();
    assert_eq!(render(&again, 80, 24), render(&app, 80, 24));

    std::fs::remove_dir_all(runs.join("run-02")).unwrap();
    let mut fewer = app_over(runs.clone(), f.root.join("experiments"));
    Saved::load(&runs).unwrap().restore(&mut fewer);
    assert_eq!(fewer.marked.len(), 1, "the deleted run is not marked");

    std::fs::write(runs.join(FILE), "{ not json").unwrap();
    assert!(Saved::load(&runs).is_none());
}

/// Issue 33: a run whose block size went from 3 to 5 mid-way and a run that
/// used 5 from the start read apart: the config panel gives the changed key
/// its history ("3 → 5 @ step 10"), and the diff of the two marked runs
/// counts it as a difference.
#[test]
fn a_run_changed_mid_way_reads_apart_from_one_that_was_not() {
    use probdrop_tui::run::provenance::{ConfigChange, Provenance};
    let runs = copies_of_the_fixture_runs("views-timeline", 2);
    let originals = dir::list_runs(&runs);
    let clean = originals
        .iter()
        .find(|d| d.info().unwrap().label == "dropblock")
        .unwrap()
        .path
        .clone();
    let changed = originals
        .iter()
        .find(|d| d.path != clean)
        .unwrap()
        .path
        .clone();
    std::fs::remove_dir_all(&changed).unwrap();
    crate::dashboard::copy_dir(&clean, &changed);
    for run in [&clean, &changed] {
        edit(
            &run.join(dir::EXPERIMENT),
            "block_size = 3",
            "block_size = 5",
        );
    }
    let record = Provenance {
        config_changes: vec![ConfigChange {
            after_step: 10,
            key: "strategy.params.block_size".into(),
            from: Some(toml::Value::Integer(3)),
            to: Some(toml::Value::Integer(5)),
        }],
        ..Provenance::default()
    };
    record.write(&dir::RunDir::new(&changed)).unwrap();
    let mut app = app_over(runs, fixture().root.join("experiments"));
    let mut fx = FakeEffects::default();
    app.apply(Action::Go(View::Runs), &mut fx);
    for i in 0..2 {
        app.selected.run = i;
        app.apply(Action::Mark, &mut fx);
    }
    app.apply(Action::ToggleConfig, &mut fx);
    let screen = render(&app, 160, 48);
    let row = screen
        .lines()
        .find(|l| l.contains("strategy.params.block_size"))
        .unwrap_or_else(|| panic!("the changed key is a difference:\n{screen}"));
    assert!(row.contains("3 → 5 @ step 10"), "{row}");
    app.marked.clear();
    app.selected.run = app.runs.iter().position(|r| r.dir.path == changed).unwrap();
    let screen = render(&app, 160, 48);
    assert!(
        flat(&screen).contains("block_size=3 → 5 @ step 10"),
        "{screen}"
    );
    // The Runs table marks the changed run, and only it.
    app.apply(Action::ToggleConfig, &mut fx);
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        let marked: Vec<&str> = screen.lines().filter(|l| l.contains("✎ ")).collect();
        assert_eq!(marked.len(), 1, "{screen}");
    }
}
