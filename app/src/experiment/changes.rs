//! What a saved change to a running run's experiment does, key by key: one
//! table over the whole schema ([`CHANGES`]). The trainer's live diff and
//! what it takes into the running configuration both read it, and a test
//! holds every key of a fully written file to have its row.

use std::collections::BTreeMap;

use super::schema::ExperimentFile;

/// What a change of a key does to a run that trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Taken at the next step boundary.
    Live,
    /// Not taken: the run says it needs a restart.
    Restart,
    /// Nothing for a running run (its seed and strategy are its own; a
    /// description or the file's other seeds do not touch it).
    Inert,
}

/// Every key of a run's resolved experiment (dotted; its strategy under
/// `strategy`), by its longest listed prefix.
pub const CHANGES: &[(&str, Change)] = &[
    ("name", Change::Inert),
    ("description", Change::Inert),
    ("seeds", Change::Inert),
    ("device", Change::Restart),
    ("backend", Change::Restart),
    ("cudnn_benchmark", Change::Restart),
    ("deterministic", Change::Restart),
    ("data", Change::Restart),
    ("model.kind", Change::Restart),
    ("model.channels", Change::Restart),
    ("model.hidden", Change::Restart),
    ("model.heads", Change::Restart),
    ("model.layers", Change::Restart),
    ("model.ff", Change::Restart),
    ("model.dropout", Change::Restart),
    ("model.slots", Change::Live),
    ("optimizer", Change::Restart),
    ("lr_schedule", Change::Restart),
    ("train.epochs", Change::Restart),
    ("train.batch_size", Change::Restart),
    ("train.eval_every", Change::Live),
    ("train.checkpoint_every", Change::Restart),
    ("train.log_every", Change::Live),
    ("train.snapshot_every", Change::Live),
    ("train.max_steps", Change::Restart),
    ("train.step_timeout", Change::Restart),
    ("train.memory_limit", Change::Restart),
    ("train.thread_limit", Change::Restart),
    ("log", Change::Restart),
    // How compare schedules the cells; nothing a running run reads.
    ("sweep", Change::Inert),
    ("strategy.plugin", Change::Restart),
    ("strategy.label", Change::Inert),
    ("strategy.params", Change::Live),
    ("strategy.schedule", Change::Live),
    ("strategy.slots", Change::Live),
    ("strategy.depth_rule", Change::Live),
    // A run is one cell, found again by its label in the expanded file; its
    // own copy sweeps nothing.
    ("strategy.sweep", Change::Inert),
];

/// The row of `key`: its longest listed prefix (whole segments).
pub fn row_of(key: &str) -> Option<(&'static str, Change)> {
    CHANGES
        .iter()
        .filter(|(prefix, _)| {
            key == *prefix
                || key
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
        .max_by_key(|(prefix, _)| prefix.len())
        .copied()
}

/// Every leaf of `file` by its dotted key, its first strategy under `strategy`
/// (the one a run trains).
pub fn flatten(file: &ExperimentFile) -> BTreeMap<String, toml::Value> {
    let mut out = BTreeMap::new();
    let mut top = file.clone();
    let strategy = top.strategy.drain(..).next();
    if let Ok(v) = toml::Value::try_from(&top) {
        leaves("", &v, &mut out);
    }
    if let Some(v) = strategy.and_then(|s| toml::Value::try_from(s).ok()) {
        leaves("strategy", &v, &mut out);
    }
    out
}

fn leaves(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
    match v {
        toml::Value::Table(t) if !t.is_empty() => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// The rows that differ between two versions of a run's experiment, live
/// and needing a restart, each once, in table order. A key without a row
/// needs a restart (never silently taken).
pub fn live_diff(old: &ExperimentFile, new: &ExperimentFile) -> (Vec<String>, Vec<String>) {
    let (a, b) = (flatten(old), flatten(new));
    let mut changed: Vec<(&'static str, Change)> = Vec::new();
    let keys = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k)));
    for key in keys {
        if a.get(key) != b.get(key) {
            let row = row_of(key).unwrap_or(("unclassified", Change::Restart));
            if !changed.contains(&row) {
                changed.push(row);
            }
        }
    }
    changed.sort_by_key(|(prefix, _)| CHANGES.iter().position(|(p, _)| p == prefix));
    let names = |which: Change| {
        changed
            .iter()
            .filter(|(_, c)| *c == which)
            .map(|(p, _)| p.to_string())
            .collect()
    };
    (names(Change::Live), names(Change::Restart))
}

/// Every leaf that differs between `old` and `new`: (key, old value, new value).
pub fn changed_leaves(
    old: &ExperimentFile,
    new: &ExperimentFile,
) -> Vec<(String, Option<toml::Value>, Option<toml::Value>)> {
    let (mut a, mut b) = (flatten(old), flatten(new));
    let keys: std::collections::BTreeSet<String> = a.keys().chain(b.keys()).cloned().collect();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (a.remove(&k), b.remove(&k));
            (x != y).then_some((k, x, y))
        })
        .collect()
}

/// `running` with the live keys of `new` taken in (everything else kept):
/// what a running run's configuration becomes when a change is applied.
pub fn take_live(running: &ExperimentFile, new: &ExperimentFile) -> ExperimentFile {
    let (Ok(mut value), Ok(source)) = (toml::Value::try_from(running), toml::Value::try_from(new))
    else {
        return running.clone();
    };
    let keys: std::collections::BTreeSet<String> = flatten(running)
        .into_keys()
        .chain(flatten(new).into_keys())
        .filter(|k| row_of(k).is_some_and(|(_, c)| c == Change::Live))
        .collect();
    for key in keys {
        let path: Vec<&str> = key.split('.').collect();
        set(&mut value, &path, lookup(&source, &path).cloned());
    }
    value.try_into().unwrap_or_else(|_| running.clone())
}

