//! The foreach optimiser: burn-optim's SGD and AdamW update rules over every
//! parameter at once, through LibTorch's `_foreach_*` kernels (the patched
//! burn-tch's shim). Parameters are gathered in one pass over the module,
//! updated out of place, and put back in a second pass.

// burn-tch, every item of it, is marked deprecated upstream; the project keeps
// it (see train::device).
#![allow(deprecated)]

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use burn_tch::{AdamWSettings, LibTorch, SgdSettings, TchTensor, adamw_step, sgd_step};
use tch::Tensor as Tch;

use super::Rule;
use super::record::{Moments, ParamState, StateRecord};

/// One parameter's state on its device.
enum Live {
    /// No step taken yet.
    Fresh,
    Velocity(Tch),
    Adam {
        time: u64,
        first: Tch,
        second: Tch,
    },
    /// Read from a checkpoint; moved to the parameter's device at its next step.
    Loaded(Moments),
}

impl Clone for Live {
    /// Shares the tensors: states are replaced by each step, never changed in
    /// place, so a clone keeps the state it was taken from.
    fn clone(&self) -> Self {
        match self {
            Live::Fresh => Live::Fresh,
            Live::Velocity(v) => Live::Velocity(v.shallow_clone()),
            Live::Adam {
                time,
                first,
                second,
            } => Live::Adam {
                time: *time,
                first: first.shallow_clone(),
                second: second.shallow_clone(),
            },
            Live::Loaded(m) => Live::Loaded(m.clone()),
        }
    }
}

#[derive(Clone)]
struct Entry {
    rank: usize,
    path: String,
    live: Live,
}

#[derive(Clone)]
pub struct ForeachOptimizer {
    rule: Rule,
    states: HashMap<ParamId, Entry>,
}

/// The parameters that have a gradient this step, in module order.
#[derive(Default)]
struct Gathered {
    ids: Vec<ParamId>,
    ranks: Vec<usize>,
    paths: Vec<String>,
    params: Vec<Tch>,
    grads: Vec<Tch>,
}

fn tch_of<const D: usize>(t: Tensor<D>) -> Tch {
    t.try_into_primitive::<LibTorch>()
        .expect("the foreach optimiser runs on LibTorch tensors only")
        .tensor
}

struct Gather<'a> {
    grads: &'a mut GradientsParams,
    path: Vec<String>,
    out: Gathered,
}

impl ModuleVisitor for Gather<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(grad) = self.grads.remove::<D>(param.id) else {
            return;
        };
        self.out.ids.push(param.id);
        self.out.ranks.push(D);
        self.out.paths.push(self.path.join("."));
        self.out.params.push(tch_of(param.val().inner()));
        self.out.grads.push(tch_of(grad));
    }
}

/// Puts the updated values back, keeping each parameter's autodiff settings.
struct PutBack(HashMap<ParamId, Tch>);

impl ModuleMapper for PutBack {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(updated) = self.0.remove(&param.id) else {
            return param;
        };
        let (id, old, mapper) = param.consume();
        let inner = Tensor::<D>::from_primitive::<LibTorch>(TchTensor::new(updated));
        let mut value = Tensor::from_inner(inner);
        if let Some(strategy) = old.gradient_checkpointing_strategy() {
            value = value.with_gradient_checkpointing_strategy(strategy);
        }
        if old.is_require_grad() {
            value = value.require_grad();
        }
        Param::from_mapped_value(id, value, mapper)
    }
}

fn to_device(data: &TensorData, device: tch::Device) -> Tch {
    let data = data.clone().convert::<f32>();
    let shape: Vec<i64> = data.shape().iter().map(|&d| d as i64).collect();
    let values = data.try_to_vec::<f32>().expect("f32 after convert");
    Tch::from_slice(&values)
        .reshape(shape.as_slice())
        .to_device(device)
}

fn to_data(t: &Tch) -> TensorData {
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let flat = t.to_device(tch::Device::Cpu).flatten(0, -1);
    let values = Vec::<f32>::try_from(&flat).expect("optimiser state is f32");
    TensorData::new(values, shape)
}

impl ForeachOptimizer {
    pub fn new(rule: Rule) -> Self {
        Self {
            rule,
            states: HashMap::new(),
        }
    }

    pub fn step<M: Module>(&mut self, lr: f64, model: M, mut grads: GradientsParams) -> M {
        let mut gather = Gather {
            grads: &mut grads,
            path: Vec::new(),
            out: Gathered::default(),
        };
        model.visit(&mut gather);
        let updated = self.update(lr, gather.out);
        model.map(&mut PutBack(updated))
    }

