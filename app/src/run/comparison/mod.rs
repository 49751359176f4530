//! A comparison's directory, the contract between `compare` (which writes it)
//! and the dashboard (which reads it): `compare.json` (which run directory is
//! which strategy and seed), and the reports made from the runs, `compare.md`,
//! `compare.csv` (one row per strategy) and `runs.csv` (one row per run): a
//! table of validation accuracy over seeds with t-tests against the baseline
//! (paired by seed; Welch's where the seeds do not pair up).

pub mod best;
pub mod grid;
pub mod stats;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::RunError;
use super::dir::{self, MetricLine, RunDir, State};
use stats::{Summary, TTest};

pub const MANIFEST: &str = "compare.json";
pub const TABLE_MD: &str = "compare.md";
pub const TABLE_CSV: &str = "compare.csv";
pub const RUNS_CSV: &str = "runs.csv";

/// Which run directory holds which strategy and seed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub experiment: String,
    pub source: PathBuf,
    pub created: String,
    /// The label every other strategy is compared with.
    pub baseline: String,
    /// Table order: the baseline first, then the file's order.
    pub strategies: Vec<String>,
    pub seeds: Vec<u64>,
    pub runs: Vec<Entry>,
    /// The sweep cells among the strategies, by label (none without sweeps).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cells: BTreeMap<String, SweepCell>,
    /// Halving: the cells stopped for good, with the rung (a fraction of
    /// training) they stopped at.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub halted: BTreeMap<String, f64>,
    /// Halving: the rungs each going cell has passed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cleared: BTreeMap<String, usize>,
}

/// A strategy that is one cell of a sweep: the arm it came from and each
/// swept key's value, as the file writes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SweepCell {
    pub arm: String,
    pub values: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub label: String,
    pub seed: u64,
    pub dir: PathBuf,
}

impl Manifest {
    pub fn load(compare_dir: &Path) -> Result<Manifest, RunError> {
        dir::read_json(&compare_dir.join(MANIFEST))
    }

    pub fn save(&self, compare_dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(compare_dir)?;
        dir::write_json(&compare_dir.join(MANIFEST), self)
    }

    pub fn entry(&self, label: &str, seed: u64) -> Option<&Entry> {
        self.runs
            .iter()
            .find(|e| e.label == label && e.seed == seed)
    }

    /// The entry of `label` and `seed` whose directory still holds a run:
    /// what compare, run again, reuses instead of making a new one.
    pub fn reusable(&self, label: &str, seed: u64) -> Option<&Entry> {
        self.entry(label, seed)
            .filter(|e| RunDir::new(&e.dir).info().is_ok())
    }

    /// The entries of the current strategies and seeds (an earlier invocation
    /// may have had others; they stay recorded but out of the table).
    pub fn current(&self) -> impl Iterator<Item = &Entry> {
        self.runs
            .iter()
            .filter(|e| self.strategies.contains(&e.label) && self.seeds.contains(&e.seed))
    }
}

/// How one run stands, as the table needs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub state: Option<State>,
    /// The last validation accuracy.
    pub final_acc: Option<f64>,
    pub best_acc: Option<f64>,
    /// Over its logged training steps: the mean drop rate `p` in force and
    /// the mean fraction its strategy measured dropped (over every slot).
    pub dropping: Option<Dropping>,
    /// Its configuration or strategy code changed while it trained (its
    /// provenance says what and when): its numbers are not those of one
    /// configuration, and the table leaves it out.
    pub changed_mid_run: bool,
}

/// How much a run dropped: "equal p" and "equal dropped fraction" side by side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropping {
    pub p: f64,
    pub dropped: f64,
}

impl Dropping {
    /// From the `p` and `dropped/<slot>` values of the training steps.
    pub fn of(p: &[f64], dropped: &[f64]) -> Option<Dropping> {
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        Some(Dropping {
            p: mean(p)?,
            dropped: mean(dropped)?,
        })
    }
}

impl Outcome {
    /// From the validation accuracies in step order.
    pub fn from_val_acc(state: Option<State>, accs: &[f64]) -> Outcome {
        Outcome {
            state,
            final_acc: accs.last().copied(),
            best_acc: accs.iter().copied().reduce(f64::max),
            dropping: None,
            changed_mid_run: false,
        }
    }

