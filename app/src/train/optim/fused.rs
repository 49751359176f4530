//! The fused optimiser on flex: burn-optim's SGD and AdamW update rules as
//! one pass over each parameter, in place, split over the cores. burn-optim
//! runs 3–8 flex ops per parameter, each a pass over it with a fresh buffer;
//! here a parameter's value, gradient and state are read once and written
//! once. Each element follows burn-optim's operations in their order, in
//! f32, so that the two agree to rounding and their checkpoints (the same
//! file, `record.rs`) resume on either.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{DType, Tensor, TensorData};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::Rule;
use super::record::{Moments, ParamState, StateRecord};

/// Elements one task updates: long enough to cover its cost, and a large
/// parameter still spreads over every core.
const CHUNK: usize = 1 << 14;

/// One parameter's state.
#[derive(Clone)]
enum Live {
    /// No step taken yet (or SGD without momentum).
    Fresh,
    Velocity(Vec<f32>),
    Adam {
        time: u64,
        first: Vec<f32>,
        second: Vec<f32>,
    },
}

#[derive(Clone)]
struct Entry {
    rank: usize,
    /// The parameter's shape: the moments are recorded in it, as burn does.
    shape: Vec<usize>,
    path: String,
    live: Live,
}

#[derive(Clone)]
pub struct FusedOptimizer {
    rule: Rule,
    states: HashMap<ParamId, Entry>,
}

/// Updates each parameter that has a gradient, as the mapper meets it.
struct Update<'a> {
    optim: &'a mut FusedOptimizer,
    grads: &'a mut GradientsParams,
    lr: f64,
    path: Vec<String>,
}

impl ModuleMapper for Update<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(grad) = self.grads.remove::<D>(param.id) else {
            return param;
        };
        let (id, old, mapper) = param.consume();
        let (require_grad, checkpointing) =
            (old.is_require_grad(), old.gradient_checkpointing_strategy());
        let mut value = flex_of(old.inner());
        let grad = flex_of(grad);
        let entry = self.optim.states.entry(id).or_insert_with(|| Entry {
            rank: D,
            shape: value.layout().shape().to_vec(),
            path: self.path.join("."),
            live: Live::Fresh,
        });
        entry.live = step(
            self.optim.rule,
            self.lr,
            value.storage_mut::<f32>(),
            grad.storage::<f32>(),
            std::mem::replace(&mut entry.live, Live::Fresh),
        );
        let mut value = Tensor::from_inner(Tensor::<D>::from_primitive::<Flex>(value));
        if let Some(strategy) = checkpointing {
            value = value.with_gradient_checkpointing_strategy(strategy);
        }
        if require_grad {
            value = value.require_grad();
        }
        Param::from_mapped_value(id, value, mapper)
    }
}

/// A flex f32 tensor laid out from its start, in order (copied if it is not).
fn flex_of<const D: usize>(t: Tensor<D>) -> FlexTensor {
    let flex = t
        .try_into_primitive::<Flex>()
        .expect("the fused optimiser runs on flex tensors only");
    assert_eq!(flex.dtype(), DType::F32, "the fused optimiser updates f32");
    if flex.is_contiguous() && flex.layout().start_offset() == 0 {
        flex
    } else {
        flex.to_contiguous()
    }
}

/// Updates `value` from `grad` under `rule`; the state after the step.
fn step(rule: Rule, lr: f64, value: &mut [f32], grad: &[f32], live: Live) -> Live {
    let len = value.len();
    match rule {
        Rule::Sgd { momentum: 0.0, .. } => {
            let update = |(v, g): (&mut [f32], &[f32])| sgd(rule, lr, v, g, None, false);
            par_zip(value, grad).for_each(update);
            Live::Fresh
        }
        Rule::Sgd { .. } => {
            let (mut velocity, had) = match live {
                Live::Velocity(v) => (v, true),
                _ => (vec![0.0; len], false),
            };
            par_zip(value, grad)
                .zip(velocity.par_chunks_mut(CHUNK))
                .for_each(|((v, g), m)| sgd(rule, lr, v, g, Some(m), had));
            Live::Velocity(velocity)
        }
        Rule::AdamW { .. } => {
            let (time, mut first, mut second) = match live {
                Live::Adam {
                    time,
                    first,
                    second,
                } => (time, first, second),
                _ => (0, vec![0.0; len], vec![0.0; len]),
            };
            let time = time + 1;
            par_zip(value, grad)
                .zip(first.par_chunks_mut(CHUNK))
                .zip(second.par_chunks_mut(CHUNK))
                .for_each(|(((v, g), m1), m2)| adamw(rule, lr, time, v, g, [m1, m2]));
            Live::Adam {
                time,
                first,
                second,
            }
        }
    }
}

fn par_zip<'a>(
    value: &'a mut [f32],
    grad: &'a [f32],
) -> impl IndexedParallelIterator<Item = (&'a mut [f32], &'a [f32])> {
    value.par_chunks_mut(CHUNK).zip(grad.par_chunks(CHUNK))
}

