//! A complete strategy plugin: "stripes" drops whole columns of each feature map,
//! each column with probability `p`, and rescales so the expectation is kept.
//! Copy this directory into `plugins/`, rename it, and change `mask`.

#![forbid(unsafe_code)]

use plugin_api::{Ctx, Error, Ops, ParamSpec, Params, Result, Strategy, Tensor};

pub struct Stripes {
    /// Drop rows instead of columns.
    rows: bool,
}

impl Strategy for Stripes {
    // The name experiment files use: `strategy = "stripes"`.
    const NAME: &'static str = "stripes";
    const DESCRIPTION: &'static str = "Drops whole columns (or rows) of each [N, C, H, W] map with \
        probability p; m = keep / (1 - p).";

    fn params() -> Vec<ParamSpec> {
        vec![ParamSpec::bool("rows", false).help("drop rows instead of columns")]
    }

    fn new(params: &Params) -> Result<Self> {
        Ok(Stripes {
            rows: params.bool("rows")?,
        })
    }

    fn mask<'a>(&self, ops: &Ops<'a>, x: Tensor<'a>, ctx: &Ctx) -> Result<Tensor<'a>> {
        // Called only when training with 0 < p <= 1; the host handles eval and p = 0.
        let shape = x.shape()?;
        let [n, c, h, w] = shape[..] else {
            return Err(Error::new(format!("stripes needs [N, C, H, W], got {shape:?}")));
        };
        // One draw per column (or row), broadcast over the other axis by the host.
        let mask_shape = if self.rows { [n, c, h, 1] } else { [n, c, 1, w] };
        let keep = ops.bernoulli_scalar(&mask_shape, 1.0 - ctx.p)?;
        if ctx.p >= 1.0 {
            return Ok(keep);
        }
        keep.mul_scalar(1.0 / (1.0 - ctx.p))
    }
}

plugin_api::export_strategy!(Stripes);
