//! The raw types that cross the library boundary.
//!
//! Plugin authors never touch these: they use [`crate::Ops`], [`crate::Tensor`] and
//! [`crate::export_strategy!`]. Everything here is `#[repr(C)]`; everything but the
//! host-ops table is layout-checked by `abi_stable` when a library is loaded.

#![allow(non_local_definitions)] // emitted by `#[sabi_trait]`

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// An opaque reference to a tensor in the host's per-call arena. `Handle(0)` is the
/// error value every op returns on failure.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Handle(pub u64);

impl Handle {
    /// The value an op returns when it fails.
    pub const ERROR: Handle = Handle(0);

    /// Whether this is the error value.
    pub fn is_error(self) -> bool {
        self.0 == 0
    }
}

/// Largest rank a shape can carry across the boundary.
pub const MAX_RANK: usize = 8;

/// A shape (or any per-dimension list) as it crosses the boundary. `rank == 0` from
/// `shape` means the handle was invalid.
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub struct RawDims {
    pub rank: u32,
    pub dims: [u64; MAX_RANK],
}

impl RawDims {
    /// Packs a slice; `None` when it is longer than [`MAX_RANK`].
    pub fn from_slice(values: &[usize]) -> Option<Self> {
        if values.len() > MAX_RANK {
            return None;
        }
        let mut dims = [0u64; MAX_RANK];
        for (slot, &v) in dims.iter_mut().zip(values) {
            *slot = v as u64;
        }
        Some(Self {
            rank: values.len() as u32,
            dims,
        })
    }

    /// The used part, as `usize`s.
    pub fn to_vec(&self) -> Vec<usize> {
        let rank = (self.rank as usize).min(MAX_RANK);
        self.dims[..rank].iter().map(|&d| d as usize).collect()
    }
}

/// Kernel/stride/padding of a pooling op over one or two dimensions.
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub struct PoolArgs {
    pub kernel: [u32; 2],
    pub stride: [u32; 2],
    pub padding: [u32; 2],
}

/// ProbDropBlock's kept-probability moments (interface 1.4, see
/// [`HostOps::block_keep`]).
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq)]
pub struct BlockKeepArgs {
    /// The block dimensions, as a bit mask of logical dimensions.
    pub dims: u32,
    /// The window `b` along each (`b / 2` before, as the expansion's).
    pub block: u32,
    /// Seed probabilities are clamped to `[0, q_max]`.
    pub q_max: f64,
    /// The slope's window sum of `s / (1 − q)` over unsaturated seeds (else of `s`).
    pub exact: bool,
    /// Means over the positions where the `valid` handle is 1 (else all).
    pub masked: bool,
}

/// ProbDropBlock's mask from its seed probabilities (interface 1.5, see
/// [`HostOps::block_mask`]).
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq)]
pub struct BlockMaskArgs {
    /// The block dimensions, as a bit mask of logical dimensions.
    pub dims: u32,
    /// The block width `b` along each (`b / 2` before, cropped to size).
    pub block: u32,
    /// The rescale's small constant: `keep · numel / (Σ keep + eps)`.
    pub eps: f64,
}

/// The header every host-ops table starts with. A plugin reads `size` before any
/// op that a newer minor version added, so an older host never has its table read
/// past its end.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OpsHeader {
    /// `size_of` the host's table, in bytes.
    pub size: u64,
    pub major: u32,
    pub minor: u32,
}

