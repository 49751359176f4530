//! Live changes of the experiment file, re-validated and applied at a step boundary.

use std::path::Path;

use anyhow::Result;

use crate::experiment::{self, Catalog, DropSchedule, ExperimentFile, RunSpec};
use crate::plugins::Library;
use crate::run::dir::{self, EventKind};
use crate::train::ThisMachine;

use super::slots::{Live, Slot, build_slots};
use super::writer::Writer;

/// What a saved change is checked against: the file it came from, the
/// plugins, the run it is for and the library that run's strategy uses.
pub(super) struct Against<'a> {
    pub source: &'a Path,
    pub catalog: &'a Catalog,
    pub run: &'a RunSpec,
    pub library: Option<&'a Library>,
}

/// Re-validates the experiment text and applies what can change live.
pub(super) fn apply_config(
    text: &str,
    against: &Against,
    live: &mut Live,
    writer: &mut Writer,
    step: u64,
) -> Result<()> {
    let Against {
        source,
        catalog,
        run,
        library,
    } = *against;
    let exp = match experiment::validate(source, text, catalog, &ThisMachine) {
        Ok(e) => e,
        Err(errors) => {
            let first = errors[0].to_string();
            return writer.event(
                step,
                EventKind::ConfigInvalid,
                format!(
                    "change not applied, the file is invalid: {}",
                    first.trim_end()
                ),
            );
        }
    };
    let strategies = exp.strategies();
    let Some(index) = strategies
        .iter()
        .position(|s| experiment::strategy_label(s) == run.label)
    else {
        return writer.event(
            step,
            EventKind::NeedsRestart,
            format!(
                "the strategy \"{}\" is no longer in the file; the run keeps its configuration",
                run.label
            ),
        );
    };
    let new = exp.resolved(&RunSpec {
        strategy_index: index,
        ..run.clone()
    });
    let (changed_live, changed_fixed) = experiment::live_diff(&live.resolved, &new);
    if !changed_fixed.is_empty() {
        writer.event(
            step,
            EventKind::NeedsRestart,
            format!("changed, needs a restart: {}", changed_fixed.join(", ")),
        )?;
    }
    if changed_live.is_empty() {
        return Ok(());
    }
    // A change of plugin is among the fixed changes (it needs a restart).
    if new.strategy[0].plugin != live.strategy.plugin {
        return Ok(());
    }
    match build_slots(&new, &new.strategy[0], library) {
        Ok(slots) => apply_live(&new, slots, &changed_live, library, live, writer, step),
        Err(e) => writer.event(
            step,
            EventKind::ConfigInvalid,
            format!("change not applied: {e}"),
        ),
    }
}

/// Takes the live fields of `new` (strategy, slot parameters, logging
/// intervals) into the running configuration, and records that it did.
fn apply_live(
    new: &ExperimentFile,
    slots: Vec<Slot>,
    changed: &[String],
    library: Option<&Library>,
    live: &mut Live,
    writer: &mut Writer,
    step: u64,
) -> Result<()> {
    let new_strategy = new.strategy[0].clone();
    live.slots = slots;
    live.strategy = new_strategy.clone();
    let mut applied = live.resolved.clone();
    applied.strategy = vec![new_strategy];
    applied.model.slots = new.model.slots.clone();
    applied.train.eval_every = new.train.eval_every;
    applied.train.log_every = new.train.log_every;
    applied.train.snapshot_every = new.train.snapshot_every;
    live.resolved = applied;
    if let Ok(text) = toml::to_string(&live.resolved) {
        dir::write_atomic(&writer.dir.file(dir::EXPERIMENT), text.as_bytes())?;
    }
    writer.event(
        step,
        EventKind::ConfigApplied,
        format!(
            "applied at step {}{}: {}{}",
            step + 1,
            library
                .map(|l| format!(" with {} {}", l.info.name, l.info.version))
                .unwrap_or_default(),
            changed.join(", "),
            describe_schedule(&live.strategy.schedule, &live.strategy.params)
        ),
    )
}

pub(super) fn describe_schedule(s: &DropSchedule, params: &toml::Table) -> String {
    let params: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(" (schedule {:?}, params [{}])", s.kind, params.join(", ")).to_lowercase()
}

pub(super) fn read_source(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

pub(super) fn file_stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}
