//! The runs of one comparison start from one configuration: apart from the
//! seed, and between strategies the strategy itself, every key agrees, or the
//! table's differences would not be the strategies'. A run compare starts
//! gets what the file asks for now, so a run it would reuse that started
//! from anything else is refused: both are the one fact, runs that started
//! alike.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::experiment::changes::{self, Change};
use crate::experiment::{Experiment, ExperimentFile};
use crate::run::comparison::{Entry, Manifest};
use crate::run::dir::{self, RunDir};
use crate::run::provenance::Provenance;

/// A key whose value a run started with is not the one the file asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyDiff {
    /// Dotted, as `changes::flatten` names it.
    pub key: String,
    /// `None` where the key was not set.
    pub started: Option<toml::Value>,
    pub asked: Option<toml::Value>,
}

/// A run compare would reuse, and the keys it started with otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct Differing {
    pub entry: Entry,
    pub keys: Vec<KeyDiff>,
}

/// The keys in which `started` differs from `asked`, but for those that
/// change nothing in a run (`Change::Inert`: the name, the description, the
/// seeds, the strategy's label): a new description is no new experiment.
pub fn differences(started: &ExperimentFile, asked: &ExperimentFile) -> Vec<KeyDiff> {
    changes::changed_leaves(started, asked)
        .into_iter()
        .filter(|(key, _, _)| changes::row_of(key).map(|(_, c)| c) != Some(Change::Inert))
        .map(|(key, started, asked)| KeyDiff {
            key,
            started,
            asked,
        })
        .collect()
}

/// The configuration `run` started with: its `experiment.toml` (in force at
/// the end) with the live changes its provenance records undone, so that a
/// run changed mid-run is judged by where it began.
pub fn started_with(run: &RunDir) -> Result<ExperimentFile> {
    let now = run.experiment().with_context(|| {
        format!(
            "cannot tell what {} started with",
            run.file(dir::EXPERIMENT).display()
        )
    })?;
    Ok(Provenance::of(run).starting_config(&now))
}

/// The runs of `manifest` that compare would reuse for `exp` and that started
/// from other than what `exp` asks for them now.
pub fn differing(exp: &Experiment, manifest: &Manifest) -> Result<Vec<Differing>> {
    let mut out = Vec::new();
    for run in exp.runs() {
        let Some(entry) = manifest.reusable(&run.label, run.seed) else {
            continue;
        };
        let keys = differences(
            &started_with(&RunDir::new(&entry.dir))?,
            &exp.resolved(&run),
        );
        if !keys.is_empty() {
            out.push(Differing {
                entry: entry.clone(),
                keys,
            });
        }
    }
    Ok(out)
}

/// Refuses to go on with the comparison in `compare_dir` if a run it would
/// reuse started from other than what `exp` (`source` with the command's
/// overrides) asks for now.
pub fn check(
    exp: &Experiment,
    manifest: &Manifest,
    source: &Path,
    compare_dir: &Path,
) -> Result<()> {
    let differing = differing(exp, manifest)?;
    if differing.is_empty() {
        return Ok(());
    }
    bail!("{}", refusal(&differing, source, compare_dir))
}

/// What the refusal says: each run, each key with both values, and the ways on.
pub fn refusal(differing: &[Differing], source: &Path, compare_dir: &Path) -> String {
    let mut out = format!(
        "{} holds runs that started from another configuration than {} asks for now \
         (with this command's --device, --devices and --epochs). The runs of a \
         comparison must start alike but for the seed (and each strategy's own \
         section), and a run compare starts now gets what is asked now: reusing \
         these would mix the two.\n",
        compare_dir.display(),
        source.display()
    );
    for d in differing {
        let keys: Vec<String> = d
            .keys
            .iter()
            .map(|k| {
                format!(
                    "{} = {} when it started, {} now",
                    k.key,
                    value(&k.started),
                    value(&k.asked)
                )
            })
            .collect();
        let e = &d.entry;
        let _ = writeln!(
            out,
            "  {} ({} seed {}): {}",
            e.dir.display(),
            e.label,
            e.seed,
            keys.join("; ")
        );
    }
    out.push_str(
        "Put the file (and the options) back as they were to go on with this \
         comparison, or compare what is asked now in a directory of its own (--out).",
    );
    out
}

