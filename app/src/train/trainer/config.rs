//! Live changes of the experiment file, re-validated and applied at a step boundary.

use std::path::Path;

use anyhow::{Context, Result};

use crate::experiment::{self, Catalog, DropSchedule, ExperimentFile, RunSpec};
use crate::plugins::Library;
use crate::run::dir::{self, EventKind};
use crate::run::provenance::{ConfigChange, Provenance};
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
    live.slots = slots;
    let applied = experiment::changes::take_live(&live.resolved, new);
    let changes = record_changes(writer, &live.resolved, &applied, step)?;
    live.resolved = applied;
    live.strategy = live.resolved.strategy[0].clone();
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
            described(&changes, changed),
            describe_schedule(&live.strategy.schedule, &live.strategy.params)
        ),
    )
}

/// Each key the change set, in the run's provenance.json: the run's record
/// of what was in force when, which `experiment.toml` (the configuration in
/// force now) is not.
fn record_changes(
    writer: &Writer,
    running: &ExperimentFile,
    applied: &ExperimentFile,
    step: u64,
) -> Result<Vec<ConfigChange>> {
    let changes: Vec<ConfigChange> = experiment::changes::changed_leaves(running, applied)
        .into_iter()
        .map(|(key, from, to)| ConfigChange {
            after_step: step,
            key,
            from,
            to,
        })
        .collect();
    Provenance::record_changes(&writer.dir, changes.clone())
        .context("writing the run's provenance.json")?;
    Ok(changes)
}

/// Each key a change set with its old and new value (`p 0.2→0.3`); the
/// changed rows of the live table where no leaf differs.
fn described(changes: &[ConfigChange], rows: &[String]) -> String {
    if changes.is_empty() {
        return rows.join(", ");
    }
    let each: Vec<String> = changes.iter().map(ConfigChange::describe).collect();
    each.join(", ")
}

pub(super) fn describe_schedule(s: &DropSchedule, params: &toml::Table) -> String {
    let params: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(" (schedule {:?}, params [{}])", s.kind, params.join(", ")).to_lowercase()
}

pub(super) fn read_source(path: &Path) -> Result<String, String> {
    let max = crate::run::files::MAX_EXPERIMENT_BYTES;
    crate::run::files::read_named_text(path, max).map_err(|e| format!("{}: {e}", path.display()))
}

pub(super) fn file_stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::dir::{RunDir, RunInfo};

    const FILE: &str = r#"
name = "t"
seeds = [1]
[data]
format = "idx"
path = "no-such-data"
[model]
kind = "small-cnn"
[train]
epochs = 2
batch_size = 8
log_every = 10
[[strategy]]
plugin = "none"
"#;

    /// A live configuration from `FILE`, its run directory and writer.
    fn running(tmp: &Path) -> (Live, Writer, RunSpec, std::path::PathBuf) {
        let source = tmp.join("t.toml");
        std::fs::write(&source, FILE).unwrap();
        let exp = experiment::validate(&source, FILE, &Catalog::default(), &ThisMachine).unwrap();
        let run = exp.runs().remove(0);
        let resolved = exp.resolved(&run);
        let info = RunInfo {
            experiment: "t".into(),
            source: source.clone(),
            label: run.label.clone(),
            strategy_index: 0,
            seed: 1,
            created: String::new(),
            slurm_job: None,
        };
        let dir = RunDir::create(&tmp.join("runs"), &info, FILE).unwrap();
        let strategy = resolved.strategy[0].clone();
        let slots = build_slots(&resolved, &strategy, None).unwrap();
        let live = Live {
            resolved,
            strategy,
            slots,
        };
        (live, Writer::open(&dir).unwrap(), run, source)
    }

    /// What a saved `text` does at step 5: the events it leaves, by kind.
    fn save(text: &str, live: &mut Live, writer: &mut Writer, run: &RunSpec, source: &Path) {
        let catalog = Catalog::default();
        let against = Against {
            source,
            catalog: &catalog,
            run,
            library: None,
        };
        apply_config(text, &against, live, writer, 5).unwrap();
    }

    fn kinds(writer: &Writer) -> Vec<String> {
        writer
            .dir
            .events()
            .iter()
            .map(|e| e.kind.to_string())
            .collect()
    }

    #[test]
    fn a_half_written_file_is_refused_and_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut live, mut writer, run, source) = running(tmp.path());
        save(
            &FILE[..FILE.len() / 2],
            &mut live,
            &mut writer,
            &run,
            &source,
        );
        assert_eq!(kinds(&writer), ["config_invalid"]);
        assert_eq!(live.resolved.train.log_every, 10);
    }

    #[test]
    fn a_live_field_applies_and_a_fixed_one_waits_for_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut live, mut writer, run, source) = running(tmp.path());
        let changed = FILE
            .replace("log_every = 10", "log_every = 3")
            .replace("batch_size = 8", "batch_size = 16");
        save(&changed, &mut live, &mut writer, &run, &source);
        assert_eq!(kinds(&writer), ["needs_restart", "config_applied"]);
        let events = writer.dir.events();
        assert!(
            events[0].message.contains("train.batch_size"),
            "{}",
            events[0].message
        );
        assert_eq!(live.resolved.train.log_every, 3);
        assert_eq!(live.resolved.train.batch_size, 8, "kept until a restart");
        // Issue 34, item 15: the event says the old and new value.
        assert!(
            events[1].message.contains("train.log_every 10→3"),
            "{}",
            events[1].message
        );
        // The run directory's experiment says what is in force; its
        // provenance when it changed, from what.
        assert_eq!(writer.dir.experiment().unwrap().train.log_every, 3);
        let record = Provenance::of(&writer.dir);
        assert_eq!(
            record.config_changes,
            [ConfigChange {
                after_step: 5,
                key: "train.log_every".into(),
                from: Some(toml::Value::Integer(10)),
                to: Some(toml::Value::Integer(3)),
            }]
        );
        // Saved again: the live field is in force already; the fixed one still
        // waits.
        save(&changed, &mut live, &mut writer, &run, &source);
        let kinds = kinds(&writer);
        assert_eq!(kinds[2..], ["needs_restart"], "{kinds:?}");
    }

    #[test]
    fn a_strategy_gone_from_the_file_keeps_the_run_as_it_is() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut live, mut writer, run, source) = running(tmp.path());
        let renamed = FILE.replace("plugin = \"none\"", "plugin = \"none\"\nlabel = \"other\"");
        save(&renamed, &mut live, &mut writer, &run, &source);
        assert_eq!(kinds(&writer), ["needs_restart"]);
        assert!(
            writer.dir.events()[0]
                .message
                .contains("no longer in the file")
        );
    }
}
