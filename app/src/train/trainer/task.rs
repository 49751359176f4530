//! The data of a run: images or text, its batches.

use anyhow::Result;
use burn::tensor::{Device, Int, Tensor};

use crate::experiment::ExperimentFile;
use crate::run::dir::{self, InputSpec, RunDir};
use crate::train::data::{self, EpochItems, ImageBatch, ImageBatcher, SplitBatcher};
use crate::train::data_error::DataError;
use crate::train::models::InputKind;
use crate::train::text::{TextBatch, TextBatcher, TextTask};

/// One batch of either kind.
// Batches are moved a handful at a time: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Batch {
    Image(ImageBatch),
    Text(TextBatch),
}

impl Batch {
    pub(super) fn targets(&self) -> &Tensor<1, Int> {
        match self {
            Batch::Image(b) => &b.targets,
            Batch::Text(b) => &b.targets,
        }
    }
}

/// A run's data: images through their batchers, or encoded text.
// One per run: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Task {
    Image {
        train: SplitBatcher,
        val: SplitBatcher,
        shape: [usize; 3],
        /// What the model takes in: its normalisation and class names.
        input: InputSpec,
    },
    Text(TextTask),
}

impl Task {
    pub(super) fn load(resolved: &ExperimentFile, run_dir: &RunDir) -> Result<Task, DataError> {
        let spec = &resolved.data;
        if spec.format.is_text() {
            let vocabulary = run_dir.file(dir::TOKENIZER);
            return TextTask::prepare(spec, &spec.path, &vocabulary).map(Task::Text);
        }
        let splits = data::load(spec, &spec.path)?;
        let (mean, std) = if spec.normalize {
            data::channel_stats(splits.train.as_ref())
        } else {
            let c = splits.shape()[0];
            (vec![0.0; c], vec![1.0; c])
        };
        let input = InputSpec {
            mean,
            std,
            classes: splits.class_names(),
        };
        let batcher = |source, augment| SplitBatcher {
            inner: ImageBatcher {
                source,
                mean: input.mean.clone(),
                std: input.std.clone(),
                augment: spec.augment,
            },
            augment,
        };
        Ok(Task::Image {
            train: batcher(splits.train.clone(), true),
            val: batcher(splits.val.clone(), false),
            shape: splits.shape(),
            input,
        })
    }

    pub(super) fn input(&self) -> InputKind {
        match self {
            Task::Image { shape, .. } => InputKind::Image(*shape),
            Task::Text(t) => InputKind::Text {
                vocab_size: t.vocabulary.size(),
                max_len: t.vocabulary.max_len,
            },
        }
    }

    pub(super) fn classes(&self) -> usize {
        match self {
            Task::Image { input, .. } => input.classes.len(),
            Task::Text(t) => t.classes.len(),
        }
    }

    /// An image task's input (text runs have a tokenizer instead).
    pub(super) fn image_input(&self) -> Option<&InputSpec> {
        match self {
            Task::Image { input, .. } => Some(input),
            Task::Text(_) => None,
        }
    }

    pub(super) fn train_len(&self) -> usize {
        match self {
            Task::Image { train, .. } => train.inner.source.len(),
            Task::Text(t) => t.train.len(),
        }
    }

    pub(super) fn val_len(&self) -> usize {
        match self {
            Task::Image { val, .. } => val.inner.source.len(),
            Task::Text(t) => t.val.len(),
        }
    }

    pub(super) fn vocabulary(&self) -> Option<&crate::train::text::Vocabulary> {
        match self {
            Task::Text(t) => Some(&t.vocabulary),
            Task::Image { .. } => None,
        }
    }

    /// The batches of `items` from the training (`train`) or validation split.
    pub(super) fn batches(
        &self,
        items: EpochItems,
        batch_size: usize,
        workers: usize,
        device: &Device,
        train: bool,
    ) -> Box<dyn Iterator<Item = Batch>> {
        match self {
            Task::Image {
                train: t, val: v, ..
            } => {
                let batcher = if train { t } else { v }.clone();
                Box::new(
                    data::ordered_batches(batcher, items, batch_size, workers, device)
                        .map(Batch::Image),
                )
            }
            Task::Text(t) => {
                let examples = if train { &t.train } else { &t.val }.clone();
                Box::new(
                    data::ordered_batches(
                        TextBatcher { examples },
                        items,
                        batch_size,
                        workers,
                        device,
                    )
                    .map(Batch::Text),
                )
            }
        }
    }
}
