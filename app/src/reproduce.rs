//! `probdrop-tui reproduce RUN_DIR`: re-runs a run from its directory alone
//! (its starting configuration, its configuration changes and library swaps
//! at their steps, each library from the run store by hash) into a new run
//! directory, and compares every logged metric step by step: bit for bit on
//! the CPU backends, within a stated tolerance on CUDA.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::experiment::ExperimentFile;
use crate::run::data_files::{self, DataRecord};
use crate::run::dir::{self, MetricLine, RunDir, RunInfo, metric};
use crate::run::lock::RunLock;
use crate::run::provenance::{self, Provenance};
use crate::run::replay::{ConfigAt, LibraryAt, Replay};
use crate::run::store::Store;
use crate::train::trainer::{self, Progress, TrainOptions};

#[derive(clap::Args, Debug)]
pub struct ReproduceArgs {
    /// The run directory to re-run.
    pub run_dir: PathBuf,
    /// Replay (and compare) only the first N steps; the schedules still
    /// count the run's own number of steps.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Go on although this binary's commit or the data differ from the
    /// run's (each difference is still named). Libraries are always taken
    /// from the store by their hash.
    #[arg(long)]
    pub anyway: bool,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Metrics that measure the machine, not the training: never compared (nor
/// is any `system/…` one).
const TIMINGS: [&str; 2] = [metric::STEP_TIME, metric::SAMPLES_PER_S];

/// How close a CUDA replay must come: |a − b| ≤ ABS + REL·|a|.
const CUDA_REL: f64 = 1e-3;
const CUDA_ABS: f64 = 1e-5;

/// `probdrop-tui reproduce`.
pub fn reproduce(plugins: &Path, args: &ReproduceArgs) -> Result<()> {
    let original = RunDir::new(&args.run_dir);
    let info = original
        .info()
        .map_err(|e| anyhow!("{}: not a run directory ({e})", args.run_dir.display()))?;
    // Held throughout: the run must not be trained on meanwhile.
    let _lock = RunLock::acquire(&original.path)?;
    let record = Provenance::of(&original);
    if record.starts.is_empty() {
        bail!(
            "{} has no provenance.json: it was made before runs recorded what ran, and cannot be replayed",
            original.path.display()
        );
    }
    let now = original.experiment()?;
    let start = record.starting_config(&now);
    let store = Store::of_run(&original.path);
    let libraries = stored_libraries(&record, &store)?;
    let differences = [
        host_differences(&record, &original),
        data_differences(&record, &start, info.seed, &store),
    ]
    .concat();
    report_checks(&record, &libraries, &differences, args.anyway)?;
    let replay = prepare(&original, &info, &record, &start, libraries, args.steps)?;
    eprintln!("replaying into {}", replay.path.display());
    let opts = TrainOptions {
        plugins_dir: plugins.to_path_buf(),
        progress: if args.quiet {
            Progress::Quiet
        } else {
            Progress::Lines
        },
        restart: false,
        stop_at: None,
    };
    let summary = trainer::train(&replay, &opts)?;
    let tolerance = tolerance_for(&start);
    let verdict = compare(&original, &replay, summary.steps, tolerance);
    print_verdict(&verdict, &start, summary.steps, &replay.path)
}

/// Each library the run used, from the store, checked by its hash.
fn stored_libraries(record: &Provenance, store: &Store) -> Result<Vec<LibraryAt>> {
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for lib in &record.libraries {
        match store.library(&lib.name, &lib.sha256) {
            Ok(path) => out.push(LibraryAt {
                after_step: lib.after_step,
                name: lib.name.clone(),
                sha256: lib.sha256.clone(),
                path,
            }),
            Err(e) => refused.push(e.to_string()),
        }
    }
    if !refused.is_empty() {
        bail!(
            "the code the run used is not available as it ran:\n  {}\nNothing was replayed.",
            refused.join("\n  ")
        );
    }
    Ok(out)
}

/// Where this binary's checkout differs from the one each start of the run
/// was built from.
fn host_differences(record: &Provenance, run: &RunDir) -> Vec<String> {
    let mut out = Vec::new();
    for s in &record.starts {
        if s.commit != provenance::GIT_COMMIT {
            out.push(format!(
                "the trainer taking the run up after step {} was built from {} ({}); this binary from {} ({})",
                s.after_step,
                s.describe,
                s.commit,
                provenance::GIT_DESCRIBE,
                provenance::GIT_COMMIT
            ));
            continue;
        }
        let theirs = s
            .diff
            .as_ref()
            .and_then(|f| std::fs::read(run.file(f)).ok());
        if theirs.as_deref().unwrap_or_default() != provenance::GIT_DIFF {
            out.push(format!(
                "the checkout of the trainer after step {} had {} uncommitted changes than this binary's ({})",
                s.after_step,
                if theirs.is_some() { "other" } else { "no" },
                s.diff.as_deref().unwrap_or("no diff recorded")
            ));
        }
    }
    out
}

/// Where the data now differs from the data the run started on.
fn data_differences(
    record: &Provenance,
    start: &ExperimentFile,
    seed: u64,
    store: &Store,
) -> Vec<String> {
    let Some(was) = &record.data else {
        return vec!["the run recorded no hashes of its data".into()];
    };
    if let Some(why) = &was.not_hashed {
        return vec![format!("the run's data was not hashed ({why})")];
    }
    let now = DataRecord::of(&start.data, seed, &store.dir);
    data_files::differences(was, &now)
        .into_iter()
        .map(|d| format!("data: {d}"))
        .collect()
}

fn report_checks(
    record: &Provenance,
    libraries: &[LibraryAt],
    differences: &[String],
    anyway: bool,
) -> Result<()> {
    for lib in libraries {
        eprintln!(
            "library {} ({}) after step {}: from the store",
            lib.name,
            provenance::short(&lib.sha256),
            lib.after_step
        );
    }
    if !record.config_changes.is_empty() {
        eprintln!(
            "configuration changes to replay: {}",
            record.describe_changes()
        );
    }
    if differences.is_empty() {
        eprintln!("host commit and data: as the run recorded them");
        return Ok(());
    }
    let listed = differences.join("\n  ");
    if anyway {
        eprintln!("replaying anyway (--anyway) although:\n  {listed}");
        return Ok(());
    }
    bail!(
        "not what the run ran with:\n  {listed}\nNothing was replayed; --anyway replays it all the same."
    )
}

/// A new run directory beside `original` that starts as it started and
/// follows its timeline.
fn prepare(
    original: &RunDir,
    info: &RunInfo,
    record: &Provenance,
    start: &ExperimentFile,
    libraries: Vec<LibraryAt>,
    steps: Option<u64>,
) -> Result<RunDir> {
    let now = original.experiment()?;
    let mut steps_changed: Vec<u64> = record.config_changes.iter().map(|c| c.after_step).collect();
    steps_changed.dedup();
    let configs = steps_changed
        .into_iter()
        .map(|after_step| {
            let config = record.config_after(&now, after_step);
            Ok(ConfigAt {
                after_step,
                toml: toml::to_string(&config)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let runs = original.path.parent().unwrap_or(Path::new("."));
    let replay_info = RunInfo {
        experiment: format!("{}-replay", info.experiment),
        created: String::new(),
        slurm_job: None,
        ..info.clone()
    };
    let text = toml::to_string(start).context("writing the starting configuration")?;
    let dir = RunDir::create(runs, &replay_info, &text)
        .with_context(|| format!("creating a run directory under {}", runs.display()))?;
    // The replay watches no file: its own copy names where it came from.
    let info = RunInfo {
        source: dir.file(dir::EXPERIMENT),
        ..replay_info
    };
    dir::write_json(&dir.file(dir::RUN), &info)?;
    Replay {
        of: original.path.clone(),
        stop_after: steps,
        configs,
        libraries,
    }
    .write(&dir)?;
    Ok(dir)
}

/// None on the CPU backends (bit for bit); the CUDA tolerance otherwise.
fn tolerance_for(start: &ExperimentFile) -> Option<(f64, f64)> {
    crate::experiment::DeviceName::is_gpu(&start.device).then_some((CUDA_REL, CUDA_ABS))
}

/// The outcome of comparing the logs.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Every compared value equal (or within the tolerance): how many.
    Same { values: usize },
    /// The first difference, in step order.
    Differs { step: u64, what: String },
}

type Key = (u64, String, String);

fn logged(run: &RunDir, through: u64) -> BTreeMap<Key, MetricLine> {
    run.metrics()
        .into_iter()
        .filter(|m| m.step <= through)
        .filter(|m| !TIMINGS.contains(&m.metric.as_str()) && !metric::is_system(&m.metric))
        .map(|m| ((m.step, m.split.clone(), m.metric.clone()), m))
        .collect()
}

/// Every metric both runs logged through step `through`, compared.
pub fn compare(
    original: &RunDir,
    replay: &RunDir,
    through: u64,
    tolerance: Option<(f64, f64)>,
) -> Verdict {
    let (a, b) = (logged(original, through), logged(replay, through));
    let keys: std::collections::BTreeSet<&Key> = a.keys().chain(b.keys()).collect();
    for key in keys {
        let (step, split, name) = key;
        let what = |detail: String| Verdict::Differs {
            step: *step,
            what: format!("{split}/{name}: {detail}"),
        };
        match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) if !close(x.value, y.value, tolerance) => {
                return what(format!("{} in the run, {} in the replay", x.value, y.value));
            }
            (Some(x), Some(y)) if x.p.to_bits() != y.p.to_bits() => {
                return what(format!(
                    "drop rate {} in the run, {} in the replay",
                    x.p, y.p
                ));
            }
            (Some(_), None) => return what("logged by the run, not by the replay".into()),
            (None, Some(_)) => return what("logged by the replay, not by the run".into()),
            _ => {}
        }
    }
    Verdict::Same { values: a.len() }
}

fn close(a: f64, b: f64, tolerance: Option<(f64, f64)>) -> bool {
    match tolerance {
        None => a.to_bits() == b.to_bits(),
        Some((rel, abs)) => (a - b).abs() <= abs + rel * a.abs(),
    }
}

fn print_verdict(
    verdict: &Verdict,
    start: &ExperimentFile,
    steps: u64,
    replay: &Path,
) -> Result<()> {
    let how = match tolerance_for(start) {
        None => "bit for bit".to_string(),
        Some((rel, abs)) => format!("within |a − b| ≤ {abs:e} + {rel:e}·|a| (CUDA)"),
    };
    match verdict {
        Verdict::Same { values } => {
            println!(
                "identical: {values} logged values over {steps} steps, {how} ({})",
                replay.display()
            );
            Ok(())
        }
        Verdict::Differs { step, what } => {
            let advice = if tolerance_for(start).is_some() && !start.deterministic {
                "; set deterministic = true in the experiment for repeatable CUDA runs"
            } else {
                ""
            };
            bail!(
                "differs ({how}): first at step {step}, {what}{advice}. The replay is in {}",
                replay.display()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(step: u64, name: &str, value: f64) -> MetricLine {
        MetricLine {
            step,
            epoch: 0,
            split: metric::TRAIN.into(),
            metric: name.into(),
            value,
            wall: step as f64,
            p: 0.1,
            plugin_version: "1.0.0".into(),
        }
    }

    fn run_logging(root: &Path, name: &str, lines: &[MetricLine]) -> RunDir {
        let run = RunDir::new(root.join(name));
        std::fs::create_dir_all(&run.path).unwrap();
        let mut log = dir::JsonLog::open(&run.file(dir::METRICS)).unwrap();
        log.append_all(lines).unwrap();
        log.flush().unwrap();
        run
    }

    #[test]
    fn the_first_difference_in_step_order_is_named_and_timings_are_not_compared() {
        let tmp = tempfile::tempdir().unwrap();
        let a = [
            line(1, "loss", 2.0),
            line(1, metric::STEP_TIME, 0.1),
            line(2, "loss", 1.5),
            line(3, "loss", 1.2),
        ];
        let mut b = a.clone();
        b[1].value = 0.3;
        let (x, y) = (
            run_logging(tmp.path(), "a", &a),
            run_logging(tmp.path(), "b", &b),
        );
        assert_eq!(compare(&x, &y, 3, None), Verdict::Same { values: 3 });
        b[2].value = 1.5000000000000002;
        b[3].value = 9.0;
        let y = run_logging(tmp.path(), "c", &b);
        let Verdict::Differs { step, what } = compare(&x, &y, 3, None) else {
            panic!("one bit apart is a difference on the CPU");
        };
        assert_eq!(step, 2);
        assert!(what.starts_with("train/loss: 1.5 in the run"), "{what}");
        // Within the CUDA tolerance, the last bit is no difference; 9 is.
        let cuda = Some((CUDA_REL, CUDA_ABS));
        assert!(matches!(
            compare(&x, &y, 3, cuda),
            Verdict::Differs { step: 3, .. }
        ));
        assert_eq!(compare(&x, &y, 2, cuda), Verdict::Same { values: 2 });
        // A value only one of them logged is a difference too.
        let z = run_logging(tmp.path(), "d", &a[..3]);
        assert!(matches!(
            compare(&x, &z, 3, None),
            Verdict::Differs { step: 3, .. }
        ));
    }
}