/// burn-optim's SGD on one chunk: weight decay `p·λ + g`; momentum
/// `g·(1 − dampening) + v·μ` (dampening 0, so `g·1`), or `g` on the first
/// step; Nesterov `v·μ + g`; then `p − g·lr`.
fn sgd(
    rule: Rule,
    lr: f64,
    value: &mut [f32],
    grad: &[f32],
    velocity: Option<&mut [f32]>,
    had: bool,
) {
    let Rule::Sgd {
        momentum,
        nesterov,
        weight_decay,
    } = rule
    else {
        return;
    };
    let (decay, mu, lr) = (weight_decay as f32, momentum as f32, lr as f32);
    let decayed = |p: f32, g: f32| if decay > 0.0 { p * decay + g } else { g };
    match velocity {
        None => value
            .iter_mut()
            .zip(grad)
            .for_each(|(p, &g)| *p -= decayed(*p, g) * lr),
        Some(velocity) => {
            for ((p, &g), v) in value.iter_mut().zip(grad).zip(velocity) {
                let g = decayed(*p, g);
                *v = if had { g * 1.0 + *v * mu } else { g };
                let g = if nesterov { *v * mu + g } else { *v };
                *p -= g * lr;
            }
        }
    }
}

/// burn-optim's AdamW on one chunk at step `time` (from 1): moments
/// `m·β + g·(1 − β)` (`g·(1 − β)` on the first step), bias-corrected by
/// division, `delta = m̂ / (√v̂ + ε)`, the value decayed by `1 − lr·λ`, then
/// `p − delta·lr`.
fn adamw(rule: Rule, lr: f64, time: u64, value: &mut [f32], grad: &[f32], m: [&mut [f32]; 2]) {
    let Rule::AdamW {
        betas: [b1, b2],
        eps,
        weight_decay,
    } = rule
    else {
        return;
    };
    // burn-optim holds the betas, epsilon and decay as f32.
    let (b1, b2, eps, decay) = (b1 as f32, b2 as f32, eps as f32, weight_decay as f32);
    let (f1, f2) = (1.0 - b1, 1.0 - b2);
    let t = time as i32;
    let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
    let decay_rate = lr * f64::from(decay);
    let kept = (1.0 - decay_rate) as f32;
    let lr = lr as f32;
    let [first, second] = m;
    let first_step = time == 1;
    for (((p, &g), m1), m2) in value.iter_mut().zip(grad).zip(first).zip(second) {
        *m1 = if first_step {
            g * f1
        } else {
            *m1 * b1 + g * f1
        };
        *m2 = if first_step {
            g * g * f2
        } else {
            *m2 * b2 + g * g * f2
        };
        let delta = (*m1 / c1) / ((*m2 / c2).sqrt() + eps);
        let decayed = if decay_rate == 0.0 { *p } else { *p * kept };
        *p = decayed - delta * lr;
    }
}

fn data_of(values: &[f32], shape: &[usize]) -> TensorData {
    TensorData::new(values.to_vec(), shape.to_vec())
}

fn values_of(data: &TensorData) -> Vec<f32> {
    data.clone()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("optimiser state is f32 after convert")
}

impl FusedOptimizer {
    pub fn new(rule: Rule) -> Self {
        Self {
            rule,
            states: HashMap::new(),
        }
    }

    pub fn step<M: Module>(&mut self, lr: f64, model: M, mut grads: GradientsParams) -> M {
        model.map(&mut Update {
            optim: self,
            grads: &mut grads,
            lr,
            path: Vec::new(),
        })
    }

    /// The state as burn-optim records it.
    pub fn to_record(&self) -> StateRecord {
        self.states
            .iter()
            .map(|(id, e)| {
                let moments = match &e.live {
                    Live::Fresh => Moments::None,
                    Live::Velocity(v) => Moments::Velocity(data_of(v, &e.shape)),
                    Live::Adam {
                        time,
                        first,
                        second,
                    } => Moments::Adam {
                        time: *time,
                        first: data_of(first, &e.shape),
                        second: data_of(second, &e.shape),
                    },
                };
                let state = ParamState {
                    rank: e.rank,
                    path: Some(e.path.clone()),
                    moments,
                };
                (id.val(), state)
            })
            .collect()
    }

    pub fn with_record(mut self, record: StateRecord) -> Self {
        self.states = record
            .into_iter()
            .map(|(id, s)| {
                let shape = match &s.moments {
                    Moments::None => Vec::new(),
                    Moments::Velocity(v) | Moments::Adam { first: v, .. } => v.shape().to_vec(),
                };
                let live = match &s.moments {
                    Moments::None => Live::Fresh,
                    Moments::Velocity(v) => Live::Velocity(values_of(v)),
                    Moments::Adam {
                        time,
                        first,
                        second,
                    } => Live::Adam {
                        time: *time,
                        first: values_of(first),
                        second: values_of(second),
                    },
                };
                let entry = Entry {
                    rank: s.rank,
                    shape,
                    path: s.path.unwrap_or_default(),
                    live,
                };
                (ParamId::from(id), entry)
            })
            .collect();
        self
    }
}
