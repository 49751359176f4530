//! The host side of the ops table: each op runs on burn tensors on the device of
//! the tensor being masked (flex, LibTorch CPU or CUDA alike).
//!
//! The arena of one `mask` call lives in a thread-local, so the `extern "C"` op
//! functions need no context pointer (and no `unsafe`). Tensors are stored as
//! rank 4 with leading size-1 dimensions plus their logical rank (1..=4), which
//! lets one code path serve every rank the strategies use.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Device, Distribution, Tensor, activation::softmax};
use plugin_api::abi::{Handle, HostOps, OpsHeader, PoolArgs, RawDims};
use plugin_api::{BinaryOp, Pool, Reduce, ScalarOp, Unary};

mod indexing;
mod keep;
mod mask;
mod normalise;
mod values;
mod window;

/// Highest logical rank the host supports.
pub const HOST_MAX_RANK: usize = 4;

#[derive(Clone)]
struct Entry {
    /// Always rank 4; the logical shape is the last `rank` dims.
    tensor: Tensor<4>,
    rank: usize,
}

impl Entry {
    fn dims(&self) -> Vec<usize> {
        self.tensor.dims()[HOST_MAX_RANK - self.rank..].to_vec()
    }

    /// Maps a logical dimension to the stored one.
    fn stored_dim(&self, dim: usize) -> Result<usize, String> {
        if dim >= self.rank {
            return Err(format!(
                "dimension {dim} out of range for rank {}",
                self.rank
            ));
        }
        Ok(dim + HOST_MAX_RANK - self.rank)
    }
}

struct Arena {
    device: Device,
    entries: Vec<Option<Entry>>,
    error: Option<String>,
    /// Where the input is real (1.0) or padding (0.0), when it has padding.
    valid: Option<Entry>,
}

thread_local! {
    static ARENA: RefCell<Option<Arena>> = const { RefCell::new(None) };
}

/// The table handed to plugins. Fields are appended, never reordered.
pub static HOST_OPS: HostOps = HostOps {
    header: OpsHeader {
        size: std::mem::size_of::<HostOps>() as u64,
        major: plugin_api::INTERFACE_MAJOR,
        minor: plugin_api::INTERFACE_MINOR,
    },
    shape: op_shape,
    release: op_release,
    dup: op_dup,
    full: op_full,
    uniform: op_uniform,
    bernoulli: op_bernoulli,
    unary: op_unary,
    scalar: op_scalar,
    binary: op_binary,
    clamp: op_clamp,
    reduce: op_reduce,
    softmax: op_softmax,
    pool2d: op_pool2d,
    pool1d: op_pool1d,
    pad: op_pad,
    slice: op_slice,
    reshape: op_reshape,
    expand: op_expand,
    permute: op_permute,
    kth_smallest: op_kth_smallest,
    valid: op_valid,
    arange: indexing::op_arange,
    randint: indexing::op_randint,
    select: indexing::op_select,
    concat: indexing::op_concat,
    gather: indexing::op_gather,
    index_select: indexing::op_index_select,
    block_keep: keep::op_block_keep,
    block_mask: mask::op_block_mask,
    mean_one: normalise::op_mean_one,
};

/// A live arena for the duration of one `mask` call on this thread.
pub struct Session {
    _private: (),
}

impl Session {
    /// Opens the arena on `device`. Only one per thread at a time.
    pub fn open(device: Device) -> Session {
        ARENA.with(|a| {
            *a.borrow_mut() = Some(Arena {
                device,
                entries: Vec::new(),
                error: None,
                valid: None,
            })
        });
        Session { _private: () }
    }

    /// Puts a tensor of logical rank `R` into the arena.
    pub fn insert<const R: usize>(&self, tensor: Tensor<R>) -> Result<Handle, String> {
        let entry = to_entry(tensor)?;
        with_arena(|a| Ok(a.push(entry)))
    }

    /// Sets the validity map `valid` hands out (broadcastable to the input).
    pub fn set_valid<const R: usize>(&self, valid: Tensor<R>) -> Result<(), String> {
        let entry = to_entry(valid)?;
        with_arena(|a| {
            a.valid = Some(entry);
            Ok(())
        })
    }

