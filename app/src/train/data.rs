//! Labelled image data: sources (IDX, CIFAR, image folders), normalisation,
//! augmentation, and batches through burn's data loader with worker threads.
//!
//! The epoch order is a permutation drawn from (seed, epoch), and augmentation
//! draws from (seed, epoch, position): a run resumed mid-epoch sees exactly the
//! batches it would have seen.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::experiment::{Augment, DataFormat, DataSpec};
use crate::train::data_error::DataError;
use crate::train::idx;
use crate::train::sources;

/// Labelled images, pixels as bytes in channel-major order.
pub trait ImageSource: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `[channels, height, width]` of every image.
    fn shape(&self) -> [usize; 3];
    fn classes(&self) -> usize;
    /// The name of each label, as the data set gives them; its numbers
    /// where it gives none.
    fn class_names(&self) -> Vec<String> {
        numbered(self.classes())
    }
    fn label(&self, i: usize) -> usize;
    /// `channels × height × width` bytes.
    fn pixels(&self, i: usize) -> Cow<'_, [u8]>;
}

/// Classes named by their labels' numbers.
fn numbered(classes: usize) -> Vec<String> {
    (0..classes).map(|c| c.to_string()).collect()
}

/// A whole split held in memory.
#[derive(Clone, Debug)]
pub struct InMemory {
    pub images: Vec<u8>,
    pub labels: Vec<u16>,
    pub shape: [usize; 3],
    pub classes: usize,
    /// The labels' names, where the data set gives them (else empty).
    pub class_names: Vec<String>,
}

impl InMemory {
    /// Keeps the first `n` images.
    pub fn truncate(&mut self, n: usize) {
        let size = self.shape.iter().product::<usize>();
        self.labels.truncate(n);
        self.images.truncate(n * size);
    }
}

impl ImageSource for InMemory {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn shape(&self) -> [usize; 3] {
        self.shape
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn class_names(&self) -> Vec<String> {
        if self.class_names.len() == self.classes {
            self.class_names.clone()
        } else {
            numbered(self.classes)
        }
    }
    fn label(&self, i: usize) -> usize {
        self.labels[i] as usize
    }
    fn pixels(&self, i: usize) -> Cow<'_, [u8]> {
        let size = self.shape.iter().product::<usize>();
        Cow::Borrowed(&self.images[i * size..(i + 1) * size])
    }
}

/// A source limited to its first `n` items.
struct Limited {
    inner: Arc<dyn ImageSource>,
    n: usize,
}

impl ImageSource for Limited {
    fn len(&self) -> usize {
        self.n.min(self.inner.len())
    }
    fn shape(&self) -> [usize; 3] {
        self.inner.shape()
    }
    fn classes(&self) -> usize {
        self.inner.classes()
    }
    fn class_names(&self) -> Vec<String> {
        self.inner.class_names()
    }
    fn label(&self, i: usize) -> usize {
        self.inner.label(i)
    }
    fn pixels(&self, i: usize) -> Cow<'_, [u8]> {
        self.inner.pixels(i)
    }
}

/// Train and validation splits of one data set.
#[derive(Clone)]
pub struct Splits {
    pub train: Arc<dyn ImageSource>,
    pub val: Arc<dyn ImageSource>,
}

impl Splits {
    pub fn shape(&self) -> [usize; 3] {
        self.train.shape()
    }
    pub fn classes(&self) -> usize {
        self.train.classes().max(self.val.classes())
    }
    /// The labels' names, from the split that knows of more labels.
    pub fn class_names(&self) -> Vec<String> {
        if self.train.classes() >= self.val.classes() {
            self.train.class_names()
        } else {
            self.val.class_names()
        }
    }
}

/// Checks that `path` looks like data of `format`, without reading it all.
pub fn check_layout(format: DataFormat, path: &Path) -> Result<(), DataError> {
    match format {
        DataFormat::Idx => {
            idx::split_files(path, "train")?;
            idx::split_files(path, "t10k")?;
            Ok(())
        }
        DataFormat::Cifar10 => sources::check_cifar(path, false),
        DataFormat::Cifar100 => sources::check_cifar(path, true),
        DataFormat::ImageFolder => sources::check_image_folder(path),
        DataFormat::Text | DataFormat::GlueSingle | DataFormat::GluePair => {
            crate::train::text::split_files(path).map(|_| ())
        }
    }
}