/// The table of tensor operations the host lends a plugin for one `mask` call.
///
/// Ownership, stated once: every op **consumes** the handles it is given (they are
/// invalid afterwards, whether the op succeeds or not) and returns a new handle,
/// except `shape` (borrows) and `dup` (borrows, returns a second reference).
/// `release` gives a handle back. Handles live until the end of the `mask` call.
/// Dimension indices are logical (0 = first dimension of that tensor).
///
/// New ops are only ever appended (a minor version); each later field says
/// which minor added it. tests/fixtures/plugin-api-1.0 keeps the 1.0 crate.
#[repr(C)]
pub struct HostOps {
    pub header: OpsHeader,
    pub shape: extern "C" fn(Handle) -> RawDims,
    pub release: extern "C" fn(Handle),
    pub dup: extern "C" fn(Handle) -> Handle,
    /// A tensor of `shape` filled with `value`.
    pub full: extern "C" fn(RawDims, f64) -> Handle,
    /// Uniform `[0, 1)` samples from the host's seeded generator.
    pub uniform: extern "C" fn(RawDims) -> Handle,
    /// 1.0 where a fresh uniform sample is below the probability tensor, else 0.0.
    pub bernoulli: extern "C" fn(Handle) -> Handle,
    /// [`crate::Unary`] code.
    pub unary: extern "C" fn(Handle, u32) -> Handle,
    /// [`crate::ScalarOp`] code; comparisons return 0.0/1.0.
    pub scalar: extern "C" fn(Handle, u32, f64) -> Handle,
    /// [`crate::BinaryOp`] code; both sides broadcast.
    pub binary: extern "C" fn(Handle, Handle, u32) -> Handle,
    pub clamp: extern "C" fn(Handle, f64, f64) -> Handle,
    /// [`crate::Reduce`] code over the dimensions set in the bit mask.
    pub reduce: extern "C" fn(Handle, u32, u32, bool) -> Handle,
    pub softmax: extern "C" fn(Handle, u32) -> Handle,
    /// [`crate::Pool`] code over the last two dimensions.
    pub pool2d: extern "C" fn(Handle, u32, PoolArgs) -> Handle,
    /// [`crate::Pool`] code over one dimension (only `kernel[0]` etc. are read).
    pub pool1d: extern "C" fn(Handle, u32, u32, PoolArgs) -> Handle,
    /// Pads each dimension by (before, after) elements of `value`.
    pub pad: extern "C" fn(Handle, RawDims, RawDims, f64) -> Handle,
    /// Keeps `[start, end)` of each dimension.
    pub slice: extern "C" fn(Handle, RawDims, RawDims) -> Handle,
    pub reshape: extern "C" fn(Handle, RawDims) -> Handle,
    /// Broadcasts size-1 dimensions (and missing leading ones) to `shape`.
    pub expand: extern "C" fn(Handle, RawDims) -> Handle,
    pub permute: extern "C" fn(Handle, RawDims) -> Handle,
    // Added in interface 1.1.
    /// The `k`-th smallest value (1-based) along `dim`, dimension kept.
    pub kth_smallest: extern "C" fn(Handle, u64, u32) -> Handle,
    // Added in interface 1.2.
    /// Which positions of this call's input are real (1.0) and which are padding
    /// (0.0), broadcastable to the input (`[N, T, 1]` for a `[N, T, D]` input,
    /// `[N, 1, T, 1]` for attention heads `[N, H, T, d]`). The error handle when
    /// every position is real (images; text without padding).
    pub valid: extern "C" fn() -> Handle,
    // Added in interface 1.3 (with the Floor, Ceil and Round unary codes and
    // the Rem scalar and binary codes).
    /// A tensor of `shape` holding each position's index along `dim` (0, 1, …).
    pub arange: extern "C" fn(RawDims, u32) -> Handle,
    /// Integers drawn uniformly from `[lo, hi)` by the host's seeded generator.
    pub randint: extern "C" fn(RawDims, i64, i64) -> Handle,
    /// `(cond, a, b)`: `a` where `cond` is non-zero, else `b`; all three broadcast.
    pub select: extern "C" fn(Handle, Handle, Handle) -> Handle,
    /// The tensors joined along a dimension; their other dimensions are equal.
    pub concat: for<'s> extern "C" fn(RSlice<'s, Handle>, u32) -> Handle,
    /// `(x, index, dim)`: `out[.., i, ..] = x[.., index[.., i, ..], ..]` along
    /// `dim`; `index` has x's rank and broadcasts to x along the other dims.
    pub gather: extern "C" fn(Handle, Handle, u32) -> Handle,
    /// `(x, index, dim)`: the slices of `x` at the positions of the rank-1
    /// `index` along `dim`, in that order.
    pub index_select: extern "C" fn(Handle, Handle, u32) -> Handle,
    // Added in interface 1.4.
    /// `(s, gamma, valid, args)`: for seeds with probabilities
    /// `q = clamp(gamma · s, 0, q_max)` (`gamma` one element) grown over
    /// windows of `block` along `dims`, a `[2]` tensor: the mean over positions
    /// of the kept probability `k = Π (1 − q)` over each position's window, and
    /// of `k · R`, `R` the window sum of `s / (1 − q)` over seeds below
    /// `q_max` (`exact`) or of `s`; over the positions where `valid` is 1 when
    /// `masked`. One pass where `log`, window sums and `exp` would take ten.
    pub block_keep: extern "C" fn(Handle, Handle, Handle, BlockKeepArgs) -> Handle,
    // Added in interface 1.5.
    /// `(s, gamma, args)`: Bernoulli seeds with probabilities
    /// `q = clamp(gamma · s, 0, 1)` (`gamma` one element) from the host's
    /// seeded RNG, each grown into a block of `block` along `dims` (the
    /// expansion's window), `keep = 1 − dropped`, rescaled to
    /// `keep · numel / (Σ keep + eps)`. One pass where seven ops take one each.
    pub block_mask: extern "C" fn(Handle, Handle, BlockMaskArgs) -> Handle,
    /// `(t, group_from, eps)`: `t / (mean + eps)`, the mean over the dims from
    /// `group_from` on (one per index of the dims before), and 1 throughout a
    /// group whose mean is 0. One pass where five ops take one each.
    pub mean_one: extern "C" fn(Handle, u32, f64) -> Handle,
}