    /// Takes a tensor out as logical rank `R`.
    pub fn take<const R: usize>(&self, handle: Handle) -> Result<Tensor<R>, String> {
        with_arena(|a| {
            let entry = a.take(handle)?;
            if entry.rank != R {
                return Err(format!("expected rank {R}, got rank {}", entry.rank));
            }
            let dims = to_array::<R>(&entry.dims());
            Ok(entry.tensor.reshape(dims))
        })
    }

    /// The logical shape of a handle.
    pub fn shape(&self, handle: Handle) -> Result<Vec<usize>, String> {
        with_arena(|a| Ok(a.get(handle)?.dims()))
    }

    /// The first error an op recorded during this call, if any.
    pub fn last_error(&self) -> Option<String> {
        ARENA.with(|a| a.borrow().as_ref().and_then(|a| a.error.clone()))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        ARENA.with(|a| *a.borrow_mut() = None);
    }
}

impl Arena {
    fn push(&mut self, entry: Entry) -> Handle {
        self.entries.push(Some(entry));
        Handle(self.entries.len() as u64)
    }

    fn slot(&mut self, handle: Handle) -> Result<&mut Option<Entry>, String> {
        let index = (handle.0 as usize)
            .checked_sub(1)
            .ok_or("invalid handle 0 (the result of a failed op)")?;
        self.entries
            .get_mut(index)
            .ok_or_else(|| format!("invalid handle {}", handle.0))
    }

    fn take(&mut self, handle: Handle) -> Result<Entry, String> {
        self.slot(handle)?
            .take()
            .ok_or_else(|| format!("handle {} was already consumed or released", handle.0))
    }

    fn get(&mut self, handle: Handle) -> Result<&Entry, String> {
        self.slot(handle)?
            .as_ref()
            .ok_or_else(|| format!("handle {} was already consumed or released", handle.0))
    }
}

fn with_arena<T>(f: impl FnOnce(&mut Arena) -> Result<T, String>) -> Result<T, String> {
    ARENA.with(|a| {
        let mut guard = a.borrow_mut();
        let arena = guard
            .as_mut()
            .ok_or("host op called outside of a mask call")?;
        f(arena)
    })
}

fn to_array<const R: usize>(dims: &[usize]) -> [usize; R] {
    let mut out = [1; R];
    out.copy_from_slice(dims);
    out
}

fn padded(dims: &[usize]) -> Result<[usize; HOST_MAX_RANK], String> {
    if dims.is_empty() || dims.len() > HOST_MAX_RANK {
        return Err(format!(
            "rank {} not supported (1..={HOST_MAX_RANK})",
            dims.len()
        ));
    }
    let mut out = [1; HOST_MAX_RANK];
    out[HOST_MAX_RANK - dims.len()..].copy_from_slice(dims);
    Ok(out)
}

fn to_entry<const R: usize>(tensor: Tensor<R>) -> Result<Entry, String> {
    let dims = tensor.dims();
    Ok(Entry {
        tensor: tensor.reshape(padded(&dims)?),
        rank: R,
    })
}

fn entry_of(tensor: Tensor<4>, dims: &[usize]) -> Result<Entry, String> {
    Ok(Entry {
        tensor: tensor.reshape(padded(dims)?),
        rank: dims.len(),
    })
}

/// Runs one op body: records the first error, turns panics into errors, returns
/// `Handle::ERROR` on failure.
fn run(name: &str, body: impl FnOnce(&mut Arena) -> Result<Entry, String>) -> Handle {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        with_arena(|a| {
            let entry = body(a)?;
            Ok(a.push(entry))
        })
    }));
    let error = match outcome {
        Ok(Ok(handle)) => return handle,
        Ok(Err(e)) => e,
        Err(payload) => format!("panicked: {}", plugin_api::panic_message(payload)),
    };
    ARENA.with(|a| {
        if let Some(arena) = a.borrow_mut().as_mut() {
            arena.error.get_or_insert(format!("{name}: {error}"));
        }
    });
    Handle::ERROR
}

fn dims_arg(raw: &RawDims) -> Result<Vec<usize>, String> {
    if raw.rank as usize > plugin_api::abi::MAX_RANK {
        return Err(format!("rank {} in argument", raw.rank));
    }
    Ok(raw.to_vec())
}

