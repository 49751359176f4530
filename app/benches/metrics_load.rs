//! Issue 32, case 13: the dashboard opening a run whose metrics.jsonl is
//! 10 MB, 100 MB or 1 GB: time to the first frame, time until the whole log
//! is read, and the process's peak memory (VmHWM), each size in a fresh
//! process. `cargo bench --bench metrics_load`; sizes in MB with
//! `METRICS_BENCH_MB` (default `10,100,1000`). The files are written under
//! the temporary directory (the 1 GB one needs that much free disk) and
//! deleted after.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use probdrop_tui::run::dir::{self, RunDir, RunInfo, State, Status};
use probdrop_tui::ui::app::App;
use probdrop_tui::ui::keys::View;
use probdrop_tui::ui::views::{ColorDepth, Screen};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// Writes one metrics.jsonl line as the trainer does; its length.
fn line(out: &mut impl Write, step: u64, split: &str, metric: &str, value: f64) -> u64 {
    let text = format!(
        "{{\"step\":{step},\"epoch\":{},\"split\":\"{split}\",\"metric\":\"{metric}\",\"value\":{value},\"wall\":{}.25,\"p\":0.1,\"plugin_version\":\"1.0.0\"}}\n",
        step / 1000,
        1_800_000_000 + step / 10
    );
    out.write_all(text.as_bytes()).unwrap();
    text.len() as u64
}

/// Writes a finished run whose metrics.jsonl holds about `mb` MB: per step
/// a training loss, accuracy, drop rate, learning rate and step time, and a
/// validation loss and accuracy every 500 steps.
fn write_run(runs: &Path, mb: u64) -> (RunDir, u64) {
    let info = RunInfo {
        experiment: "bench".into(),
        source: "bench.toml".into(),
        label: "big".into(),
        strategy_index: 0,
        seed: 1,
        created: String::new(),
        slurm_job: None,
    };
    let d = RunDir::create(runs, &info, "name = \"bench\"\n").unwrap();
    let file = std::fs::File::create(d.file(dir::METRICS)).unwrap();
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let (mut bytes, mut step) = (0u64, 0u64);
    while bytes < mb * 1_000_000 {
        step += 1;
        let x = step as f64;
        let noise = ((step * 7919) % 1000) as f64 / 1000.0;
        bytes += line(
            &mut out,
            step,
            "train",
            "loss",
            2.3 * (-x / 2e5).exp() + 0.1 * noise,
        );
        bytes += line(&mut out, step, "train", "acc", 1.0 - (-x / 2e5).exp() * 0.9);
        bytes += line(&mut out, step, "train", "p", 0.1);
        bytes += line(&mut out, step, "train", "lr", 0.01);
        bytes += line(&mut out, step, "train", "step_time", 0.02 + 0.001 * noise);
        if step % 500 == 0 {
            bytes += line(&mut out, step, "val", "loss", 2.0 * (-x / 2e5).exp());
            bytes += line(&mut out, step, "val", "acc", 1.0 - (-x / 2e5).exp());
        }
    }
    out.flush().unwrap();
    let status = Status {
        state: State::Done,
        step,
        total_steps: step,
        best_val_acc: Some(0.9),
        ..Status::new(0)
    };
    dir::write_json(&d.file(dir::STATUS), &status).unwrap();
    (d, bytes)
}

fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// In this process: opens the dashboard on `runs` (charts view, the run
/// overlaid), draws, then refreshes and draws until the whole log is in.
fn measure(runs: &Path) {
    let t = Instant::now();
    let mut app = App::new(
        runs.to_path_buf(),
        runs.join("no-experiments"),
        &[],
        Vec::new(),
        std::sync::Arc::new(probdrop_tui::train::ThisMachine),
    );
    app.view = View::Charts;
    if let Some(r) = app.runs.first() {
        app.marked.insert(r.dir.path.clone());
    }
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).unwrap();
    let mut screen = Screen::new(ColorDepth::TrueColor);
    terminal.draw(|f| screen.draw(f, &app)).unwrap();
    let first = t.elapsed().as_secs_f64();
    let mut refreshes = 0;
    while app.refresh() {
        refreshes += 1;
        terminal.draw(|f| screen.draw(f, &app)).unwrap();
    }
    let all = t.elapsed().as_secs_f64();
    let points: usize = app
        .runs
        .iter()
        .flat_map(|r| r.series.values())
        .map(|s| s.points().len())
        .sum();
    println!(
        "first frame {first:.2} s; whole log in {all:.2} s ({refreshes} more refreshes); {points} points kept; peak memory {:.1} MiB",
        peak_kib() as f64 / 1024.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        return measure(Path::new(&args[i + 1]));
    }
    let sizes: Vec<u64> = std::env::var("METRICS_BENCH_MB")
        .unwrap_or_else(|_| "10,100,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let me = std::env::current_exe().unwrap();
    for mb in std::iter::once(0).chain(sizes) {
        let tmp = tempfile::tempdir().unwrap();
        let runs = tmp.path().join("runs");
        std::fs::create_dir_all(&runs).unwrap();
        let what = if mb == 0 {
            "no run (baseline)".to_string()
        } else {
            let t = Instant::now();
            let (_, bytes) = write_run(&runs, mb);
            eprintln!(
                "wrote {:.0} MB in {:.1} s",
                bytes as f64 / 1e6,
                t.elapsed().as_secs_f64()
            );
            format!("metrics.jsonl of {:.0} MB", bytes as f64 / 1e6)
        };
        let out = std::process::Command::new(&me)
            .arg("--measure")
            .arg(&runs)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        print!("{what}: {}", String::from_utf8_lossy(&out.stdout));
    }
}