    /// The new value of every gathered parameter; the state advanced.
    fn update(&mut self, lr: f64, g: Gathered) -> HashMap<ParamId, Tch> {
        // Parameters at the same point of their history share one call
        // (normally all of them; fresh ones join after a partial checkpoint).
        let mut groups: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, id) in g.ids.iter().enumerate() {
            let entry = self.states.entry(*id).or_insert_with(|| Entry {
                rank: g.ranks[i],
                path: g.paths[i].clone(),
                live: Live::Fresh,
            });
            if let Live::Loaded(m) = &entry.live {
                entry.live = live_from(m, g.params[i].device());
            }
            groups.entry(history(&entry.live)).or_default().push(i);
        }
        let mut out = HashMap::new();
        for members in groups.into_values() {
            self.update_group(lr, &g, &members, &mut out);
        }
        out
    }

    fn update_group(
        &mut self,
        lr: f64,
        g: &Gathered,
        members: &[usize],
        out: &mut HashMap<ParamId, Tch>,
    ) {
        let pick = |list: &[Tch]| -> Vec<Tch> {
            members.iter().map(|&i| list[i].shallow_clone()).collect()
        };
        let (params, grads) = (pick(&g.params), pick(&g.grads));
        let states: Vec<&Live> = members
            .iter()
            .map(|&i| &self.states[&g.ids[i]].live)
            .collect();
        let (new_params, new_states) = match self.rule {
            Rule::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => {
                let velocity: Option<Vec<Tch>> = states
                    .iter()
                    .map(|s| match s {
                        Live::Velocity(v) => Some(v.shallow_clone()),
                        _ => None,
                    })
                    .collect();
                let settings = SgdSettings {
                    lr,
                    weight_decay,
                    momentum,
                    dampening: 0.0,
                    nesterov,
                };
                let (p, v) = sgd_step(&params, &grads, velocity.as_deref(), settings);
                let states: Vec<Live> = if momentum == 0.0 {
                    p.iter().map(|_| Live::Fresh).collect()
                } else {
                    v.into_iter().map(Live::Velocity).collect()
                };
                (p, states)
            }
            Rule::AdamW {
                betas: [beta1, beta2],
                eps,
                weight_decay,
            } => {
                let time = history(states[0]);
                let moments: Option<(Vec<Tch>, Vec<Tch>)> = states
                    .iter()
                    .map(|s| match s {
                        Live::Adam { first, second, .. } => {
                            Some((first.shallow_clone(), second.shallow_clone()))
                        }
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .map(|pairs| pairs.into_iter().unzip());
                let settings = AdamWSettings {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                };
                let m = moments.as_ref().map(|(a, b)| (a.as_slice(), b.as_slice()));
                let [p, first, second] = adamw_step(&params, &grads, m, time + 1, settings);
                let states = first
                    .into_iter()
                    .zip(second)
                    .map(|(first, second)| Live::Adam {
                        time: time + 1,
                        first,
                        second,
                    })
                    .collect();
                (p, states)
            }
        };
        for ((&i, p), s) in members.iter().zip(new_params).zip(new_states) {
            out.insert(g.ids[i], p);
            if let Some(e) = self.states.get_mut(&g.ids[i]) {
                e.live = s;
            }
        }
    }

    /// The state as burn-optim records it.
    pub fn to_record(&self) -> StateRecord {
        self.states
            .iter()
            .map(|(id, e)| {
                let moments = match &e.live {
                    Live::Fresh => Moments::None,
                    Live::Velocity(v) => Moments::Velocity(to_data(v)),
                    Live::Adam {
                        time,
                        first,
                        second,
                    } => Moments::Adam {
                        time: *time,
                        first: to_data(first),
                        second: to_data(second),
                    },
                    Live::Loaded(m) => m.clone(),
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
                let entry = Entry {
                    rank: s.rank,
                    path: s.path.unwrap_or_default(),
                    live: Live::Loaded(s.moments),
                };
                (ParamId::from(id), entry)
            })
            .collect();
        self
    }
}

/// Steps taken so far (0 or 1 for SGD: whether it has a velocity).
fn history(live: &Live) -> u64 {
    match live {
        Live::Fresh | Live::Loaded(_) => 0,
        Live::Velocity(_) => 1,
        Live::Adam { time, .. } => *time,
    }
}

fn live_from(m: &Moments, device: tch::Device) -> Live {
    match m {
        Moments::None => Live::Fresh,
        Moments::Velocity(v) => Live::Velocity(to_device(v, device)),
        Moments::Adam {
            time,
            first,
            second,
        } => Live::Adam {
            time: *time,
            first: to_device(first, device),
            second: to_device(second, device),
        },
    }
}
