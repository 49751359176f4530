//! The ops of interface 1.3 that build, pick and join by integer position:
//! arange, randint, select (`where`), concat, gather and index_select.
//! Integers travel as `f32` values, exact below 2^24.

use abi_stable::std_types::RSlice;
use burn::tensor::{Distribution, Int, Tensor};
use plugin_api::abi::{Handle, RawDims};

use super::{Entry, HOST_MAX_RANK, dims_arg, entry_of, padded, run};

/// The largest integer range an `f32` holds exactly.
const EXACT_INTEGERS: i64 = 1 << 24;

pub(super) extern "C" fn op_arange(shape: RawDims, dim: u32) -> Handle {
    run("arange", |a| {
        let dims = dims_arg(&shape)?;
        let target = padded(&dims)?;
        let d = dim as usize;
        if d >= dims.len() {
            return Err(format!(
                "dimension {d} out of range for rank {}",
                dims.len()
            ));
        }
        let stored = d + HOST_MAX_RANK - dims.len();
        let mut line = [1; HOST_MAX_RANK];
        line[stored] = target[stored];
        let positions = Tensor::<1, Int>::arange(0..target[stored] as i64, &a.device)
            .float()
            .reshape(line);
        entry_of(positions.expand(target), &dims)
    })
}

pub(super) extern "C" fn op_randint(shape: RawDims, lo: i64, hi: i64) -> Handle {
    run("randint", |a| {
        let dims = dims_arg(&shape)?;
        if lo >= hi {
            return Err(format!("empty range [{lo}, {hi})"));
        }
        if lo.abs().max(hi.abs()) > EXACT_INTEGERS {
            return Err(format!(
                "[{lo}, {hi}) leaves the integers f32 holds exactly (|value| <= 2^24)"
            ));
        }
        let span = (hi - lo) as f64;
        let u = Tensor::random(padded(&dims)?, Distribution::Uniform(0.0, 1.0), &a.device);
        // floor(u·span) is below span in exact arithmetic; the clamp keeps f32
        // rounding of u close to 1 from reaching `hi`.
        let drawn = u
            .mul_scalar(span)
            .floor()
            .clamp_max(span - 1.0)
            .add_scalar(lo as f64);
        entry_of(drawn, &dims)
    })
}

/// The common shape of stored (rank-4) dims, or which ones clash.
fn broadcast(shapes: &[[usize; HOST_MAX_RANK]]) -> Result<[usize; HOST_MAX_RANK], String> {
    let mut out = [1; HOST_MAX_RANK];
    for (i, size) in out.iter_mut().enumerate() {
        *size = shapes.iter().map(|s| s[i]).max().unwrap_or(1);
        if shapes.iter().any(|s| s[i] != 1 && s[i] != *size) {
            return Err(format!("shapes {shapes:?} do not broadcast"));
        }
    }
    Ok(out)
}

pub(super) extern "C" fn op_select(cond: Handle, if_true: Handle, if_false: Handle) -> Handle {
    run("select", |a| {
        let (c, t, f) = (a.take(cond)?, a.take(if_true)?, a.take(if_false)?);
        let rank = c.rank.max(t.rank).max(f.rank);
        let target = broadcast(&[c.tensor.dims(), t.tensor.dims(), f.tensor.dims()])?;
        let mask = c.tensor.expand(target).not_equal_elem(0.0);
        let chosen = f
            .tensor
            .expand(target)
            .mask_where(mask, t.tensor.expand(target));
        Ok(Entry {
            tensor: chosen,
            rank,
        })
    })
}

pub(super) extern "C" fn op_concat(parts: RSlice<'_, Handle>, dim: u32) -> Handle {
    run("concat", |a| {
        let mut entries = Vec::with_capacity(parts.len());
        for &handle in parts.iter() {
            entries.push(a.take(handle)?);
        }
        let first = entries.first().ok_or("nothing to concatenate")?;
        let (rank, d) = (first.rank, first.stored_dim(dim as usize)?);
        let reference = first.tensor.dims();
        for e in &entries {
            let other = e.tensor.dims();
            let clash = (0..HOST_MAX_RANK).any(|i| i != d && other[i] != reference[i]);
            if e.rank != rank || clash {
                return Err(format!(
                    "{:?} and {:?} differ outside dimension {dim}",
                    first.dims(),
                    e.dims()
                ));
            }
        }
        let tensors = entries.into_iter().map(|e| e.tensor).collect();
        Ok(Entry {
            tensor: Tensor::cat(tensors, d),
            rank,
        })
    })
}

/// The positions of `index` as integers, refused when one falls outside
/// `0..len` (an out-of-range read is undefined on some backends). Reads two
/// values back from the device.
fn positions<const D: usize>(index: Tensor<D>, len: usize) -> Result<Tensor<D, Int>, String> {
    let low = index.clone().min().into_scalar::<f32>();
    let high = index.clone().max().into_scalar::<f32>();
    if !(low >= 0.0 && high < len as f32) {
        return Err(format!(
            "index values {low}..={high} outside 0..{len} (the dimension's length)"
        ));
    }
    Ok(index.int())
}

pub(super) extern "C" fn op_gather(x: Handle, index: Handle, dim: u32) -> Handle {
    run("gather", |a| {
        let (x, index) = (a.take(x)?, a.take(index)?);
        if index.rank != x.rank {
            return Err(format!(
                "index of rank {} for a tensor of rank {}",
                index.rank, x.rank
            ));
        }
        let d = x.stored_dim(dim as usize)?;
        let (have, want) = (x.tensor.dims(), index.tensor.dims());
        let mut target = have;
        target[d] = want[d];
        if (0..HOST_MAX_RANK).any(|i| i != d && want[i] != 1 && want[i] != have[i]) {
            return Err(format!(
                "index {:?} does not broadcast to {:?} outside dimension {dim}",
                index.dims(),
                x.dims()
            ));
        }
        let at = positions(index.tensor.expand(target), have[d])?;
        Ok(Entry {
            tensor: x.tensor.gather(d, at),
            rank: x.rank,
        })
    })
}

pub(super) extern "C" fn op_index_select(x: Handle, index: Handle, dim: u32) -> Handle {
    run("index_select", |a| {
        let (x, index) = (a.take(x)?, a.take(index)?);
        if index.rank != 1 {
            return Err(format!("index must have rank 1, not {}", index.rank));
        }
        let d = x.stored_dim(dim as usize)?;
        let len = x.tensor.dims()[d];
        let count = index.dims()[0];
        let line = index.tensor.reshape([count]);
        Ok(Entry {
            tensor: x.tensor.select(d, positions(line, len)?),
            rank: x.rank,
        })
    })
}