/// Loads both splits of `spec` from `path` (already resolved).
pub fn load(spec: &DataSpec, path: &Path) -> Result<Splits, DataError> {
    let (train, val): (Arc<dyn ImageSource>, Arc<dyn ImageSource>) = match spec.format {
        DataFormat::Idx => (
            Arc::new(load_idx(path, "train", spec.train_limit)?),
            Arc::new(load_idx(path, "t10k", spec.val_limit)?),
        ),
        DataFormat::Cifar10 | DataFormat::Cifar100 => {
            let hundred = spec.format == DataFormat::Cifar100;
            (
                Arc::new(sources::load_cifar(path, hundred, true)?),
                Arc::new(sources::load_cifar(path, hundred, false)?),
            )
        }
        DataFormat::Text | DataFormat::GlueSingle | DataFormat::GluePair => {
            return Err(DataError::content(
                path,
                "text data is read by the text pipeline, not as images",
            ));
        }
        DataFormat::ImageFolder => {
            let size = spec.image_size.unwrap_or(224);
            (
                Arc::new(sources::ImageFolder::open(&path.join("train"), size)?),
                Arc::new(sources::ImageFolder::open(&path.join("val"), size)?),
            )
        }
    };
    let limit = |s: Arc<dyn ImageSource>, n: Option<usize>| -> Arc<dyn ImageSource> {
        match n {
            Some(n) if n < s.len() => Arc::new(Limited { inner: s, n }),
            _ => s,
        }
    };
    let splits = Splits {
        train: limit(train, spec.train_limit),
        val: limit(val, spec.val_limit),
    };
    if splits.train.is_empty() || splits.val.is_empty() {
        return Err(DataError::content(path, "a split has no images"));
    }
    Ok(splits)
}

/// The first `limit` images of a split: only those are inflated, whatever
/// the file declares.
fn load_idx(dir: &Path, split: &str, limit: Option<usize>) -> Result<InMemory, DataError> {
    let (images, labels) = idx::split_files(dir, split)?;
    let set = idx::load_image_set_with(&images, &labels, idx::Take::first(limit))?;
    let classes = set
        .labels
        .iter()
        .copied()
        .max()
        .map_or(0, |m| m as usize + 1)
        .max(10);
    Ok(InMemory {
        shape: [1, set.rows, set.cols],
        labels: set.labels.iter().map(|&l| l as u16).collect(),
        images: set.images,
        classes,
        class_names: Vec::new(),
    })
}

/// Per-channel mean and standard deviation of pixel values in [0, 1], over at most
/// the first 10 000 training images (deterministic, cheap).
pub fn channel_stats(source: &dyn ImageSource) -> (Vec<f32>, Vec<f32>) {
    let [c, h, w] = source.shape();
    let n = source.len().min(10_000);
    let mut sum = vec![0f64; c];
    let mut sq = vec![0f64; c];
    for i in 0..n {
        let px = source.pixels(i);
        for ch in 0..c {
            for &v in &px[ch * h * w..(ch + 1) * h * w] {
                let v = v as f64 / 255.0;
                sum[ch] += v;
                sq[ch] += v * v;
            }
        }
    }
    let count = (n * h * w).max(1) as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / count) as f32).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(q, &m)| ((q / count - (m as f64).powi(2)).max(1e-12).sqrt()) as f32)
        .collect();
    (mean, std)
}

/// One item of an epoch: which image, and the seed of its augmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item {
    pub index: usize,
    pub aug_seed: u64,
}

/// The items of one epoch from position `start` on, in the epoch's order.
pub struct EpochItems {
    items: Vec<Item>,
}

impl EpochItems {
    /// Training order: a permutation seeded by (seed, epoch).
    pub fn shuffled(len: usize, seed: u64, epoch: u64, start: usize) -> Self {
        let mut rng = SplitMix(mix(seed, epoch));
        let mut order: Vec<usize> = (0..len).collect();
        for i in (1..len).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let items = order
            .into_iter()
            .enumerate()
            .skip(start)
            .map(|(pos, index)| Item {
                index,
                aug_seed: mix(mix(seed, epoch), pos as u64),
            })
            .collect();
        Self { items }
    }

