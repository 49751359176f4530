//! The command line: argument parsing, and the `plugins` and `mask` commands
//! (the training commands live in `commands`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use clap::{Parser, Subcommand};
use plugin_api::{ParamKind, Value};
use serde::Serialize;

use crate::npy;
use crate::plugins::{Found, Library, MaskContext, discover};
use crate::stats::{MaskStats, mask_stats};

#[derive(Parser, Debug)]
#[command(
    name = "probdrop-tui",
    version,
    about = "Terminal dashboard for structured-dropout research"
)]
pub struct Cli {
    /// Directory of strategy plugins (crates and prebuilt libraries).
    #[arg(long, global = true, default_value = "plugins")]
    pub plugins: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List every strategy found in the plugins directory (building plugin crates).
    Plugins {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Sample one keep-mask through the real plugin path and print its statistics.
    Mask(MaskArgs),
    /// Write a new strategy crate into the plugins directory (or --dir), build
    /// it and list it.
    NewStrategy(crate::scaffold::NewStrategyArgs),
    /// Write runs' metrics as TensorBoard event files or CSV (timm's
    /// summary.csv among them).
    Export(crate::export::ExportArgs),
    /// Open the dashboard (the default without a command).
    Dashboard {
        /// Where runs live.
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
        /// Experiment files.
        #[arg(long, default_value = "experiments")]
        experiments: PathBuf,
        /// Comparisons (`compare` output).
        #[arg(long, default_value = "compare")]
        compare: PathBuf,
    },
    /// Validate experiment files; every error names file, line, column and key.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Train every run of an experiment in the foreground, without the dashboard.
    Run(crate::commands::RunArgs),
    /// Run every strategy × seed (with a `none` baseline), then tabulate validation
    /// accuracy over seeds with t-tests paired by seed; resumable.
    Compare(crate::compare::CompareArgs),
    /// Re-run a finished run from its directory alone (its starting
    /// configuration, its live changes and library swaps at their steps, each
    /// library from the run store) and compare every logged metric; exit 0
    /// only when identical (within the stated tolerance on CUDA).
    Reproduce(crate::reproduce::ReproduceArgs),
    /// Train one prepared run directory (what the dashboard starts for each run).
    #[command(hide = true)]
    Train {
        run_dir: PathBuf,
        /// Stop, checkpointed, once this fraction of training is done (how
        /// compare's halving stops a run at a rung).
        #[arg(long, value_parser = fraction)]
        stop_at: Option<f64>,
    },
    /// Smoke-test one library (what a watcher runs, in a child process, before it
    /// loads a changed library).
    #[command(hide = true)]
    Trial {
        library: PathBuf,
        /// Only the first calls (loading, metadata, the constructor), no mask.
        #[arg(long)]
        load_only: bool,
        /// The pid of the process that started it: the trial dies with it.
        #[arg(long)]
        parent: Option<u32>,
    },
    /// Time whole training steps on synthetic data and print JSON (for benchmarks).
    #[command(hide = true)]
    BenchStep(crate::train::bench::BenchArgs),
    /// Report backends, devices, plugins and the data paths of the experiments.
    Doctor {
        /// Experiments directory.
        #[arg(long, default_value = "experiments")]
        experiments: PathBuf,
    },
}

/// A fraction of training strictly between 0 and 1.
fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if crate::experiment::in_open_unit(x) => Ok(x),
        _ => Err(format!("expected a fraction in (0, 1), found {text}")),
    }
}

#[derive(clap::Args, Debug)]
pub struct MaskArgs {
    /// Strategy name (as `plugins` lists it).
    pub strategy: String,
    /// Input shape, e.g. 8,64,16,16 (taken from --input when omitted).
    #[arg(long, value_delimiter = ',')]
    pub shape: Option<Vec<usize>>,
    /// Drop rate p.
    #[arg(long)]
    pub p: f64,
    /// Strategy parameter, repeatable: --param block_size=5.
    #[arg(long = "param", value_name = "K=V")]
    pub params: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Feature map to mask (.npy, float32/64); without it a N(0, 1) input is drawn.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Write the mask, broadcast to the input's shape, as .npy.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Evaluation mode (the mask is then the identity).
    #[arg(long)]
    pub eval: bool,
    #[arg(long)]
    pub json: bool,
}

/// One strategy as `plugins --json` lists it.
#[derive(Serialize)]
struct Listing {
    name: String,
    version: Option<String>,
    source: crate::plugins::Source,
    origin: PathBuf,
    library: Option<PathBuf>,
    interface: Option<String>,
    description: Option<String>,
    params: Vec<ParamListing>,
    error: Option<String>,
}

#[derive(Serialize)]
struct ParamListing {
    name: String,
    kind: &'static str,
    default: String,
    min: Option<f64>,
    max: Option<f64>,
    choices: Vec<String>,
    help: String,
}