    /// Finished, with at least one evaluation.
    pub fn finished(&self) -> bool {
        self.state == Some(State::Done) && self.final_acc.is_some()
    }

    /// Counted in the table: finished, and under one configuration.
    pub fn counts(&self) -> bool {
        self.finished() && !self.changed_mid_run
    }
}

/// Reads a run directory's state, its validation accuracies and how much it
/// dropped.
pub fn outcome_of(run: &RunDir) -> Outcome {
    let metrics = run.metrics();
    let values = |split: &str, is: &dyn Fn(&str) -> bool| -> Vec<f64> {
        metrics
            .iter()
            .filter(|m: &&MetricLine| m.split == split && is(&m.metric))
            .map(|m| m.value)
            .collect()
    };
    let accs = values(dir::metric::VAL, &|m| m == dir::metric::ACC);
    let p = values(dir::metric::TRAIN, &|m| m == dir::metric::P);
    let dropped = values(dir::metric::TRAIN, &dir::metric::is_dropped);
    Outcome {
        dropping: Dropping::of(&p, &dropped),
        changed_mid_run: super::provenance::Provenance::of(run).changed_mid_run(),
        ..Outcome::from_val_acc(run.status().map(|s| s.state), &accs)
    }
}

/// A strategy's difference from the baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Delta {
    /// Mean over seeds both have finished of (strategy − baseline).
    pub paired_mean: f64,
    pub pairs: usize,
    /// Whether every finished seed of each has its partner in the other.
    pub all_paired: bool,
    /// The paired t-test of the per-seed differences; `None` where undefined.
    pub paired: Option<TTest>,
    /// Over all finished seeds of each; `None` where the test is undefined.
    pub welch: Option<TTest>,
}

/// Which test a p-value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestKind {
    Paired,
    Welch,
}

impl TestKind {
    pub fn name(self) -> &'static str {
        match self {
            TestKind::Paired => "paired",
            TestKind::Welch => "Welch",
        }
    }
}

