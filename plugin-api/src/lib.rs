//! # plugin-api: write a dropout strategy for probdrop-tui
//!
//! A strategy describes a mask; the host computes it. You implement [`Strategy`]
//! with the tensor operations of [`Ops`]/[`Tensor`] (run by the host on whatever
//! device the training uses) and export it with [`export_strategy!`]:
//!
//! ```ignore
//! use plugin_api::{Ctx, Ops, ParamSpec, Params, Result, Strategy, Tensor};
//!
//! pub struct MyDropout { scale: f64 }
//!
//! impl Strategy for MyDropout {
//!     const NAME: &'static str = "my-dropout";
//!     const DESCRIPTION: &'static str = "Element-wise dropout, as a worked example.";
//!     fn params() -> Vec<ParamSpec> {
//!         vec![ParamSpec::float("scale", 1.0).range(0.0, 10.0).help("extra factor")]
//!     }
//!     fn new(params: &Params) -> Result<Self> {
//!         Ok(Self { scale: params.f64("scale")? })
//!     }
//!     fn mask<'a>(&self, ops: &Ops<'a>, x: Tensor<'a>, ctx: &Ctx) -> Result<Tensor<'a>> {
//!         let keep = ops.bernoulli_scalar(&x.shape()?, 1.0 - ctx.p)?;
//!         keep.mul_scalar(self.scale / (1.0 - ctx.p))
//!     }
//! }
//! plugin_api::export_strategy!(MyDropout);
//! ```
//!
//! The returned tensor is the multiplicative keep-mask `m` (rescale included),
//! broadcastable to `x`; the host computes `y = x * m`. The export glue already
//! returns the identity when not training or when `p == 0`, checks that `p` is in
//! `[0, 1]`, validates parameters against [`Strategy::params`], and turns panics
//! into errors so they never cross the library boundary.

#![deny(unsafe_code)]

// SAFETY: no unsafe code is written here; abi_stable's derives and
// `#[sabi_trait]` generate the unsafe impls of the ABI types (their layouts
// and the trait object's vtable), which is what makes them checkable at load.
#[allow(unsafe_code)]
pub mod abi;
mod ops;
mod params;

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RString, RVec};

pub use abi_stable;
pub use ops::{BinaryOp, Ops, Pool, Reduce, ScalarOp, Tensor, Unary};
pub use params::{
    closest, from_r_params, validate, ParamError, ParamKind, ParamSpec, Params, Value,
};

use abi::{Handle, MaskArgs, RInfo, RParam, StrategyBox, StrategyMod, StrategyModRef, StrategyObj};

/// This crate's version, which is the plugin interface version.
pub const INTERFACE_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Plugins and hosts of different major versions refuse each other.
pub const INTERFACE_MAJOR: u32 = parse_u32(env!("CARGO_PKG_VERSION_MAJOR"));
/// A host of minor `m` runs plugins built against any minor `<= m`.
pub const INTERFACE_MINOR: u32 = parse_u32(env!("CARGO_PKG_VERSION_MINOR"));

