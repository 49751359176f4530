//! A sweeping arm's cells laid out over one or two of its swept keys: what
//! the Sweep view draws and `sweep.png` plots. Keys not on an axis are held
//! at one of their values or averaged over (the mean of the cells' means and
//! spreads, said in the grid's note).

use super::{Table, significance};

/// Holm-adjusted p below which a cell is marked as differing from the baseline.
pub const ALPHA: f64 = 0.05;

/// Which accuracy a grid shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Measure {
    #[default]
    Final,
    Best,
}

impl Measure {
    pub fn label(self) -> &'static str {
        match self {
            Measure::Final => "final",
            Measure::Best => "best",
        }
    }
}

/// How a key that is on no axis is taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Hold {
    #[default]
    Averaged,
    /// At its value of this index.
    At(usize),
}

/// One sweeping arm: its keys and each key's values, in order (numerically
/// where every value is a number, else as the sweep listed them).
#[derive(Clone, Debug, PartialEq)]
pub struct Arm {
    pub name: String,
    pub keys: Vec<String>,
    pub values: Vec<Vec<String>>,
    /// Each cell's label with its value index per key.
    pub(crate) cells: Vec<(String, Vec<usize>)>,
}

/// The sweeping arms of `t`, in the table's order.
pub fn arms(t: &Table) -> Vec<Arm> {
    let mut out: Vec<Arm> = Vec::new();
    for r in &t.rows {
        let Some(c) = t.cells.get(&r.label) else {
            continue;
        };
        let i = match out.iter().position(|a| a.name == c.arm) {
            Some(i) => i,
            None => {
                out.push(Arm {
                    name: c.arm.clone(),
                    keys: c.values.keys().cloned().collect(),
                    values: vec![Vec::new(); c.values.len()],
                    cells: Vec::new(),
                });
                out.len() - 1
            }
        };
        let arm = &mut out[i];
        for (k, v) in c.values.values().enumerate() {
            if let Some(vals) = arm.values.get_mut(k)
                && !vals.contains(v)
            {
                vals.push(v.clone());
            }
        }
        arm.cells.push((r.label.clone(), Vec::new()));
    }
    for arm in &mut out {
        arm.values.iter_mut().for_each(|v| sort_values(v));
        for (label, at) in &mut arm.cells {
            let values = &t.cells[label.as_str()].values;
            *at = (values.values().zip(&arm.values))
                .map(|(v, vals)| vals.iter().position(|u| u == v).unwrap_or(0))
                .collect();
        }
    }
    out
}

/// Numbers in increasing order; anything else as listed.
fn sort_values(values: &mut [String]) {
    if values.iter().all(|v| v.parse::<f64>().is_ok()) {
        values.sort_by(|a, b| {
            let (a, b): (f64, f64) = (a.parse().unwrap_or(0.0), b.parse().unwrap_or(0.0));
            a.total_cmp(&b)
        });
    }
}

/// What one place of the grid shows: in percent over seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct Stat {
    pub mean: f64,
    /// 0 with one seed.
    pub sd: f64,
    /// Half the 95 % CI of the mean's width (0 with one seed).
    pub ci: f64,
    /// Finished seeds (summed over averaged cells).
    pub seeds: usize,
    /// Differs from the baseline after Holm (final accuracy); only for a
    /// place that stands for one cell.
    pub marked: bool,
}

/// One place: the cells it stands for and, once any has finished runs, their
/// statistic.
#[derive(Clone, Debug, PartialEq)]
pub struct Place {
    pub labels: Vec<String>,
    pub stat: Option<Stat>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub arm: String,
    pub x_key: String,
    pub y_key: Option<String>,
    pub xs: Vec<String>,
    /// One empty value when there is no y key.
    pub ys: Vec<String>,
    /// `[y][x]`.
    pub places: Vec<Vec<Place>>,
    /// How the other keys are taken (`averaged over p`, `p = 0.1`).
    pub note: Option<String>,
    /// The baseline's statistic, for the line's band.
    pub baseline: Option<Stat>,
    pub measure: Measure,
}

impl Grid {
    pub fn title(&self) -> String {
        match &self.note {
            Some(n) => format!("{}, {n}", self.arm),
            None => self.arm.clone(),
        }
    }

    /// One numeric key and no other shown: drawn as a line.
    pub fn is_line(&self) -> bool {
        self.y_key.is_none() && self.xs.iter().all(|x| x.parse::<f64>().is_ok())
    }
}