extern "C" fn op_shape(h: Handle) -> RawDims {
    let dims = with_arena(|a| Ok(a.get(h)?.dims())).unwrap_or_default();
    RawDims::from_slice(&dims).unwrap_or(RawDims {
        rank: 0,
        dims: [0; plugin_api::abi::MAX_RANK],
    })
}

extern "C" fn op_release(h: Handle) {
    let _ = with_arena(|a| a.take(h).map(drop));
}

extern "C" fn op_dup(h: Handle) -> Handle {
    run("dup", |a| Ok(a.get(h)?.clone()))
}

extern "C" fn op_full(shape: RawDims, value: f64) -> Handle {
    run("full", |a| {
        let dims = dims_arg(&shape)?;
        entry_of(Tensor::full(padded(&dims)?, value, &a.device), &dims)
    })
}

extern "C" fn op_uniform(shape: RawDims) -> Handle {
    run("uniform", |a| {
        let dims = dims_arg(&shape)?;
        let t = Tensor::random(padded(&dims)?, Distribution::Uniform(0.0, 1.0), &a.device);
        entry_of(t, &dims)
    })
}

extern "C" fn op_bernoulli(prob: Handle) -> Handle {
    run("bernoulli", |a| {
        let e = a.take(prob)?;
        let u = e.tensor.random_like(Distribution::Uniform(0.0, 1.0));
        Ok(Entry {
            tensor: u.lower(e.tensor).float(),
            rank: e.rank,
        })
    })
}

extern "C" fn op_unary(h: Handle, code: u32) -> Handle {
    run("unary", |a| {
        let op = Unary::from_code(code).ok_or_else(|| format!("unknown unary code {code}"))?;
        let e = a.take(h)?;
        let t = e.tensor;
        let tensor = match op {
            Unary::Abs => t.abs(),
            Unary::Neg => t.neg(),
            Unary::Exp => t.exp(),
            Unary::Log => t.log(),
            Unary::Sqrt => t.sqrt(),
            Unary::Recip => t.recip(),
            Unary::Floor => t.floor(),
            Unary::Ceil => t.ceil(),
            Unary::Round => t.round(),
        };
        Ok(Entry {
            tensor,
            rank: e.rank,
        })
    })
}

extern "C" fn op_scalar(h: Handle, code: u32, v: f64) -> Handle {
    run("scalar", |a| {
        let op = ScalarOp::from_code(code).ok_or_else(|| format!("unknown scalar code {code}"))?;
        let e = a.take(h)?;
        let t = e.tensor;
        let tensor = match op {
            ScalarOp::Add => t.add_scalar(v),
            ScalarOp::Sub => t.sub_scalar(v),
            ScalarOp::RSub => t.neg().add_scalar(v),
            ScalarOp::Mul => t.mul_scalar(v),
            ScalarOp::Div => t.div_scalar(v),
            ScalarOp::RDiv => t.recip().mul_scalar(v),
            ScalarOp::Pow => t.powf_scalar(v),
            ScalarOp::Max => t.clamp_min(v),
            ScalarOp::Min => t.clamp_max(v),
            ScalarOp::Lt => t.lower_elem(v).float(),
            ScalarOp::Le => t.lower_equal_elem(v).float(),
            ScalarOp::Gt => t.greater_elem(v).float(),
            ScalarOp::Ge => t.greater_equal_elem(v).float(),
            ScalarOp::Eq => t.equal_elem(v).float(),
            ScalarOp::Ne => t.not_equal_elem(v).float(),
            // `t - v·floor(t/v)` spelt out: the sign of the divisor on every
            // backend, exact for integers below 2^24.
            ScalarOp::Rem => t.clone().sub(t.div_scalar(v).floor().mul_scalar(v)),
        };
        Ok(Entry {
            tensor,
            rank: e.rank,
        })
    })
}

