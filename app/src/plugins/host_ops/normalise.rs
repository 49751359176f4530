//! Interface 1.5's `mean_one`: each group of a tensor divided by its mean
//! (ProbDropBlock's salience normalisation). On flex one pass, each group
//! summed and divided while it is in cache; elsewhere composed from burn's
//! ops, left on the device.

use burn::tensor::{Device, Tensor};
use plugin_api::abi::Handle;
use rayon::prelude::*;

use super::keep::lane_sum;
use super::values::Writable;
use super::{Entry, run};

/// Elements one parallel task normalises (whole groups): enough to pay for
/// the task, few enough to stay in cache.
const TASK_TARGET: usize = 4096;

pub(super) extern "C" fn op_mean_one(t: Handle, group_from: u32, eps: f64) -> Handle {
    run("mean_one", |a| {
        let e = a.take(t)?;
        let from = e.stored_dim(group_from as usize)?;
        let dims = e.tensor.dims();
        let group: usize = dims[from..].iter().product();
        let groups: usize = dims[..from].iter().product();
        // One group per core or fewer: the per-group pass has nothing to split.
        let tensor =
            if e.tensor.device() == Device::flex() && groups >= rayon::current_num_threads() {
                on_host(e.tensor, group, eps)?
            } else {
                composed(e.tensor, from, eps)
            };
        Ok(Entry {
            tensor,
            rank: e.rank,
        })
    })
}

/// On flex: whole groups per task, each summed (f32 lanes, f64 total) and
/// divided in one visit, in place when `t`'s buffer is its own.
fn on_host(t: Tensor<4>, group: usize, eps: f64) -> Result<Tensor<4>, String> {
    let mut out = Writable::of(t)?;
    let per_task = (TASK_TARGET / group.max(1)).max(1) * group.max(1);
    out.values().par_chunks_mut(per_task).for_each(|values| {
        for values in values.chunks_mut(group.max(1)) {
            to_mean_one(values, eps);
        }
    });
    Ok(out.into_tensor())
}

/// One group, as the composed ops compute it in f32: `v / (mean + eps)`
/// plus 1 where the mean is 0.
fn to_mean_one(values: &mut [f32], eps: f64) {
    let mean = (lane_sum([values]) / values.len() as f64) as f32;
    let denominator = mean + eps as f32;
    let empty = f32::from(u8::from(mean == 0.0));
    for v in values.iter_mut() {
        *v = *v / denominator + empty;
    }
}

/// The same from burn's ops.
fn composed(t: Tensor<4>, from: usize, eps: f64) -> Tensor<4> {
    let group: Vec<usize> = (from..4).collect();
    let mean = t.clone().mean_dims(&group);
    let empty = mean.clone().equal_elem(0.0).float();
    t / mean.add_scalar(eps) + empty
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// Flex's one pass equals the composed ops, an all-zero group included
    /// (it becomes 1 throughout), for groups of one plane and of a sample.
    #[test]
    fn one_pass_equals_the_composed_ops() {
        let device = Device::flex();
        let t = Tensor::<4>::random([3, 5, 7, 6], Distribution::Uniform(0.0, 2.0), &device);
        let zeros = Tensor::<4>::zeros([3, 1, 7, 6], &device);
        let t = t.slice_assign([0..3, 2..3, 0..7, 0..6], zeros);
        for from in [1, 2] {
            let group: usize = t.dims()[from..].iter().product();
            let fast = on_host(t.clone(), group, 1e-12).unwrap();
            let slow = composed(t.clone(), from, 1e-12);
            let (fast, slow) = (fast.into_data(), slow.into_data());
            fast.assert_approx_eq::<f32>(&slow, burn::tensor::Tolerance::rel_abs(1e-6, 1e-6));
            let fast = fast.try_to_vec::<f32>().unwrap();
            let plane = 7 * 6;
            if from == 2 {
                // Sample 1, channel 2: all zero, so 1 everywhere.
                let start = (5 + 2) * plane;
                assert!(fast[start..start + plane].iter().all(|&v| v == 1.0));
            }
            let means: Vec<f32> = fast
                .chunks(group)
                .map(|g| g.iter().sum::<f32>() / group as f32)
                .collect();
            assert!(means.iter().all(|m| (m - 1.0).abs() < 1e-4), "{means:?}");
        }
    }
}
