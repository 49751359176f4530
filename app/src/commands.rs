//! `check`, `run`, `train` and `doctor`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::compare::{Launcher, slurm};
use crate::experiment::{self, Catalog, RunSpec};
use crate::plugins::Library;
use crate::run::dir::{RunDir, State};
use crate::run::prepare::{Selection, prepare_runs};
use crate::train::trainer::{self, Progress, Summary, TrainOptions};
use crate::train::{ThisMachine, device};
use crate::ui;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Experiment file (omit with --resume).
    #[arg(required_unless_present = "resume")]
    pub file: Option<PathBuf>,
    /// Device override: "cpu" or "cuda:N".
    #[arg(long)]
    pub device: Option<String>,
    /// Epochs override.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Only the strategy with this label (or plugin name).
    #[arg(long)]
    pub strategy: Option<String>,
    /// Only this seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where run directories are created.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Continue a run directory from its last checkpoint.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "file")]
    pub resume: Option<PathBuf>,
    /// With --resume: start the run over from step 0, discarding its checkpoint
    /// and its logs (what a run whose checkpoint cannot be read needs).
    #[arg(long, requires = "resume")]
    pub restart: bool,
    /// No progress output, only the summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Where to train: here, one run after the other, or as one Slurm job
    /// array (a task per run; the run directories on a shared filesystem).
    #[arg(long, value_enum, default_value_t = Launcher::Local)]
    pub launcher: Launcher,
    #[command(flatten)]
    pub slurm: slurm::SlurmArgs,
}

/// Loads the plugins (building crates quietly) into a validation catalog.
pub fn catalog(plugins: &Path) -> Result<(Catalog, Vec<Library>)> {
    let loaded = crate::plugins::load(plugins, &mut crate::plugins::report_build_line)
        .with_context(|| format!("cannot read the plugins directory {}", plugins.display()))?;
    let libraries = loaded.libraries().cloned().collect();
    Ok((loaded.catalog, libraries))
}

/// `probdrop-tui check FILE...`: prints every error; fails if any file is invalid.
pub fn check(plugins: &Path, files: &[PathBuf]) -> Result<()> {
    let (catalog, _) = catalog(plugins)?;
    let mut bad = 0;
    for file in files {
        match experiment::load(file, &catalog, &ThisMachine) {
            Ok(exp) => {
                let runs = exp.runs();
                println!(
                    "{}: ok ({} run{}: {})",
                    file.display(),
                    runs.len(),
                    if runs.len() == 1 { "" } else { "s" },
                    describe_runs(&runs)
                );
                if exp.data_missing.is_none() {
                    let size = crate::train::models::describe_size(&exp.file, &exp.data_path)
                        .unwrap_or_else(|e| format!("parameters not counted: {e}"));
                    println!("  model: {size}");
                }
                for line in describe_sweeps(&exp) {
                    println!("  {line}");
                }
                for s in exp
                    .file
                    .strategy
                    .iter()
                    .filter(|s| s.plugin != experiment::NONE)
                {
                    if let Some(text) = experiment::slots::describe_placement(&exp.file.model, s) {
                        println!("  {} at {text}", experiment::strategy_label(s));
                    }
                }
                for w in &exp.warnings {
                    println!("  warning: {w}");
                }
                if let Some(d) = &exp.data_missing {
                    print!("  warning: no run can start here until the data is there: {d}");
                }
            }
            Err(errors) => {
                bad += 1;
                for e in errors {
                    print!("{e}");
                }
            }
        }
    }
    if bad > 0 {
        bail!("{bad} of {} experiment file(s) invalid", files.len());
    }
    Ok(())
}

/// For each sweeping arm: its keys, its cell count and its runs
/// (`dropblock sweeps block_size × p: 3 × 3 = 9 cells × 3 seeds = 27 runs`).
fn describe_sweeps(exp: &experiment::Experiment) -> Vec<String> {
    let seeds = exp.file.seeds.len();
    let mut lines = Vec::new();
    for s in &exp.file.strategy {
        let Some(Ok(axes)) = s.sweep.as_ref().map(experiment::sweep::axes) else {
            continue;
        };
        let keys: Vec<&str> = axes.iter().map(|(k, _)| k.as_str()).collect();
        let sizes: Vec<String> = axes
            .iter()
            .map(|(_, axis)| match axis {
                experiment::sweep::Axis::Grid(values) => values.len().to_string(),
                experiment::sweep::Axis::Random { count, .. } => format!("{count} drawn"),
            })
            .collect();
        let cells = experiment::sweep::cells(&axes, experiment::sweep_seed(&exp.file))
            .map_or(0, |c| c.len());
        lines.push(format!(
            "{} sweeps {}: {} = {cells} cells × {seeds} seeds = {} runs",
            experiment::strategy_label(s),
            keys.join(" × "),
            sizes.join(" × "),
            cells * seeds
        ));
    }
    lines
}

