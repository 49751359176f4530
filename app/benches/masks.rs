//! Mask cost through the plugin ABI versus the same algorithm written directly
//! against burn, the block-expansion variants, and the mask's share of a small-CNN
//! training step. Results and the machine are recorded in BENCHMARKS.md.
//!
//! Run: `cargo bench --bench masks` (the plugins are built first, as at start-up);
//! on LibTorch's CPU: `PROBDROP_BENCH_BACKEND=libtorch cargo bench --features tch --bench masks`.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Distribution, Int, Tensor};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use probdrop_tui::experiment::{BackendChoice, DeviceName};
use probdrop_tui::plugins::{Library, MaskContext, discover};
use probdrop_tui::train::device;
use probdrop_tui::train::models::SmallCnnConfig;

fn libraries() -> HashMap<String, Library> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    discover(&dir, &mut |_: &str| {})
        .expect("plugins dir")
        .into_iter()
        .filter_map(|f| f.outcome.ok())
        .map(|l| (l.info.name.clone(), l))
        .collect()
}

fn pool(x: Tensor<4>, k: [usize; 2], pad: [usize; 2]) -> Tensor<4> {
    max_pool2d(
        x,
        MaxPoolOptions::new(k).with_stride([1, 1]).with_padding(pad),
    )
}

#[derive(Clone, Copy, Debug)]
enum Expand {
    /// One b x b max-pool.
    Square,
    /// b x 1 then 1 x b on the 4-D tensor.
    Separable,
}

/// DropBlock written directly against burn (same steps as the plugin).
fn dropblock_direct(x: &Tensor<4>, p: f64, b: usize, expand: Expand) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let gamma = strategy_kit::ghiasi_gamma(p, b, &[h, w]);
    let seeds = Tensor::<4>::random(
        [n, c, h - b + 1, w - b + 1],
        Distribution::Uniform(0.0, 1.0),
        &device,
    )
    .lower_elem(gamma)
    .float();
    let seeds = seeds.pad(
        [(0, 0), (0, 0), (b / 2, (b - 1) / 2), (b / 2, (b - 1) / 2)],
        burn::tensor::ops::PadMode::Constant(0.0),
    );
    let expanded = match expand {
        Expand::Square => pool(seeds, [b, b], [b / 2, b / 2]),
        Expand::Separable => pool(pool(seeds, [b, 1], [b / 2, 0]), [1, b], [0, b / 2]),
    };
    keep_rescaled(expanded, [n, c, h, w], b)
}

/// ProbDropBlock's 1.x reading (`gamma = "ghiasi"`) written directly against burn.
fn probdropblock_direct(x: &Tensor<4>, p: f64, b: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let s = x.clone().abs();
    let mean = s.clone().mean_dims(&[2, 3]);
    let empty = mean.clone().equal_elem(0.0).float();
    let s_hat = s.div(mean.add_scalar(1e-12)).add(empty);
    let gamma = strategy_kit::ghiasi_gamma(p, b, &[h, w]);
    let q = s_hat.mul_scalar(gamma).clamp(0.0, 1.0);
    let seeds = q
        .random_like(Distribution::Uniform(0.0, 1.0))
        .lower(q)
        .float();
    // The same expansion as the plugin (one b x b pool).
    let expanded = pool(seeds, [b, b], [b / 2, b / 2]);
    keep_rescaled(expanded, [n, c, h, w], b)
}

/// Crops an even-b expansion, then `keep * numel / (sum + 1e-6)`.
fn keep_rescaled(expanded: Tensor<4>, [n, c, h, w]: [usize; 4], b: usize) -> Tensor<4> {
    let expanded = if b.is_multiple_of(2) {
        expanded.slice([0..n, 0..c, 0..h, 0..w])
    } else {
        expanded
    };
    let keep = expanded.neg().add_scalar(1.0);
    let numel = (n * c * h * w) as f64;
    let factor = keep
        .clone()
        .sum()
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(numel);
    keep * factor.reshape([1, 1, 1, 1])
}

/// Forces the lazy/async backend to finish.
fn sync(t: Tensor<4>) {
    black_box(t.sum().into_scalar::<f32>());
}

/// The CPU backend the mask benches run on: flex, or LibTorch's CPU with
/// `PROBDROP_BENCH_BACKEND=libtorch` (a `--features tch` build).
fn bench_device() -> Device {
    let backend = match std::env::var("PROBDROP_BENCH_BACKEND").as_deref() {
        Ok("libtorch") => BackendChoice::Libtorch,
        _ => BackendChoice::Flex,
    };
    device::open(DeviceName::Cpu, backend)
        .expect("PROBDROP_BENCH_BACKEND=libtorch needs --features tch")
}

