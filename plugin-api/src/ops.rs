//! The safe face of the host-ops table: [`Ops`] and [`Tensor`].
//!
//! A [`Tensor`] owns one handle. Methods that transform it take `self` (the host
//! consumes the handle, which lets the backend reuse the buffer); [`Tensor::dup`]
//! makes a second reference when a value is needed twice. A tensor dropped without
//! being consumed gives its handle back. None of this can go wrong from safe code.

use abi_stable::std_types::RSlice;

use crate::abi::{BlockKeepArgs, BlockMaskArgs, Handle, HostOps, PoolArgs, RawDims};
use crate::{Error, Result};

macro_rules! op_codes {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq)]
        #[repr(u32)]
        pub enum $name { $($variant = $code),* }

        impl $name {
            /// Decodes a code received over the ABI.
            pub fn from_code(code: u32) -> Option<Self> {
                match code {
                    $($code => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

op_codes!(
    /// Element-wise functions of one tensor.
    /// `Floor`, `Ceil` and `Round` (half to even) need interface 1.3.
    Unary { Abs = 0, Neg = 1, Exp = 2, Log = 3, Sqrt = 4, Recip = 5, Floor = 6, Ceil = 7, Round = 8 }
);
op_codes!(
    /// `tensor OP scalar`; `RSub`/`RDiv` are `scalar - t` and `scalar / t`;
    /// comparisons give 0.0/1.0; `Rem` (interface 1.3) is the remainder with
    /// the sign of the divisor, `t - s·floor(t/s)`.
    ScalarOp {
        Add = 0, Sub = 1, RSub = 2, Mul = 3, Div = 4, RDiv = 5, Pow = 6, Max = 7, Min = 8,
        Lt = 9, Le = 10, Gt = 11, Ge = 12, Eq = 13, Ne = 14, Rem = 15,
    }
);
op_codes!(
    /// `a OP b` with broadcasting; comparisons give 0.0/1.0; `Rem` (interface
    /// 1.3) is the remainder with the sign of `b`, `a - b·floor(a/b)`.
    BinaryOp {
        Add = 0, Sub = 1, Mul = 2, Div = 3, Max = 4, Min = 5,
        Lt = 9, Le = 10, Gt = 11, Ge = 12, Eq = 13, Ne = 14, Rem = 15,
    }
);
op_codes!(
    /// Reductions over a set of dimensions.
    Reduce { Sum = 0, Mean = 1, Max = 2, Min = 3 }
);
op_codes!(
    /// Pooling kinds. `Avg` counts padding in the divisor, `AvgExcludePad` does not.
    Pool { Max = 0, Avg = 1, AvgExcludePad = 2 }
);

/// The host's operations for one `mask` call.
#[derive(Copy, Clone)]
pub struct Ops<'a> {
    raw: &'a HostOps,
}

impl<'a> Ops<'a> {
    /// Wraps a table, refusing one of another major version.
    pub fn new(raw: &'a HostOps) -> Result<Self> {
        if raw.header.major != crate::INTERFACE_MAJOR {
            return Err(Error::new(format!(
                "host ops table is interface {}.{}, plugin was built for {}.{}",
                raw.header.major,
                raw.header.minor,
                crate::INTERFACE_MAJOR,
                crate::INTERFACE_MINOR
            )));
        }
        Ok(Self { raw })
    }

    /// The interface version of the host's table.
    pub fn host_version(&self) -> (u32, u32) {
        (self.raw.header.major, self.raw.header.minor)
    }

    /// Takes ownership of a raw handle (the input of a `mask` call).
    pub fn adopt(&self, handle: Handle) -> Tensor<'a> {
        Tensor {
            handle,
            raw: self.raw,
        }
    }

    fn wrap(&self, handle: Handle, op: &'static str) -> Result<Tensor<'a>> {
        wrap(self.raw, handle, op)
    }

    /// A tensor of `shape` filled with `value`.
    pub fn full(&self, shape: &[usize], value: f64) -> Result<Tensor<'a>> {
        let dims = dims(shape)?;
        self.wrap((self.raw.full)(dims, value), "full")
    }

    /// Uniform `[0, 1)` samples from the host's seeded generator.
    pub fn uniform(&self, shape: &[usize]) -> Result<Tensor<'a>> {
        let dims = dims(shape)?;
        self.wrap((self.raw.uniform)(dims), "uniform")
    }

    // Added in interface 1.2.
    /// Where this call's input is real (1.0) rather than padding (0.0),
    /// broadcastable to the input. `None` when every position is real, and from a
    /// host older than interface 1.2 (which never passes padded inputs). The host
    /// leaves padded positions untouched whatever the mask says there; a strategy
    /// reads this so that padding counts in none of its statistics.
    pub fn valid(&self) -> Option<Tensor<'a>> {
        let needed =
            std::mem::offset_of!(HostOps, valid) + std::mem::size_of::<extern "C" fn() -> Handle>();
        if (self.raw.header.size as usize) < needed {
            return None;
        }
        let handle = (self.raw.valid)();
        (!handle.is_error()).then(|| self.adopt(handle))
    }

    /// 0/1 samples, 1 with probability `p` (the same for every element).
    pub fn bernoulli_scalar(&self, shape: &[usize], p: f64) -> Result<Tensor<'a>> {
        self.uniform(shape)?.scalar(ScalarOp::Lt, p)
    }

    // Added in interface 1.3.
    /// A tensor of `shape` whose value at each position is its index along
    /// `dim`: `arange(&[1, 1, h, 1], 2)` is the row number of an `h`-row map,
    /// ready to broadcast against `[N, C, H, W]`.
    pub fn arange(&self, shape: &[usize], dim: usize) -> Result<Tensor<'a>> {
        needs(self.raw, ADDED_IN_1_3, "arange")?;
        let d = dims(shape)?;
        self.wrap((self.raw.arange)(d, dim as u32), "arange")
    }

    /// Integers drawn uniformly from `[lo, hi)` (held as floats) by the host's
    /// seeded generator: one per element of `shape`. `hi - lo` is at most 2^24,
    /// the integers an `f32` holds exactly.
    pub fn randint(&self, shape: &[usize], lo: i64, hi: i64) -> Result<Tensor<'a>> {
        needs(self.raw, ADDED_IN_1_3, "randint")?;
        let d = dims(shape)?;
        self.wrap((self.raw.randint)(d, lo, hi), "randint")
    }

    /// `where(cond, a, b)`: `a` where `cond` is non-zero, else `b`. All three
    /// broadcast to a common shape.
    pub fn select(&self, cond: Tensor<'a>, a: Tensor<'a>, b: Tensor<'a>) -> Result<Tensor<'a>> {
        needs(self.raw, ADDED_IN_1_3, "select")?;
        let (c, a, b) = (cond.take(), a.take(), b.take());
        self.wrap((self.raw.select)(c, a, b), "select")
    }

    /// The tensors joined along `dim`; their other dimensions must be equal.
    pub fn concat(&self, parts: Vec<Tensor<'a>>, dim: usize) -> Result<Tensor<'a>> {
        needs(self.raw, ADDED_IN_1_3, "concat")?;
        let handles: Vec<Handle> = parts.into_iter().map(Tensor::take).collect();
        self.wrap(
            (self.raw.concat)(RSlice::from_slice(&handles), dim as u32),
            "concat",
        )
    }
}

/// Where the ops of an interface minor start in the table, and that minor: a
/// host whose table is shorter has none of them.
const ADDED_IN_1_3: (usize, u32) = (std::mem::offset_of!(HostOps, arange), 3);
const ADDED_IN_1_4: (usize, u32) = (std::mem::offset_of!(HostOps, block_keep), 4);
const ADDED_IN_1_5: (usize, u32) = (std::mem::offset_of!(HostOps, block_mask), 5);

/// Refuses an op the host's table does not reach (a host older than the op).
/// Hosts refuse plugins of a newer minor, so this is a second line of defence.
fn needs(raw: &HostOps, (field_offset, minor): (usize, u32), op: &str) -> Result<()> {
    if (raw.header.size as usize) < field_offset + std::mem::size_of::<usize>() {
        return Err(Error::new(format!(
            "{op} needs host interface 1.{minor}, the host has {}.{}",
            raw.header.major, raw.header.minor
        )));
    }
    Ok(())
}

fn dims(values: &[usize]) -> Result<RawDims> {
    RawDims::from_slice(values).ok_or_else(|| {
        Error::new(format!(
            "rank {} exceeds the ABI's maximum of {}",
            values.len(),
            crate::abi::MAX_RANK
        ))
    })
}

fn wrap<'a>(raw: &'a HostOps, handle: Handle, op: &'static str) -> Result<Tensor<'a>> {
    if handle.is_error() {
        Err(Error::host_op(op))
    } else {
        Ok(Tensor { handle, raw })
    }
}

/// One tensor held in the host's arena. See the module docs for ownership.
pub struct Tensor<'a> {
    handle: Handle,
    raw: &'a HostOps,
}