impl Delta {
    /// The test a p-value is read from: the paired t-test when every seed
    /// pairs up (same seed, same initial weights and data order: the
    /// design), else Welch's over all finished seeds of each.
    pub fn test(&self) -> Option<(TestKind, TTest)> {
        match (self.all_paired, self.paired) {
            (true, Some(t)) => Some((TestKind::Paired, t)),
            _ => self.welch.map(|t| (TestKind::Welch, t)),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub label: String,
    pub seeds_total: usize,
    /// (seed, final, best) of the finished runs.
    pub finished: Vec<(u64, f64, f64)>,
    /// Seeds not counted, with their state.
    pub pending: Vec<(u64, String)>,
    /// Seeds finished but left out: their configuration or code changed
    /// mid-run.
    pub excluded: Vec<u64>,
    pub final_acc: Option<Summary>,
    pub best_acc: Option<Summary>,
    /// `None` for the baseline itself.
    pub delta_final: Option<Delta>,
    pub delta_best: Option<Delta>,
    /// The mean over its finished runs (`None` when they logged none).
    pub dropping: Option<Dropping>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub experiment: String,
    pub baseline: String,
    pub rows: Vec<Row>,
    /// The manifest's sweep cells, by label.
    pub cells: BTreeMap<String, SweepCell>,
}

fn delta(
    rows: &[(u64, f64, f64)],
    base: &[(u64, f64, f64)],
    pick: fn(&(u64, f64, f64)) -> f64,
) -> Delta {
    let diffs: Vec<f64> = rows
        .iter()
        .filter_map(|r| base.iter().find(|b| b.0 == r.0).map(|b| pick(r) - pick(b)))
        .collect();
    let a: Vec<f64> = rows.iter().map(pick).collect();
    let b: Vec<f64> = base.iter().map(pick).collect();
    Delta {
        paired_mean: if diffs.is_empty() {
            f64::NAN
        } else {
            stats::mean(&diffs)
        },
        pairs: diffs.len(),
        all_paired: diffs.len() == a.len() && diffs.len() == b.len(),
        paired: stats::paired(&diffs),
        welch: stats::welch(&a, &b),
    }
}

/// The table over the manifest's current runs; `outcome` says how each stands
/// (read from its directory by the command, from memory by the dashboard).
pub fn table(manifest: &Manifest, outcome: impl Fn(&Entry) -> Outcome) -> Table {
    let mut finished: BTreeMap<&str, Vec<(u64, f64, f64)>> = BTreeMap::new();
    let mut pending: BTreeMap<&str, Vec<(u64, String)>> = BTreeMap::new();
    let mut dropping: BTreeMap<&str, Vec<Dropping>> = BTreeMap::new();
    let mut excluded: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for label in &manifest.strategies {
        for &seed in &manifest.seeds {
            let o = manifest
                .entry(label, seed)
                .map(&outcome)
                .unwrap_or_default();
            if o.finished() && o.changed_mid_run {
                excluded.entry(label).or_default().push(seed);
            } else if o.counts() {
                finished.entry(label).or_default().push((
                    seed,
                    o.final_acc.unwrap_or(f64::NAN),
                    o.best_acc.unwrap_or(f64::NAN),
                ));
                dropping.entry(label).or_default().extend(o.dropping);
            } else {
                let state = match manifest.halted.get(label.as_str()) {
                    Some(rung) => format!("halted at {:.0} %", 100.0 * rung),
                    None => o.state.map_or("not started".to_string(), |s| {
                        format!("{s:?}").to_lowercase()
                    }),
                };
                pending.entry(label).or_default().push((seed, state));
            }
        }
    }
    let base = finished
        .get(manifest.baseline.as_str())
        .cloned()
        .unwrap_or_default();
    let rows = manifest
        .strategies
        .iter()
        .map(|label| {
            let done = finished.get(label.as_str()).cloned().unwrap_or_default();
            let finals: Vec<f64> = done.iter().map(|r| r.1).collect();
            let bests: Vec<f64> = done.iter().map(|r| r.2).collect();
            let is_base = *label == manifest.baseline;
            Row {
                label: label.clone(),
                seeds_total: manifest.seeds.len(),
                pending: pending.get(label.as_str()).cloned().unwrap_or_default(),
                excluded: excluded.get(label.as_str()).cloned().unwrap_or_default(),
                final_acc: stats::summarize(&finals),
                best_acc: stats::summarize(&bests),
                delta_final: (!is_base && !done.is_empty()).then(|| delta(&done, &base, |r| r.1)),
                delta_best: (!is_base && !done.is_empty()).then(|| delta(&done, &base, |r| r.2)),
                dropping: dropping.get(label.as_str()).and_then(|d| {
                    let p: Vec<f64> = d.iter().map(|d| d.p).collect();
                    let dropped: Vec<f64> = d.iter().map(|d| d.dropped).collect();
                    Dropping::of(&p, &dropped)
                }),
                finished: done,
            }
        })
        .collect();
    Table {
        experiment: manifest.experiment.clone(),
        baseline: manifest.baseline.clone(),
        rows,
        cells: manifest.cells.clone(),
    }
}

/// Accuracy in percent: "90.12 ± 0.21" (no spread with one seed).
pub fn pct_mean_sd(s: &Option<Summary>) -> String {
    match s {
        None => "–".into(),
        Some(s) if s.sd.is_nan() => format!("{:.2}", 100.0 * s.mean),
        Some(s) => format!("{:.2} ± {:.2}", 100.0 * s.mean, 100.0 * s.sd),
    }
}

pub fn pct_ci(s: &Option<Summary>) -> String {
    match s {
        Some(s) if !s.ci_low.is_nan() => {
            format!("[{:.2}, {:.2}]", 100.0 * s.ci_low, 100.0 * s.ci_high)
        }
        _ => "–".into(),
    }
}

pub fn pct_delta(d: &Option<Delta>) -> String {
    match d {
        Some(d) if !d.paired_mean.is_nan() => format!("{:+.2}", 100.0 * d.paired_mean),
        _ => "–".into(),
    }
}

/// "0.012 (paired)", "0.034 (Welch)": the p-value and its test.
pub fn p_value(d: &Option<Delta>) -> String {
    match d.and_then(|d| d.test()) {
        Some((kind, t)) => format!("{} ({})", p_text(t.p), kind.name()),
        None => "–".into(),
    }
}

fn p_text(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else {
        format!("{p:.3}")
    }
}

pub const HEADER: [&str; 9] = [
    "strategy",
    "seeds",
    "final acc %",
    "95 % CI",
    "best acc %",
    "Δ final",
    "p (test)",
    "Δ best",
    "drop p / dropped %",
];

/// The cells of one row, in `HEADER` order (the dashboard draws the same).
pub fn row_cells(r: &Row) -> Vec<String> {
    vec![
        r.label.clone(),
        format!("{}/{}", r.finished.len(), r.seeds_total),
        pct_mean_sd(&r.final_acc),
        pct_ci(&r.final_acc),
        pct_mean_sd(&r.best_acc),
        pct_delta(&r.delta_final),
        p_value(&r.delta_final),
        pct_delta(&r.delta_best),
        match r.dropping {
            Some(d) => format!("{:.3} / {:.2}", d.p, 100.0 * d.dropped),
            None => "–".into(),
        },
    ]
}

/// The table as Markdown, with a legend saying what each column is.
pub fn markdown(t: &Table) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", HEADER.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(HEADER.len()));
    for r in &t.rows {
        let _ = writeln!(out, "| {} |", row_cells(r).join(" | "));
    }
    let _ = writeln!(
        out,
        "\nValidation accuracy over seeds: mean ± sample standard deviation; 95 % CI of \
         the mean (Student's t); Δ = mean over shared seeds of (strategy − {}) in \
         percentage points; p: two-sided t-test of final accuracy against {}, paired by \
         seed (same seed: same initial weights and data order) where every seed pairs up, \
         else Welch's over all finished seeds of each (each cell names its test); \
         drop p / dropped %: the mean drop rate in force over the training steps and the \
         mean fraction the strategy measured dropped (so equal p and equal dropped \
         fraction can both be read). Only finished runs count.",
        t.baseline, t.baseline
    );
    significance_markdown(t, &mut out);
    best::markdown(t, &mut out);
    let pending: Vec<String> = t
        .rows
        .iter()
        .flat_map(|r| {
            r.pending
                .iter()
                .map(move |(seed, state)| format!("{} seed {seed} ({state})", r.label))
        })
        .collect();
    if !pending.is_empty() {
        let _ = writeln!(out, "\nNot counted yet: {}.", pending.join(", "));
    }
    let excluded: Vec<String> = t
        .rows
        .iter()
        .flat_map(|r| {
            r.excluded
                .iter()
                .map(move |seed| format!("{} seed {seed}", r.label))
        })
        .collect();
    if !excluded.is_empty() {
        let _ = writeln!(
            out,
            "\nLeft out: {} (the configuration or the strategy's code changed while it \
             trained; its provenance.json says what and when).",
            excluded.join(", ")
        );
    }
    out
}

/// Each strategy's test against the baseline, with the p-values adjusted
/// for testing them together (Holm) and the smallest difference in final
/// accuracy the seeds could have shown (80 % power).
pub struct Significance {
    pub label: String,
    pub test: Option<TestKind>,
    pub p: Option<f64>,
    pub holm: Option<f64>,
    pub detectable: Option<f64>,
}

pub fn significance(t: &Table) -> Vec<Significance> {
    let tests: Vec<Option<(TestKind, TTest)>> = t
        .rows
        .iter()
        .map(|r| r.delta_final.and_then(|d| d.test()))
        .collect();
    let ps: Vec<Option<f64>> = tests.iter().map(|w| w.map(|(_, w)| w.p)).collect();
    let adjusted = stats::holm(&ps);
    t.rows
        .iter()
        .zip(tests)
        .zip(adjusted)
        .map(|((r, w), holm)| Significance {
            label: r.label.clone(),
            test: w.map(|(kind, _)| kind),
            p: w.map(|(_, w)| w.p),
            holm,
            detectable: w.map(|(_, w)| stats::detectable(w.se, w.df)),
        })
        .collect()
}

fn significance_markdown(t: &Table, out: &mut String) {
    let rows: Vec<Significance> = significance(t)
        .into_iter()
        .filter(|s| s.p.is_some())
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n| strategy | test | p | p (Holm, {} tests) | detectable Δ final |\n|---|---|---|---|---|",
        rows.len()
    );
    let p = |v: Option<f64>| v.map_or("–".into(), p_text);
    for s in &rows {
        let detectable = s
            .detectable
            .map_or("–".into(), |d| format!("{:.2}", 100.0 * d));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {detectable} |",
            s.label,
            s.test.map_or("–", TestKind::name),
            p(s.p),
            p(s.holm)
        );
    }
    let _ = writeln!(
        out,
        "\nHolm: the p-values adjusted for testing every strategy against {} at once \
         (compare them with 0.05). Detectable Δ: the smallest true difference in final \
         accuracy (percentage points) a two-sided 5 % test would find with 80 % power \
         at these seeds' spread; a smaller true effect would most likely go unseen.",
        t.baseline
    );
}