extern "C" fn op_binary(ha: Handle, hb: Handle, code: u32) -> Handle {
    run("binary", |a| {
        let op = BinaryOp::from_code(code).ok_or_else(|| format!("unknown binary code {code}"))?;
        let x = a.take(ha)?;
        let y = a.take(hb)?;
        let rank = x.rank.max(y.rank);
        let (da, db) = (x.tensor.dims(), y.tensor.dims());
        for i in 0..HOST_MAX_RANK {
            if da[i] != db[i] && da[i] != 1 && db[i] != 1 {
                return Err(format!(
                    "shapes {:?} and {:?} do not broadcast",
                    x.dims(),
                    y.dims()
                ));
            }
        }
        let (p, q) = (x.tensor, y.tensor);
        let tensor = match op {
            BinaryOp::Add => p.add(q),
            BinaryOp::Sub => p.sub(q),
            BinaryOp::Mul => p.mul(q),
            BinaryOp::Div => p.div(q),
            BinaryOp::Max => p.max_pair(q),
            BinaryOp::Min => p.min_pair(q),
            BinaryOp::Lt => p.lower(q).float(),
            BinaryOp::Le => p.lower_equal(q).float(),
            BinaryOp::Gt => p.greater(q).float(),
            BinaryOp::Ge => p.greater_equal(q).float(),
            BinaryOp::Eq => p.equal(q).float(),
            BinaryOp::Ne => p.not_equal(q).float(),
            BinaryOp::Rem => p.clone().sub(p.div(q.clone()).floor().mul(q)),
        };
        Ok(Entry { tensor, rank })
    })
}

extern "C" fn op_clamp(h: Handle, lo: f64, hi: f64) -> Handle {
    run("clamp", |a| {
        if lo > hi || lo.is_nan() || hi.is_nan() {
            return Err(format!("invalid range [{lo}, {hi}]"));
        }
        let e = a.take(h)?;
        // Tensors are f32: LibTorch refuses a bound it cannot convert (f64::MAX as
        // "no upper bound"), flex saturates. Saturate for both.
        let f32_range = |v: f64| v.clamp(f32::MIN as f64, f32::MAX as f64);
        Ok(Entry {
            tensor: e.tensor.clamp(f32_range(lo), f32_range(hi)),
            rank: e.rank,
        })
    })
}

extern "C" fn op_reduce(h: Handle, code: u32, dim_mask: u32, keepdim: bool) -> Handle {
    run("reduce", |a| {
        let op = Reduce::from_code(code).ok_or_else(|| format!("unknown reduce code {code}"))?;
        let e = a.take(h)?;
        let logical: Vec<usize> = (0..32).filter(|d| dim_mask & (1 << d) != 0).collect();
        let mut stored = Vec::with_capacity(logical.len());
        for &d in &logical {
            stored.push(e.stored_dim(d)?);
        }
        let kept_dims = e.dims();
        let t = e.tensor;
        let tensor = if stored.len() == e.rank && e.rank == HOST_MAX_RANK {
            // Whole-tensor reductions have their own, faster kernels.
            let all = match op {
                Reduce::Sum => t.sum(),
                Reduce::Mean => t.mean(),
                Reduce::Max => t.max(),
                Reduce::Min => t.min(),
            };
            all.reshape([1, 1, 1, 1])
        } else {
            match op {
                Reduce::Sum => t.sum_dims(&stored),
                Reduce::Mean => t.mean_dims(&stored),
                Reduce::Max => t.max_dims(&stored),
                Reduce::Min => t.min_dims(&stored),
            }
        };
        if keepdim {
            return Ok(Entry {
                tensor,
                rank: e.rank,
            });
        }
        let dims: Vec<usize> = kept_dims
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !logical.contains(i))
            .map(|(_, d)| d)
            .collect();
        // Reducing every dimension leaves shape [1] (the ABI has no rank 0).
        let dims = if dims.is_empty() { vec![1] } else { dims };
        entry_of(tensor, &dims)
    })
}

extern "C" fn op_softmax(h: Handle, dim: u32) -> Handle {
    run("softmax", |a| {
        let e = a.take(h)?;
        let d = e.stored_dim(dim as usize)?;
        Ok(Entry {
            tensor: softmax(e.tensor, d),
            rank: e.rank,
        })
    })
}

