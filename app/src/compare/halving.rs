//! Successive halving over a sweep's cells (`[sweep] halving = { rungs,
//! keep }`). A cell's runs train to the cell's next rung (a fraction of
//! training) and stop there by themselves (`train --stop-at`), checkpointed.
//! Once every run of an arm's open cells stands at that rung, the cells are
//! ranked by mean validation accuracy over seeds at the rung step; the best
//! `keep` fraction (at least one) go on, resumed from their checkpoints, and
//! the others stop for good, recorded in the manifest as halted at that
//! rung. Unlike ASHA, a rung waits for all of its arm's cells, so every
//! decision compares the same seeds at the same step; the price is the wait.

use std::collections::BTreeMap;

use crate::experiment::Halving;
use crate::run::comparison::{Entry, Manifest};
use crate::run::dir::{RunDir, State, metric};
use crate::train::schedule::step_at_fraction as rung_step;

/// The rungs, and each sweeping arm's cells.
pub struct Ladder {
    rungs: Vec<f64>,
    keep: f64,
    arms: BTreeMap<String, Vec<String>>,
}

impl Ladder {
    pub fn new(h: &Halving, manifest: &Manifest) -> Ladder {
        let mut arms: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (label, cell) in &manifest.cells {
            arms.entry(cell.arm.clone())
                .or_default()
                .push(label.clone());
        }
        Ladder {
            rungs: h.rungs.clone(),
            keep: h.keep,
            arms,
        }
    }

    /// The fraction of training at which `e`'s run stops next, if before its
    /// end: its cell's next rung (none for a halted cell, which does not run
    /// at all).
    pub fn next_rung(&self, m: &Manifest, e: &Entry) -> Option<f64> {
        if !m.cells.contains_key(&e.label) {
            return None;
        }
        let k = m.cleared.get(&e.label).copied().unwrap_or(0);
        self.rungs.get(k).copied()
    }

    /// Whether `e` waits at a rung (or was halted): not to be started.
    pub fn parked(&self, m: &Manifest, e: &Entry) -> bool {
        if m.halted.contains_key(&e.label) {
            return true;
        }
        let Some(s) = RunDir::new(&e.dir).status() else {
            return false;
        };
        self.next_rung(m, e)
            .is_some_and(|rung| s.step >= rung_step(rung, s.total_steps))
    }

    /// Decides every arm whose open cells all stand at their next rung; the
    /// runs to train on (the survivors', not yet finished).
    pub fn decide(&self, m: &mut Manifest) -> Vec<Entry> {
        let mut resume = Vec::new();
        for (arm, labels) in &self.arms {
            let open: Vec<&String> = labels
                .iter()
                .filter(|l| !m.halted.contains_key(*l))
                .collect();
            let Some(k) = open
                .iter()
                .map(|l| m.cleared.get(*l).copied().unwrap_or(0))
                .min()
            else {
                continue;
            };
            let Some(&rung) = self.rungs.get(k) else {
                continue;
            };
            let entries: Vec<Entry> = m
                .current()
                .filter(|e| open.contains(&&e.label))
                .cloned()
                .collect();
            if entries.len() < open.len() * m.seeds.len()
                || !entries.iter().all(|e| at_rung(e, rung))
            {
                continue;
            }
            let mut scores: Vec<(f64, &String)> = open
                .iter()
                .map(|l| (mean_at(&entries, l, rung), *l))
                .collect();
            // Best first; a cell with no accuracy at all last.
            let rank = |x: f64| if x.is_nan() { f64::NEG_INFINITY } else { x };
            scores.sort_by(|a, b| rank(b.0).total_cmp(&rank(a.0)).then(a.1.cmp(b.1)));
            let kept = ((self.keep * scores.len() as f64).ceil() as usize).max(1);
            eprintln!("halving {arm} at {:.0} % of training:", 100.0 * rung);
            let (going, halted): (Vec<_>, Vec<_>) =
                scores.iter().enumerate().partition(|(i, _)| *i < kept);
            let going: Vec<String> = going.into_iter().map(|(_, s)| s.1.clone()).collect();
            let halted: Vec<(f64, String)> = halted
                .into_iter()
                .map(|(_, s)| (s.0, s.1.clone()))
                .collect();
            for (score, label) in &scores {
                let verdict = if going.contains(label) {
                    "goes on"
                } else {
                    "stops"
                };
                eprintln!("  {label}: validation accuracy {score:.4}, {verdict}");
            }
            for label in &going {
                m.cleared.insert(label.clone(), k + 1);
            }
            for (_, label) in halted {
                m.halted.insert(label, rung);
            }
            resume.extend(
                entries
                    .into_iter()
                    .filter(|e| going.contains(&e.label) && !is_final(e)),
            );
        }
        resume
    }
}

/// Whether `e`'s run has ended (done, diverged or failed).
fn is_final(e: &Entry) -> bool {
    RunDir::new(&e.dir)
        .status()
        .is_some_and(|s| matches!(s.state, State::Done | State::Diverged | State::Failed))
}

/// Whether `e`'s run stands at `rung`: stopped there or past it, or ended.
fn at_rung(e: &Entry, rung: f64) -> bool {
    let d = RunDir::new(&e.dir);
    let Some(s) = d.status() else {
        return false;
    };
    if d.trainer_alive(&s) {
        return false;
    }
    is_final(e) || s.step >= rung_step(rung, s.total_steps)
}

/// The mean over `label`'s runs of the validation accuracy at the rung step:
/// the last evaluated at or before it (the first after, if none was).
fn mean_at(entries: &[Entry], label: &str, rung: f64) -> f64 {
    let accs: Vec<f64> = entries
        .iter()
        .filter(|e| e.label == label)
        .map(|e| {
            let d = RunDir::new(&e.dir);
            let total = d.status().map_or(0, |s| s.total_steps);
            let stop = rung_step(rung, total);
            let vals: Vec<(u64, f64)> = d
                .metrics()
                .iter()
                .filter(|l| l.split == metric::VAL && l.metric == metric::ACC)
                .map(|l| (l.step, l.value))
                .collect();
            let before = vals.iter().rfind(|v| v.0 <= stop);
            before.or(vals.first()).map_or(f64::NAN, |v| v.1)
        })
        .collect();
    accs.iter().sum::<f64>() / accs.len().max(1) as f64
}