fn num(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v}"),
        _ => String::new(),
    }
}

/// One row per strategy (per sweep cell), fractions (not percent), full
/// precision; with sweeps, each row's arm and swept values come first, a
/// column per swept key.
pub fn csv(t: &Table) -> String {
    let keys: std::collections::BTreeSet<&String> =
        t.cells.values().flat_map(|c| c.values.keys()).collect();
    let mut out = String::from("strategy");
    if !t.cells.is_empty() {
        out.push_str(",arm");
        keys.iter().for_each(|k| out.extend([",", k.as_str()]));
    }
    out.push_str(
        ",seeds_finished,seeds_total,final_mean,final_sd,final_ci_low,final_ci_high,\
         best_mean,best_sd,best_ci_low,best_ci_high,delta_final,p_final,delta_best,p_best,\
         drop_p_mean,dropped_mean,p_final_holm,detectable_final,p_final_test,p_final_welch\n",
    );
    for (r, sig) in t.rows.iter().zip(significance(t)) {
        let f = r.final_acc;
        let b = r.best_acc;
        out.push_str(&r.label);
        if !t.cells.is_empty() {
            let cell = t.cells.get(&r.label);
            out.extend([",", cell.map_or(&r.label, |c| &c.arm).as_str()]);
            for k in &keys {
                let value = cell.and_then(|c| c.values.get(*k));
                out.extend([",", value.map_or("", String::as_str)]);
            }
        }
        let cells = [
            r.finished.len().to_string(),
            r.seeds_total.to_string(),
            num(f.map(|s| s.mean)),
            num(f.map(|s| s.sd)),
            num(f.map(|s| s.ci_low)),
            num(f.map(|s| s.ci_high)),
            num(b.map(|s| s.mean)),
            num(b.map(|s| s.sd)),
            num(b.map(|s| s.ci_low)),
            num(b.map(|s| s.ci_high)),
            num(r.delta_final.map(|d| d.paired_mean)),
            num(r.delta_final.and_then(|d| d.test()).map(|(_, w)| w.p)),
            num(r.delta_best.map(|d| d.paired_mean)),
            num(r.delta_best.and_then(|d| d.test()).map(|(_, w)| w.p)),
            num(r.dropping.map(|d| d.p)),
            num(r.dropping.map(|d| d.dropped)),
            num(sig.holm),
            num(sig.detectable),
            sig.test.map_or("", TestKind::name).to_lowercase(),
            num(r.delta_final.and_then(|d| d.welch).map(|w| w.p)),
        ];
        let _ = writeln!(out, ",{}", cells.join(","));
    }
    out
}