const fn parse_u32(text: &str) -> u32 {
    let bytes = text.as_bytes();
    let mut value = 0u32;
    let mut i = 0;
    while i < bytes.len() {
        value = value * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    value
}

/// An error from a strategy or a host op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    pub(crate) fn host_op(op: &str) -> Self {
        Self::new(format!("host op `{op}` failed"))
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<ParamError> for Error {
    fn from(e: ParamError) -> Self {
        Error::new(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the host tells a strategy about the current call.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The drop probability in force for this step (after the schedule).
    pub p: f64,
    pub training: bool,
    /// Optimiser step.
    pub step: u64,
    pub epoch: u64,
    /// Name of the model slot the mask is for.
    pub slot: String,
    /// The run's seed (the host also seeds its generator per call).
    pub seed: u64,
}

impl Ctx {
    /// A training-time context with everything but `p` and `seed` neutral.
    pub fn training(p: f64, seed: u64) -> Ctx {
        Ctx {
            p,
            training: true,
            step: 0,
            epoch: 0,
            slot: "test".into(),
            seed,
        }
    }

    /// Whether the mask is the identity without asking the strategy: outside
    /// training, or at `p == 0`.
    pub fn is_identity(&self) -> bool {
        !self.training || self.p == 0.0
    }
}

/// A dropout strategy. See the crate docs for an example.
pub trait Strategy: Sized + Send + Sync + 'static {
    /// Name used in experiment files (`strategy = "..."`).
    const NAME: &'static str;
    /// One paragraph: what the mask is, exactly.
    const DESCRIPTION: &'static str;
    /// The parameter schema.
    fn params() -> Vec<ParamSpec>;
    /// Builds the strategy from validated parameters (defaults filled in).
    fn new(params: &Params) -> Result<Self>;
    /// The keep-tensor for `x` (training, `0 < p <= 1`).
    fn mask<'a>(&self, ops: &Ops<'a>, x: Tensor<'a>, ctx: &Ctx) -> Result<Tensor<'a>>;
}

/// Metadata of a loaded strategy, owned by the host.
#[derive(Clone, Debug, PartialEq)]
pub struct Info {
    pub name: String,
    pub version: String,
    pub description: String,
    pub params: Vec<ParamSpec>,
}

impl Info {
    /// Copies metadata received over the ABI (strings are copied at once, so nothing
    /// points into the library afterwards).
    pub fn from_r(info: &RInfo) -> Result<Info, String> {
        Ok(Info {
            name: info.name.as_str().to_string(),
            version: info.version.as_str().to_string(),
            description: info.description.as_str().to_string(),
            params: info
                .params
                .iter()
                .map(params::ParamSpec::from_r)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Converts validated parameters for [`abi::StrategyMod::create`].
pub fn params_to_abi(params: &Params) -> RVec<RParam> {
    params.to_r()
}

/// The message of a caught panic (host and plugin side share it).
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> RResult<T, RString> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(e.message.into()),
        Err(payload) => {
            RResult::RErr(format!("plugin panicked in {what}: {}", panic_message(payload)).into())
        }
    }
}

struct Glue<S>(S);

impl<S: Strategy> StrategyObj for Glue<S> {
    fn mask(&self, args: MaskArgs<'_>) -> RResult<Handle, RString> {
        guarded("mask", || {
            let ops = Ops::new(args.ops)?;
            let x = ops.adopt(args.x);
            let ctx = Ctx {
                p: args.ctx.p,
                training: args.ctx.training,
                step: args.ctx.step,
                epoch: args.ctx.epoch,
                slot: args.ctx.slot.as_str().to_string(),
                seed: args.ctx.seed,
            };
            if !(0.0..=1.0).contains(&ctx.p) {
                return Err(Error::new(format!(
                    "drop rate p = {} is outside [0, 1]",
                    ctx.p
                )));
            }
            let mask = if ctx.is_identity() {
                // Identity: a single 1 broadcast over x.
                let rank = x.shape()?.len();
                ops.full(&vec![1; rank], 1.0)?
            } else {
                self.0.mask(&ops, x, &ctx)?
            };
            Ok(mask.into_handle())
        })
    }
}

#[doc(hidden)]
pub fn __info<S: Strategy>(version: &'static str) -> RResult<RInfo, RString> {
    guarded("info", || {
        Ok(RInfo {
            name: S::NAME.into(),
            version: version.into(),
            description: S::DESCRIPTION.into(),
            params: S::params().iter().map(|p| p.to_r()).collect(),
        })
    })
}

#[doc(hidden)]
pub fn __create<S: Strategy>(given: RVec<RParam>) -> RResult<StrategyBox, RString> {
    guarded("create", || {
        let params = validate(&S::params(), &from_r_params(&given))?;
        let strategy = S::new(&params)?;
        Ok(abi::StrategyObj_TO::from_value(Glue(strategy), TD_Opaque))
    })
}

#[doc(hidden)]
pub fn __module(
    info: extern "C" fn() -> RResult<RInfo, RString>,
    create: extern "C" fn(RVec<RParam>) -> RResult<StrategyBox, RString>,
) -> StrategyModRef {
    StrategyMod { info, create }.leak_into_prefix()
}

/// Exports a [`Strategy`] as the library's root module. Use once per plugin crate,
/// whose `Cargo.toml` has `crate-type = ["cdylib"]` and depends on `plugin-api`
/// and `abi_stable`.
#[macro_export]
macro_rules! export_strategy {
    ($strategy:ty) => {
        #[::abi_stable::export_root_module]
        pub fn probdrop_strategy_root_module() -> $crate::abi::StrategyModRef {
            extern "C" fn info() -> $crate::abi_stable::std_types::RResult<
                $crate::abi::RInfo,
                $crate::abi_stable::std_types::RString,
            > {
                $crate::__info::<$strategy>(env!("CARGO_PKG_VERSION"))
            }
            extern "C" fn create(
                params: $crate::abi_stable::std_types::RVec<$crate::abi::RParam>,
            ) -> $crate::abi_stable::std_types::RResult<
                $crate::abi::StrategyBox,
                $crate::abi_stable::std_types::RString,
            > {
                $crate::__create::<$strategy>(params)
            }
            $crate::__module(info, create)
        }
    };
}
