//! The strategy at each slot of the model, and what one step's masks leave behind (dropped fractions, snapshots, finiteness).

use std::collections::BTreeMap;

use anyhow::Result;
use burn::tensor::{Bool, Tensor};

use crate::experiment::{self, ExperimentFile, StrategySpec};
use crate::plugins::watch::LiveStrategy;
use crate::plugins::{Library, MaskContext, MaskError};
use crate::run::dir::SnapshotLine;
use crate::train::transformer::{TextSlots, drop_keys};
use crate::train::watchdog::Watchdog;

/// The strategy configured at one slot.
pub(super) struct Slot {
    pub(super) name: String,
    pub(super) enabled: bool,
    pub(super) p_scale: f64,
    pub(super) live: Option<LiveStrategy>,
}

/// Everything the loop changes live.
pub(super) struct Live {
    pub(super) resolved: ExperimentFile,
    pub(super) strategy: StrategySpec,
    pub(super) slots: Vec<Slot>,
}

pub(super) fn build_slots(
    file: &ExperimentFile,
    spec: &StrategySpec,
    library: Option<&Library>,
) -> Result<Vec<Slot>, String> {
    let placed = experiment::placement(&file.model, spec).map_err(|unmatched| {
        let patterns: Vec<&str> = unmatched.iter().map(|u| u.pattern.as_str()).collect();
        format!("no slot of this model matches {}", patterns.join(", "))
    })?;
    let mut slots = Vec::new();
    for name in experiment::model_slots(&file.model) {
        let over = experiment::slots::override_for(&file.model, &name);
        let scale = placed
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| experiment::slots::effective_scale(&file.model, p));
        let enabled = scale.is_some();
        let live = match library {
            Some(lib) if enabled => Some(LiveStrategy::new(
                lib,
                experiment::strategy_params(spec, over.map(|o| &o.params)),
            )?),
            _ => None,
        };
        slots.push(Slot {
            name,
            enabled,
            p_scale: scale.unwrap_or(1.0),
            live,
        });
    }
    Ok(slots)
}

/// Samples of a batch and channels of a slot kept in each mask snapshot.
pub(super) const SNAPSHOT_SAMPLES: usize = 4;

pub(super) const SNAPSHOT_CHANNELS: usize = 4;

/// Steps between finiteness checks of the masks (and always at the first step).
pub(super) const FINITE_CHECK_EVERY: u64 = 50;

pub(super) fn all_finite(m: &Tensor<1>) -> bool {
    m.clone().is_finite().all().into_scalar::<bool>()
}

pub(super) fn flat<const D: usize>(t: &Tensor<D>) -> Tensor<1> {
    t.clone().reshape([t.dims().iter().product::<usize>()])
}

/// The tensor without its autodiff tracking, as the step's reads hold them.
fn inner(t: Tensor<1>) -> Tensor<1> {
    if t.is_autodiff() { t.inner() } else { t }
}

/// The fraction of real positions a mask drops, as a `[1]` tensor: the mask
/// is 1 at padding, so its zeros are all at real positions.
fn dropped_fraction<const D: usize>(m_flat: &Tensor<1>, valid: Option<&Tensor<D>>) -> Tensor<1> {
    let zeros = inner(m_flat.clone()).equal_elem(0.0).float().mean();
    let fraction = match valid {
        Some(v) => zeros / inner(flat(v)).mean().clamp_min(f32::MIN_POSITIVE),
        None => zeros,
    };
    fraction.clamp_max(1.0)
}

/// `[batch, channels, height, width]` for a snapshot: text `[batch, tokens,
/// hidden]` becomes one channel of tokens × hidden; attention heads
/// `[batch, heads, tokens, head_dim]` and images stay as they are.
pub(super) fn as_rank4<const D: usize>(t: Tensor<D>) -> Tensor<4> {
    let dims = t.dims();
    let shape = match D {
        4 => [dims[0], dims[1], dims[2], dims[3]],
        3 => [dims[0], 1, dims[1], dims[2]],
        2 => [dims[0], 1, 1, dims[1]],
        _ => [1, 1, 1, dims.iter().product()],
    };
    t.reshape(shape)
}