/// One row per run: which directory gave which numbers.
pub fn runs_csv(manifest: &Manifest, outcome: impl Fn(&Entry) -> Outcome) -> String {
    let mut out = String::from("strategy,seed,state,final_acc,best_acc,run_dir,changed_mid_run\n");
    for e in manifest.current() {
        let o = outcome(e);
        let state = o
            .state
            .map_or(String::new(), |s| format!("{s:?}").to_lowercase());
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{}",
            e.label,
            e.seed,
            state,
            num(o.final_acc),
            num(o.best_acc),
            e.dir.display(),
            o.changed_mid_run
        );
    }
    out
}

/// Writes compare.md, compare.csv and runs.csv; returns the table.
pub fn write_reports(compare_dir: &Path, manifest: &Manifest) -> Result<Table> {
    let outcome = |e: &Entry| outcome_of(&RunDir::new(&e.dir));
    let t = table(manifest, outcome);
    let md = format!(
        "# {} — compare\n\nSource: `{}`\n\n{}",
        manifest.experiment,
        manifest.source.display(),
        markdown(&t)
    );
    dir::write_atomic(&compare_dir.join(TABLE_MD), md.as_bytes())?;
    dir::write_atomic(&compare_dir.join(TABLE_CSV), csv(&t).as_bytes())?;
    dir::write_atomic(
        &compare_dir.join(RUNS_CSV),
        runs_csv(manifest, outcome).as_bytes(),
    )?;
    Ok(t)
}