/// `arm`'s grid over keys `x` and `y` (indices into its keys), the others
/// taken as `held` says (by key index; averaged where missing).
pub fn grid(
    t: &Table,
    arm: &Arm,
    (x, y): (usize, Option<usize>),
    held: &[Hold],
    measure: Measure,
) -> Grid {
    let marked: Vec<(&str, bool)> = (t.rows.iter().zip(significance(t)))
        .map(|(r, s)| (r.label.as_str(), s.holm.is_some_and(|p| p < ALPHA)))
        .collect();
    let stat_of = |label: &str| -> Option<Stat> {
        let row = t.rows.iter().find(|r| r.label == label)?;
        let mut s = stat(row, measure)?;
        s.marked = marked.iter().any(|(l, m)| *l == label && *m);
        Some(s)
    };
    let hold = |k: usize| held.get(k).copied().unwrap_or_default();
    let ys_len = y.map_or(1, |y| arm.values[y].len());
    let mut places = vec![vec![Vec::new(); arm.values[x].len()]; ys_len];
    for (label, at) in &arm.cells {
        let fits = (0..at.len())
            .filter(|k| *k != x && Some(*k) != y)
            .all(|k| matches!(hold(k), Hold::Averaged) || hold(k) == Hold::At(at[k]));
        if fits {
            places[y.map_or(0, |y| at[y])][at[x]].push(label.clone());
        }
    }
    let places = places
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|labels| {
                    let mut stat = average(labels.iter().filter_map(|l| stat_of(l)).collect());
                    if let Some(s) = stat.as_mut() {
                        s.marked &= labels.len() == 1;
                    }
                    Place { labels, stat }
                })
                .collect()
        })
        .collect();
    let note = held_note(arm, (x, y), &hold);
    Grid {
        arm: arm.name.clone(),
        x_key: arm.keys[x].clone(),
        y_key: y.map(|y| arm.keys[y].clone()),
        xs: arm.values[x].clone(),
        ys: y.map_or(vec![String::new()], |y| arm.values[y].clone()),
        places,
        note,
        baseline: (t.rows.iter().find(|r| r.label == t.baseline)).and_then(|r| stat(r, measure)),
        measure,
    }
}

