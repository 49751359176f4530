//! ProbDropBlock1D: ProbDropBlock with blocks along one axis of `[N, T, D]`.

#![forbid(unsafe_code)]

use plugin_api::{Ctx, Error, Ops, ParamSpec, Params, Reduce, Result, Strategy, Tensor};
use strategy_kit::ProbConfig;

pub struct ProbDropBlock1d {
    config: ProbConfig,
    tokens: bool,
}

impl Strategy for ProbDropBlock1d {
    const NAME: &'static str = "probdropblock1d";
    const DESCRIPTION: &'static str = "ProbDropBlock1D for [N, T, D]: ProbDropBlock's algorithm \
        with blocks of b consecutive hidden units of one token (axis = \"hidden\", as the author \
        code; salience |x|, group \"channel\" = per sample and token) or of b whole tokens \
        (axis = \"tokens\"; a token's salience is the mean of |x| over its hidden units; groups \
        \"channel\" and \"sample\" are both per sample). gamma: one per call that drops \
        DropBlock1D's expected fraction (matched), DropBlock1D's p*L / (b (L-b+1)), or p/b.";

    fn params() -> Vec<ParamSpec> {
        let mut schema = ProbConfig::schema(4);
        schema.push(ParamSpec::choice("axis", &["hidden", "tokens"]).help(
            "hidden: blocks along one token's hidden units; tokens: whole consecutive tokens",
        ));
        schema
    }

    fn new(params: &Params) -> Result<Self> {
        Ok(Self {
            config: ProbConfig::from_params(params)?,
            tokens: params.choice("axis")? == "tokens",
        })
    }

    fn mask<'a>(&self, ops: &Ops<'a>, x: Tensor<'a>, ctx: &Ctx) -> Result<Tensor<'a>> {
        let shape = x.shape()?;
        if shape.len() != 3 {
            return Err(Error::new(format!(
                "probdropblock1d needs [N, T, D], got {shape:?}"
            )));
        }
        if self.tokens {
            // [N, T, 1]: one salience per token.
            let token_salience = x.abs()?.reduce(Reduce::Mean, &[2], true)?;
            self.config.mask(ops, token_salience, ctx.p, &[1])
        } else {
            self.config.mask(ops, x, ctx.p, &[2])
        }
    }
}

plugin_api::export_strategy!(ProbDropBlock1d);
