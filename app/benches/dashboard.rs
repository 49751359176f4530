//! Dashboard costs for BENCHMARKS.md: `cargo bench --bench dashboard`.
//!
//! 1. Frame time of the charts view with 8 overlaid runs of 100 000 steps each
//!    (160×48, drawn into ratatui's TestBackend).
//! 2. Bytes a redraw sends to an 80×24 terminal when a training run logs new
//!    steps (the crossterm backend writing into a counting sink), per second at
//!    the dashboard's refresh rate.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use probdrop_tui::run::dir::{self, MetricLine, RunDir, RunInfo, State, Status};
use probdrop_tui::ui::app::{App, Pick};
use probdrop_tui::ui::keys::{Action, View};
use probdrop_tui::ui::views::{ColorDepth, Screen, draw};
use ratatui::Terminal;
use ratatui::backend::{CrosstermBackend, TestBackend};

const STEPS: u64 = 100_000;

/// How many runs (all overlaid): `DASHBOARD_BENCH_RUNS`, 8 unless set.
fn runs_count() -> usize {
    std::env::var("DASHBOARD_BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(8)
}

fn write_run(runs: &Path, i: usize) -> RunDir {
    let info = RunInfo {
        experiment: "bench".into(),
        source: "bench.toml".into(),
        label: format!("arm{i}"),
        strategy_index: i,
        seed: i as u64,
        created: String::new(),
        slurm_job: None,
    };
    let d = RunDir::create(runs, &info, "name = \"bench\"\n").unwrap();
    let status = Status {
        state: State::Done,
        step: STEPS,
        epoch: 99,
        total_steps: STEPS,
        device: "cpu".into(),
        plugin_version: "1.0.0".into(),
        best_val_acc: Some(0.9),
        last_val_acc: Some(0.9),
        ..Status::new(0)
    };
    dir::write_json(&d.file(dir::STATUS), &status).unwrap();
    let mut log = dir::JsonLog::open(&d.file(dir::METRICS)).unwrap();
    let mut lines = Vec::with_capacity(10_000);
    let mut state = 0x9e37_79b9u64 + i as u64;
    for step in 1..=STEPS {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let noise = (state >> 40) as f64 / (1u64 << 24) as f64;
        let value = 2.3 * (-(step as f64) / 20_000.0).exp() + 0.2 * noise + 0.05 * i as f64;
        lines.push(MetricLine {
            step,
            epoch: step / 1000,
            split: "train".into(),
            metric: "loss".into(),
            value,
            wall: 0.0,
            p: 0.1,
            plugin_version: "1.0.0".into(),
        });
        if lines.len() == 10_000 {
            log.append_all(&lines).unwrap();
            lines.clear();
        }
    }
    log.append_all(&lines).unwrap();
    d
}

/// Counts the bytes written, readable from outside the backend.
#[derive(Clone, Default)]
struct Counter(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Counter {
    fn get(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .fetch_add(buf.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct NoEffects;

impl probdrop_tui::ui::app::Effects for NoEffects {
    fn start_trainer(&mut self, _: &RunDir) -> Result<(), String> {
        Ok(())
    }
    fn control(
        &mut self,
        _: &RunDir,
        _: probdrop_tui::run::control::Command,
    ) -> Result<(), String> {
        Ok(())
    }
    fn prepare(&mut self, _: &Path, _: &Pick) -> Result<Vec<RunDir>, String> {
        Ok(vec![])
    }
    fn start_compare(&mut self, _: &Path, _: Option<&str>) -> Result<PathBuf, String> {
        Err("not in a benchmark".into())
    }
    fn edit(&mut self, _: &Path) -> Result<(), String> {
        Ok(())
    }
    fn archive(&mut self, _: &RunDir) -> Result<PathBuf, String> {
        Err("not in a benchmark".into())
    }
    fn delete(&mut self, _: &RunDir) -> Result<(), String> {
        Err("not in a benchmark".into())
    }
    fn save_notes(
        &mut self,
        _: &RunDir,
        _: &probdrop_tui::run::notes::Notes,
    ) -> Result<(), String> {
        Err("not in a benchmark".into())
    }
    fn export(
        &mut self,
        _: &probdrop_tui::ui::export_view::Figure,
        _: &Path,
    ) -> Result<Vec<PathBuf>, String> {
        Err("not in a benchmark".into())
    }
}

/// 1. Frame time: with the curve cache warm (what the dashboard redraws when
///    nothing but a status changed) and cold (all curves prepared again).
///    160×48 draws four charts; only loss has points here.
fn frame_times(app: &App) {
    let runs = app.runs.len();
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).unwrap();
    // The dashboard's own screen, whose curve cache lives from frame to frame.
    let mut screen = Screen::new(ColorDepth::TrueColor);
    for _ in 0..5 {
        terminal.draw(|f| screen.draw(f, app)).unwrap();
    }
    let frames = 50;
    let mut times = Vec::with_capacity(frames);
    for _ in 0..frames {
        let t = Instant::now();
        terminal.draw(|f| screen.draw(f, app)).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let mut cold = Vec::with_capacity(frames);
    for _ in 0..frames {
        // A screen of its own: nothing cached.
        let t = Instant::now();
        terminal
            .draw(|f| draw(f, app, ColorDepth::TrueColor))
            .unwrap();
        cold.push(t.elapsed().as_secs_f64() * 1e3);
    }
    cold.sort_by(f64::total_cmp);
    println!(
        "charts frame, {runs} runs × {STEPS} points, 160×48, every curve prepared again: median {:.2} ms, p90 {:.2} ms",
        cold[frames / 2],
        cold[frames * 9 / 10]
    );
    println!(
        "charts frame, {runs} runs × {STEPS} points, 160×48, curves cached: median {:.2} ms, p90 {:.2} ms",
        times[frames / 2],
        times[frames * 9 / 10]
    );
}

/// The Runs view's frame (names, the table, the detail line) at 80×24.
fn runs_frame_time(app: &App) {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let frames = 50;
    let mut times: Vec<f64> = (0..frames)
        .map(|_| {
            let t = Instant::now();
            terminal
                .draw(|f| draw(f, app, ColorDepth::TrueColor))
                .unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "runs frame, {} runs, 80×24: median {:.2} ms, p90 {:.2} ms",
        app.runs.len(),
        times[frames / 2],
        times[frames * 9 / 10]
    );
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let started = Instant::now();
    let count = runs_count();
    let dirs: Vec<RunDir> = (0..count).map(|i| write_run(&runs, i)).collect();
    eprintln!(
        "wrote {count} runs × {STEPS} steps in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let mut app = App::new(
        runs.clone(),
        tmp.path().join("experiments"),
        &[],
        Vec::new(),
        std::sync::Arc::new(probdrop_tui::train::ThisMachine),
    );
    eprintln!("loaded them in {:.2} s", started.elapsed().as_secs_f64());
    let mut fx = NoEffects;
    // How many are overlaid: `DASHBOARD_BENCH_MARKED`, all unless set.
    let marked = std::env::var("DASHBOARD_BENCH_MARKED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(count);
    for d in dirs.iter().take(marked) {
        app.marked.insert(d.path.clone());
    }
    eprintln!("{marked} of them overlaid");
    app.apply(Action::Go(View::Charts), &mut fx);

    frame_times(&app);
    app.apply(Action::Go(View::Runs), &mut fx);
    runs_frame_time(&app);

    // 2. Bytes per refresh while a run trains: 5 new steps per 500 ms refresh
    //    (a fast CPU run), runs view and charts view.
    for view in [View::Runs, View::Charts] {
        app.apply(Action::Go(view), &mut fx);
        let counter = Counter::default();
        // Without a terminal crossterm reports 80×24, the size an SSH session
        // starts with; ratatui keeps the viewport within it.
        let mut terminal = Terminal::new(CrosstermBackend::new(counter.clone())).unwrap();
        let area = terminal
            .draw(|f| draw(f, &app, ColorDepth::TrueColor))
            .unwrap()
            .area;
        assert_eq!((area.width, area.height), (80, 24), "the measured area");
        let first = counter.get();
        let mut log = dir::JsonLog::open(&dirs[0].file(dir::METRICS)).unwrap();
        let refreshes = 20;
        let mut step = STEPS;
        for _ in 0..refreshes {
            let lines: Vec<MetricLine> = (0..5)
                .map(|_| {
                    step += 1;
                    MetricLine {
                        step,
                        epoch: step / 1000,
                        split: "train".into(),
                        metric: "loss".into(),
                        value: 0.5,
                        wall: 0.0,
                        p: 0.1,
                        plugin_version: "1.0.0".into(),
                    }
                })
                .collect();
            log.append_all(&lines).unwrap();
            let mut status = dirs[0].status().unwrap();
            status.state = State::Training;
            status.step = step;
            status.total_steps = STEPS * 2;
            dir::write_json(&dirs[0].file(dir::STATUS), &status).unwrap();
            app.refresh();
            terminal
                .draw(|f| draw(f, &app, ColorDepth::TrueColor))
                .unwrap();
        }
        let bytes = counter.get() - first;
        let per_refresh = bytes as f64 / refreshes as f64;
        println!(
            "{} view while training: {:.0} bytes per refresh, {:.1} KB/s at 2 refreshes/s (first frame {} bytes)",
            view.title(),
            per_refresh,
            per_refresh * 2.0 / 1000.0,
            first
        );
    }
}
