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
use crate::plugins::{Library, MaskContext};
use crate::train::device;
use crate::train::models::Model;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// small-cnn (1×28×28 inputs) or resnet18 (3×32×32, CIFAR shapes).
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
    /// Strategy at every slot ("none" for no extra dropout).
    #[arg(long, default_value = "dropblock")]
    pub strategy: String,
    #[arg(long, default_value_t = 3)]
    pub block_size: i64,
    #[arg(long, default_value_t = 0.1)]
    pub p: f64,
    /// On CUDA: cuDNN's per-shape algorithm search, as `cudnn_benchmark` in
    /// experiments (default true).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub cudnn_benchmark: bool,
}

#[derive(Serialize, Debug)]
pub struct BenchReport {
    pub model: String,
    pub backend: String,
    pub device: String,
    pub strategy: String,
    pub batch: usize,
    pub steps: usize,
    pub seconds_per_step: f64,
    pub samples_per_s: f64,
}

pub fn bench_step(args: &BenchArgs, library: Option<&Library>) -> Result<BenchReport> {
    let forced = match args.backend.as_deref() {
        None => None,
        Some("flex") => Some(BackendChoice::Flex),
        Some("libtorch") => Some(BackendChoice::Libtorch),
        Some(other) => {
            return Err(anyhow!(
                "--backend: expected flex or libtorch, found {other:?}"
            ));
        }
    };
    let name = device::parse_device(&args.device).map_err(|e| anyhow!(e))?;
    let backend = device::backend_for(name, forced).map_err(|e| anyhow!(e))?;
    let dev = device::open(name, backend).map_err(|e| anyhow!(e))?;
    if matches!(name, device::DeviceName::Cuda(_)) {
        device::configure_cudnn(Some(args.cudnn_benchmark), false);
    }
    let train_dev = dev.clone().autodiff();
    let (kind, shape) = match args.model.as_str() {
        "small-cnn" => (ModelKind::SmallCnn, [1, 28, 28]),
        "resnet18" => (ModelKind::Resnet18, [3, 32, 32]),
        other => {
            return Err(anyhow!(
                "--model: expected small-cnn or resnet18, found {other:?}"
            ));
        }
    };
    let spec = ModelSpec::of(kind);
    dev.seed(0);
    let mut model = Model::build(
        &spec,
        crate::train::models::InputKind::Image(shape),
        10,
        &train_dev,
    )
    .map_err(|e| anyhow!(e))?;
    let strategy = match library {
        Some(lib) => {
            let mut params = Vec::new();
            if lib.info.params.iter().any(|p| p.name == "block_size") {
                params.push((
                    "block_size".to_string(),
                    plugin_api::Value::Int(args.block_size),
                ));
            }
            Some(lib.create(&params).map_err(|e| anyhow!("{}", e.0))?)
        }
        None => None,
    };
    let file: experiment::ExperimentFile = toml::from_str(
        "name = \"bench\"\n[data]\nformat = \"idx\"\npath = \".\"\n[model]\nkind = \"small-cnn\"\n\
         [optimizer]\nlr = 0.01\nmomentum = 0.9\n[train]\nepochs = 1\nbatch_size = 1\n",
    )?;
    let mut optim = super::trainer::make_optimizer(&file);
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
            .forward(images.clone(), &mut |slot, x| match &strategy {
                Some(s) => {
                    let mut ctx = MaskContext::training(args.p, 0);
                    ctx.step = step;
                    ctx.slot = slot.to_string();
                    s.apply(x, &ctx)
                }
                None => Ok(x),
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
    Ok(BenchReport {
        model: args.model.clone(),
        backend: format!("{backend:?}").to_lowercase(),
        device: args.device.clone(),
        strategy: args.strategy.clone(),
        batch: args.batch,
        steps: args.steps,
        seconds_per_step: secs,
        samples_per_s: args.batch as f64 / secs,
    })
}