fn describe_runs(runs: &[RunSpec]) -> String {
    let mut labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
    labels.dedup();
    let seeds: std::collections::BTreeSet<u64> = runs.iter().map(|r| r.seed).collect();
    format!(
        "{} × seeds {:?}",
        labels.join(", "),
        seeds.into_iter().collect::<Vec<_>>()
    )
}

/// `probdrop-tui run`.
pub fn run(plugins: &Path, args: &RunArgs) -> Result<()> {
    let progress = if args.quiet {
        Progress::Quiet
    } else {
        Progress::auto()
    };
    let opts = TrainOptions {
        plugins_dir: plugins.to_path_buf(),
        progress,
        restart: args.restart,
        stop_at: None,
    };
    if args.launcher == Launcher::Slurm {
        slurm::check_path("--runs", &args.runs)?;
        slurm::check_path("--plugins", plugins)?;
        if let Some(dir) = &args.resume {
            slurm::check_path("--resume", dir)?;
        }
    }
    let dirs = if let Some(dir) = &args.resume {
        let d = RunDir::new(dir);
        d.info()
            .map_err(|e| anyhow!("{}: not a run directory ({e})", dir.display()))?;
        vec![d]
    } else {
        let file = args
            .file
            .as_ref()
            .ok_or_else(|| anyhow!("an experiment file is needed"))?;
        let select = Selection {
            device: args.device.as_deref(),
            epochs: args.epochs,
            strategy: args.strategy.as_deref(),
            seed: args.seed,
        };
        let (_, dirs) = prepare_runs(&catalog(plugins)?.0, &ThisMachine, file, &args.runs, select)?;
        dirs
    };
    if args.launcher == Launcher::Slurm {
        return run_on_slurm(plugins, args, dirs);
    }
    let mut summaries: Vec<(RunDir, Result<Summary>)> = Vec::new();
    for d in dirs {
        if crate::train::signals::received() {
            // Stopped by a signal: the runs not begun stay queued.
            break;
        }
        let info = d.info()?;
        // The directory's name, not its path, cut to fit a terminal.
        let name = d.path.file_name().unwrap_or_default().to_string_lossy();
        let line = format!("run {name} ({} seed {})", info.label, info.seed);
        eprintln!("{}", cut_middle(&line, terminal_width(&std::io::stderr())));
        let result = trainer::train(&d, &opts);
        if let Err(e) = &result {
            eprintln!("error: {e:#}");
        }
        summaries.push((d, result));
    }
    let rows: Vec<SummaryRow> = summaries
        .iter()
        .map(|(d, result)| SummaryRow::of(d, result.as_ref().ok()))
        .collect();
    close(&rows)
}