    /// Evaluation order: as stored, no augmentation.
    pub fn sequential(len: usize) -> Self {
        Self {
            items: (0..len).map(|index| Item { index, aug_seed: 0 }).collect(),
        }
    }
}

impl Dataset<Item> for EpochItems {
    fn get(&self, index: usize) -> Result<Item, burn::data::dataset::DatasetError> {
        Ok(self.items[index])
    }
    fn len(&self) -> usize {
        self.items.len()
    }
}

/// Images `[batch, channels, height, width]` (normalised) and class targets.
#[derive(Clone, Debug)]
pub struct ImageBatch {
    pub images: Tensor<4>,
    pub targets: Tensor<1, Int>,
}

/// Turns items into normalised, optionally augmented batches.
#[derive(Clone)]
pub struct ImageBatcher {
    pub source: Arc<dyn ImageSource>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub augment: Augment,
}

impl ImageBatcher {
    /// Pixels of one item as normalised floats, augmented when asked.
    pub fn item_pixels(&self, item: Item, augment: bool) -> Vec<f32> {
        let [c, h, w] = self.source.shape();
        let px = self.source.pixels(item.index);
        let mut out = vec![0f32; c * h * w];
        let (dy, dx, flip) = if augment && self.augment == Augment::CropFlip {
            // Random crop from the image zero-padded by an eighth of its side, and a
            // horizontal flip half of the time.
            let pad = (h.min(w) / 8).max(1) as i64;
            let mut rng = SplitMix(item.aug_seed);
            let dy = (rng.next_u64() % (2 * pad as u64 + 1)) as i64 - pad;
            let dx = (rng.next_u64() % (2 * pad as u64 + 1)) as i64 - pad;
            (dy, dx, rng.next_u64() & 1 == 1)
        } else {
            (0, 0, false)
        };
        for ch in 0..c {
            // Padding is black before normalisation, as with torchvision's RandomCrop.
            let fill = (0.0 - self.mean[ch]) / self.std[ch];
            for y in 0..h {
                for x in 0..w {
                    let sy = y as i64 + dy;
                    let sx0 = if flip { (w - 1 - x) as i64 } else { x as i64 };
                    let sx = sx0 + dx;
                    let v = if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                        let raw = px[ch * h * w + sy as usize * w + sx as usize] as f32 / 255.0;
                        (raw - self.mean[ch]) / self.std[ch]
                    } else {
                        fill
                    };
                    out[ch * h * w + y * w + x] = v;
                }
            }
        }
        out
    }
}

/// Batches for training (augmented) or evaluation (not).
#[derive(Clone)]
pub struct SplitBatcher {
    pub inner: ImageBatcher,
    pub augment: bool,
}

