//! Live changes of the experiment file, re-validated and applied at a step boundary.

use std::path::Path;

use anyhow::Result;

use crate::experiment::{self, Catalog, DropSchedule, RunSpec};
use crate::plugins::Library;
use crate::run::dir::{self, EventKind};

use super::slots::{Live, build_slots};
use super::writer::Writer;

/// Re-validates the experiment text and applies what can change live.
#[allow(clippy::too_many_arguments)]
pub(super) fn apply_config(
    text: &str,
    source: &Path,
    catalog: &Catalog,
    run: &RunSpec,
    library: Option<&Library>,
    live: &mut Live,
    writer: &mut Writer,
    step: u64,
) -> Result<()> {
    let exp = match experiment::validate(source, text, catalog) {
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
    let new_strategy = new.strategy[0].clone();
    let same_plugin = new_strategy.plugin == live.strategy.plugin;
    if same_plugin {
        match build_slots(&new, &new_strategy, library) {
            Ok(slots) => {
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
                        changed_live.join(", "),
                        describe_schedule(&live.strategy.schedule, &live.strategy.params)
                    ),
                )?;
            }
            Err(e) => writer.event(
                step,
                EventKind::ConfigInvalid,
                format!("change not applied: {e}"),
            )?,
        }
    }
    Ok(())
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