/// `run --launcher slurm`: the prepared runs (or the one resumed) as one job
/// array, followed until each has ended; then the same closing table.
fn run_on_slurm(plugins: &Path, args: &RunArgs, dirs: Vec<RunDir>) -> Result<()> {
    let entries = dirs
        .iter()
        .map(|d| {
            let info = d.info()?;
            Ok(crate::run::comparison::Entry {
                label: info.label,
                seed: info.seed,
                dir: d.path.canonicalize().unwrap_or(d.path.clone()),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // The index and the script go beside the run directories.
    let beside = dirs
        .first()
        .and_then(|d| d.path.parent())
        .unwrap_or(&args.runs)
        .to_path_buf();
    let (mut waiting, submit) = slurm::split_queued(entries)?;
    let mine = slurm::submit(plugins, &beside, submit, &args.slurm, None)?;
    waiting.extend(mine.iter().cloned());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let interrupted = slurm::follow(waiting, mine, &stop, |ended| {
        for e in ended {
            let state = RunDir::new(&e.dir)
                .status()
                .map_or("no status".into(), |s| {
                    format!("{:?}", s.state).to_lowercase()
                });
            eprintln!("{} seed {}: {state}", e.label, e.seed);
        }
        Ok(slurm::Ticked {
            submitted: Vec::new(),
            others: false,
        })
    })?;
    let summaries: Vec<(RunDir, Option<Summary>)> = dirs
        .into_iter()
        .map(|d| {
            let s = Summary::read(&d);
            (d, s)
        })
        .collect();
    let rows: Vec<SummaryRow> = summaries
        .iter()
        .map(|(d, s)| SummaryRow::of(d, s.as_ref()))
        .collect();
    if interrupted {
        print_table(&rows);
        bail!("interrupted: its Slurm tasks were cancelled; run --resume continues a run");
    }
    close(&rows)
}

fn print_table(rows: &[SummaryRow]) {
    for line in summary_table(rows, terminal_width(&std::io::stdout())) {
        println!("{line}");
    }
}

/// Prints `run`'s closing table; fails unless every run is done.
fn close(rows: &[SummaryRow]) -> Result<()> {
    print_table(rows);
    let failed = rows
        .iter()
        .filter(|r| r.summary.is_none_or(|s| s.state != State::Done))
        .count();
    if failed > 0 {
        bail!("{failed} of {} run(s) did not finish", rows.len());
    }
    Ok(())
}

/// One run of `run`'s closing table: its directory's name and how it ended
/// (`None`: it could not train).
pub struct SummaryRow<'a> {
    pub name: String,
    pub summary: Option<&'a Summary>,
}

impl<'a> SummaryRow<'a> {
    /// The row of the run in `dir`, named by its directory.
    fn of(dir: &RunDir, summary: Option<&'a Summary>) -> SummaryRow<'a> {
        let name = dir.path.file_name().unwrap_or_default();
        SummaryRow {
            name: name.to_string_lossy().into_owned(),
            summary,
        }
    }
}

/// `run`'s closing table. The fixed-width columns come first and the run's
/// name last, so that the header lines up with the values however long the
/// names; on a terminal `width` columns wide a name too long is cut in the
/// middle (its time stamp and its seed stay) so that no line wraps.
pub fn summary_table(rows: &[SummaryRow], width: Option<usize>) -> Vec<String> {
    let fixed = |state: &str, steps: &str, acc: &str, best: &str, secs: &str| {
        format!("{state:<8} {steps:>7} {acc:>7} {best:>7} {secs:>7}  ")
    };
    let head = fixed("state", "steps", "val acc", "best", "seconds");
    let room = width.map(|w| w.saturating_sub(head.chars().count()).max(8));
    let mut lines = vec![format!("{head}run")];
    for r in rows {
        let acc = |a: Option<f64>| a.map_or("-".to_string(), |a| format!("{a:.4}"));
        let cells = match r.summary {
            Some(s) => fixed(
                &format!("{:?}", s.state).to_lowercase(),
                &s.steps.to_string(),
                &acc(s.final_val_acc),
                &acc(s.best_val_acc),
                &format!("{:.1}", s.seconds),
            ),
            None => fixed("failed", "-", "-", "-", "-"),
        };
        lines.push(cells + &cut_middle(&r.name, room));
    }
    lines
}

/// The width of the terminal `stream` writes to; `None` when it is not one.
fn terminal_width(stream: &impl std::io::IsTerminal) -> Option<usize> {
    if !stream.is_terminal() {
        return None;
    }
    crossterm::terminal::size()
        .ok()
        .map(|(w, _)| usize::from(w))
}

/// `text` in at most `room` characters, its middle replaced by "…".
fn cut_middle(text: &str, room: Option<usize>) -> String {
    let n = text.chars().count();
    match room {
        Some(room) if n > room && room > 1 => {
            let head = (room - 1) / 2;
            let tail = room - 1 - head;
            let start: String = text.chars().take(head).collect();
            let end: String = text.chars().skip(n - tail).collect();
            format!("{start}…{end}")
        }
        _ => text.to_string(),
    }
}

/// `probdrop-tui train RUN_DIR`: one run, plain progress lines (to the run's log).
pub fn train(plugins: &Path, run_dir: &Path, stop_at: Option<f64>) -> Result<()> {
    let d = RunDir::new(run_dir);
    d.info()
        .map_err(|e| anyhow!("{}: not a run directory ({e})", run_dir.display()))?;
    let summary = trainer::train(
        &d,
        &TrainOptions {
            plugins_dir: plugins.to_path_buf(),
            progress: Progress::Lines,
            restart: false,
            stop_at,
        },
    )?;
    eprintln!("{}", summary.message);
    match summary.state {
        State::Done | State::Stopped => Ok(()),
        other => bail!("run ended {other:?}: {}", summary.message),
    }
}

/// `probdrop-tui doctor`.
pub fn doctor(plugins: &Path, experiments: &Path) -> Result<()> {
    println!("probdrop-tui {}", env!("CARGO_PKG_VERSION"));
    println!("backends compiled in:");
    for b in device::backends_built() {
        println!("  {b}");
    }
    if experiment::LIBTORCH_BUILT {
        let n = device::cuda_device_count();
        if n == 0 {
            println!("CUDA: not available to LibTorch (CPU-only torch, no driver, or no GPU)");
        } else {
            let (first, last) = (
                experiment::DeviceName::Cuda(0),
                experiment::DeviceName::Cuda(n - 1),
            );
            println!("CUDA: {n} device(s) available: {first}..{last}");
        }
    } else {
        println!("CUDA: not compiled in ({})", experiment::LIBTORCH_MISSING);
    }
    // What the dashboard's Runs view shows of the machine (NVML for GPUs).
    let machine = ui::system::describe(&ui::system::Probe::new(ui::system::gpu_source()).sample());
    println!("machine: {}", machine.join("\n  "));
    println!("plugins directory: {}", plugins.display());
    match catalog(plugins) {
        Ok((_, libs)) => {
            let names: Vec<String> = libs
                .iter()
                .map(|l| format!("{} {}", l.info.name, l.info.version))
                .collect();
            println!("  {} strategies: {}", libs.len(), names.join(", "));
        }
        Err(e) => println!("  error: {e:#}"),
    }
    println!("experiments in {}:", experiments.display());
    let files = experiment::files_in(experiments);
    if files.is_empty() {
        println!("  none found");
    }
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        match experiment::parse(&f, &text) {
            Ok(file) => {
                let base = f.parent().unwrap_or(Path::new("."));
                let path = if file.data.path.is_absolute() {
                    file.data.path.clone()
                } else {
                    base.join(&file.data.path)
                };
                let state = if path.exists() { "found" } else { "MISSING" };
                print!("  {}: data {} ({state})", f.display(), path.display());
                if let Some(fb) = &file.data.fallback {
                    let fb = if fb.is_absolute() {
                        fb.clone()
                    } else {
                        base.join(fb)
                    };
                    print!(
                        ", fallback {} ({})",
                        fb.display(),
                        if fb.exists() { "found" } else { "MISSING" }
                    );
                }
                println!(", device {}", file.device);
            }
            Err(e) => println!("  {}: invalid ({})", f.display(), e[0].message),
        }
    }
    Ok(())
}

/// `probdrop-tui bench-step`: one JSON line.
pub fn bench_step(plugins: &Path, args: &crate::train::bench::BenchArgs) -> Result<()> {
    let library = if args.strategy == experiment::NONE {
        None
    } else {
        let (_, libs) = catalog(plugins)?;
        Some(
            libs.into_iter()
                .find(|l| l.info.name == args.strategy)
                .ok_or_else(|| anyhow!("no strategy named {}", args.strategy))?,
        )
    };
    let report = crate::train::bench::bench_step(args, library.as_ref())?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_lines_up_and_fits_the_terminal() {
        let done = Summary {
            state: State::Done,
            steps: 752,
            final_val_acc: Some(0.881),
            best_val_acc: Some(0.8825),
            final_train_loss: Some(0.3),
            seconds: 66.25,
            message: String::new(),
        };
        let name = "20261202-170312-compare-cifar10-resnet18-probdropblock-s1".to_string();
        let rows = [
            SummaryRow {
                name: name.clone(),
                summary: Some(&done),
            },
            SummaryRow {
                name: "short-s2".into(),
                summary: None,
            },
        ];
        let plain = summary_table(&rows, None);
        let at = |line: &str, word: &str| line.find(word).unwrap();
        assert_eq!(
            at(&plain[0], "run"),
            at(&plain[1], "20261202"),
            "{plain:#?}"
        );
        assert_eq!(at(&plain[0], "run"), at(&plain[2], "short"), "{plain:#?}");
        assert!(plain[1].ends_with(&name), "whole names off a terminal");
        assert!(plain[1].contains("0.8810") && plain[1].contains("66.2"));
        let narrow = summary_table(&rows, Some(80));
        for line in &narrow {
            assert!(line.chars().count() <= 80, "{line:?}");
        }
        assert!(
            narrow[1].contains("20261202-") && narrow[1].ends_with("-s1"),
            "{narrow:#?}"
        );
        assert!(narrow[1].contains('…'));
    }
}
