//! A sweep's best cells: each sweeping arm's cell with the highest mean
//! final accuracy, and every pair of arms' best cells tested against each
//! other on the per-seed differences (Holm over the pairs). The cells are
//! chosen on the same runs they are then tested on, which favours whichever
//! arm has more cells to choose from; compare.md says so under the table.

use std::fmt::Write;

use super::{Table, p_text, stats};

/// One arm's best cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Best {
    pub arm: String,
    pub label: String,
    /// Final accuracy over its finished seeds: mean and sd, in percent.
    pub mean: f64,
    pub sd: f64,
    /// (seed, final accuracy).
    finals: Vec<(u64, f64)>,
}

/// Each sweeping arm's cell with the highest mean final accuracy (of those
/// with a finished run), in the table's order of arms.
pub fn best_cells(t: &Table) -> Vec<Best> {
    let mut out: Vec<Best> = Vec::new();
    for r in &t.rows {
        let (Some(cell), Some(s)) = (t.cells.get(&r.label), r.final_acc) else {
            continue;
        };
        let candidate = Best {
            arm: cell.arm.clone(),
            label: r.label.clone(),
            mean: 100.0 * s.mean,
            sd: if s.sd.is_nan() { 0.0 } else { 100.0 * s.sd },
            finals: r.finished.iter().map(|f| (f.0, f.1)).collect(),
        };
        match out.iter_mut().find(|b| b.arm == cell.arm) {
            Some(b) if b.mean < candidate.mean => *b = candidate,
            Some(_) => {}
            None => out.push(candidate),
        }
    }
    out
}

/// Two arms' best cells against each other.
#[derive(Clone, Debug, PartialEq)]
pub struct Versus {
    pub a: String,
    pub b: String,
    /// Mean over shared seeds of (a − b), in points.
    pub delta: f64,
    pub pairs: usize,
    pub p: Option<f64>,
    pub holm: Option<f64>,
}

/// Every pair of `best`, paired by seed.
pub fn versus(best: &[Best]) -> Vec<Versus> {
    let mut out: Vec<Versus> = Vec::new();
    for (i, a) in best.iter().enumerate() {
        for b in &best[i + 1..] {
            let diffs: Vec<f64> = (a.finals.iter())
                .filter_map(|(seed, x)| {
                    let y = b.finals.iter().find(|f| f.0 == *seed)?.1;
                    Some(100.0 * (x - y))
                })
                .collect();
            out.push(Versus {
                a: a.label.clone(),
                b: b.label.clone(),
                delta: if diffs.is_empty() {
                    f64::NAN
                } else {
                    stats::mean(&diffs)
                },
                pairs: diffs.len(),
                p: stats::paired(&diffs).map(|t| t.p),
                holm: None,
            });
        }
    }
    let adjusted = stats::holm(&out.iter().map(|v| v.p).collect::<Vec<_>>());
    for (v, h) in out.iter_mut().zip(adjusted) {
        v.holm = h;
    }
    out
}

/// The best cells and their pairwise tests as compare.md's section (nothing
/// for a comparison without a sweep).
pub fn markdown(t: &Table, out: &mut String) {
    let best = best_cells(t);
    if best.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n| swept strategy | best cell (final acc) | final acc % |\n|---|---|---|"
    );
    for b in &best {
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} ± {:.2} |",
            b.arm, b.label, b.mean, b.sd
        );
    }
    let pairs = versus(&best);
    if pairs.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n| best cell | against | Δ final | seeds paired | p (paired) | p (Holm, {}) |\n|---|---|---|---|---|---|",
        pairs.len()
    );
    let p = |v: Option<f64>| v.map_or("–".into(), p_text);
    for v in &pairs {
        let _ = writeln!(
            out,
            "| {} | {} | {:+.2} | {} | {} | {} |",
            v.a,
            v.b,
            v.delta,
            v.pairs,
            p(v.p),
            p(v.holm)
        );
    }
    let _ = writeln!(
        out,
        "\nBest cells: each swept strategy's cell with the highest mean final accuracy, \
         tested against each other on the per-seed differences. They are chosen on the \
         same runs they are tested on, so a difference here is optimistic for the arm \
         with more cells or more spread; a fresh set of seeds on the two cells is the \
         unbiased test."
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::run::comparison::{Row, SweepCell};

    /// A row of `label` over seeds 1, 2, 3, … with these final accuracies.
    fn row(label: &str, finals: &[f64]) -> Row {
        Row {
            label: label.into(),
            seeds_total: finals.len(),
            finished: (finals.iter().enumerate())
                .map(|(i, a)| (i as u64 + 1, *a, *a))
                .collect(),
            pending: Vec::new(),
            excluded: Vec::new(),
            final_acc: stats::summarize(finals),
            best_acc: stats::summarize(finals),
            delta_final: None,
            delta_best: None,
            dropping: None,
        }
    }

    fn table() -> Table {
        let rows = vec![
            row("none", &[0.80, 0.81, 0.82]),
            row("dropblock p=0.1", &[0.84, 0.85, 0.86]),
            row("dropblock p=0.2", &[0.82, 0.83, 0.84]),
            row("probdropblock p=0.1", &[0.85, 0.87, 0.86]),
            row("probdropblock p=0.2", &[]),
        ];
        let cells: BTreeMap<String, SweepCell> = rows[1..]
            .iter()
            .map(|r| {
                let (arm, value) = r.label.split_once(" p=").unwrap();
                let values = BTreeMap::from([("p".to_string(), value.to_string())]);
                let arm = arm.to_string();
                (r.label.clone(), SweepCell { arm, values })
            })
            .collect();
        Table {
            experiment: "x".into(),
            baseline: "none".into(),
            rows,
            cells,
        }
    }

    #[test]
    fn each_arms_best_cell_is_tested_against_the_others_by_seed() {
        let t = table();
        let best = best_cells(&t);
        let labels: Vec<&str> = best.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["dropblock p=0.1", "probdropblock p=0.1"]);
        let v = versus(&best);
        assert_eq!(v.len(), 1);
        // dropblock − probdropblock per seed: −1, −2, 0 points.
        let want = stats::paired(&[-1.0, -2.0, 0.0]).unwrap().p;
        assert!((v[0].delta + 1.0).abs() < 1e-9, "{v:?}");
        assert_eq!(v[0].pairs, 3);
        assert!((v[0].p.unwrap() - want).abs() < 1e-6, "{v:?}");
        assert_eq!(v[0].holm, v[0].p, "one test: Holm leaves it");
        let mut md = String::new();
        markdown(&t, &mut md);
        assert!(
            md.contains("| probdropblock | probdropblock p=0.1 | 86.00 ± 1.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| dropblock p=0.1 | probdropblock p=0.1 | -1.00 | 3 |"),
            "{md}"
        );
    }

    #[test]
    fn a_comparison_without_a_sweep_has_no_best_cells() {
        let mut t = table();
        t.cells.clear();
        let mut md = String::new();
        markdown(&t, &mut md);
        assert!(md.is_empty());
    }
}