/// One sample's salience and mask at a slot; `tokens`, when given, are the
/// sample's real tokens, and only their rows are kept.
pub(super) fn snapshot(
    x: &Tensor<4>,
    m: &Tensor<4>,
    step: u64,
    slot: &str,
    p: f64,
    sample: usize,
    tokens: Option<&[String]>,
) -> SnapshotLine {
    let x = if x.is_autodiff() {
        x.clone().inner()
    } else {
        x.clone()
    };
    let [_, c, h, w] = x.dims();
    let h = tokens.map_or(h, |t| t.len().min(h));
    let k = c.min(SNAPSHOT_CHANNELS);
    let one = sample..sample + 1;
    let sal = x.clone().slice([one.clone(), 0..k, 0..h, 0..w]).abs();
    // The mask may be broadcast ([n, c, 1, 1] for channel drop): a broadcast
    // view of it, of which only the slice read is copied (no full-size tensor).
    let mask = m.clone().expand(x.dims()).slice([one, 0..k, 0..h, 0..w]);
    SnapshotLine {
        step,
        slot: slot.to_string(),
        sample,
        channels: (0..k).collect(),
        height: h,
        width: w,
        salience: sal.into_data().try_to_vec::<f32>().unwrap_or_default(),
        mask: mask.into_data().try_to_vec::<f32>().unwrap_or_default(),
        p,
        tokens: tokens.map(|t| t[..h].to_vec()).unwrap_or_default(),
    }
}

/// What one training step hands the model at its slots, and what it collects.
pub(super) struct StepSlots<'a> {
    pub(super) slots: &'a [Slot],
    pub(super) p: f64,
    pub(super) step: u64,
    pub(super) epoch: u64,
    pub(super) seed: u64,
    pub(super) log_now: bool,
    pub(super) snapshot_now: bool,
    pub(super) check_finite_now: bool,
    /// Samples kept in each snapshot.
    pub(super) samples: usize,
    /// Text: the real tokens of those samples.
    pub(super) tokens: Vec<Vec<String>>,
    /// Each slot's dropped fraction, on the device: read with the loss at
    /// the log step's read (one wait for all of them).
    pub(super) dropped: BTreeMap<String, Tensor<1>>,
    pub(super) snapshots: Vec<SnapshotLine>,
    /// This step's masks, checked when the loss turns non-finite.
    pub(super) masks: Vec<(String, Tensor<1>)>,
    pub(super) watchdog: &'a Watchdog,
}

impl StepSlots<'_> {
    /// Applies the slot's strategy to `x`; `valid` gives where a padded input
    /// is real (1.0), broadcastable to `x`.
    pub(super) fn apply<const D: usize>(
        &mut self,
        name: &str,
        x: Tensor<D>,
        valid: impl FnOnce() -> Option<Tensor<D>>,
    ) -> Result<Tensor<D>, MaskError> {
        Ok(match self.mask(name, &x, valid)? {
            Some(m) => x * m.autodiff(),
            None => x,
        })
    }

    /// The slot's mask for `x` (`None` where nothing is dropped), with its
    /// dropped fraction, snapshot and finiteness check recorded.
    fn mask<const D: usize>(
        &mut self,
        name: &str,
        x: &Tensor<D>,
        valid: impl FnOnce() -> Option<Tensor<D>>,
    ) -> Result<Option<Tensor<D>>, MaskError> {
        let Some(slot) = self.slots.iter().find(|s| s.name == name) else {
            return Ok(None);
        };
        let (true, Some(live)) = (slot.enabled, slot.live.as_ref()) else {
            return Ok(None);
        };
        let ctx = MaskContext {
            p: (self.p * slot.p_scale).clamp(0.0, 1.0),
            training: true,
            step: self.step,
            epoch: self.epoch,
            slot: name.to_string(),
            seed: self.seed,
        };
        if ctx.is_identity() {
            if self.log_now {
                let none = Tensor::<1>::zeros([1], &x.device());
                self.dropped.insert(name.to_string(), inner(none));
            }
            return Ok(None);
        }
        let valid = valid();
        let info = &live.strategy.info;
        self.watchdog
            .enter_mask(&format!("{} {}", info.name, info.version), name);
        let m = live.strategy.mask_padded(x, valid.as_ref(), &ctx);
        self.watchdog.leave_mask();
        let m = m?;
        let m_flat = flat(&m);
        if self.check_finite_now && !all_finite(&m_flat) {
            return Err(MaskError(format!(
                "{} {}: the mask has NaN or infinite values",
                live.strategy.info.name, live.strategy.info.version
            )));
        }
        if self.log_now {
            self.dropped
                .insert(name.to_string(), dropped_fraction(&m_flat, valid.as_ref()));
        }
        self.masks.push((name.to_string(), m_flat));
        if self.snapshot_now {
            let (x4, m4) = (as_rank4(x.clone()), as_rank4(m.clone()));
            for sample in 0..self.samples {
                let tokens = self.tokens.get(sample).map(Vec::as_slice);
                self.snapshots
                    .push(snapshot(&x4, &m4, self.step, name, ctx.p, sample, tokens));
            }
        }
        Ok(Some(m))
    }
}