/// "averaged over p; schedule.kind = linear": how the keys on no axis are taken.
fn held_note(
    arm: &Arm,
    (x, y): (usize, Option<usize>),
    hold: &dyn Fn(usize) -> Hold,
) -> Option<String> {
    let mut averaged = Vec::new();
    let mut fixed = Vec::new();
    for (k, key) in arm.keys.iter().enumerate() {
        if k == x || Some(k) == y {
            continue;
        }
        match hold(k) {
            Hold::Averaged => averaged.push(key.as_str()),
            Hold::At(i) => fixed.push(format!(
                "{key} = {}",
                arm.values[k].get(i).map_or("?", |v| v)
            )),
        }
    }
    let mut parts = fixed;
    if !averaged.is_empty() {
        parts.insert(0, format!("averaged over {}", averaged.join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// A row's statistic in percent.
fn stat(row: &super::Row, measure: Measure) -> Option<Stat> {
    let s = match measure {
        Measure::Final => row.final_acc,
        Measure::Best => row.best_acc,
    }?;
    let or_zero = |x: f64| if x.is_nan() { 0.0 } else { x };
    Some(Stat {
        mean: 100.0 * s.mean,
        sd: 100.0 * or_zero(s.sd),
        ci: 100.0 * or_zero((s.ci_high - s.ci_low) / 2.0),
        seeds: s.n,
        marked: false,
    })
}

/// One place from the cells it stands for: the mean of their means and
/// spreads.
fn average(stats: Vec<Stat>) -> Option<Stat> {
    let n = stats.len() as f64;
    let mean_of = |f: fn(&Stat) -> f64| stats.iter().map(f).sum::<f64>() / n;
    (!stats.is_empty()).then(|| Stat {
        mean: mean_of(|s| s.mean),
        sd: mean_of(|s| s.sd),
        ci: mean_of(|s| s.ci),
        seeds: stats.iter().map(|s| s.seeds).sum(),
        marked: stats.iter().all(|s| s.marked),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::run::comparison::{Row, SweepCell, stats};

    fn row(label: &str, accs: &[f64]) -> Row {
        Row {
            label: label.into(),
            seeds_total: accs.len(),
            finished: Vec::new(),
            pending: Vec::new(),
            excluded: Vec::new(),
            final_acc: stats::summarize(accs),
            best_acc: stats::summarize(&accs.iter().map(|a| a + 0.01).collect::<Vec<_>>()),
            delta_final: None,
            delta_best: None,
            dropping: None,
        }
    }

    /// A cell of arm "dropblock": its `key=value` pairs and seeds' accuracies.
    type Given<'a> = (&'a [(&'a str, &'a str)], &'a [f64]);

    fn table(cells: &[Given]) -> Table {
        let mut rows = vec![row("none", &[0.80, 0.82])];
        let mut map = BTreeMap::new();
        for (values, accs) in cells {
            let pairs: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let label = format!("dropblock {}", pairs.join(" "));
            rows.push(row(&label, accs));
            let values = (values.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let arm = "dropblock".to_string();
            map.insert(label, SweepCell { arm, values });
        }
        Table {
            experiment: "x".into(),
            baseline: "none".into(),
            rows,
            cells: map,
        }
    }

    fn mean(g: &Grid, x: usize, y: usize) -> Option<f64> {
        g.places[y][x].stat.as_ref().map(|s| s.mean)
    }

    #[test]
    fn one_numeric_key_is_a_line_in_numeric_order_with_the_baseline() {
        let t = table(&[
            (&[("p", "0.2")], &[0.84, 0.86]),
            (&[("p", "0.05")], &[0.81, 0.83]),
        ]);
        let arms = arms(&t);
        let g = grid(&t, &arms[0], (0, None), &[], Measure::Final);
        assert!(g.is_line());
        assert_eq!(g.xs, ["0.05", "0.2"]);
        assert!((mean(&g, 1, 0).unwrap() - 85.0).abs() < 1e-9);
        assert!((g.baseline.as_ref().unwrap().mean - 81.0).abs() < 1e-9);
        let best = grid(&t, &arms[0], (0, None), &[], Measure::Best);
        assert!((mean(&best, 1, 0).unwrap() - 86.0).abs() < 1e-9);
    }

    fn three_keys() -> Table {
        table(&[
            (
                &[("block_size", "3"), ("gamma", "1"), ("p", "0.1")],
                &[0.80],
            ),
            (
                &[("block_size", "3"), ("gamma", "1"), ("p", "0.2")],
                &[0.84],
            ),
            (
                &[("block_size", "5"), ("gamma", "0.5"), ("p", "0.1")],
                &[0.90],
            ),
        ])
    }

    #[test]
    fn a_key_on_no_axis_is_averaged_over_and_said_so() {
        let t = three_keys();
        let arms = arms(&t);
        let g = grid(&t, &arms[0], (0, Some(1)), &[], Measure::Final);
        assert_eq!(g.title(), "dropblock, averaged over p");
        assert_eq!(
            (&g.xs, &g.ys),
            (
                &vec!["3".into(), "5".into()],
                &vec!["0.5".into(), "1".into()]
            )
        );
        assert!((mean(&g, 0, 1).unwrap() - 82.0).abs() < 1e-9);
        assert_eq!(g.places[1][0].labels.len(), 2);
        assert!((mean(&g, 1, 0).unwrap() - 90.0).abs() < 1e-9);
        assert_eq!(mean(&g, 0, 0), None);
    }

    #[test]
    fn a_key_held_at_a_value_keeps_only_its_cells() {
        let t = three_keys();
        let arms = arms(&t);
        // block_size across, p down, gamma held at its second value (1).
        let g = grid(
            &t,
            &arms[0],
            (0, Some(2)),
            &[Hold::Averaged, Hold::At(1)],
            Measure::Final,
        );
        assert_eq!(g.note.as_deref(), Some("gamma = 1"));
        assert!((mean(&g, 0, 0).unwrap() - 80.0).abs() < 1e-9);
        assert!((mean(&g, 0, 1).unwrap() - 84.0).abs() < 1e-9);
        assert_eq!(mean(&g, 1, 0), None, "block_size 5 has gamma 0.5 only");
    }

    /// A row over seeds 1–4 with these final accuracies, its Δ against `base`.
    fn tested(label: &str, accs: &[f64], base: &[f64]) -> Row {
        let runs = |a: &[f64]| -> Vec<(u64, f64, f64)> {
            (a.iter().enumerate())
                .map(|(i, x)| (i as u64 + 1, *x, *x))
                .collect()
        };
        Row {
            finished: runs(accs),
            delta_final: Some(super::super::delta(&runs(accs), &runs(base), |r| r.1)),
            ..row(label, accs)
        }
    }

    #[test]
    fn a_cell_that_differs_after_holm_is_marked_and_an_average_only_if_all_are() {
        let base = [0.80, 0.81, 0.82, 0.80];
        let mut t = table(&[
            (
                &[("block_size", "3"), ("p", "0.1")],
                &[0.90, 0.91, 0.92, 0.905],
            ),
            (
                &[("block_size", "5"), ("p", "0.1")],
                &[0.81, 0.80, 0.82, 0.80],
            ),
        ]);
        t.rows = vec![
            Row {
                finished: tested("none", &base, &base).finished,
                ..row("none", &base)
            },
            tested(
                "dropblock block_size=3 p=0.1",
                &[0.90, 0.91, 0.92, 0.905],
                &base,
            ),
            tested(
                "dropblock block_size=5 p=0.1",
                &[0.81, 0.80, 0.82, 0.80],
                &base,
            ),
        ];
        let arms = arms(&t);
        let g = grid(&t, &arms[0], (0, Some(1)), &[], Measure::Final);
        let marked = |x: usize| g.places[0][x].stat.as_ref().unwrap().marked;
        assert!(marked(0), "+10 points on every seed");
        assert!(!marked(1), "the baseline's own accuracies");
        let averaged = grid(&t, &arms[0], (1, None), &[], Measure::Final);
        assert!(!averaged.places[0][0].stat.as_ref().unwrap().marked);
    }
}
