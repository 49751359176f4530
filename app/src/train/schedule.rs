//! Learning-rate schedules (the drop-rate schedule lives with the experiment schema).

use crate::experiment::{LrKind, LrScheduleSpec};

/// The step at which a run of `total` steps has done `fraction` of its
/// training (at least one step): where a halving rung stops a run.
pub fn step_at_fraction(fraction: f64, total: u64) -> u64 {
    ((fraction * total as f64).ceil() as u64).max(1)
}

/// The learning rate for optimiser step `step` (1-based) of `total` steps.
pub fn learning_rate(
    base: f64,
    s: &LrScheduleSpec,
    step: u64,
    total: u64,
    steps_per_epoch: u64,
) -> f64 {
    let warmup = (s.warmup_epochs * steps_per_epoch as f64).round() as u64;
    if step <= warmup && warmup > 0 {
        return base * step as f64 / warmup as f64;
    }
    match s.kind {
        LrKind::Constant => base,
        LrKind::Step => {
            let epoch = (step.saturating_sub(1)) / steps_per_epoch.max(1);
            let drops = s.milestones.iter().filter(|&&m| epoch >= m as u64).count();
            base * s.gamma.unwrap_or(0.1).powi(drops as i32)
        }
        LrKind::Cosine => {
            let min = s.min_lr.unwrap_or(0.0);
            let span = total.saturating_sub(warmup).max(1) as f64;
            let t = (step.saturating_sub(warmup) as f64 / span).min(1.0);
            min + (base - min) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: LrKind) -> LrScheduleSpec {
        LrScheduleSpec {
            kind,
            ..Default::default()
        }
    }

    #[test]
    fn warmup_then_cosine_reaches_the_minimum() {
        let mut s = spec(LrKind::Cosine);
        s.warmup_epochs = 1.0;
        s.min_lr = Some(0.01);
        assert!((learning_rate(0.1, &s, 5, 100, 10) - 0.05).abs() < 1e-12);
        assert!((learning_rate(0.1, &s, 10, 100, 10) - 0.1).abs() < 1e-12);
        assert!((learning_rate(0.1, &s, 100, 100, 10) - 0.01).abs() < 1e-12);
        assert!((learning_rate(0.1, &s, 55, 100, 10) - 0.055).abs() < 1e-12);
    }

    #[test]
    fn step_decays_at_milestones() {
        let mut s = spec(LrKind::Step);
        s.milestones = vec![2, 4];
        assert_eq!(learning_rate(1.0, &s, 20, 60, 10), 1.0);
        assert!((learning_rate(1.0, &s, 21, 60, 10) - 0.1).abs() < 1e-12);
        assert!((learning_rate(1.0, &s, 41, 60, 10) - 0.01).abs() < 1e-12);
    }
}
