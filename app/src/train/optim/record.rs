//! The optimiser state as burn-optim's `ModuleOptimizer` saves it, read and
//! written without one: a burnpack file with tensors named
//! `{param id}.{field path}` (carrying the parameter id), the scalar
//! `{param id}.__rank`, and each parameter's module path as metadata under
//! `{param id}`. The foreach optimiser keeps its state outside burn's types;
//! this keeps its checkpoints interchangeable with the per-parameter one.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::TensorData;
use burn_pack::{Reader, Scalar, Writer};

/// Burn's `SgdState { momentum: Some(MomentumState { velocity }) }`.
const VELOCITY: &str = "momentum.velocity";
/// Burn's `AdamWState { momentum: AdaptiveMomentumState { time, moment_1, moment_2 } }`.
const TIME: &str = "momentum.time";
const FIRST: &str = "momentum.moment_1";
const SECOND: &str = "momentum.moment_2";
const RANK: &str = "__rank";

/// What the optimiser remembers about one parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Moments {
    /// SGD without momentum: nothing but the parameter's rank.
    None,
    /// SGD with momentum.
    Velocity(TensorData),
    /// AdamW after `time` steps.
    Adam {
        time: u64,
        first: TensorData,
        second: TensorData,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamState {
    pub rank: usize,
    /// The parameter's module path ("layer1.0.conv1.weight"), as burn records it.
    pub path: Option<String>,
    pub moments: Moments,
}

/// Every parameter's state, by parameter id.
pub type StateRecord = BTreeMap<u64, ParamState>;

fn name(id: u64, leaf: &str) -> String {
    format!("{id}.{leaf}")
}

/// Writes `record` to `path` as burn-optim would.
pub fn save(record: &StateRecord, path: &Path) -> Result<(), String> {
    let mut tensors = Vec::new();
    let mut scalars = Vec::new();
    for (&id, state) in record {
        scalars.push((name(id, RANK), Scalar::from(state.rank)));
        let mut tensor = |leaf: &str, data: &TensorData| {
            let (bytes, shape, dtype) = data.clone().into_parts();
            tensors.push(burn_pack::Tensor::new(
                name(id, leaf),
                dtype,
                shape,
                Some(id),
                bytes,
            ));
        };
        match &state.moments {
            Moments::None => {}
            Moments::Velocity(v) => tensor(VELOCITY, v),
            Moments::Adam {
                time,
                first,
                second,
            } => {
                tensor(FIRST, first);
                tensor(SECOND, second);
                scalars.push((name(id, TIME), Scalar::from(*time)));
            }
        }
    }
    let mut writer = Writer::new(tensors);
    for (key, value) in &scalars {
        writer = writer.with_scalar(key, *value);
    }
    for (&id, state) in record {
        if let Some(p) = &state.path {
            writer = writer.with_metadata(&id.to_string(), p);
        }
    }
    writer.write_to_file(path).map_err(|e| format!("{e:?}"))
}

/// Reads a record that burn-optim's SGD or AdamW (or [save]) wrote.
pub fn load(path: &Path) -> Result<StateRecord, String> {
    let reader = Reader::from_file(path).map_err(|e| format!("{e:?}"))?;
    let scalars = reader.scalars().clone();
    let paths = reader.metadata().clone();
    let mut tensors = BTreeMap::new();
    for t in reader.into_tensors().map_err(|e| format!("{e:?}"))? {
        let (name, dtype, shape, _, bytes) = t.into_parts().map_err(|e| format!("{e:?}"))?;
        tensors.insert(name, TensorData::from_bytes(bytes, shape, dtype));
    }
    let mut record = StateRecord::new();
    for (key, value) in &scalars {
        let Some(id) = key.strip_suffix(&format!(".{RANK}")) else {
            continue;
        };
        let id: u64 = id
            .parse()
            .map_err(|_| format!("bad parameter id in `{key}`"))?;
        let rank = usize::try_from(*value).map_err(|_| format!("bad rank in `{key}`"))?;
        let mut take = |leaf: &str| tensors.remove(&name(id, leaf));
        let moments = match (take(VELOCITY), take(FIRST), take(SECOND)) {
            (Some(v), None, None) => Moments::Velocity(v),
            (None, Some(first), Some(second)) => {
                let time = scalars
                    .get(&name(id, TIME))
                    .and_then(|t| u64::try_from(*t).ok())
                    .ok_or_else(|| format!("parameter {id}: moments without a step count"))?;
                Moments::Adam {
                    time,
                    first,
                    second,
                }
            }
            (None, None, None) => Moments::None,
            _ => {
                return Err(format!(
                    "parameter {id}: an optimiser state of unknown shape"
                ));
            }
        };
        let path = paths.get(&id.to_string()).cloned();
        record.insert(
            id,
            ParamState {
                rank,
                path,
                moments,
            },
        );
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::optim::{Rule, RunOptimizer, Stepping};
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Distribution, Tensor};

    fn steps(model: Linear, optim: &mut RunOptimizer, n: usize, device: &Device) -> Linear {
        (0..n).fold(model, |model, _| {
            let x = Tensor::<2>::random([4, 3], Distribution::Normal(0.0, 1.0), device);
            let loss = model.forward(x).powf_scalar(2.0).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            optim.step(0.1, model, grads)
        })
    }

    fn weights(model: &Linear) -> Vec<f32> {
        model.weight.val().into_data().try_to_vec::<f32>().unwrap()
    }

    /// A state burn saved, read and written again by this module, loads back
    /// into burn and continues exactly as burn's own would.
    fn round_trip(rule: Rule, check: impl Fn(&Moments)) {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::flex().autodiff();
        device.seed(7);
        let model = LinearConfig::new(3, 2).init(&device);
        let mut burn_own = RunOptimizer::new(rule, Stepping::PerParameter);
        let model = steps(model, &mut burn_own, 2, &device);
        burn_own.save(&dir.path().join("burn.bpk")).unwrap();

        let record = load(&dir.path().join("burn.bpk")).unwrap();
        assert_eq!(record.len(), 2, "weight and bias");
        let ranks: Vec<usize> = record.values().map(|s| s.rank).collect();
        assert!(ranks.contains(&1) && ranks.contains(&2), "{ranks:?}");
        assert!(record.values().all(|s| s.path.is_some()));
        record.values().for_each(|s| check(&s.moments));
        save(&record, &dir.path().join("ours.bpk")).unwrap();
        assert_eq!(load(&dir.path().join("ours.bpk")).unwrap(), record);

        let reloaded = RunOptimizer::new(rule, Stepping::PerParameter);
        let mut reloaded = reloaded.load(&dir.path().join("ours.bpk")).unwrap();
        device.seed(8);
        let a = steps(model.clone(), &mut burn_own, 1, &device);
        device.seed(8);
        let b = steps(model, &mut reloaded, 1, &device);
        assert_eq!(weights(&a), weights(&b));
    }

    #[test]
    fn sgd_momentum_state_is_burns_format() {
        let rule = Rule::Sgd {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.01,
        };
        round_trip(rule, |m| {
            assert!(matches!(m, Moments::Velocity(_)), "{m:?}")
        });
    }

    #[test]
    fn plain_sgd_state_is_burns_format() {
        let rule = Rule::Sgd {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        };
        round_trip(rule, |m| assert_eq!(m, &Moments::None));
    }

    #[test]
    fn adamw_state_is_burns_format() {
        let rule = Rule::AdamW {
            betas: [0.9, 0.99],
            eps: 1e-8,
            weight_decay: 0.05,
        };
        round_trip(rule, |m| {
            assert!(matches!(m, Moments::Adam { time: 2, .. }), "{m:?}")
        });
    }

    #[test]
    fn truncated_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = StateRecord::new();
        let v = TensorData::new(vec![1.0f32, 2.0], [2]);
        let moments = Moments::Adam {
            time: 1,
            first: v.clone(),
            second: v,
        };
        record.insert(
            3,
            ParamState {
                rank: 1,
                path: None,
                moments,
            },
        );
        save(&record, &dir.path().join("a.bpk")).unwrap();
        let bytes = std::fs::read(dir.path().join("a.bpk")).unwrap();
        assert!(load(&dir.path().join("a.bpk")).is_ok());
        let garbage = &bytes[..bytes.len() / 2];
        std::fs::write(dir.path().join("b.bpk"), garbage).unwrap();
        assert!(load(&dir.path().join("b.bpk")).is_err());
    }
}