fn value(v: &Option<toml::Value>) -> String {
    v.as_ref().map_or("not set".into(), ToString::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::comparison::Manifest;
    use crate::run::prepare::create_run;
    use crate::run::provenance::ConfigChange;

    const FILE: &str = "name = \"t\"\ndescription = \"first\"\nseeds = [1, 2]\n\
                        [data]\nformat = \"idx\"\npath = \"d\"\n\
                        [model]\nkind = \"small-cnn\"\n[optimizer]\nlr = 0.1\n\
                        [train]\nepochs = 1\nbatch_size = 8\nlog_every = 10\n\
                        [[strategy]]\nplugin = \"none\"\n";

    fn experiment(text: &str) -> Experiment {
        let catalog = crate::experiment::Catalog::default();
        let source = Path::new("t.toml");
        crate::experiment::validate(source, text, &catalog, &crate::train::ThisMachine).unwrap()
    }

    /// Every run of `exp` made under `runs`, and the manifest naming them.
    fn made(exp: &Experiment, runs: &Path) -> Manifest {
        let entries = exp
            .runs()
            .iter()
            .map(|run| Entry {
                label: run.label.clone(),
                seed: run.seed,
                dir: create_run(exp, Path::new("t.toml"), run, runs, "now")
                    .unwrap()
                    .path,
            })
            .collect();
        Manifest {
            experiment: "t".into(),
            source: "t.toml".into(),
            created: "now".into(),
            baseline: "none".into(),
            strategies: vec!["none".into()],
            seeds: vec![1, 2],
            runs: entries,
            cells: Default::default(),
            halted: Default::default(),
            cleared: Default::default(),
        }
    }

    #[test]
    fn only_keys_that_change_a_run_differ() {
        let exp = experiment(FILE);
        let asked = exp.resolved(&exp.runs()[0]);
        let mut started = asked.clone();
        started.description = Some("second".into());
        started.name = "renamed".into();
        started.optimizer.lr = 0.05;
        assert_eq!(
            differences(&started, &asked),
            [KeyDiff {
                key: "optimizer.lr".into(),
                started: Some(toml::Value::Float(0.05)),
                asked: Some(toml::Value::Float(0.1)),
            }]
        );
    }

    /// Issue 33: a run reused on resume must have started from what the file
    /// asks now; a live change mid-run is judged by where the run began.
    #[test]
    fn a_reused_run_is_held_to_the_file_by_its_starting_configuration() {
        let tmp = tempfile::tempdir().unwrap();
        let exp = experiment(FILE);
        let manifest = made(&exp, tmp.path());
        assert_eq!(differing(&exp, &manifest).unwrap(), []);

        // Seed 2 had log_every changed live after step 5: flagged, not refused.
        let live = RunDir::new(&manifest.runs[1].dir);
        let mut now = live.experiment().unwrap();
        now.train.log_every = 3;
        dir::write_atomic(
            &live.file(dir::EXPERIMENT),
            toml::to_string(&now).unwrap().as_bytes(),
        )
        .unwrap();
        let change = ConfigChange {
            after_step: 5,
            key: "train.log_every".into(),
            from: Some(toml::Value::Integer(10)),
            to: Some(toml::Value::Integer(3)),
        };
        Provenance::record_changes(&live, vec![change]).unwrap();
        assert_eq!(differing(&exp, &manifest).unwrap(), []);

        // The file edited between sessions: every reused run is named.
        let edited = experiment(&FILE.replace("lr = 0.1", "lr = 0.05"));
        let found = differing(&edited, &manifest).unwrap();
        assert_eq!(found.len(), 2);
        let message = refusal(&found, Path::new("t.toml"), Path::new("compare/t"));
        let line = format!(
            "  {} (none seed 2): optimizer.lr = 0.1 when it started, 0.05 now",
            manifest.runs[1].dir.display()
        );
        assert!(message.contains(&line), "{message}");
        assert!(message.contains("--out"), "{message}");
        let err = check(&edited, &manifest, Path::new("t.toml"), Path::new("c"));
        assert!(err.is_err());
    }
}
