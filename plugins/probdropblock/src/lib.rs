//! ProbDropBlock (Zhao, Dada, Gao, Mullins, ACML 2023): DropBlock whose seed
//! probability follows the normalised feature salience. See `plugins/README.md`
//! for the default reading and the switches for the competing ones.

#![forbid(unsafe_code)]

use plugin_api::{Ctx, Error, Ops, ParamSpec, Params, Result, Strategy, Tensor};
use strategy_kit::ProbConfig;

pub struct ProbDropBlock {
    config: ProbConfig,
}

impl Strategy for ProbDropBlock {
    const NAME: &'static str = "probdropblock";
    const DESCRIPTION: &'static str =
        "ProbDropBlock (Revisiting Structured Dropout, ACML 2023) for \
        [N, C, H, W]: salience s = |x| (or its b-window mean), normalised to mean 1 per group \
        (s_hat); drop = \"low\" uses max(s) - s instead; seed probability q = clamp(gamma * s_hat, \
        0, 1) with one gamma per call that drops DropBlock's expected fraction (gamma = \
        \"matched\"; or DropBlock's rate, or p/b^2); Bernoulli(q) seeds at every position (valid_only \
        restricts them); bxb max-pool expansion; m = keep * numel / (sum(keep) + 1e-6). \
        mode = \"topk\" is the author code: the floor(numel p / b^2) lowest of \
        s + 0.1 U(0,1) mean(s) are seeds, expanded by an average pool. The paper gives no exact \
        formula: this is one reading, with switches for the others.";

    fn params() -> Vec<ParamSpec> {
        ProbConfig::schema(7)
    }

    fn new(params: &Params) -> Result<Self> {
        Ok(Self {
            config: ProbConfig::from_params(params)?,
        })
    }

    fn mask<'a>(&self, ops: &Ops<'a>, x: Tensor<'a>, ctx: &Ctx) -> Result<Tensor<'a>> {
        let shape = x.shape()?;
        if shape.len() != 4 {
            return Err(Error::new(format!(
                "probdropblock needs [N, C, H, W], got {shape:?}"
            )));
        }
        self.config.mask(ops, x, ctx.p, &[2, 3])
    }
}

plugin_api::export_strategy!(ProbDropBlock);
