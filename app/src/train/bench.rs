//! `probdrop-tui bench-step`: throughput of whole training steps (forward with the
//! strategy at every slot, backward, SGD update) on synthetic data, for
//! BENCHMARKS.md and `bench/pytorch_reference.py`, which runs the same models in
//! PyTorch and prints the ratio.

use std::time::Instant;

use anyhow::{Result, anyhow};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use serde::Serialize;

use crate::experiment::{self, BackendChoice, ModelKind, ModelSpec};
use crate::plugins::{Library, MaskContext, Strategy};
use crate::train::device;
use crate::train::models::{InputKind, Model};
use crate::train::optim::{Rule, RunOptimizer, Stepping};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// small-cnn (1×28×28 inputs), resnet18 or resnet20 (3×32×32, CIFAR shapes).
    #[arg(long, default_value = "small-cnn")]
    pub model: String,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Timed steps (after 3 warm-up steps).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// "flex" or "libtorch" (default: as for experiments).
    #[arg(long)]
    pub backend: Option<String>,
    /// Strategy at the slots `--slots` picks ("none" for no extra dropout).
    #[arg(long, default_value = "dropblock")]
    pub strategy: String,
    /// Slot names or patterns, as `slots` in an experiment (default: the
    /// model's default slots).
    #[arg(long, value_delimiter = ',')]
    pub slots: Option<Vec<String>>,
    /// How `p` changes with the slots' position, as `depth_rule`.
    #[arg(long, default_value = "constant")]
    pub depth_rule: String,
    #[arg(long, default_value_t = 3)]
    pub block_size: i64,
    #[arg(long, default_value_t = 0.1)]
    pub p: f64,
    /// On CUDA: cuDNN's per-shape algorithm search, as `cudnn_benchmark` in
    /// experiments (default true).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub cudnn_benchmark: bool,
    /// "per-parameter" (burn's optimiser, any backend), "foreach" (LibTorch's
    /// multi-tensor kernels) or "fused" (one pass per parameter on flex);
    /// default: the backend's own (foreach on LibTorch, fused on flex).
    #[arg(long)]
    pub optimizer: Option<String>,
    /// On LibTorch: count the ATen operators of one extra step, by name.
    #[arg(long)]
    pub count_ops: bool,
    /// On flex: "native" (the patched kernels, vendor/README.md) or "upstream"
    /// (flex's and burn's own paths), to compare the two in one binary.
    #[arg(long, default_value = "native")]
    pub flex_kernels: FlexKernels,
}

/// Which convolution and batch-norm kernels flex runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlexKernels {
    Native,
    Upstream,
}

#[derive(Serialize, Debug)]
pub struct BenchReport {
    pub model: String,
    pub backend: String,
    pub device: String,
    pub strategy: String,
    /// "per-parameter" (burn's ModuleOptimizer), "foreach" (LibTorch) or
    /// "fused" (flex).
    pub optimizer: String,
    pub batch: usize,
    pub steps: usize,
    pub seconds_per_step: f64,
    pub samples_per_s: f64,
    /// With `--count-ops` on LibTorch: top-level ATen operators per step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ops_per_step: Option<f64>,
    /// The same, by operator, most called first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ops_by_name: Vec<(String, f64)>,
    pub flex_kernels: FlexKernels,
}

fn parse_backend(text: Option<&str>) -> Result<Option<BackendChoice>> {
    match text {
        None => Ok(None),
        Some("flex") => Ok(Some(BackendChoice::Flex)),
        Some("libtorch") => Ok(Some(BackendChoice::Libtorch)),
        Some(other) => Err(anyhow!(
            "--backend: expected flex or libtorch, found {other:?}"
        )),
    }
}

fn parse_model(text: &str) -> Result<(ModelKind, [usize; 3])> {
    match text {
        "small-cnn" => Ok((ModelKind::SmallCnn, [1, 28, 28])),
        "resnet18" => Ok((ModelKind::Resnet18, [3, 32, 32])),
        "resnet20" => Ok((ModelKind::Resnet20, [3, 32, 32])),
        other => Err(anyhow!(
            "--model: expected small-cnn, resnet18 or resnet20, found {other:?}"
        )),
    }
}

fn parse_stepping(text: Option<&str>, backend: BackendChoice) -> Result<Stepping> {
    let best = Stepping::best_for(backend);
    match text {
        None => Ok(best),
        Some("per-parameter") => Ok(Stepping::PerParameter),
        Some(name) if name == best.label() => Ok(best),
        Some("foreach") => Err(anyhow!("--optimizer foreach needs the LibTorch backend")),
        Some("fused") => Err(anyhow!("--optimizer fused needs the flex backend")),
        Some(other) => Err(anyhow!(
            "--optimizer: expected per-parameter, foreach or fused, found {other:?}"
        )),
    }
}

/// Where `--slots` and `--depth-rule` put the strategy on `model`.
fn bench_placement(args: &BenchArgs, model: &ModelSpec) -> Result<Vec<experiment::Placed>> {
    let rule: experiment::DepthRule =
        serde_json::from_value(serde_json::Value::String(args.depth_rule.clone()))
            .map_err(|_| anyhow!("--depth-rule: expected constant, linear or linear-down"))?;
    let mut spec = experiment::none_strategy();
    spec.slots = args.slots.clone();
    spec.depth_rule = rule;
    experiment::placement(model, &spec).map_err(|unmatched| {
        let names: Vec<&str> = unmatched.iter().map(|u| u.pattern.as_str()).collect();
        anyhow!(
            "--slots: {} matches no slot; this model's slots are: {}",
            names.join(", "),
            experiment::model_slots(model).join(", ")
        )
    })
}

