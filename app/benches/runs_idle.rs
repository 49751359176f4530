//! Issue 32, case 14: what an idle dashboard costs per refresh over 2,000
//! finished run directories that do not change (each with a status, a
//! short metrics log, events and notes): CPU time of `App::refresh`, as a
//! share of a core at the dashboard's two refreshes a second.
//! `cargo bench --bench runs_idle`; `RUNS_IDLE_COUNT` sets the number of runs.

use std::path::Path;
use std::time::Instant;

use probdrop_tui::run::dir::{self, JsonLog, MetricLine, RunDir, RunInfo, State, Status};
use probdrop_tui::run::notes::Notes;
use probdrop_tui::ui::app::App;

#[path = "common/mod.rs"]
mod common;
use common::cpu_seconds;

fn write_run(runs: &Path, i: usize) {
    let info = RunInfo {
        experiment: "idle".into(),
        source: "idle.toml".into(),
        label: format!("arm{}", i % 8),
        strategy_index: i % 8,
        seed: i as u64,
        created: String::new(),
        slurm_job: None,
    };
    let d = RunDir::create(runs, &info, "name = \"idle\"\n").unwrap();
    let status = Status {
        state: State::Done,
        step: 100,
        total_steps: 100,
        best_val_acc: Some(0.8),
        ..Status::new(0)
    };
    dir::write_json(&d.file(dir::STATUS), &status).unwrap();
    let lines: Vec<MetricLine> = (1..=100)
        .map(|step| MetricLine {
            step,
            epoch: 0,
            split: "train".into(),
            metric: "loss".into(),
            value: 1.0 / step as f64,
            wall: step as f64,
            p: 0.1,
            plugin_version: "1.0.0".into(),
        })
        .collect();
    let mut log = JsonLog::open(&d.file(dir::METRICS)).unwrap();
    log.append_all(&lines).unwrap();
    std::fs::write(
        d.file(dir::EVENTS),
        "{\"wall\":1.0,\"step\":0,\"kind\":\"start\",\"message\":\"started\"}\n",
    )
    .unwrap();
    let notes = Notes {
        tags: vec!["baseline".into()],
        note: "a run among many".into(),
    };
    notes.save(&d).unwrap();
}

fn main() {
    let count: usize = std::env::var("RUNS_IDLE_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    (0..count).for_each(|i| write_run(&runs, i));
    let t = Instant::now();
    let mut app = App::new(
        runs.clone(),
        tmp.path().join("experiments"),
        &[],
        Vec::new(),
        std::sync::Arc::new(probdrop_tui::train::ThisMachine),
    );
    eprintln!(
        "opened {} runs in {:.2} s",
        app.runs.len(),
        t.elapsed().as_secs_f64()
    );
    let refreshes = 40;
    let (cpu, wall) = (cpu_seconds(std::process::id()), Instant::now());
    for _ in 0..refreshes {
        assert!(!app.refresh(), "nothing changed");
    }
    let per = (cpu_seconds(std::process::id()) - cpu) / refreshes as f64;
    let wall = wall.elapsed().as_secs_f64() / refreshes as f64;
    println!(
        "{count} idle runs: {:.1} ms of CPU per refresh ({:.1} ms wall), {:.1} % of a core at 2 refreshes/s",
        per * 1e3,
        wall * 1e3,
        200.0 * per
    );
}
