//! What is read back from the device: the training window's loss and accuracy, validation.

use std::time::{Duration, Instant};

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor};

use crate::train::data::EpochItems;
use crate::train::models::Model;
use crate::train::optim::RunOptimizer;
use crate::train::transformer::NoSlots;

use super::task::{Batch, Task};

/// Top-1 hits in the batch, left on the device.
pub(super) fn correct_top1(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1, Int> {
    let predicted = logits.argmax(1).squeeze_dim::<1>(1);
    predicted.equal(targets).int().sum()
}

pub(super) fn correct_top5(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1, Int> {
    let (_, idx) = logits.topk_with_indices(5, 1); // [batch, 5]
    let [n, k] = idx.dims();
    let t = targets.reshape([n, 1]).expand([n, k]);
    idx.equal(t).int().sum()
}

/// Validation loss, top-1 and (over 10 classes) top-5 accuracy.
pub(super) fn evaluate(
    model: &Model,
    task: &Task,
    batch_size: usize,
    workers: usize,
    device: &Device,
    classes: usize,
) -> (f64, f64, Option<f64>) {
    let model = model.valid();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let items = EpochItems::sequential(task.val_len());
    let batches = task.batches(items, batch_size, workers, device, false);
    // Loss and hits are summed on the device and read once at the end (a read
    // per batch would wait for the device every batch).
    let mut loss_sum: Option<Tensor<1>> = None;
    let (mut top1, mut top5): (Option<Tensor<1, Int>>, Option<Tensor<1, Int>>) = (None, None);
    let mut count = 0usize;
    for batch in batches {
        let n = batch.targets().dims()[0];
        let logits = match &batch {
            Batch::Image(b) => model.forward(b.images.clone(), &mut |_, x| Ok(x)),
            Batch::Text(b) => model.forward_text(b.ids.clone(), &b.pad, &mut NoSlots),
        };
        let Ok(logits) = logits else {
            continue;
        };
        let targets = batch.targets().clone();
        let loss = loss_fn
            .forward(logits.clone(), targets.clone())
            .mul_scalar(n as f32);
        let hits = correct_top1(logits.clone(), targets.clone());
        loss_sum = Some(loss_sum.map_or(loss.clone(), |sum| sum + loss));
        top1 = Some(top1.map_or(hits.clone(), |sum| sum + hits));
        if classes > 10 {
            let hits = correct_top5(logits, targets);
            top5 = Some(top5.map_or(hits.clone(), |sum| sum + hits));
        }
        count += n;
    }
    let count = count.max(1) as f64;
    let loss_sum = loss_sum.map_or(0.0, |t| t.into_scalar::<f32>() as f64);
    let read = |hits: Option<Tensor<1, Int>>| hits.map_or(0, |t| t.into_scalar::<i64>()) as f64;
    (
        loss_sum / count,
        read(top1) / count,
        (classes > 10).then(|| read(top5) / count),
    )
}

/// Loss and top-1 hits of the steps since the last log line, summed on the
/// device. Reading them waits for the device, so it happens only at read
/// points (logging, evaluation, checkpoints), not after every step (issue 14).
#[derive(Default)]
pub(super) struct Pending {
    pub(super) loss: Option<Tensor<1>>,
    pub(super) last: Option<Tensor<1>>,
    pub(super) correct: Option<Tensor<1, Int>>,
    pub(super) samples: usize,
    pub(super) steps: usize,
    pub(super) time: Duration,
}

/// A loss since the last read was NaN or infinite.
pub(super) struct NonFinite;

#[derive(Clone, Copy)]
pub(super) struct Totals {
    pub(super) mean_loss: f64,
    pub(super) acc: f64,
    pub(super) per_s: f64,
    pub(super) step_s: f64,
    pub(super) last_loss: Option<f64>,
}

impl Pending {
    pub(super) fn add(&mut self, loss: Tensor<1>, correct: Tensor<1, Int>, samples: usize) {
        self.loss = Some(match self.loss.take() {
            Some(sum) => sum + loss.clone(),
            None => loss.clone(),
        });
        self.last = Some(loss);
        self.correct = Some(match self.correct.take() {
            Some(sum) => sum + correct,
            None => correct,
        });
        self.samples += samples;
        self.steps += 1;
    }

    /// Host time of a step (the device may still be working on it: the wait
    /// shows up in the next read).
    pub(super) fn took(&mut self, host: Duration) {
        self.time += host;
    }

    /// The totals since the last restart and the value of each of `extra`
    /// (`[1]` tensors on the same device), in one transfer.
    pub(super) fn read(&mut self, extra: &[Tensor<1>]) -> Result<(Totals, Vec<f64>), NonFinite> {
        let (Some(loss), Some(last), Some(correct)) = (&self.loss, &self.last, &self.correct)
        else {
            let values = extra
                .iter()
                .map(|t| t.clone().into_scalar::<f32>().into())
                .collect();
            return Ok((self.totals(0.0, None, 0.0), values));
        };
        let waited = Instant::now();
        let mut parts = vec![loss.clone(), last.clone(), correct.clone().float()];
        parts.extend(extra.iter().cloned());
        let values = Tensor::cat(parts, 0)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        self.time += waited.elapsed();
        match values[..] {
            [sum, last, correct, ..] if sum.is_finite() => Ok((
                self.totals(f64::from(sum), Some(f64::from(last)), f64::from(correct)),
                values[3..].iter().map(|&v| f64::from(v)).collect(),
            )),
            _ => Err(NonFinite),
        }
    }

    pub(super) fn totals(&self, loss_sum: f64, last_loss: Option<f64>, correct: f64) -> Totals {
        let steps = self.steps.max(1) as f64;
        let secs = self.time.as_secs_f64().max(1e-9);
        Totals {
            mean_loss: loss_sum / steps,
            acc: correct / self.samples.max(1) as f64,
            per_s: self.samples as f64 / secs,
            step_s: secs / steps,
            last_loss,
        }
    }

    /// A new window (after a log line, or going back to a good read).
    pub(super) fn restart(&mut self) {
        *self = Pending::default();
    }
}

/// The model and optimiser at the last read that found every loss finite.
/// Both are cheap to keep: updates are out of place, so this holds the old
/// tensors rather than copies.
pub(super) struct Good {
    pub(super) model: Model,
    pub(super) optim: RunOptimizer,
    pub(super) step: u64,
}

impl Good {
    pub(super) fn restore(&self) -> (Model, RunOptimizer, u64) {
        (self.model.clone(), self.optim.clone(), self.step)
    }
}