fn bench_strategy(args: &BenchArgs, library: Option<&Library>) -> Result<Option<Strategy>> {
    let Some(lib) = library else {
        return Ok(None);
    };
    let mut params = Vec::new();
    if lib.info.params.iter().any(|p| p.name == "block_size") {
        params.push((
            "block_size".to_string(),
            plugin_api::Value::Int(args.block_size),
        ));
    }
    Ok(Some(lib.create(&params).map_err(|e| anyhow!("{}", e.0))?))
}

/// The operator counter of the patched burn-tch, where there is one.
#[cfg(feature = "tch")]
mod counter {
    pub fn start() {
        #[allow(deprecated)]
        burn_tch::op_counter_start();
    }
    pub fn stop() -> Vec<(String, u64)> {
        #[allow(deprecated)]
        burn_tch::op_counter_stop()
    }
}

#[cfg(not(feature = "tch"))]
mod counter {
    pub fn start() {}
    pub fn stop() -> Vec<(String, u64)> {
        Vec::new()
    }
}

pub fn bench_step(args: &BenchArgs, library: Option<&Library>) -> Result<BenchReport> {
    let name = experiment::parse_device(&args.device)?;
    let backend = experiment::backend_for(name, parse_backend(args.backend.as_deref())?)?;
    let stepping = parse_stepping(args.optimizer.as_deref(), backend)?;
    if args.count_ops && backend != BackendChoice::Libtorch {
        return Err(anyhow!(
            "--count-ops counts LibTorch operators: use --backend libtorch"
        ));
    }
    burn_flex::set_native_kernels(args.flex_kernels == FlexKernels::Native);
    let dev = device::open(name, backend)?;
    if matches!(name, experiment::DeviceName::Cuda(_)) {
        device::configure_cudnn(Some(args.cudnn_benchmark), false);
    }
    let train_dev = dev.clone().autodiff();
    let (kind, shape) = parse_model(&args.model)?;
    dev.seed(0);
    let mut model = Model::build(
        &ModelSpec::of(kind),
        InputKind::Image(shape),
        10,
        &train_dev,
    )
    .map_err(|e| anyhow!(e))?;
    let strategy = bench_strategy(args, library)?;
    let placed = bench_placement(args, &ModelSpec::of(kind))?;
    let rule = Rule::Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
    };
    let mut optim = RunOptimizer::new(rule, stepping);
    let loss_fn = CrossEntropyLossConfig::new().init(&train_dev);
    let [c, h, w] = shape;
    let images = Tensor::<4>::random(
        [args.batch, c, h, w],
        Distribution::Normal(0.0, 1.0),
        &train_dev,
    );
    let labels: Vec<i64> = (0..args.batch as i64).map(|i| i % 10).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [args.batch]), &train_dev);
    let mut step = 0u64;
    let mut run_step = |model: Model| -> Result<Model> {
        step += 1;
        let logits = model
            .forward(images.clone(), &mut |slot, x| {
                let (Some(s), Some(place)) = (&strategy, placed.iter().find(|p| p.name == slot))
                else {
                    return Ok(x);
                };
                let mut ctx = MaskContext::training(args.p * place.depth_scale, 0);
                ctx.step = step;
                ctx.slot = slot.to_string();
                s.apply(x, &ctx)
            })
            .map_err(|e| anyhow!(e.0))?;
        let loss = loss_fn.forward(logits, targets.clone());
        let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &model);
        let model = optim.step(0.01, model, grads);
        // Wait for the device: a step counts once its update is done.
        dev.sync().map_err(|e| anyhow!("{e:?}"))?;
        Ok(model)
    };
    for _ in 0..3 {
        model = run_step(model)?;
    }
    let start = Instant::now();
    for _ in 0..args.steps {
        model = run_step(model)?;
    }
    let secs = start.elapsed().as_secs_f64() / args.steps.max(1) as f64;
    let counted = if args.count_ops {
        // Counted apart from the timed steps: the counter slows every call.
        counter::start();
        model = run_step(model)?;
        counter::stop()
    } else {
        Vec::new()
    };
    drop(model);
    Ok(BenchReport {
        model: args.model.clone(),
        backend: format!("{backend:?}").to_lowercase(),
        device: args.device.clone(),
        strategy: args.strategy.clone(),
        optimizer: stepping.label().to_string(),
        batch: args.batch,
        steps: args.steps,
        seconds_per_step: secs,
        samples_per_s: args.batch as f64 / secs,
        ops_per_step: args
            .count_ops
            .then(|| counted.iter().map(|(_, n)| *n as f64).sum()),
        ops_by_name: by_count(counted),
        flex_kernels: args.flex_kernels,
    })
}

fn by_count(mut counted: Vec<(String, u64)>) -> Vec<(String, f64)> {
    counted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counted.into_iter().map(|(n, c)| (n, c as f64)).collect()
}
