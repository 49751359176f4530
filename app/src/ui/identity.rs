//! Telling runs apart: a run's resolved experiment as flat `key = value` pairs,
//! the keys in which overlaid runs differ, and names built from them
//! ("dropblock block_size=5 s1"), so that two runs never read the same.

use std::collections::{BTreeMap, BTreeSet};

/// A run's resolved experiment, flattened: dotted keys (`train.lr`,
/// `strategy.params.block_size`) to their values as written in TOML, strings
/// without quotes. A list of one table (the run's one strategy) is flattened
/// without an index.
pub type Config = BTreeMap<String, String>;

pub fn flatten(table: &toml::Table) -> Config {
    let mut out = Config::new();
    flatten_into("", table, &mut out);
    out
}

fn flatten_into(prefix: &str, table: &toml::Table, out: &mut Config) {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) => flatten_into(&key, t, out),
            toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
                for (i, item) in items.iter().enumerate() {
                    let key = if items.len() == 1 {
                        key.clone()
                    } else {
                        format!("{key}.{i}")
                    };
                    if let toml::Value::Table(t) = item {
                        flatten_into(&key, t, out);
                    }
                }
            }
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            other => {
                out.insert(key, other.to_string());
            }
        }
    }
}

/// Reads a run directory's resolved experiment; empty when it cannot be read.
pub fn read_config(path: &std::path::Path) -> Config {
    crate::run::dir::read_whole(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .map(|t| flatten(&t))
        .unwrap_or_default()
}

/// A run's configuration as the config panel shows it: what is in force
/// now (`config`), and a key a live change set as its history, `3 → 5 @ step
/// 190` (from the run's provenance), so that a run changed mid-way never reads
/// like one that ran with the last values from the start.
pub fn with_history(mut config: Config, record: &crate::run::provenance::Provenance) -> Config {
    let mut history: BTreeMap<String, String> = BTreeMap::new();
    for c in &record.config_changes {
        let text = history
            .entry(c.key.clone())
            .or_insert_with(|| value_text(c.from.as_ref()));
        text.push_str(&format!(
            " → {} @ step {}",
            value_text(c.to.as_ref()),
            c.after_step
        ));
    }
    config.extend(history);
    config
}

/// A value as the panel writes it: strings without quotes, "-" for none.
fn value_text(v: Option<&toml::Value>) -> String {
    match v {
        None => "-".into(),
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Keys whose value is not the same in every config (a key missing from some
/// counts as differing), sorted.
pub fn differing<'a>(configs: impl IntoIterator<Item = &'a Config> + Clone) -> Vec<String> {
    let keys: BTreeSet<&String> = configs.clone().into_iter().flat_map(|c| c.keys()).collect();
    keys.into_iter()
        .filter(|k| {
            let mut values = configs.clone().into_iter().map(|c| c.get(*k));
            let first = values.next().flatten();
            values.any(|v| v != first)
        })
        .cloned()
        .collect()
}

/// Keys that name a run already (its label and seed are always in its name)
/// or only describe it.
fn named_anyway(key: &str) -> bool {
    matches!(
        key,
        "strategy.plugin" | "strategy.label" | "seeds" | "name" | "description"
    )
}

/// What one run is called among others.
pub struct Named<'a> {
    pub label: &'a str,
    pub seed: u64,
    pub config: &'a Config,
    /// When it started (`HH:MM:SS`), the last resort between identical runs.
    pub started: String,
    /// The seeds of the runs it stands for (more than one: a group averaged).
    pub seeds: Vec<u64>,
}

/// A name for each run: its label, what differs from the others
/// (`block_size=5`, by the last part of the key), its seed; the start time
/// too where that still leaves two alike. Strategy settings are compared only
/// between runs of the same strategy (a DropBlock run and a run without
/// dropout differ in every one of them, which says nothing).
pub fn names(runs: &[Named]) -> Vec<String> {
    let shown = |k: &String| !named_anyway(k);
    let common: Vec<String> = differing(runs.iter().map(|r| r.config))
        .into_iter()
        .filter(|k| shown(k) && !k.starts_with("strategy."))
        .collect();
    let base: Vec<String> = runs
        .iter()
        .map(|r| {
            let same = runs.iter().filter(|o| o.label == r.label).map(|o| o.config);
            let own = differing(same)
                .into_iter()
                .filter(|k| shown(k) && k.starts_with("strategy."));
            let mut parts = vec![r.label.to_string()];
            for k in common.iter().cloned().chain(own) {
                let short = k.rsplit('.').next().unwrap_or(&k).to_string();
                let value = r.config.get(&k).map_or("-", String::as_str);
                parts.push(format!("{short}={value}"));
            }
            parts.push(group_size(&r.seeds).unwrap_or_else(|| format!("s{}", r.seed)));
            parts.join(" ")
        })
        .collect();
    base.iter()
        .zip(runs)
        .map(|(name, r)| {
            if base.iter().filter(|b| *b == name).count() > 1 {
                format!("{name} @{}", r.started)
            } else {
                name.clone()
            }
        })
        .collect()
}

/// "×3 seeds" for a group of three seeds; "×3 runs" when some share a seed
/// (the same run made again); `None` for one run.
fn group_size(seeds: &[u64]) -> Option<String> {
    if seeds.len() < 2 {
        return None;
    }
    let distinct: BTreeSet<&u64> = seeds.iter().collect();
    let what = if distinct.len() == seeds.len() {
        "seeds"
    } else {
        "runs"
    };
    Some(format!("×{} {what}", seeds.len()))
}

/// Runs that differ in their seed only, together (in the order of their
/// first member): what averaging over seeds averages.
pub fn seed_groups<T>(runs: &[T], config: impl Fn(&T) -> &Config) -> Vec<Vec<&T>> {
    let mut groups: Vec<(Config, Vec<&T>)> = Vec::new();
    for r in runs {
        let mut key = config(r).clone();
        key.remove("seeds");
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    groups.into_iter().map(|g| g.1).collect()
}

/// `HH:MM:SS` of a run's `created` stamp (`YYYYMMDD-HHMMSS`); the stamp itself
/// when it has another form.
pub fn clock_of(created: &str) -> String {
    match created.split_once('-') {
        Some((_, t)) if t.len() == 6 && t.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{}:{}:{}", &t[0..2], &t[2..4], &t[4..6])
        }
        _ => created.to_string(),
    }
}

/// `MM-DD HH:MM` of a `created` stamp, for the wide Runs table.
pub fn date_of(created: &str) -> String {
    match created.split_once('-') {
        Some((d, t)) if d.len() == 8 && t.len() == 6 => {
            format!("{}-{} {}:{}", &d[4..6], &d[6..8], &t[0..2], &t[2..4])
        }
        _ => created.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        flatten(&text.parse::<toml::Table>().unwrap())
    }

    #[test]
    fn a_resolved_experiment_flattens_to_dotted_keys() {
        let c = config(
            "name = \"q\"\nseeds = [1]\n[train]\nlr = 0.1\n\
             [[strategy]]\nplugin = \"dropblock\"\nparams = { block_size = 5 }",
        );
        assert_eq!(c["name"], "q");
        assert_eq!(c["seeds"], "[1]");
        assert_eq!(c["train.lr"], "0.1");
        assert_eq!(c["strategy.plugin"], "dropblock");
        assert_eq!(c["strategy.params.block_size"], "5");
        let two = config("[[s]]\na = 1\n[[s]]\na = 2");
        assert_eq!((two["s.0.a"].as_str(), two["s.1.a"].as_str()), ("1", "2"));
    }

    #[test]
    fn names_say_what_differs_and_never_repeat() {
        let a = config("[[strategy]]\nplugin = \"dropblock\"\nparams = { block_size = 3 }");
        let b = config("[[strategy]]\nplugin = \"dropblock\"\nparams = { block_size = 5 }");
        let named = |config, started: &str| Named {
            label: "dropblock",
            seed: 1,
            config,
            started: started.into(),
            seeds: vec![1],
        };
        assert_eq!(
            names(&[named(&a, "10:00:00"), named(&b, "11:00:00")]),
            ["dropblock block_size=3 s1", "dropblock block_size=5 s1"]
        );
        assert_eq!(
            names(&[
                named(&a, "10:00:00"),
                named(&a, "11:00:00"),
                named(&b, "12:00:00")
            ]),
            [
                "dropblock block_size=3 s1 @10:00:00",
                "dropblock block_size=3 s1 @11:00:00",
                "dropblock block_size=5 s1"
            ]
        );
        assert_eq!(names(&[named(&a, "10:00:00")]), ["dropblock s1"]);
        let group = |seeds: Vec<u64>| Named {
            seeds,
            ..named(&a, "10:00:00")
        };
        assert_eq!(names(&[group(vec![1, 2, 3])]), ["dropblock ×3 seeds"]);
        assert_eq!(names(&[group(vec![1, 1])]), ["dropblock ×2 runs"]);
        // Another strategy's settings are not a difference; the learning rate is.
        let none = config("[train]\nlr = 0.2\n[[strategy]]\nplugin = \"none\"");
        let named_none = Named {
            label: "none",
            ..named(&none, "13:00:00")
        };
        assert_eq!(
            names(&[named(&a, "10:00:00"), named_none]),
            ["dropblock lr=- s1", "none lr=0.2 s1"]
        );
        assert_eq!(differing([&a, &b]), ["strategy.params.block_size"]);
    }

    #[test]
    fn runs_that_differ_in_their_seed_only_are_one_group() {
        let s1 = config("seeds = [1]\n[train]\nlr = 0.1");
        let s2 = config("seeds = [2]\n[train]\nlr = 0.1");
        let other = config("seeds = [1]\n[train]\nlr = 0.2");
        let runs = [&s1, &other, &s2];
        let groups = seed_groups(&runs, |c| c);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].len(), 2);
        assert_eq!(*groups[1][0], &other);
    }

    #[test]
    fn created_stamps_read_as_clock_and_date() {
        assert_eq!(clock_of("20261202-170312"), "17:03:12");
        assert_eq!(date_of("20261202-170312"), "12-02 17:03");
        assert_eq!(clock_of(""), "");
    }
}
