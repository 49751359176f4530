//! A file that does not read as a whole still says more than its first
//! error: each section is read on its own, and every strategy that reads is
//! checked against the plugins (a misspelt plugin name is reported with a
//! missing `[train]`, not after it is fixed).

use serde::de::DeserializeOwned;

use super::diagnostic::{Diagnostic, Locator, Seg, key};
use super::{
    Catalog, Checker, DataSpec, LogSpec, LrScheduleSpec, ModelSpec, OptimizerSpec, StrategySpec,
    TrainSpec, schema_error,
};

/// Reads `value` (found at `path`) as a `T`.
fn read<T: DeserializeOwned>(
    locator: &Locator,
    path: Vec<Seg>,
    value: &toml::Value,
) -> Result<T, Box<Diagnostic>> {
    serde_path_to_error::deserialize::<_, T>(value.clone())
        .map_err(|e| Box::new(schema_error(locator, &path, e)))
}

/// The top-level keys without a default (checked against the schema by
/// `the_required_keys_are_the_schemas`).
const REQUIRED: [&str; 4] = ["name", "data", "model", "train"];

type SectionCheck = fn(&Locator, Vec<Seg>, &toml::Value) -> Option<Diagnostic>;

/// The tables of the file that read on their own.
const SECTIONS: [(&str, SectionCheck); 6] = [
    ("data", |l, p, v| {
        read::<DataSpec>(l, p, v).err().map(|d| *d)
    }),
    ("model", |l, p, v| {
        read::<ModelSpec>(l, p, v).err().map(|d| *d)
    }),
    ("optimizer", |l, p, v| {
        read::<OptimizerSpec>(l, p, v).err().map(|d| *d)
    }),
    ("lr_schedule", |l, p, v| {
        read::<LrScheduleSpec>(l, p, v).err().map(|d| *d)
    }),
    ("train", |l, p, v| {
        read::<TrainSpec>(l, p, v).err().map(|d| *d)
    }),
    ("log", |l, p, v| read::<LogSpec>(l, p, v).err().map(|d| *d)),
];

/// Adds to `checker.errors` (which hold the file's first error) what the
/// sections and strategies tell on their own, each problem once.
pub(super) fn check_parts(checker: &mut Checker, catalog: &Catalog) {
    let locator = checker.locator;
    let Ok(table) = locator.text.parse::<toml::Table>() else {
        return; // invalid TOML: its one error is all there is
    };
    let mut found = Vec::new();
    for name in REQUIRED.iter().filter(|k| !table.contains_key(**k)) {
        let message = format!("missing required key `{name}`");
        found.push(locator.at_path(&[key(name)], true, message, None));
    }
    for (name, check) in SECTIONS {
        if let Some(value) = table.get(name) {
            found.extend(check(locator, vec![key(name)], value));
        }
    }
    if let Some(toml::Value::Array(items)) = table.get("strategy") {
        for (i, item) in items.iter().enumerate() {
            let path = vec![key("strategy"), Seg::Index(i)];
            match read::<StrategySpec>(locator, path, item) {
                Ok(spec) => {
                    checker.check_plugin(i, &spec, catalog);
                }
                Err(d) => found.push(*d),
            }
        }
    }
    for d in found {
        let seen = checker.errors.iter().any(|e| e.key == d.key);
        if !seen {
            checker.errors.push(d);
        }
    }
    checker.errors.sort_by_key(|d| (d.line, d.column));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::ExperimentFile;
    use serde::Deserialize;

    const MINIMAL: &str = "name = \"t\"\n[data]\nformat = \"idx\"\npath = \".\"\n\
                           [model]\nkind = \"small-cnn\"\n[train]\nepochs = 1\nbatch_size = 8\n";

    #[test]
    fn the_required_keys_are_the_schemas() {
        let full: toml::Table = MINIMAL.parse().unwrap();
        // Nothing but the required keys reads: no other key is required ...
        assert_eq!(full.len(), REQUIRED.len());
        assert!(REQUIRED.iter().all(|k| full.contains_key(*k)));
        ExperimentFile::deserialize(toml::Value::Table(full.clone())).unwrap();
        // ... and each of them is.
        for name in REQUIRED {
            let mut without = full.clone();
            without.remove(name);
            let err = ExperimentFile::deserialize(toml::Value::Table(without)).unwrap_err();
            assert!(
                err.to_string().contains(&format!("missing field `{name}`")),
                "{err}"
            );
        }
    }
}