fn listing(found: &Found) -> Listing {
    let (lib, error) = match &found.outcome {
        Ok(lib) => (Some(lib), None),
        Err(e) => (None, Some(e.0.clone())),
    };
    Listing {
        name: lib.map_or(found.id.clone(), |l| l.info.name.clone()),
        version: lib.map(|l| l.info.version.clone()),
        source: found.source,
        origin: found.origin.clone(),
        library: found.library_path.clone(),
        interface: lib.map(|l| l.interface.clone()),
        description: lib.map(|l| l.info.description.clone()),
        params: lib
            .map(|l| {
                l.info
                    .params
                    .iter()
                    .map(|p| ParamListing {
                        name: p.name.clone(),
                        kind: p.kind.name(),
                        default: p.default.to_string(),
                        min: p.min,
                        max: p.max,
                        choices: p.choices.clone(),
                        help: p.help.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        error,
    }
}

fn discover_reporting(dir: &Path) -> Result<Vec<Found>> {
    discover(dir, &mut crate::plugins::report_build_line)
        .with_context(|| format!("cannot read plugins directory {}", dir.display()))
}

/// `probdrop-tui plugins`.
pub fn plugins(dir: &Path, json: bool) -> Result<()> {
    let found = discover_reporting(dir)?;
    let listings: Vec<Listing> = found.iter().map(listing).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&listings)?);
        return Ok(());
    }
    for l in &listings {
        print_listing(l)?;
    }
    let ok = listings.iter().filter(|l| l.error.is_none()).count();
    println!("{ok} strategies loaded, {} refused", listings.len() - ok);
    Ok(())
}

/// One strategy as `plugins` prints it: name, version, description, library
/// and parameters, or why it was refused.
fn print_listing(l: &Listing) -> Result<()> {
    match &l.error {
        None => {
            println!(
                "{} {} [{}] interface {}",
                l.name,
                l.version.as_deref().unwrap_or("?"),
                serde_json::to_value(l.source)?.as_str().unwrap_or("?"),
                l.interface.as_deref().unwrap_or("?")
            );
            if let Some(d) = &l.description {
                println!("  {d}");
            }
            if let Some(lib) = &l.library {
                println!("  library: {}", lib.display());
            }
            for p in &l.params {
                let range = match (p.min, p.max) {
                    (Some(a), Some(b)) => format!(" in [{a}, {b}]"),
                    _ => String::new(),
                };
                let choices = if p.choices.is_empty() {
                    String::new()
                } else {
                    format!(" one of {}", p.choices.join("|"))
                };
                println!(
                    "  {} ({}, default {}{range}{choices}): {}",
                    p.name, p.kind, p.default, p.help
                );
            }
        }
        Some(e) => {
            println!("{} [refused] {}", l.name, l.origin.display());
            for line in e.lines() {
                println!("  {line}");
            }
        }
    }
    Ok(())
}

/// `probdrop-tui new-strategy NAME`: writes and builds the crate, lists it.
pub fn new_strategy(plugins: &Path, args: &crate::scaffold::NewStrategyArgs) -> Result<()> {
    let krate = crate::scaffold::new_strategy(plugins, args)?;
    println!("wrote {}", krate.display());
    let parent = krate.parent().unwrap_or(plugins);
    let found = discover_reporting(parent)?;
    let ours = found
        .iter()
        .find(|f| f.origin == krate)
        .ok_or_else(|| anyhow::anyhow!("{} was not found after writing it", krate.display()))?;
    let entry = listing(ours);
    print_listing(&entry)?;
    if entry.error.is_some() {
        bail!("the new crate did not load");
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| "probdrop-tui".into());
    let plugins_flag = match &args.dir {
        Some(_) => format!(" --plugins {}", parent.display()),
        None => String::new(),
    };
    println!(
        "next:\n  edit {src}\n  sample it:  probdrop-tui{plugins_flag} mask {name} --shape 8,16,32,32 --p 0.2\n  \
         test it:    cd {dir} && PROBDROP_TUI={exe} {test}\n  \
         use it:     [[strategy]] plugin = \"{name}\" in an experiment file",
        src = krate.join("src/lib.rs").display(),
        dir = krate.display(),
        exe = exe.display(),
        test = crate::scaffold::TEST_COMMAND,
        name = args.name,
    );
    Ok(())
}

/// Finds a loaded strategy by name, with a did-you-mean.
pub fn find_strategy(found: Vec<Found>, name: &str) -> Result<Library> {
    let mut names = Vec::new();
    for f in found {
        if let Ok(lib) = f.outcome {
            if lib.info.name == name {
                return Ok(lib);
            }
            names.push(lib.info.name);
        }
    }
    let hint = plugin_api::closest(name, &names)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default();
    Err(anyhow!(
        "no strategy named `{name}`{hint}; found: {}",
        names.join(", ")
    ))
}

/// Parses `k=v` pairs against the strategy's schema (types from the schema).
pub fn parse_params(library: &Library, pairs: &[String]) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("--param {pair:?}: expected KEY=VALUE"))?;
        let kind = library
            .info
            .params
            .iter()
            .find(|p| p.name == k)
            .map(|p| p.kind)
            .unwrap_or(ParamKind::Choice);
        let value = Value::parse_for(kind, v).ok_or_else(|| {
            anyhow!(
                "--param {k}: expected a value of type {}, found {v:?}",
                kind.name()
            )
        })?;
        out.push((k.to_string(), value));
    }
    Ok(out)
}

