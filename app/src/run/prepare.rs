//! Preparing runs: an experiment validated against the plugin catalog, the
//! command line's overrides applied, and one queued run directory per
//! selected run. Used by `run`, `compare` and the dashboard alike.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::experiment::{self, Catalog, Diagnostic, Experiment, Machine, RunSpec};

use super::dir::{self, RunDir, RunInfo};

/// Formats diagnostics for an error message.
pub fn diagnostics_error(errors: &[Diagnostic]) -> anyhow::Error {
    let text: String = errors.iter().map(ToString::to_string).collect();
    anyhow!("invalid experiment:\n{}", text.trim_end())
}

/// Validates `file` and applies the device and epoch overrides, refusing a device
/// this build cannot open before anything is created. Returns the experiment and
/// the file's canonical path (what run directories record as their source).
pub fn load_for_runs(
    catalog: &Catalog,
    machine: &dyn Machine,
    file: &Path,
    device_override: Option<&str>,
    epochs_override: Option<usize>,
) -> Result<(Experiment, PathBuf)> {
    let mut exp = experiment::load(file, catalog, machine).map_err(|e| diagnostics_error(&e))?;
    if let Some(d) = &exp.data_missing {
        bail!("cannot start: {d}");
    }
    for w in &exp.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(d) = device_override {
        experiment::parse_device(d).map_err(|e| anyhow!("--device: {e}"))?;
        exp.file.device = d.to_string();
    }
    if let Some(e) = epochs_override {
        if e == 0 {
            bail!("--epochs: expected a positive number");
        }
        exp.file.train.epochs = e;
    }
    let name = experiment::parse_device(&exp.file.device)?;
    experiment::backend_for(name, exp.file.backend)?;
    let source = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
    Ok((exp, source))
}

/// Creates the directory of one run (queued, nothing trained yet), stamped
/// `created`: the runs one command makes together share the stamp.
pub fn create_run(
    exp: &Experiment,
    source: &Path,
    run: &RunSpec,
    runs_dir: &Path,
    created: &str,
) -> Result<RunDir> {
    let resolved = exp.resolved(run);
    let text = toml::to_string(&resolved).context("writing the resolved experiment")?;
    let info = RunInfo {
        experiment: exp.file.name.clone(),
        source: source.to_path_buf(),
        label: run.label.clone(),
        strategy_index: run.strategy_index,
        seed: run.seed,
        created: created.to_string(),
        slurm_job: None,
    };
    let d = RunDir::create(runs_dir, &info, &text)
        .with_context(|| format!("creating a run directory under {}", runs_dir.display()))?;
    dir::write_json(
        &d.file(dir::STATUS),
        &dir::Status {
            updated: dir::now(),
            device: resolved.device.clone(),
            ..dir::Status::new(0)
        },
    )?;
    Ok(d)
}

/// Which runs of an experiment to prepare, and the command line's overrides.
#[derive(Clone, Copy, Debug, Default)]
pub struct Selection<'a> {
    pub device: Option<&'a str>,
    pub epochs: Option<usize>,
    /// Only the strategy with this label.
    pub strategy: Option<&'a str>,
    pub seed: Option<u64>,
}

/// Validates `file`, applies overrides, and creates one run directory per selected
/// run (nothing trained yet).
pub fn prepare_runs(
    catalog: &Catalog,
    machine: &dyn Machine,
    file: &Path,
    runs_dir: &Path,
    select: Selection,
) -> Result<(Experiment, Vec<RunDir>)> {
    let (exp, source) = load_for_runs(catalog, machine, file, select.device, select.epochs)?;
    let mut selected: Vec<RunSpec> = exp.runs();
    if let Some(s) = select.strategy {
        selected.retain(|r| r.label == s);
        if selected.is_empty() {
            let labels: Vec<String> = exp
                .strategies()
                .iter()
                .map(experiment::strategy_label)
                .collect();
            bail!(
                "--strategy {s}: not in the experiment; its strategies are: {}",
                labels.join(", ")
            );
        }
    }
    if let Some(seed) = select.seed {
        selected.retain(|r| r.seed == seed);
        if selected.is_empty() {
            bail!(
                "--seed {seed}: not among the experiment's seeds {:?}",
                exp.file.seeds
            );
        }
    }
    let created = dir::timestamp(dir::now() as u64);
    let dirs = selected
        .iter()
        .map(|run| create_run(&exp, &source, run, runs_dir, &created))
        .collect::<Result<Vec<_>>>()?;
    Ok((exp, dirs))
}