fn masks(c: &mut Criterion) {
    let libs = libraries();
    let device = bench_device();
    let ctx = MaskContext::training(0.1, 1);
    for shape in [[32, 64, 16, 16], [128, 256, 14, 14]] {
        let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let label = format!("{shape:?}");
        let dropblock = libs["dropblock"]
            .create(&[("block_size".into(), plugin_api::Value::Int(5))])
            .unwrap();
        let prob = libs["probdropblock"]
            .create(&[("block_size".into(), plugin_api::Value::Int(5))])
            .unwrap();
        // The 1.x default: DropBlock's rate at every position, no solve.
        let prob_ghiasi = libs["probdropblock"]
            .create(&[
                ("block_size".into(), plugin_api::Value::Int(5)),
                ("gamma".into(), plugin_api::Value::Str("ghiasi".into())),
            ])
            .unwrap();

        let mut g = c.benchmark_group("dropblock");
        g.sample_size(20);
        g.bench_with_input(BenchmarkId::new("abi", &label), &x, |bch, x| {
            bch.iter(|| sync(dropblock.mask(x, &ctx).unwrap()))
        });
        for expand in [Expand::Separable, Expand::Square] {
            g.bench_with_input(
                BenchmarkId::new(format!("direct-{expand:?}"), &label),
                &x,
                |bch, x| bch.iter(|| sync(dropblock_direct(x, 0.1, 5, expand))),
            );
        }
        g.finish();

        let mut g = c.benchmark_group("probdropblock");
        g.sample_size(20);
        g.bench_with_input(BenchmarkId::new("abi-matched", &label), &x, |bch, x| {
            bch.iter(|| sync(prob.mask(x, &ctx).unwrap()))
        });
        g.bench_with_input(BenchmarkId::new("abi", &label), &x, |bch, x| {
            bch.iter(|| sync(prob_ghiasi.mask(x, &ctx).unwrap()))
        });
        g.bench_with_input(BenchmarkId::new("direct", &label), &x, |bch, x| {
            bch.iter(|| sync(probdropblock_direct(x, 0.1, 5)))
        });
        g.finish();
    }
}

fn cnn_step(c: &mut Criterion) {
    let libs = libraries();
    let device = Device::default().autodiff();
    let images = Tensor::<4>::random([64, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    let labels = Tensor::<1, Int>::from_ints([3; 64], &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let ctx = MaskContext::training(0.1, 1);
    let mut g = c.benchmark_group("small_cnn_step");
    g.sample_size(10);
    for name in ["none", "dropblock", "probdropblock"] {
        let strategy = (name != "none").then(|| {
            libs[name]
                .create(&[("block_size".into(), plugin_api::Value::Int(3))])
                .unwrap()
        });
        let mut model = Some(SmallCnnConfig::new().init(&device));
        let mut optim = SgdConfig::new().init();
        g.bench_function(BenchmarkId::new("batch64", name), |bch| {
            bch.iter(|| {
                let m = model.take().unwrap();
                let logits = m
                    .forward(images.clone(), &mut |_, x| match &strategy {
                        Some(s) => s.apply(x, &ctx),
                        None => Ok(x),
                    })
                    .unwrap();
                let loss = loss_fn.forward(logits, labels.clone());
                let grads = GradientsParams::from_grads(loss.backward(), &m);
                model = Some(optim.step(0.01, m, grads));
            })
        });
        // The mask alone on the slot's activation shape, for the ratio.
        if let Some(s) = &strategy {
            let act = Tensor::<4>::random(
                [64, 64, 7, 7],
                Distribution::Normal(0.0, 1.0),
                &Device::default(),
            );
            g.bench_function(BenchmarkId::new("mask-only-64x64x7x7", name), |bch| {
                bch.iter(|| sync(s.mask(&act, &ctx).unwrap()))
            });
        }
    }
    g.finish();
}

/// The masks alone at ResNet-18's two slots (CIFAR shapes, batch 128, the
/// stage 3 and stage 4 outputs) with `bench-step`'s settings, for their share
/// of a ResNet-18 step (BENCHMARKS.md).
fn resnet18_slots(c: &mut Criterion) {
    let libs = libraries();
    let ctx = MaskContext::training(0.1, 1);
    let mut g = c.benchmark_group("resnet18_slots");
    g.sample_size(10);
    let acts = [[128, 256, 8, 8], [128, 512, 4, 4]].map(|shape| {
        Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &Device::default())
    });
    for name in ["dropblock", "probdropblock"] {
        let s = libs[name]
            .create(&[("block_size".into(), plugin_api::Value::Int(3))])
            .unwrap();
        g.bench_function(BenchmarkId::new("both-masks-b128", name), |bch| {
            bch.iter(|| acts.iter().for_each(|x| sync(s.mask(x, &ctx).unwrap())))
        });
    }
    g.finish();
}

criterion_group!(benches, masks, cnn_step, resnet18_slots);
criterion_main!(benches);