fn pool(
    t: Tensor<4>,
    kind: Pool,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Result<Tensor<4>, String> {
    if kernel.contains(&0) || stride.contains(&0) {
        return Err("kernel and stride must be non-zero".into());
    }
    let [_, _, h, w] = t.dims();
    if h + 2 * padding[0] < kernel[0] || w + 2 * padding[1] < kernel[1] {
        return Err(format!(
            "kernel {kernel:?} larger than padded input {h}x{w}"
        ));
    }
    if stride == [1, 1]
        && let Some(pooled) = window::stride1_average(&t, kind, kernel, padding)
    {
        return Ok(pooled);
    }
    Ok(match kind {
        Pool::Max => max_pool2d(
            t,
            MaxPoolOptions::new(kernel)
                .with_stride(stride)
                .with_padding(padding),
        ),
        Pool::Avg | Pool::AvgExcludePad => avg_pool2d(
            t,
            AvgPoolOptions::new(kernel)
                .with_stride(stride)
                .with_padding(padding)
                .with_count_include_pad(kind == Pool::Avg),
        ),
    })
}

fn pool_args(args: &PoolArgs) -> ([usize; 2], [usize; 2], [usize; 2]) {
    (
        args.kernel.map(|v| v as usize),
        args.stride.map(|v| v as usize),
        args.padding.map(|v| v as usize),
    )
}

extern "C" fn op_pool2d(h: Handle, code: u32, args: PoolArgs) -> Handle {
    run("pool2d", |a| {
        let kind = Pool::from_code(code).ok_or_else(|| format!("unknown pool code {code}"))?;
        let e = a.take(h)?;
        if e.rank < 2 {
            return Err(format!("pool2d needs rank >= 2, got {}", e.rank));
        }
        let (k, s, p) = pool_args(&args);
        Ok(Entry {
            tensor: pool(e.tensor, kind, k, s, p)?,
            rank: e.rank,
        })
    })
}

extern "C" fn op_pool1d(h: Handle, code: u32, dim: u32, args: PoolArgs) -> Handle {
    run("pool1d", |a| {
        let kind = Pool::from_code(code).ok_or_else(|| format!("unknown pool code {code}"))?;
        let e = a.take(h)?;
        let d = e.stored_dim(dim as usize)?;
        let stored = e.tensor.dims();
        let before: usize = stored[..d].iter().product();
        let after: usize = stored[d + 1..].iter().product();
        let (k, s, p) = pool_args(&args);
        let len = stored[d];
        let mut logical = e.dims();
        // Pool the dimension where it lies: the last one as the width of a
        // [before, 1, 1, len] view, any other as the height of [before, 1, len, after]
        // (a width-1 layout for the last dim was most of the ABI overhead measured in
        // BENCHMARKS.md).
        let (pooled, out_len) = if after == 1 {
            let view = e.tensor.reshape([before, 1, 1, len]);
            let pooled = pool(view, kind, [1, k[0]], [1, s[0]], [0, p[0]])?;
            let out_len = pooled.dims()[3];
            (pooled, out_len)
        } else {
            let view = e.tensor.reshape([before, 1, len, after]);
            let pooled = pool(view, kind, [k[0], 1], [s[0], 1], [p[0], 0])?;
            let out_len = pooled.dims()[2];
            (pooled, out_len)
        };
        logical[dim as usize] = out_len;
        entry_of(pooled, &logical)
    })
}

extern "C" fn op_pad(h: Handle, before: RawDims, after: RawDims, value: f64) -> Handle {
    run("pad", |a| {
        let e = a.take(h)?;
        let (b, f) = (dims_arg(&before)?, dims_arg(&after)?);
        if b.len() != e.rank || f.len() != e.rank {
            return Err(format!(
                "padding for rank {}, tensor has rank {}",
                b.len(),
                e.rank
            ));
        }
        let mut pairs = [(0, 0); HOST_MAX_RANK];
        for i in 0..e.rank {
            pairs[HOST_MAX_RANK - e.rank + i] = (b[i], f[i]);
        }
        Ok(Entry {
            tensor: e
                .tensor
                .pad(pairs, burn::tensor::ops::PadMode::Constant(value as f32)),
            rank: e.rank,
        })
    })
}

extern "C" fn op_slice(h: Handle, start: RawDims, end: RawDims) -> Handle {
    run("slice", |a| {
        let e = a.take(h)?;
        let (s, t) = (dims_arg(&start)?, dims_arg(&end)?);
        let dims = e.dims();
        if s.len() != e.rank || t.len() != e.rank {
            return Err(format!(
                "slice for rank {}, tensor has rank {}",
                s.len(),
                e.rank
            ));
        }
        let mut ranges = [0..1, 0..1, 0..1, 0..1];
        let off = HOST_MAX_RANK - e.rank;
        for i in 0..e.rank {
            if s[i] >= t[i] || t[i] > dims[i] {
                return Err(format!(
                    "range {}..{} invalid for dimension {i} of size {}",
                    s[i], t[i], dims[i]
                ));
            }
            ranges[off + i] = s[i]..t[i];
        }
        Ok(Entry {
            tensor: e.tensor.slice(ranges),
            rank: e.rank,
        })
    })
}

extern "C" fn op_reshape(h: Handle, shape: RawDims) -> Handle {
    run("reshape", |a| {
        let e = a.take(h)?;
        let dims = dims_arg(&shape)?;
        let (from, to): (usize, usize) = (e.dims().iter().product(), dims.iter().product());
        if from != to {
            return Err(format!(
                "cannot reshape {:?} ({from} elements) to {dims:?}",
                e.dims()
            ));
        }
        entry_of(e.tensor, &dims)
    })
}

extern "C" fn op_expand(h: Handle, shape: RawDims) -> Handle {
    run("expand", |a| {
        let e = a.take(h)?;
        let dims = dims_arg(&shape)?;
        let target = padded(&dims)?;
        let have = e.tensor.dims();
        if dims.len() < e.rank || (0..HOST_MAX_RANK).any(|i| have[i] != target[i] && have[i] != 1) {
            return Err(format!("cannot broadcast {:?} to {dims:?}", e.dims()));
        }
        Ok(Entry {
            tensor: e.tensor.expand(target),
            rank: dims.len(),
        })
    })
}

extern "C" fn op_permute(h: Handle, axes: RawDims) -> Handle {
    run("permute", |a| {
        let e = a.take(h)?;
        let axes = dims_arg(&axes)?;
        let mut sorted = axes.clone();
        sorted.sort_unstable();
        if sorted != (0..e.rank).collect::<Vec<_>>() {
            return Err(format!("{axes:?} is not a permutation of 0..{}", e.rank));
        }
        let off = HOST_MAX_RANK - e.rank;
        let mut stored = [0, 1, 2, 3];
        for (i, &ax) in axes.iter().enumerate() {
            stored[off + i] = off + ax;
        }
        Ok(Entry {
            tensor: e.tensor.permute(stored),
            rank: e.rank,
        })
    })
}

extern "C" fn op_kth_smallest(h: Handle, k: u64, dim: u32) -> Handle {
    run("kth_smallest", |a| {
        let e = a.take(h)?;
        let d = e.stored_dim(dim as usize)?;
        let len = e.tensor.dims()[d];
        let k = k as usize;
        if k == 0 || k > len {
            return Err(format!("k = {k} out of range 1..={len}"));
        }
        let sorted = e.tensor.sort(d);
        Ok(Entry {
            tensor: sorted.narrow(d, k - 1, 1),
            rank: e.rank,
        })
    })
}

/// A fresh handle to the input's validity map; the error handle, without
/// recording an error, when the input has no padding.
extern "C" fn op_valid() -> Handle {
    let valid = ARENA.with(|a| a.borrow().as_ref().and_then(|a| a.valid.clone()));
    match valid {
        Some(entry) => run("valid", |_| Ok(entry)),
        None => Handle::ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plugin handing back a handle it never got, the failed-op handle 0, or one
    /// it already consumed: each is an error naming the handle, never a crash.
    #[test]
    fn invalid_handles_are_errors() {
        let device = Device::default();
        let session = Session::open(device.clone());
        let h = session
            .insert(Tensor::<4>::ones([1, 1, 2, 2], &device))
            .unwrap();
        assert_eq!(session.shape(h).unwrap(), [1, 1, 2, 2]);
        let forged = Handle(h.0 + 41);
        assert!(
            session
                .shape(forged)
                .unwrap_err()
                .contains("invalid handle")
        );
        assert!(session.shape(Handle(0)).unwrap_err().contains("failed op"));
        session.take::<4>(h).unwrap();
        assert!(
            session
                .take::<4>(h)
                .unwrap_err()
                .contains("already consumed")
        );
    }
}