/// Compare directories under `root` (each with a manifest), sorted by name.
pub fn list(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join(MANIFEST).is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(strategies: &[&str], seeds: &[u64]) -> Manifest {
        let mut runs = Vec::new();
        for s in strategies {
            for seed in seeds {
                runs.push(Entry {
                    label: s.to_string(),
                    seed: *seed,
                    dir: PathBuf::from(format!("{s}-{seed}")),
                });
            }
        }
        Manifest {
            experiment: "x".into(),
            source: "x.toml".into(),
            created: String::new(),
            baseline: "none".into(),
            strategies: strategies.iter().map(|s| s.to_string()).collect(),
            seeds: seeds.to_vec(),
            runs,
            cells: BTreeMap::new(),
            halted: BTreeMap::new(),
            cleared: BTreeMap::new(),
        }
    }

    #[test]
    fn table_pairs_seeds_and_tests_against_the_baseline() {
        let m = manifest(&["none", "dropblock"], &[1, 2, 3]);
        let acc: BTreeMap<&str, [f64; 3]> = [
            ("none-1", [0.80, 0.85, 0.0]),
            ("none-2", [0.82, 0.86, 0.0]),
            ("none-3", [0.81, 0.83, 0.0]),
            ("dropblock-1", [0.84, 0.87, 0.0]),
            ("dropblock-2", [0.85, 0.88, 0.0]),
        ]
        .into_iter()
        .collect();
        let t = table(&m, |e| {
            let key = e.dir.display().to_string();
            match acc.get(key.as_str()) {
                Some(a) => Outcome::from_val_acc(Some(State::Done), &[a[1], a[0]]),
                None => Outcome {
                    state: Some(State::Training),
                    ..Outcome::default()
                },
            }
        });
        let base = &t.rows[0];
        assert_eq!(base.label, "none");
        assert_eq!(base.finished.len(), 3);
        assert!((base.final_acc.unwrap().mean - 0.81).abs() < 1e-12);
        assert!((base.best_acc.unwrap().mean - (0.85 + 0.86 + 0.83) / 3.0).abs() < 1e-12);
        assert!(base.delta_final.is_none());
        let db = &t.rows[1];
        assert_eq!(db.pending, [(3, "training".to_string())]);
        let d = db.delta_final.unwrap();
        // Paired over seeds 1 and 2: (0.84 − 0.80 + 0.85 − 0.82) / 2.
        assert_eq!(d.pairs, 2);
        assert!((d.paired_mean - 0.035).abs() < 1e-12);
        let w = stats::welch(&[0.84, 0.85], &[0.80, 0.82, 0.81]).unwrap();
        assert_eq!(d.welch, Some(w));
        // Seed 3 of the baseline has no partner: the p-value is Welch's.
        assert!(!d.all_paired);
        assert_eq!(d.test(), Some((TestKind::Welch, w)));
        assert_eq!(d.paired, stats::paired(&[0.84 - 0.80, 0.85 - 0.82]));
        let md = markdown(&t);
        assert!(md.contains("| dropblock | 2/3 | 84.50 ± 0.71 |"), "{md}");
        assert!(md.contains("+3.50"), "{md}");
        assert!(
            md.contains("Not counted yet: dropblock seed 3 (training)."),
            "{md}"
        );
        let csv = csv(&t);
        assert_eq!(csv.lines().count(), 3);
        assert!(
            csv.lines().nth(1).unwrap().starts_with("none,3,3,0.81"),
            "{csv}"
        );
    }

    /// Issue 33: with every seed paired, the p-value (and Holm's, and the
    /// detectable difference) comes from the paired test, and the reports
    /// say so.
    #[test]
    fn with_every_seed_paired_the_test_is_the_paired_one() {
        let m = manifest(&["none", "dropblock"], &[1, 2, 3]);
        let acc = |e: &Entry| match (e.label.as_str(), e.seed) {
            ("none", s) => 0.80 + s as f64 / 100.0,
            (_, s) => 0.82 + s as f64 / 100.0 + [0.0, 0.004, -0.003][s as usize - 1],
        };
        let t = table(&m, |e| Outcome::from_val_acc(Some(State::Done), &[acc(e)]));
        let d = t.rows[1].delta_final.unwrap();
        assert!(d.all_paired);
        let diffs: Vec<f64> = m
            .seeds
            .iter()
            .map(|&seed| {
                let of = |label: &str| {
                    acc(&Entry {
                        label: label.into(),
                        seed,
                        dir: PathBuf::new(),
                    })
                };
                of("dropblock") - of("none")
            })
            .collect();
        let want = stats::paired(&diffs).unwrap();
        let (kind, got) = d.test().unwrap();
        assert_eq!(kind, TestKind::Paired);
        assert!((got.p - want.p).abs() < 1e-12 && got.df == 2.0);
        let md = markdown(&t);
        assert!(md.contains(&format!("{} (paired)", p_text(want.p))), "{md}");
        assert!(md.contains("| dropblock | paired |"), "{md}");
        let line = csv(&t).lines().nth(2).unwrap().to_string();
        assert!(line.contains(",paired,"), "{line}");
    }

    /// Issue 33: a finished run whose configuration or code changed mid-run
    /// is left out of the statistics, and the report says which and why.
    #[test]
    fn a_run_changed_mid_run_is_left_out_and_said() {
        let m = manifest(&["none", "dropblock"], &[1, 2, 3]);
        let t = table(&m, |e| Outcome {
            changed_mid_run: e.label == "dropblock" && e.seed == 2,
            ..Outcome::from_val_acc(Some(State::Done), &[0.8 + e.seed as f64 / 100.0])
        });
        let db = &t.rows[1];
        assert_eq!(db.excluded, [2]);
        assert_eq!(db.finished.len(), 2);
        assert!(db.pending.is_empty());
        assert_eq!(db.delta_final.unwrap().pairs, 2);
        let md = markdown(&t);
        assert!(md.contains("| dropblock | 2/3 |"), "{md}");
        assert!(
            md.contains("Left out: dropblock seed 2 (the configuration"),
            "{md}"
        );
        let runs = runs_csv(&m, |e| Outcome {
            changed_mid_run: e.seed == 2,
            ..Outcome::default()
        });
        assert!(runs.lines().nth(2).unwrap().ends_with(",true"), "{runs}");
    }

    /// Issue 17: the table says how much each strategy dropped beside the
    /// drop rate, the mean over its finished runs only.
    #[test]
    fn the_table_shows_p_and_the_measured_dropped_fraction() {
        let m = manifest(&["none", "dropblock"], &[1, 2]);
        let t = table(&m, |e| {
            let seed = e.seed as f64;
            Outcome {
                dropping: Dropping::of(&[0.05, 0.15], &[0.09 + seed / 100.0]),
                state: Some(if e.seed == 2 && e.label == "none" {
                    State::Failed
                } else {
                    State::Done
                }),
                ..Outcome::from_val_acc(None, &[0.8])
            }
        });
        // dropblock: both seeds (dropped 0.10 and 0.11); none: seed 1 only.
        let db = t.rows[1].dropping.unwrap();
        assert!((db.p - 0.1).abs() < 1e-12 && (db.dropped - 0.105).abs() < 1e-12);
        assert!((t.rows[0].dropping.unwrap().dropped - 0.10).abs() < 1e-12);
        assert_eq!(row_cells(&t.rows[1]).last().unwrap(), "0.100 / 10.50");
        // No test, Holm p or detectable difference: one baseline seed is none.
        assert!(csv(&t).lines().nth(2).unwrap().ends_with(",0.1,0.105,,,,"));
        assert_eq!(Dropping::of(&[], &[0.1]), None, "no p logged: no figure");
    }
}
