//! Batch norm's forward as burn-nn's `BatchNorm::forward` computes it, except
//! for how the running statistics are blended on LibTorch: burn-nn writes
//! `running·(1 − m) + batch·m` as three elementary ops per statistic (120
//! LibTorch calls per ResNet-18 step, each a kernel launch on a GPU); here it is
//! one `lerp` per statistic, written back without burn's per-thread averaging
//! (one more op each). Same fields, so the same records and checkpoints.

use burn::module::{Module, ModuleMapper, Param, RunningState};
use burn::nn::BatchNorm;
use burn::tensor::Tensor;
use burn::tensor::module::batch_norm_train;

/// `bn.forward(x)`, the running statistics updated with one op each on LibTorch.
pub fn forward(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    if !(x.device().is_autodiff() && bn.training.is_enabled()) {
        return bn.forward(x);
    }
    let device = x.device();
    let result = batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    let mean = blend(running_mean, result.mean.detach(), bn.momentum);
    let var = blend(running_var, result.variance.detach(), bn.momentum);
    set(&bn.running_mean, mean.detach());
    set(&bn.running_var, var.detach());
    result.output
}

/// Makes `value` the state's value. `RunningState::update` would queue it per
/// thread for the next read to average (a division by one, one more LibTorch
/// op per statistic per step); the layer trains on one thread, so the value is
/// written directly, through the mapper every module accepts. A clone of the
/// state shares its value, so writing through one writes the layer's.
fn set(state: &RunningState<Tensor<1>>, value: Tensor<1>) {
    struct Write(Option<Tensor<1>>);
    impl ModuleMapper for Write {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            assert_eq!(D, 1, "a batch-norm statistic is one-dimensional");
            let (id, _, mapper) = param.consume();
            let value = self.0.take().expect("one statistic per write");
            Param::from_mapped_value(id, Tensor::from_dispatch(value.into_dispatch()), mapper)
        }
    }
    let _ = state.clone().map(&mut Write(Some(value)));
}

/// `running·(1 − m) + batch·m`.
fn blend(running: Tensor<1>, batch: Tensor<1>, momentum: f64) -> Tensor<1> {
    #[cfg(feature = "tch")]
    if let Some(blended) = native_blend(&running, &batch, momentum) {
        return blended;
    }
    running
        .mul_scalar(1.0 - momentum)
        .add(batch.mul_scalar(momentum))
}

/// The blend as one LibTorch `lerp`; `None` where the tensors are not
/// LibTorch's (public so the LibTorch tests can see which path runs).
#[cfg(feature = "tch")]
pub fn native_blend(running: &Tensor<1>, batch: &Tensor<1>, momentum: f64) -> Option<Tensor<1>> {
    libtorch::lerp(running, batch, momentum)
}

#[cfg(feature = "tch")]
mod libtorch {
    // burn-tch, every item of it, is marked deprecated upstream; the project
    // keeps it (see train::device).
    #![allow(deprecated)]

    use burn::tensor::Tensor;
    use burn_tch::{LibTorch, TchTensor};

    /// `running + m·(batch − running)` in one LibTorch call; `None` where the
    /// tensors are not LibTorch's.
    pub fn lerp(running: &Tensor<1>, batch: &Tensor<1>, momentum: f64) -> Option<Tensor<1>> {
        let autodiff = running.is_autodiff();
        let of = |t: &Tensor<1>| t.clone().inner().try_into_primitive::<LibTorch>().ok();
        let (running, batch) = (of(running)?, of(batch)?);
        let blended = running.tensor.lerp(&batch.tensor, momentum);
        let out = Tensor::<1>::from_primitive::<LibTorch>(TchTensor::new(blended));
        Some(if autodiff { out.autodiff() } else { out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Device, Distribution};

    /// Three training steps through `forward` and through burn-nn's, from the
    /// same layer: the same outputs and running statistics, to the bit on flex
    /// (the same ops in the same order).
    #[test]
    fn running_statistics_follow_burn_nn() {
        let device = Device::default().autodiff();
        // Two layers, not a clone: clones share their running state.
        let config = BatchNormConfig::new(6).with_momentum(0.3);
        let (ours, theirs) = (config.init(&device), config.init(&device));
        for step in 0..3 {
            let x = Tensor::<4>::random(
                [4, 6, 5, 5],
                Distribution::Normal(step as f64, 2.0),
                &device,
            );
            let a = forward(&ours, x.clone()).into_data();
            let b = theirs.forward(x).into_data();
            assert_eq!(a, b, "output at step {step}");
        }
        let stats = |bn: &BatchNorm| {
            [
                bn.running_mean.value().into_data(),
                bn.running_var.value().into_data(),
            ]
        };
        // burn-nn's last update waits in a per-thread queue until the layer
        // is synchronised (`valid()`, as evaluation does); ours is written at
        // once, so a record taken between steps holds the latest statistics.
        assert_eq!(stats(&ours), stats(&ours.valid()));
        assert_ne!(stats(&theirs), stats(&theirs.valid()));
        assert_eq!(stats(&ours), stats(&theirs.valid()));
        // The statistics moved: a blend that kept the old ones would pass the
        // comparison above only if burn-nn's did too.
        let initial = BatchNormConfig::new(6).init(&device);
        assert_ne!(stats(&ours), stats(&initial));
    }
}
