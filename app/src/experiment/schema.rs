//! The experiment file as written by the user. Every table rejects unknown keys;
//! choices are enums so a wrong word is refused with the list of valid ones.
//! Combinations serde cannot express (a momentum given to AdamW, a step schedule
//! without milestones) are checked in `validate`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    #[serde(default = "default_device")]
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendChoice>,
    /// On CUDA: cuDNN times its algorithms for each new shape and keeps the
    /// fastest (default true, false with `deterministic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cudnn_benchmark: Option<bool>,
    /// On CUDA: cuDNN keeps to deterministic algorithms, and no per-shape
    /// search (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deterministic: bool,
    pub data: DataSpec,
    pub model: ModelSpec,
    #[serde(default)]
    pub optimizer: OptimizerSpec,
    #[serde(default)]
    pub lr_schedule: LrScheduleSpec,
    pub train: TrainSpec,
    #[serde(default, skip_serializing_if = "LogSpec::is_default")]
    pub log: LogSpec,
    #[serde(default)]
    pub strategy: Vec<StrategySpec>,
    /// How `compare` runs the cells of the strategies' sweeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepSpec>,
}

/// `[sweep]`: how a comparison runs its sweep cells.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halving: Option<Halving>,
}

/// Successive halving: at each rung (a fraction of training), the cells of
/// an arm that rank below the best `keep` fraction by mean validation
/// accuracy over seeds stop; the others go on.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Halving {
    pub rungs: Vec<f64>,
    #[serde(default = "half")]
    pub keep: f64,
}

fn half() -> f64 {
    0.5
}

/// What the trainer writes besides its own logs.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    /// A TensorBoard event file in the run directory, written as the run
    /// logs (`tensorboard --logdir runs` while training).
    #[serde(default)]
    pub tensorboard: bool,
}