impl Batcher<Item, ImageBatch> for SplitBatcher {
    fn batch(&self, items: Vec<Item>, device: &Device) -> ImageBatch {
        let [c, h, w] = self.inner.source.shape();
        let mut pixels = Vec::with_capacity(items.len() * c * h * w);
        let mut labels = Vec::with_capacity(items.len());
        for &item in &items {
            pixels.extend(self.inner.item_pixels(item, self.augment));
            labels.push(self.inner.source.label(item.index) as i64);
        }
        let n = items.len();
        ImageBatch {
            images: Tensor::from_data(TensorData::new(pixels, [n, c, h, w]), device),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

/// Batches of `items` in order, prepared ahead by `workers` threads (none: in
/// the caller's thread).
///
/// burn's multi-worker data loader yields batches in the order workers finish
/// them, which breaks reproducibility under a seed and exact mid-epoch resume;
/// this one keeps burn's `Dataset` and `Batcher` but hands batch `i` to worker
/// `i mod workers` and reads the workers round-robin.
pub fn ordered_batches<B, O>(
    batcher: B,
    items: EpochItems,
    batch_size: usize,
    workers: usize,
    device: &Device,
) -> Box<dyn Iterator<Item = O>>
where
    B: Batcher<Item, O> + Clone + Send + 'static,
    O: Send + 'static,
{
    let items = Arc::new(items);
    let batch_size = batch_size.max(1);
    let batches = items.len().div_ceil(batch_size);
    let make = {
        let items = items.clone();
        let batcher = batcher.clone();
        let device = device.clone();
        move |i: usize| -> O {
            let end = ((i + 1) * batch_size).min(items.len());
            let chunk: Vec<Item> = items.items[i * batch_size..end].to_vec();
            batcher.batch(chunk, &device)
        }
    };
    if workers == 0 {
        return Box::new((0..batches).map(make));
    }
    let mut receivers = Vec::with_capacity(workers);
    for k in 0..workers {
        // Two batches ahead per worker bounds memory.
        let (tx, rx) = std::sync::mpsc::sync_channel::<O>(2);
        let make = make.clone();
        std::thread::spawn(move || {
            for i in (k..batches).step_by(workers) {
                if tx.send(make(i)).is_err() {
                    return; // the consumer stopped early
                }
            }
        });
        receivers.push(rx);
    }
    Box::new((0..batches).map_while(move |i| receivers[i % workers].recv().ok()))
}

/// A small, good-enough generator for shuffles and augmentation draws.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

pub fn mix(a: u64, b: u64) -> u64 {
    SplitMix(a ^ b.wrapping_mul(0x2545_f491_4f6c_dd1d)).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_batches_keep_the_epoch_order_with_any_number_of_workers() {
        let n = 203;
        let source = Arc::new(InMemory {
            images: (0..n).map(|i| i as u8).collect(),
            labels: (0..n).map(|i| i as u16).collect(),
            shape: [1, 1, 1],
            classes: n,
            class_names: Vec::new(),
        });
        let batcher = SplitBatcher {
            inner: ImageBatcher {
                source,
                mean: vec![0.0],
                std: vec![1.0],
                augment: Augment::None,
            },
            augment: false,
        };
        let device = Device::flex();
        let labels = |workers: usize| -> Vec<i64> {
            ordered_batches(
                batcher.clone(),
                EpochItems::shuffled(n, 5, 1, 10),
                16,
                workers,
                &device,
            )
            .flat_map(|b| b.targets.into_data().iter::<i64>().collect::<Vec<_>>())
            .collect()
        };
        let expected: Vec<i64> = EpochItems::shuffled(n, 5, 1, 10)
            .items
            .iter()
            .map(|i| i.index as i64)
            .collect();
        for workers in [0, 1, 3] {
            assert_eq!(labels(workers), expected, "{workers} workers");
        }
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation_and_resumes_exactly() {
        let a = EpochItems::shuffled(100, 7, 3, 0);
        let b = EpochItems::shuffled(100, 7, 3, 40);
        let mut seen: Vec<usize> = a.items.iter().map(|i| i.index).collect();
        seen.sort();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        assert_eq!(&a.items[40..], &b.items[..]);
        let other = EpochItems::shuffled(100, 7, 4, 0);
        assert_ne!(a.items, other.items);
    }

    #[test]
    fn crop_flip_moves_pixels_and_eval_does_not() {
        let mut images = vec![0u8; 2 * 8 * 8];
        images[3 * 8 + 5] = 255; // one bright pixel in image 0
        let source = Arc::new(InMemory {
            images,
            labels: vec![1, 2],
            shape: [1, 8, 8],
            classes: 3,
            class_names: Vec::new(),
        });
        let batcher = ImageBatcher {
            source,
            mean: vec![0.0],
            std: vec![1.0],
            augment: Augment::CropFlip,
        };
        let plain = batcher.item_pixels(
            Item {
                index: 0,
                aug_seed: 1,
            },
            false,
        );
        assert_eq!(plain[3 * 8 + 5], 1.0);
        assert_eq!(plain.iter().sum::<f32>(), 1.0);
        let moved: Vec<Vec<f32>> = (0..20)
            .map(|s| {
                batcher.item_pixels(
                    Item {
                        index: 0,
                        aug_seed: s,
                    },
                    true,
                )
            })
            .collect();
        assert!(moved.iter().any(|m| m[3 * 8 + 5] != 1.0));
        // Shifts by at most one pixel (8 / 8) keep the bright pixel in the image.
        assert!(moved.iter().all(|m| m.iter().sum::<f32>() == 1.0));
    }
}