/// 1.0 where `pad` is false, shaped by `shape` (the batch and token dims
/// placed, every other dim 1), outside the autodiff graph.
pub(super) fn validity<const D: usize>(pad: &Tensor<2, Bool>, shape: [usize; D]) -> Tensor<D> {
    let v = pad.clone().bool_not().float();
    let v = if v.is_autodiff() { v.inner() } else { v };
    v.reshape(shape)
}

impl TextSlots for StepSlots<'_> {
    fn keys(
        &mut self,
        slot: &str,
        scores: Tensor<4>,
        pad: &Tensor<2, Bool>,
    ) -> Result<Tensor<4>, MaskError> {
        let [b, t] = pad.dims();
        let valid = || Some(validity(pad, [b, 1, 1, t]));
        Ok(match self.mask(slot, &scores, valid)? {
            // Any non-zero value keeps: a strategy that rescales is not
            // rescaled here.
            Some(m) => drop_keys(scores, m.not_equal_elem(0.0).float().autodiff()),
            None => scores,
        })
    }

    fn hidden(
        &mut self,
        slot: &str,
        x: Tensor<3>,
        pad: &Tensor<2, Bool>,
    ) -> Result<Tensor<3>, MaskError> {
        let [b, t] = pad.dims();
        self.apply(slot, x, || Some(validity(pad, [b, t, 1])))
    }

    fn heads(
        &mut self,
        slot: &str,
        x: Tensor<4>,
        pad: &Tensor<2, Bool>,
    ) -> Result<Tensor<4>, MaskError> {
        let [b, t] = pad.dims();
        self.apply(slot, x, || Some(validity(pad, [b, 1, t, 1])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// A channel mask (`[n, c, 1, 1]`) is read as its broadcast over the
    /// sample's plane, and only the kept channels and the sample asked for.
    #[test]
    fn a_broadcast_mask_snapshots_as_its_full_plane() {
        let device = Device::flex();
        let x = Tensor::<4>::from_data(
            TensorData::new(
                (0..2 * 5 * 2 * 3).map(|v| v as f32 - 20.0).collect(),
                [2, 5, 2, 3],
            ),
            &device,
        );
        let channels: Vec<f32> = (0..10).map(|i| (i % 3) as f32).collect();
        let m = Tensor::<4>::from_data(TensorData::new(channels.clone(), [2, 5, 1, 1]), &device);
        let line = snapshot(&x, &m, 7, "block2", 0.1, 1, None);
        assert_eq!(line.channels, vec![0, 1, 2, 3]);
        let expected: Vec<f32> = channels[5..9].iter().flat_map(|&v| [v; 6]).collect();
        assert_eq!(line.mask, expected);
        let salience: Vec<f32> = (30..54).map(|v: i32| (v as f32 - 20.0).abs()).collect();
        assert_eq!(line.salience, salience);
    }
}
