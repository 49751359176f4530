//! A run's optimiser. Burn's `ModuleOptimizer` updates one parameter at a
//! time, about five kernels each (310 launches a step for ResNet-18); on
//! LibTorch the same update rules run as a few foreach kernels over every
//! parameter at once (issue 14), and on flex as one fused pass per parameter
//! (issue 35). All write the same checkpoint file, so a run resumes on any.

pub mod record;

#[cfg(feature = "tch")]
mod foreach;
mod fused;

use std::path::Path;

use burn::module::Module;
use burn::optim::{
    AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig,
    momentum::MomentumConfig,
};

use crate::experiment::{OptimizerKind, OptimizerSpec};

/// AdamW's epsilon (PyTorch's default; burn's is 1e-5).
const ADAMW_EPS: f64 = 1e-8;

/// An update rule with every setting resolved: the one home of the defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    Sgd {
        momentum: f64,
        nesterov: bool,
        weight_decay: f64,
    },
    AdamW {
        betas: [f64; 2],
        eps: f64,
        weight_decay: f64,
    },
}

impl Rule {
    pub fn of(spec: &OptimizerSpec) -> Self {
        match spec.kind {
            OptimizerKind::Sgd => Rule::Sgd {
                momentum: spec.momentum.unwrap_or(0.0),
                nesterov: spec.nesterov.unwrap_or(false),
                weight_decay: spec.weight_decay,
            },
            OptimizerKind::Adamw => Rule::AdamW {
                betas: spec.betas.unwrap_or([0.9, 0.999]),
                eps: ADAMW_EPS,
                weight_decay: spec.weight_decay,
            },
        }
    }

    /// Burn's per-parameter optimiser for this rule.
    fn per_parameter(self) -> ModuleOptimizer {
        match self {
            Rule::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => {
                let mut config = SgdConfig::new();
                if momentum > 0.0 {
                    // PyTorch's convention: no dampening.
                    config = config.with_momentum(Some(
                        MomentumConfig::new()
                            .with_momentum(momentum)
                            .with_dampening(0.0)
                            .with_nesterov(nesterov),
                    ));
                }
                if weight_decay > 0.0 {
                    config =
                        config.with_weight_decay(Some(WeightDecayConfig::new(weight_decay as f32)));
                }
                config.init()
            }
            Rule::AdamW {
                betas: [b1, b2],
                eps,
                weight_decay,
            } => AdamWConfig::new()
                .with_beta_1(b1 as f32)
                .with_beta_2(b2 as f32)
                .with_epsilon(eps as f32)
                .with_weight_decay(weight_decay as f32)
                .init(),
        }
    }
}

/// How the parameters are updated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stepping {
    /// Burn's ModuleOptimizer, parameter by parameter (any backend).
    PerParameter,
    /// Every parameter at once with LibTorch's foreach kernels.
    Foreach,
    /// One pass per parameter, in place, on flex.
    Fused,
}

impl Stepping {
    /// The backend's own: foreach on LibTorch, fused on flex.
    pub fn best_for(backend: crate::experiment::BackendChoice) -> Self {
        match backend {
            crate::experiment::BackendChoice::Libtorch if cfg!(feature = "tch") => {
                Stepping::Foreach
            }
            crate::experiment::BackendChoice::Flex => Stepping::Fused,
            _ => Stepping::PerParameter,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Stepping::PerParameter => "per-parameter",
            Stepping::Foreach => "foreach",
            Stepping::Fused => "fused",
        }
    }
}

#[derive(Clone)]
pub enum RunOptimizer {
    PerParameter(ModuleOptimizer),
    #[cfg(feature = "tch")]
    Foreach(foreach::ForeachOptimizer),
    Fused(fused::FusedOptimizer),
}

impl RunOptimizer {
    pub fn new(rule: Rule, stepping: Stepping) -> Self {
        match stepping {
            #[cfg(feature = "tch")]
            Stepping::Foreach => RunOptimizer::Foreach(foreach::ForeachOptimizer::new(rule)),
            Stepping::Fused => RunOptimizer::Fused(fused::FusedOptimizer::new(rule)),
            _ => RunOptimizer::PerParameter(rule.per_parameter()),
        }
    }

    /// One update of `model` from `grads` at learning rate `lr`.
    pub fn step<M: Module>(&mut self, lr: f64, model: M, grads: GradientsParams) -> M {
        match self {
            RunOptimizer::PerParameter(o) => o.step(lr, model, grads),
            #[cfg(feature = "tch")]
            RunOptimizer::Foreach(o) => o.step(lr, model, grads),
            RunOptimizer::Fused(o) => o.step(lr, model, grads),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        match self {
            RunOptimizer::PerParameter(o) => o.save(path).map_err(|e| format!("{e:?}")),
            #[cfg(feature = "tch")]
            RunOptimizer::Foreach(o) => record::save(&o.to_record(), path),
            RunOptimizer::Fused(o) => record::save(&o.to_record(), path),
        }
    }

    pub fn load(self, path: &Path) -> Result<Self, String> {
        Ok(match self {
            RunOptimizer::PerParameter(o) => {
                RunOptimizer::PerParameter(o.load(path).map_err(|e| format!("{e:?}"))?)
            }
            #[cfg(feature = "tch")]
            RunOptimizer::Foreach(o) => RunOptimizer::Foreach(o.with_record(record::load(path)?)),
            RunOptimizer::Fused(o) => RunOptimizer::Fused(o.with_record(record::load(path)?)),
        })
    }
}