/// What the host tells a strategy about this call.
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug)]
pub struct MaskCtx<'a> {
    /// The drop rate in force for this step, after the schedule.
    pub p: f64,
    pub training: bool,
    pub step: u64,
    pub epoch: u64,
    pub slot: RStr<'a>,
    pub seed: u64,
}

/// The arguments of one `mask` call.
#[repr(C)]
#[derive(StableAbi)]
pub struct MaskArgs<'a> {
    // SAFETY: the table is opaque to abi_stable's layout check on purpose: a newer
    // host hands out a longer table, which abi_stable would refuse. Compatibility is
    // ours to keep instead: fields are only ever appended, `header` carries the
    // host's size and version, the host refuses plugins of another major or a newer
    // minor (so a plugin never reads past the host's table), and the safe wrapper
    // checks `header.size` before any op added after 1.0.
    #[sabi(unsafe_opaque_field)]
    pub ops: &'a HostOps,
    pub x: Handle,
    pub ctx: MaskCtx<'a>,
}

/// A parameter value as it crosses the boundary.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub enum RValue {
    Float(f64),
    Int(i64),
    Bool(bool),
    Str(RString),
}

#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct RParamSpec {
    pub name: RString,
    /// [`crate::ParamKind`] as its code.
    pub kind: u8,
    pub default: RValue,
    pub min: ROption<f64>,
    pub max: ROption<f64>,
    pub choices: RVec<RString>,
    pub help: RString,
}

#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct RInfo {
    pub name: RString,
    pub version: RString,
    pub description: RString,
    pub params: RVec<RParamSpec>,
}

#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct RParam {
    pub name: RString,
    pub value: RValue,
}

/// A constructed strategy, owned by the host.
#[sabi_trait]
pub trait StrategyObj: Send + Sync {
    /// Returns the keep-tensor handle, or an error message. Never panics.
    fn mask(&self, args: MaskArgs<'_>) -> RResult<Handle, RString>;
}

/// The boxed trait object the host keeps.
pub type StrategyBox = StrategyObj_TO<'static, RBox<()>>;

/// The root module every strategy library exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = StrategyModRef)))]
#[sabi(missing_field(panic))]
pub struct StrategyMod {
    pub info: extern "C" fn() -> RResult<RInfo, RString>,
    #[sabi(last_prefix_field)]
    pub create: extern "C" fn(RVec<RParam>) -> RResult<StrategyBox, RString>,
}

impl RootModule for StrategyModRef {
    declare_root_module_statics! {StrategyModRef}
    const BASE_NAME: &'static str = "probdrop_strategy";
    const NAME: &'static str = "probdrop_strategy";
    // abi_stable refuses a library whose plugin-api major differs from the host's.
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