/// The report of `probdrop-tui mask`.
#[derive(Serialize)]
pub struct MaskReport {
    pub strategy: String,
    pub version: String,
    pub shape: Vec<usize>,
    pub mask_shape: Vec<usize>,
    pub p: f64,
    pub seed: u64,
    #[serde(flatten)]
    pub stats: MaskStats,
    pub millis: f64,
}

/// `probdrop-tui mask`.
pub fn mask(dir: &Path, args: &MaskArgs) -> Result<()> {
    let library = find_strategy(discover_reporting(dir)?, &args.strategy)?;
    let params = parse_params(&library, &args.params)?;
    let strategy = library.create(&params)?;
    let input = match &args.input {
        Some(path) => {
            let array = npy::read(path)?;
            if let Some(shape) = &args.shape
                && *shape != array.shape
            {
                bail!(
                    "--shape {shape:?} does not match {} of shape {:?}",
                    path.display(),
                    array.shape
                );
            }
            array
        }
        None => {
            let shape = args
                .shape
                .clone()
                .ok_or_else(|| anyhow!("give --shape N,C,H,W or --input FILE.npy"))?;
            random_input(&shape, args.seed)
        }
    };
    let ctx = MaskContext {
        p: args.p,
        training: !args.eval,
        step: 0,
        epoch: 0,
        slot: "mask".into(),
        seed: args.seed,
    };
    let (mask_shape, mask, millis) = match input.shape.len() {
        1 => run_mask::<1>(&strategy, &input, &ctx)?,
        2 => run_mask::<2>(&strategy, &input, &ctx)?,
        3 => run_mask::<3>(&strategy, &input, &ctx)?,
        4 => run_mask::<4>(&strategy, &input, &ctx)?,
        n => bail!("inputs of rank {n} are not supported (1 to 4)"),
    };
    let stats = mask_stats(&input.shape, &mask);
    if let Some(out) = &args.out {
        npy::write(
            out,
            &npy::Array {
                shape: input.shape.clone(),
                data: mask.clone(),
            },
        )?;
    }
    let report = MaskReport {
        strategy: library.info.name.clone(),
        version: library.info.version.clone(),
        shape: input.shape.clone(),
        mask_shape,
        p: args.p,
        seed: args.seed,
        stats,
        millis,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("strategy        {} {}", report.strategy, report.version);
        println!("input shape     {:?}", report.shape);
        println!("mask shape      {:?}", report.mask_shape);
        println!("p               {}", report.p);
        println!("dropped         {:.4}", report.stats.dropped_fraction);
        println!("dropped blocks  {}", report.stats.dropped_blocks);
        println!("mean rescale    {:.4}", report.stats.mean_rescale);
        println!("mean of mask    {:.4}", report.stats.mean);
        println!("time            {:.2} ms", report.millis);
        if let Some(out) = &args.out {
            println!("written         {}", out.display());
        }
    }
    let broken = mask.iter().filter(|v| !v.is_finite()).count();
    if broken > 0 {
        bail!(
            "{} {}: the mask has {broken} NaN or infinite values",
            library.info.name,
            library.info.version
        );
    }
    Ok(())
}

fn random_input(shape: &[usize], seed: u64) -> npy::Array {
    let device = Device::default();
    device.seed(seed ^ 0x5eed);
    let n: usize = shape.iter().product();
    let t = Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &device);
    npy::Array {
        shape: shape.to_vec(),
        data: t.into_data().try_to_vec::<f32>().unwrap_or_default(),
    }
}

/// Masks `input` and returns (mask shape, mask broadcast to the input, ms).
fn run_mask<const D: usize>(
    strategy: &crate::plugins::Strategy,
    input: &npy::Array,
    ctx: &MaskContext,
) -> Result<(Vec<usize>, Vec<f32>, f64)> {
    let device = Device::default();
    let shape: [usize; D] = input
        .shape
        .clone()
        .try_into()
        .map_err(|_| anyhow!("rank mismatch"))?;
    let x = Tensor::<D>::from_data(TensorData::new(input.data.clone(), shape), &device);
    let start = std::time::Instant::now();
    let m = strategy.mask(&x, ctx)?;
    let mask_shape = m.dims().to_vec();
    let full = m.expand(shape);
    let data = full
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("reading the mask: {e:?}"))?;
    Ok((mask_shape, data, start.elapsed().as_secs_f64() * 1e3))
}