impl Drop for Tensor<'_> {
    fn drop(&mut self) {
        if !self.handle.is_error() {
            (self.raw.release)(self.handle);
        }
    }
}

impl std::fmt::Debug for Tensor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor#{}", self.handle.0)
    }
}

// `add`/`sub`/`mul`/`div` return `Result` (a host op can fail), so they cannot be
// the `std::ops` traits.
#[allow(clippy::should_implement_trait)]
impl<'a> Tensor<'a> {
    /// Gives up ownership: the handle is returned to the host as the result.
    pub fn into_handle(mut self) -> Handle {
        std::mem::replace(&mut self.handle, Handle::ERROR)
    }

    fn take(mut self) -> Handle {
        std::mem::replace(&mut self.handle, Handle::ERROR)
    }

    /// The host's operations this tensor lives in: helpers that take a tensor
    /// need not carry an [`Ops`] along.
    pub fn ops(&self) -> Ops<'a> {
        Ops { raw: self.raw }
    }

    fn then(&self, handle: Handle, op: &'static str) -> Result<Tensor<'a>> {
        wrap(self.raw, handle, op)
    }

    /// The shape (borrows).
    pub fn shape(&self) -> Result<Vec<usize>> {
        let dims = (self.raw.shape)(self.handle);
        if dims.rank == 0 {
            return Err(Error::host_op("shape"));
        }
        Ok(dims.to_vec())
    }

    /// A second reference to the same value (borrows).
    pub fn dup(&self) -> Result<Tensor<'a>> {
        self.then((self.raw.dup)(self.handle), "dup")
    }

    /// 0/1 samples, 1 with the per-element probability held in `self`.
    pub fn bernoulli(self) -> Result<Tensor<'a>> {
        let raw = self.raw;
        wrap(raw, (raw.bernoulli)(self.take()), "bernoulli")
    }

    pub fn unary(self, op: Unary) -> Result<Tensor<'a>> {
        let raw = self.raw;
        wrap(raw, (raw.unary)(self.take(), op as u32), "unary")
    }

    pub fn abs(self) -> Result<Tensor<'a>> {
        self.unary(Unary::Abs)
    }

    pub fn scalar(self, op: ScalarOp, value: f64) -> Result<Tensor<'a>> {
        let raw = self.raw;
        wrap(raw, (raw.scalar)(self.take(), op as u32, value), "scalar")
    }

    pub fn add_scalar(self, value: f64) -> Result<Tensor<'a>> {
        self.scalar(ScalarOp::Add, value)
    }

    pub fn mul_scalar(self, value: f64) -> Result<Tensor<'a>> {
        self.scalar(ScalarOp::Mul, value)
    }

    /// `value - self`.
    pub fn rsub_scalar(self, value: f64) -> Result<Tensor<'a>> {
        self.scalar(ScalarOp::RSub, value)
    }

    /// `value / self`.
    pub fn rdiv_scalar(self, value: f64) -> Result<Tensor<'a>> {
        self.scalar(ScalarOp::RDiv, value)
    }

    pub fn binary(self, op: BinaryOp, other: Tensor<'a>) -> Result<Tensor<'a>> {
        let raw = self.raw;
        let (a, b) = (self.take(), other.take());
        wrap(raw, (raw.binary)(a, b, op as u32), "binary")
    }

    pub fn add(self, other: Tensor<'a>) -> Result<Tensor<'a>> {
        self.binary(BinaryOp::Add, other)
    }

    pub fn sub(self, other: Tensor<'a>) -> Result<Tensor<'a>> {
        self.binary(BinaryOp::Sub, other)
    }

    pub fn mul(self, other: Tensor<'a>) -> Result<Tensor<'a>> {
        self.binary(BinaryOp::Mul, other)
    }

    pub fn div(self, other: Tensor<'a>) -> Result<Tensor<'a>> {
        self.binary(BinaryOp::Div, other)
    }

    pub fn clamp(self, min: f64, max: f64) -> Result<Tensor<'a>> {
        let raw = self.raw;
        wrap(raw, (raw.clamp)(self.take(), min, max), "clamp")
    }

    /// Reduces over `dims`; with `keepdim` the reduced dimensions stay as size 1.
    pub fn reduce(self, op: Reduce, dims: &[usize], keepdim: bool) -> Result<Tensor<'a>> {
        let mut mask = 0u32;
        for &d in dims {
            if d >= 32 {
                return Err(Error::new(format!("reduce: dimension {d} out of range")));
            }
            mask |= 1 << d;
        }
        let raw = self.raw;
        wrap(
            raw,
            (raw.reduce)(self.take(), op as u32, mask, keepdim),
            "reduce",
        )
    }

    /// Sum over every element, as a tensor of shape `[1; rank]`.
    pub fn sum_all(self) -> Result<Tensor<'a>> {
        let rank = self.shape()?.len();
        let all: Vec<usize> = (0..rank).collect();
        self.reduce(Reduce::Sum, &all, true)
    }

    pub fn softmax(self, dim: usize) -> Result<Tensor<'a>> {
        let raw = self.raw;
        wrap(raw, (raw.softmax)(self.take(), dim as u32), "softmax")
    }

    /// Pooling over the last two dimensions.
    pub fn pool2d(
        self,
        kind: Pool,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<Tensor<'a>> {
        let args = PoolArgs {
            kernel: kernel.map(|v| v as u32),
            stride: stride.map(|v| v as u32),
            padding: padding.map(|v| v as u32),
        };
        let raw = self.raw;
        wrap(raw, (raw.pool2d)(self.take(), kind as u32, args), "pool2d")
    }

    /// Pooling along one dimension.
    pub fn pool1d(
        self,
        kind: Pool,
        dim: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Tensor<'a>> {
        let args = PoolArgs {
            kernel: [kernel as u32, 1],
            stride: [stride as u32, 1],
            padding: [padding as u32, 0],
        };
        let raw = self.raw;
        wrap(
            raw,
            (raw.pool1d)(self.take(), kind as u32, dim as u32, args),
            "pool1d",
        )
    }

    /// Pads each dimension with `(before, after)` elements of `value`.
    pub fn pad(self, before: &[usize], after: &[usize], value: f64) -> Result<Tensor<'a>> {
        let (b, a) = (dims(before)?, dims(after)?);
        let raw = self.raw;
        wrap(raw, (raw.pad)(self.take(), b, a, value), "pad")
    }

    /// Keeps `[start, end)` of each dimension.
    pub fn slice(self, start: &[usize], end: &[usize]) -> Result<Tensor<'a>> {
        let (s, e) = (dims(start)?, dims(end)?);
        let raw = self.raw;
        wrap(raw, (raw.slice)(self.take(), s, e), "slice")
    }

    pub fn reshape(self, shape: &[usize]) -> Result<Tensor<'a>> {
        let d = dims(shape)?;
        let raw = self.raw;
        wrap(raw, (raw.reshape)(self.take(), d), "reshape")
    }

    /// Broadcasts to `shape`.
    pub fn expand(self, shape: &[usize]) -> Result<Tensor<'a>> {
        let d = dims(shape)?;
        let raw = self.raw;
        wrap(raw, (raw.expand)(self.take(), d), "expand")
    }

    pub fn permute(self, axes: &[usize]) -> Result<Tensor<'a>> {
        let d = dims(axes)?;
        let raw = self.raw;
        wrap(raw, (raw.permute)(self.take(), d), "permute")
    }

    // Added in interface 1.1.
    /// The `k`-th smallest value (1-based) along `dim`, the dimension kept as size 1.
    /// Needs a host of interface 1.1 or later.
    pub fn kth_smallest(self, k: usize, dim: usize) -> Result<Tensor<'a>> {
        let needed = std::mem::offset_of!(HostOps, kth_smallest)
            + std::mem::size_of::<extern "C" fn(Handle, u64, u32) -> Handle>();
        if (self.raw.header.size as usize) < needed {
            return Err(Error::new(format!(
                "kth_smallest needs host interface 1.1, the host has {}.{}",
                self.raw.header.major, self.raw.header.minor
            )));
        }
        let raw = self.raw;
        wrap(
            raw,
            (raw.kth_smallest)(self.take(), k as u64, dim as u32),
            "kth_smallest",
        )
    }

    // Added in interface 1.3.
    /// Rounds down to an integer.
    pub fn floor(self) -> Result<Tensor<'a>> {
        self.unary(Unary::Floor)
    }

    /// Rounds up to an integer.
    pub fn ceil(self) -> Result<Tensor<'a>> {
        self.unary(Unary::Ceil)
    }

    /// Rounds to the nearest integer, halves to even (2.5 → 2, 3.5 → 4).
    pub fn round(self) -> Result<Tensor<'a>> {
        self.unary(Unary::Round)
    }

    /// `self mod divisor` with the sign of the divisor: `7 mod 3 = 1`,
    /// `-1 mod 3 = 2`.
    pub fn rem_scalar(self, divisor: f64) -> Result<Tensor<'a>> {
        self.scalar(ScalarOp::Rem, divisor)
    }

    /// Element-wise `self mod other`, broadcasting, with the sign of `other`.
    pub fn rem(self, other: Tensor<'a>) -> Result<Tensor<'a>> {
        self.binary(BinaryOp::Rem, other)
    }

    /// `torch.gather`: `out[.., i, ..] = self[.., index[.., i, ..], ..]` along
    /// `dim`. `index` holds integers (as floats) in `0..len(dim)`, has this
    /// tensor's rank and broadcasts to it along the other dimensions; the
    /// result has `index`'s length along `dim`.
    pub fn gather(self, dim: usize, index: Tensor<'a>) -> Result<Tensor<'a>> {
        needs(self.raw, ADDED_IN_1_3, "gather")?;
        let raw = self.raw;
        let (x, i) = (self.take(), index.take());
        wrap(raw, (raw.gather)(x, i, dim as u32), "gather")
    }

    /// The slices at the positions `index` (a rank-1 tensor of integers, as
    /// floats) along `dim`, in that order; repeats allowed.
    pub fn index_select(self, dim: usize, index: Tensor<'a>) -> Result<Tensor<'a>> {
        needs(self.raw, ADDED_IN_1_3, "index_select")?;
        let raw = self.raw;
        let (x, i) = (self.take(), index.take());
        wrap(raw, (raw.index_select)(x, i, dim as u32), "index_select")
    }

    /// Interface 1.4. For seeds with probabilities `q = clamp(γ · self, 0,
    /// q_max)` (`gamma` one element) grown over windows of `b` along
    /// `block_dims` (`b / 2` before, as the expansion's): the mean over
    /// positions (those where `valid` is 1, if given) of the kept probability
    /// `k = Π (1 − q)` over each position's window, and of `k · R`, `R` the
    /// window sum of `self / (1 − q)` over unsaturated seeds (`exact`) or of
    /// `self`; each a one-element tensor of this rank. One host pass.
    pub fn block_keep(
        &self,
        gamma: &Tensor<'a>,
        valid: Option<&Tensor<'a>>,
        block_dims: &[usize],
        b: usize,
        q_max: f64,
        exact: bool,
    ) -> Result<(Tensor<'a>, Tensor<'a>)> {
        needs(self.raw, ADDED_IN_1_4, "block_keep")?;
        let rank = self.shape()?.len();
        let raw = self.raw;
        let args = BlockKeepArgs {
            dims: block_dims.iter().fold(0, |m, &d| m | (1 << d)),
            block: b as u32,
            q_max,
            exact,
            masked: valid.is_some(),
        };
        let (s, g) = (self.dup()?.take(), gamma.dup()?.take());
        let v = match valid {
            Some(v) => v.dup()?.take(),
            None => Handle::ERROR,
        };
        let both = wrap(raw, (raw.block_keep)(s, g, v, args), "block_keep")?;
        let one = vec![1; rank];
        let m = both.dup()?.slice(&[0], &[1])?.reshape(&one)?;
        let fall = both.slice(&[1], &[2])?.reshape(&one)?;
        Ok((m, fall))
    }

    /// Interface 1.5. The block mask whose seeds have probabilities
    /// `q = clamp(γ · self, 0, 1)` (`gamma` one element): Bernoulli seeds from
    /// the host's seeded RNG, each grown into a block of `b` along
    /// `block_dims` (the window of [`Pool::Max`] with padding `b / 2`, cropped
    /// to size), `keep = 1 − dropped`, rescaled to
    /// `keep · numel / (Σ keep + eps)`. Consumes `self`. One host pass.
    pub fn block_mask(
        self,
        gamma: &Tensor<'a>,
        block_dims: &[usize],
        b: usize,
        eps: f64,
    ) -> Result<Tensor<'a>> {
        needs(self.raw, ADDED_IN_1_5, "block_mask")?;
        let raw = self.raw;
        let args = BlockMaskArgs {
            dims: block_dims.iter().fold(0, |m, &d| m | (1 << d)),
            block: b as u32,
            eps,
        };
        let g = gamma.dup()?.take();
        wrap(raw, (raw.block_mask)(self.take(), g, args), "block_mask")
    }

    /// Interface 1.5. `self / (mean + eps)` with the mean over every dim from
    /// `group_from` on (one group per index of the dims before it), and 1
    /// throughout a group whose mean is 0 (nothing to tell apart). Consumes
    /// `self`. One host pass.
    pub fn mean_one(self, group_from: usize, eps: f64) -> Result<Tensor<'a>> {
        needs(self.raw, ADDED_IN_1_5, "mean_one")?;
        let raw = self.raw;
        wrap(
            raw,
            (raw.mean_one)(self.take(), group_from as u32, eps),
            "mean_one",
        )
    }
}