/// `file` with each dotted key (as `flatten` names them) set to its value,
/// or removed where it is `None`: a recorded change done or undone.
pub fn with_values(
    file: &ExperimentFile,
    values: &[(&str, Option<&toml::Value>)],
) -> ExperimentFile {
    let Ok(mut value) = toml::Value::try_from(file) else {
        return file.clone();
    };
    for (key, to) in values {
        let path: Vec<&str> = key.split('.').collect();
        set(&mut value, &path, to.cloned());
    }
    value.try_into().unwrap_or_else(|_| file.clone())
}

/// Sets (or, with `None`, removes) the value at `path`; an array of tables
/// (the strategies) stands for its first.
fn set(v: &mut toml::Value, path: &[&str], to: Option<toml::Value>) {
    let toml::Value::Table(t) = first_of(v) else {
        return;
    };
    match path {
        [] => {}
        [last] => {
            match to {
                Some(x) => t.insert(last.to_string(), x),
                None => t.remove(*last),
            };
        }
        [seg, rest @ ..] => {
            if to.is_none() && !t.contains_key(*seg) {
                return;
            }
            let next = t
                .entry(seg.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default()));
            set(next, rest, to);
        }
    }
}

fn first_of(v: &mut toml::Value) -> &mut toml::Value {
    if v.as_array().is_some_and(|a| !a.is_empty())
        && let toml::Value::Array(a) = v
    {
        return &mut a[0];
    }
    v
}

fn lookup<'a>(v: &'a toml::Value, path: &[&str]) -> Option<&'a toml::Value> {
    let mut at = v;
    for seg in path {
        if let toml::Value::Array(a) = at {
            at = a.first()?;
        }
        at = at.get(seg)?;
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::schema::*;
    use serde::de::DeserializeOwned;

    /// The fields of `T` as serde knows them: its unknown-field error lists
    /// them all, so a field added to the schema shows up here by itself.
    fn fields<T: DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
        let e = toml::from_str::<T>("zz_not_a_field = 1").unwrap_err();
        let text = e.to_string();
        let listed = text
            .split("unknown field `zz_not_a_field`, expected")
            .nth(1)
            .unwrap_or_else(|| panic!("{text}"));
        listed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_key_of_the_schema_has_its_row() {
        let sections: [(&str, Vec<String>); 10] = [
            ("", fields::<ExperimentFile>()),
            ("data", fields::<DataSpec>()),
            ("model", fields::<ModelSpec>()),
            ("model.slots.layer3", fields::<SlotSpec>()),
            ("optimizer", fields::<OptimizerSpec>()),
            ("lr_schedule", fields::<LrScheduleSpec>()),
            ("train", fields::<TrainSpec>()),
            ("log", fields::<LogSpec>()),
            ("strategy", fields::<StrategySpec>()),
            ("strategy.schedule", fields::<DropSchedule>()),
        ];
        let mut seen = 0;
        for (section, names) in sections {
            assert!(!names.is_empty(), "{section}");
            // Tables with rows of their own keys are checked as sections.
            let sections_below = ["model", "train", "strategy"];
            for name in names {
                if section.is_empty() && sections_below.contains(&name.as_str()) {
                    continue;
                }
                let key = if section.is_empty() {
                    name
                } else {
                    format!("{section}.{name}")
                };
                assert!(row_of(&key).is_some(), "{key} has no row in CHANGES");
                seen += 1;
            }
        }
        assert!(seen > 60, "{seen} keys");
        assert_eq!(
            row_of("model.heads"),
            Some(("model.heads", Change::Restart))
        );
        assert_eq!(
            row_of("strategy.params.block_size"),
            Some(("strategy.params", Change::Live))
        );
        assert_eq!(row_of("train.eval"), None, "whole segments only");
    }

    fn transformer() -> ExperimentFile {
        let text = "name = \"t\"\nseeds = [1]\n[data]\nformat = \"text\"\npath = \"d\"\n\
                    [model]\nkind = \"transformer\"\nheads = 4\nlayers = 2\n\
                    [train]\nepochs = 1\nbatch_size = 8\n\
                    [[strategy]]\nplugin = \"dropout\"\nparams = { a = 1 }\n\
                    schedule = { kind = \"constant\", p = 0.1 }\n";
        crate::experiment::parse(std::path::Path::new("t.toml"), text).unwrap()
    }

    /// Issue 33: `model.heads` (and `layers`, `ff`, `dropout`) were in
    /// neither list, so a saved change to them was silently ignored.
    #[test]
    fn a_transformer_shape_change_needs_a_restart_and_only_live_keys_are_taken() {
        let running = transformer();
        let mut saved = running.clone();
        saved.model.heads = Some(8);
        saved.model.dropout = Some(0.3);
        saved.train.log_every = 3;
        saved.strategy[0]
            .params
            .insert("a".into(), toml::Value::Integer(2));
        saved.strategy[0].schedule.p = Some(0.2);
        let (live, restart) = live_diff(&running, &saved);
        assert_eq!(
            live,
            ["train.log_every", "strategy.params", "strategy.schedule"]
        );
        assert_eq!(restart, ["model.heads", "model.dropout"]);
        let applied = take_live(&running, &saved);
        assert_eq!(applied.model, running.model, "restart keys are not taken");
        assert_eq!(applied.train.log_every, 3);
        assert_eq!(applied.strategy[0].params, saved.strategy[0].params);
        assert_eq!(applied.strategy[0].schedule.p, Some(0.2));
        assert_eq!(live_diff(&applied, &saved).0, Vec::<String>::new());
    }
}