impl LogSpec {
    fn is_default(&self) -> bool {
        *self == LogSpec::default()
    }
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

fn default_device() -> String {
    "cpu".into()
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    Flex,
    Libtorch,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DataFormat {
    Idx,
    Cifar10,
    Cifar100,
    ImageFolder,
    /// `label<TAB>text` lines, `train.tsv` and `valid.tsv`/`dev.tsv`.
    Text,
    /// GLUE single sentence (`sentence`, `label` columns), as SST-2.
    GlueSingle,
    /// GLUE sentence pairs (`sentence1`, `sentence2`, `gold_label`), as MNLI.
    GluePair,
}

impl DataFormat {
    pub fn is_text(self) -> bool {
        matches!(
            self,
            DataFormat::Text | DataFormat::GlueSingle | DataFormat::GluePair
        )
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Augment {
    #[default]
    None,
    CropFlip,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    pub format: DataFormat,
    /// Relative paths are resolved against the experiment file's directory.
    pub path: PathBuf,
    /// Used, with a warning, when `path` does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_limit: Option<usize>,
    #[serde(default = "yes")]
    pub normalize: bool,
    #[serde(default)]
    pub augment: Augment,
    /// Images of an image folder are resized to this square side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<usize>,
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Text: tokens per example, `[CLS]` and `[SEP]` included (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
    /// Text: size of the WordPiece vocabulary trained on the training split
    /// (default 8000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<usize>,
}

impl DataSpec {
    pub fn max_len(&self) -> usize {
        self.max_len.unwrap_or(64)
    }
    pub fn vocab_size(&self) -> usize {
        self.vocab_size.unwrap_or(8000)
    }
}

fn yes() -> bool {
    true
}

fn default_workers() -> usize {
    2
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    SmallCnn,
    Resnet18,
    Resnet20,
    Resnet50,
    Transformer,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub kind: ModelKind,
    /// small-cnn: output channels of each conv block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<usize>>,
    /// small-cnn: width of the hidden linear layer; transformer: the model width
    /// (default 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<usize>,
    /// transformer: attention heads (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<usize>,
    /// transformer: encoder layers (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<usize>,
    /// transformer: width of the feed-forward layer (default 2 × hidden).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ff: Option<usize>,
    /// transformer: the encoder's own dropout (default 0.1, as RoBERTa).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
    /// Per-slot overrides, keyed by slot name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<String, SlotSpec>,
}

impl ModelSpec {
    /// `kind` with every optional setting at its default.
    pub fn of(kind: ModelKind) -> ModelSpec {
        ModelSpec {
            kind,
            channels: None,
            hidden: None,
            heads: None,
            layers: None,
            ff: None,
            dropout: None,
            slots: Default::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlotSpec {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Multiplies the scheduled drop rate at this slot.
    #[serde(default = "one")]
    pub p_scale: f64,
    /// Strategy parameters for this slot, over the strategy's own.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub params: toml::Table,
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    #[default]
    Sgd,
    Adamw,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSpec {
    #[serde(default)]
    pub kind: OptimizerKind,
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// SGD only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    /// SGD only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nesterov: Option<bool>,
    #[serde(default)]
    pub weight_decay: f64,
    /// AdamW only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub betas: Option<[f64; 2]>,
}

fn default_lr() -> f64 {
    0.05
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Sgd,
            lr: default_lr(),
            momentum: None,
            nesterov: None,
            weight_decay: 0.0,
            betas: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LrKind {
    #[default]
    Constant,
    Step,
    Cosine,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LrScheduleSpec {
    #[serde(default)]
    pub kind: LrKind,
    /// Linear warm-up from 0 over this many epochs (fractions allowed).
    #[serde(default)]
    pub warmup_epochs: f64,
    /// step: epochs at which the rate is multiplied by `gamma`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub milestones: Vec<usize>,
    /// step: the factor (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    /// cosine: the rate reached at the end (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lr: Option<f64>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    pub epochs: usize,
    pub batch_size: usize,
    /// Evaluate every N steps (default: at the end of each epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_every: Option<usize>,
    /// Checkpoint every N steps (default: at the end of each epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<usize>,
    /// Log training metrics every N steps.
    #[serde(default = "default_log_every")]
    pub log_every: usize,
    /// Mask and salience snapshot every N steps (0: never).
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: usize,
    /// Stop after this many optimiser steps (for smoke tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<usize>,
    /// Seconds one step may take before the run is failed as hung (default:
    /// max(60, 20 × the median step)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_timeout: Option<f64>,
    /// GiB of memory the trainer may hold (resident); past it the run fails
    /// with the reason, its checkpoint kept (default: half of this machine's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<f64>,
    /// Threads the trainer may run; past it the run fails likewise (default:
    /// the larger of 512 and 8 per core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_limit: Option<usize>,
}

fn default_log_every() -> usize {
    10
}

fn default_snapshot_every() -> usize {
    50
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StrategySpec {
    /// Strategy name as its plugin reports it, or "none" for no extra dropout.
    pub plugin: String,
    /// Name of this arm in run names and tables (default: the plugin name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub params: toml::Table,
    #[serde(default)]
    pub schedule: DropSchedule,
    /// Slots this strategy is applied at: names, old names (`stage3`) or
    /// patterns (`layer3.*.bn1`); default: the model's default slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<Vec<String>>,
    /// How `p` changes with the position of the slots, in forward order.
    #[serde(default, skip_serializing_if = "is_constant")]
    pub depth_rule: super::slots::DepthRule,
    /// Values to sweep (`experiment::sweep`): this arm stands for one arm per
    /// cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<toml::Table>,
}

fn is_constant(rule: &super::slots::DepthRule) -> bool {
    *rule == super::slots::DepthRule::Constant
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DropKind {
    #[default]
    Constant,
    Linear,
    Step,
    /// Early dropout (Liu et al., ICML 2023): `p` until a fraction of
    /// training, then nothing.
    Early,
    /// Late dropout (the same paper): nothing until a fraction of training,
    /// then `p`.
    Late,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DropSchedule {
    #[serde(default)]
    pub kind: DropKind,
    /// constant, early, late: the drop rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<f64>,
    /// early: the fraction of training that has dropout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<f64>,
    /// late: the fraction of training from which dropout starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<f64>,
    /// linear: rate at the first step (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
    /// linear: rate reached at the end of the ramp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<f64>,
    /// linear: fraction of training over which the rate ramps (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<f64>,
    /// step: the rates, the first from epoch 0.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<f64>,
    /// step: epochs at which the next rate starts (one fewer than `values`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_epochs: Vec<usize>,
}
