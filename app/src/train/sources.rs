//! Image data sets on disk: the CIFAR binary releases, read whole into memory,
//! and class-per-directory image folders, decoded lazily.
//!
//! CIFAR-10 (`cifar-10-batches-bin/`): `data_batch_1.bin` … `data_batch_5.bin`
//! and `test_batch.bin`, each a run of records of one label byte then 3,072
//! pixel bytes (the red 32×32 plane, then green, then blue, rows top to
//! bottom). CIFAR-100 (`cifar-100-binary/`): `train.bin` and `test.bin`, each
//! record a coarse label byte (20 superclasses), a fine label byte (100
//! classes) and the same 3,072 pixel bytes; we train on the fine labels.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{ImageReader, RgbImage};

use super::data::{ImageSource, InMemory};
use super::data_error::DataError;

/// CIFAR images are 3 × 32 × 32.
const CIFAR_SHAPE: [usize; 3] = [3, 32, 32];
const CIFAR_PIXELS: usize = 3 * 32 * 32;

/// File layout of one CIFAR release.
struct Cifar {
    name: &'static str,
    /// The directory the archive unpacks to.
    dir: &'static str,
    train: &'static [&'static str],
    test: &'static [&'static str],
    /// Label bytes before the pixels; the last one is the label we use.
    label_bytes: usize,
    classes: usize,
    /// The release's file of label names, one a line.
    names: &'static str,
}

const CIFAR10: Cifar = Cifar {
    name: "CIFAR-10",
    dir: "cifar-10-batches-bin",
    train: &[
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ],
    test: &["test_batch.bin"],
    label_bytes: 1,
    classes: 10,
    names: "batches.meta.txt",
};

const CIFAR100: Cifar = Cifar {
    name: "CIFAR-100",
    dir: "cifar-100-binary",
    train: &["train.bin"],
    test: &["test.bin"],
    label_bytes: 2,
    classes: 100,
    names: "fine_label_names.txt",
};

impl Cifar {
    fn of(hundred: bool) -> &'static Cifar {
        if hundred { &CIFAR100 } else { &CIFAR10 }
    }

    fn record(&self) -> usize {
        self.label_bytes + CIFAR_PIXELS
    }

    fn files(&self, train: bool) -> &'static [&'static str] {
        if train { self.train } else { self.test }
    }

    /// `path` itself, or the release's directory under it when there is one.
    fn resolve(&self, path: &Path) -> PathBuf {
        let nested = path.join(self.dir);
        if nested.is_dir() {
            nested
        } else {
            path.to_path_buf()
        }
    }

    /// The path of `file`, or an error saying what the release should contain.
    fn find(&self, dir: &Path, file: &str) -> Result<PathBuf, DataError> {
        let path = dir.join(file);
        if path.is_file() {
            return Ok(path);
        }
        let expected: Vec<&str> = self.train.iter().chain(self.test).copied().collect();
        let expected = format!(
            "{} expects {} (binary version) in {} or in its {}/ subdirectory",
            self.name,
            expected.join(", "),
            dir.display(),
            self.dir,
        );
        Err(DataError::NotFound { path, expected })
    }

    /// The labels' names from the release's names file, or none when it is
    /// missing or does not name every class.
    fn class_names(&self, dir: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(dir.join(self.names)).unwrap_or_default();
        let names: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if names.len() == self.classes {
            names
        } else {
            Vec::new()
        }
    }

    fn check_size(&self, path: &Path, len: u64) -> Result<(), DataError> {
        let record = self.record() as u64;
        if len == 0 || !len.is_multiple_of(record) {
            return Err(DataError::content(
                path,
                format!(
                    "{len} bytes is not a whole number of {} records ({record} bytes each); \
                     is the file truncated, or from the other CIFAR release?",
                    self.name,
                ),
            ));
        }
        Ok(())
    }
}

/// Loads the training or test split of CIFAR-10 (`hundred = false`) or
/// CIFAR-100 (fine labels). `path` is the directory holding the `.bin` files
/// or the one above it.
pub fn load_cifar(path: &Path, hundred: bool, train: bool) -> Result<InMemory, DataError> {
    let cifar = Cifar::of(hundred);
    let dir = cifar.resolve(path);
    // Resolve every file first so a missing one fails before any big read.
    let files = cifar
        .files(train)
        .iter()
        .map(|file| cifar.find(&dir, file))
        .collect::<Result<Vec<_>, _>>()?;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).map_err(|source| DataError::Read {
            path: file.clone(),
            source,
        })?;
        cifar.check_size(file, bytes.len() as u64)?;
        let records = bytes.len() / cifar.record();
        images.reserve(records * CIFAR_PIXELS);
        labels.reserve(records);
        for (i, record) in bytes.chunks_exact(cifar.record()).enumerate() {
            let (label_bytes, pixels) = record.split_at(cifar.label_bytes);
            let label = label_bytes[cifar.label_bytes - 1];
            if label as usize >= cifar.classes {
                return Err(DataError::content(
                    file,
                    format!(
                        "record {i} has label {label}, but {} labels run from 0 to {}",
                        cifar.name,
                        cifar.classes - 1,
                    ),
                ));
            }
            labels.push(u16::from(label));
            // The file's plane order is already the channel-major layout we keep.
            images.extend_from_slice(pixels);
        }
    }
    Ok(InMemory {
        images,
        labels,
        shape: CIFAR_SHAPE,
        classes: cifar.classes,
        class_names: cifar.class_names(&dir),
    })
}

/// Checks that both CIFAR splits are present and plausibly sized, without
/// reading them.
pub fn check_cifar(path: &Path, hundred: bool) -> Result<(), DataError> {
    let cifar = Cifar::of(hundred);
    let dir = cifar.resolve(path);
    for file in cifar.train.iter().chain(cifar.test) {
        let file = cifar.find(&dir, file)?;
        let len = std::fs::metadata(&file)
            .map_err(|source| DataError::Read {
                path: file.clone(),
                source,
            })?
            .len();
        cifar.check_size(&file, len)?;
    }
    Ok(())
}

/// Images stored as `dir/<class name>/<image>.{png,jpg,jpeg}`, ImageNet style.
///
/// Classes are the subdirectories in name order (hidden ones skipped), so the
/// same class names give the same labels in every split. Images are decoded
/// when asked for, converted to RGB, scaled so the shorter side is
/// `image_size` and centre-cropped to `image_size × image_size`.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    class_names: Vec<String>,
    /// Every image with its label, class by class, files in name order.
    files: Vec<(PathBuf, usize)>,
    image_size: usize,
}

impl ImageFolder {
    pub fn open(dir: &Path, image_size: usize) -> Result<ImageFolder, DataError> {
        if image_size == 0 {
            return Err(DataError::Setting(
                "the image size must be at least 1 pixel",
            ));
        }
        let class_dirs = class_dirs(dir)?;
        if class_dirs.is_empty() {
            return Err(DataError::NoClasses {
                dir: dir.to_path_buf(),
            });
        }
        let mut class_names = Vec::with_capacity(class_dirs.len());
        let mut files = Vec::new();
        for (label, (name, path)) in class_dirs.into_iter().enumerate() {
            let mut images = read_dir_sorted(&path)?
                .into_iter()
                .filter(|p| p.is_file() && is_image(p))
                .map(|p| (p, label))
                .collect();
            files.append(&mut images);
            class_names.push(name);
        }
        if files.is_empty() {
            return Err(DataError::Content {
                path: dir.to_path_buf(),
                what: format!(
                    "{} class directories but no .png, .jpg or .jpeg images in them",
                    class_names.len()
                ),
            });
        }
        Ok(ImageFolder {
            class_names,
            files,
            image_size,
        })
    }

    /// Class names; label `i` is `class_names()[i]`.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The path of image `i`.
    pub fn path(&self, i: usize) -> &Path {
        &self.files[i].0
    }

    /// Decodes image `i` into `[3, image_size, image_size]` bytes, or says why
    /// it cannot.
    pub fn decode(&self, i: usize) -> Result<Vec<u8>, DataError> {
        let path = self.path(i);
        let image = ImageReader::open(path)
            .and_then(|reader| reader.with_guessed_format())
            .map_err(|source| DataError::Read {
                path: path.to_path_buf(),
                source,
            })?
            .decode()
            .map_err(|source| DataError::Decode {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(to_chw(&resize_and_crop(&image.to_rgb8(), self.image_size)))
    }
}

impl ImageSource for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn shape(&self) -> [usize; 3] {
        [3, self.image_size, self.image_size]
    }

    fn classes(&self) -> usize {
        self.class_names.len()
    }

    fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }

    fn label(&self, i: usize) -> usize {
        self.files[i].1
    }

    /// An image that cannot be read or decoded comes back all black: one bad
    /// file among a million should not stop a training run, and `pixels` has
    /// no way to report it. Use [`ImageFolder::decode`] to find such files.
    fn pixels(&self, i: usize) -> Cow<'_, [u8]> {
        let size = self.shape().iter().product();
        Cow::Owned(self.decode(i).unwrap_or_else(|_| vec![0; size]))
    }
}

/// Checks that `path/train` and `path/val` exist and each has a class directory.
pub fn check_image_folder(path: &Path) -> Result<(), DataError> {
    for split in ["train", "val"] {
        let dir = path.join(split);
        if !dir.is_dir() {
            return Err(DataError::NotFound {
                path: dir,
                expected: "an image folder needs train/ and val/, each with one directory \
                           of images per class"
                    .into(),
            });
        }
        if class_dirs(&dir)?.is_empty() {
            return Err(DataError::NoClasses { dir });
        }
    }
    Ok(())
}

/// The non-hidden subdirectories of `dir` with their names, in name order.
fn class_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    Ok(read_dir_sorted(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            (!name.starts_with('.')).then_some((name, p))
        })
        .collect())
}

/// The entries of `dir`, sorted so that labels and order do not depend on the
/// file system.
fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let error = |source| DataError::List {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = std::fs::read_dir(dir)
        .map_err(error)?
        .map(|entry| entry.map(|e| e.path()).map_err(error))
        .collect::<Result<Vec<_>, _>>()?;
    paths.sort();
    Ok(paths)
}

fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["png", "jpg", "jpeg"]
            .iter()
            .any(|x| e.eq_ignore_ascii_case(x))
    })
}

/// Scales `image` so its shorter side is `size` (aspect ratio kept), then
/// crops the central `size × size` square.
fn resize_and_crop(image: &RgbImage, size: usize) -> RgbImage {
    let size = u32::try_from(size).unwrap_or(u32::MAX);
    let (width, height) = image.dimensions();
    let shorter = u64::from(width.min(height).max(1));
    // Round the longer side, but never below `size`, so the crop always fits.
    let scale = |side: u32| {
        let scaled = (u64::from(side) * u64::from(size) + shorter / 2) / shorter;
        u32::try_from(scaled).unwrap_or(u32::MAX).max(size)
    };
    let (new_width, new_height) = (scale(width), scale(height));
    let resized = imageops::resize(image, new_width, new_height, FilterType::Triangle);
    let (left, top) = ((new_width - size) / 2, (new_height - size) / 2);
    imageops::crop_imm(&resized, left, top, size, size).to_image()
}

/// Interleaved RGB (`[height, width, 3]`) to channel planes (`[3, height, width]`).
fn to_chw(image: &RgbImage) -> Vec<u8> {
    let pixels = image.as_raw();
    (0..3)
        .flat_map(|c| pixels.iter().skip(c).step_by(3).copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A CIFAR image whose red plane is all `r`, green `g`, blue `b`.
    fn planes(r: u8, g: u8, b: u8) -> Vec<u8> {
        [r, g, b]
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, 32 * 32))
            .collect()
    }

    /// Writes CIFAR records (`labels` before the pixels) to `path`.
    fn write_records(path: &Path, records: &[(&[u8], Vec<u8>)]) {
        let bytes: Vec<u8> = records
            .iter()
            .flat_map(|(labels, pixels)| labels.iter().chain(pixels).copied())
            .collect();
        std::fs::write(path, bytes).unwrap();
    }

    fn write_cifar10(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for i in 1..=5u8 {
            let file = dir.join(format!("data_batch_{i}.bin"));
            write_records(&file, &[(&[i], planes(i, 100 + i, 200 + i))]);
        }
        write_records(
            &dir.join("test_batch.bin"),
            &[(&[9], planes(1, 2, 3)), (&[0], planes(4, 5, 6))],
        );
    }

    #[test]
    fn cifar10_records_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        write_cifar10(tmp.path());
        let train = load_cifar(tmp.path(), false, true).unwrap();
        assert_eq!(
            (train.len(), train.shape(), train.classes()),
            (5, [3, 32, 32], 10)
        );
        for i in 0..5 {
            let n = i as u8 + 1;
            assert_eq!(train.label(i), n as usize);
            assert_eq!(train.pixels(i).as_ref(), planes(n, 100 + n, 200 + n));
        }
        let test = load_cifar(tmp.path(), false, false).unwrap();
        assert_eq!(test.labels, [9, 0]);
        assert_eq!(test.pixels(1).as_ref(), planes(4, 5, 6));
        check_cifar(tmp.path(), false).unwrap();
    }

    #[test]
    fn cifar100_uses_the_fine_label() {
        let tmp = tempfile::tempdir().unwrap();
        // The parent-directory form: the release's own directory under `path`.
        let dir = tmp.path().join("cifar-100-binary");
        std::fs::create_dir(&dir).unwrap();
        write_records(
            &dir.join("train.bin"),
            &[(&[3, 99], planes(7, 8, 9)), (&[19, 42], planes(0, 0, 255))],
        );
        write_records(&dir.join("test.bin"), &[(&[0, 5], planes(1, 1, 1))]);
        for path in [tmp.path(), dir.as_path()] {
            let train = load_cifar(path, true, true).unwrap();
            assert_eq!(train.classes(), 100);
            assert_eq!(train.labels, [99, 42]);
            assert_eq!(train.pixels(0).as_ref(), planes(7, 8, 9));
            assert_eq!(train.pixels(1).as_ref(), planes(0, 0, 255));
            check_cifar(path, true).unwrap();
        }
    }

    #[test]
    fn cifar10_is_found_under_its_parent_directory() {
        let tmp = tempfile::tempdir().unwrap();
        write_cifar10(&tmp.path().join("cifar-10-batches-bin"));
        let test = load_cifar(tmp.path(), false, false).unwrap();
        assert_eq!(test.labels, [9, 0]);
        check_cifar(tmp.path(), false).unwrap();
    }

    #[test]
    fn truncated_cifar_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        write_cifar10(tmp.path());
        let file = tmp.path().join("test_batch.bin");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.truncate(bytes.len() - 100);
        std::fs::write(&file, bytes).unwrap();
        for err in [
            load_cifar(tmp.path(), false, false)
                .unwrap_err()
                .to_string(),
            check_cifar(tmp.path(), false).unwrap_err().to_string(),
        ] {
            assert!(err.contains("test_batch.bin"), "{err}");
            assert!(
                err.contains("not a whole number of CIFAR-10 records"),
                "{err}"
            );
        }
        // The training split is intact.
        assert_eq!(load_cifar(tmp.path(), false, true).unwrap().len(), 5);
    }

    #[test]
    fn missing_cifar_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        write_cifar10(tmp.path());
        std::fs::remove_file(tmp.path().join("data_batch_3.bin")).unwrap();
        let err = load_cifar(tmp.path(), false, true).unwrap_err().to_string();
        assert!(err.contains("data_batch_3.bin not found"), "{err}");
        assert!(
            err.contains("test_batch.bin"),
            "lists what is expected: {err}"
        );
        assert!(check_cifar(tmp.path(), false).is_err());
        let err = load_cifar(tmp.path(), true, false).unwrap_err().to_string();
        assert!(err.contains("test.bin not found"), "{err}");
        assert!(err.contains("cifar-100-binary"), "{err}");
    }

    #[test]
    fn out_of_range_cifar_labels_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        write_cifar10(tmp.path());
        write_records(
            &tmp.path().join("test_batch.bin"),
            &[(&[1], planes(0, 0, 0)), (&[10], planes(0, 0, 0))],
        );
        let err = load_cifar(tmp.path(), false, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test_batch.bin: record 1 has label 10"),
            "{err}"
        );
    }

    fn save(image: &RgbImage, path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image.save(path).unwrap();
    }

    #[test]
    fn image_folder_labels_and_shapes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let red = RgbImage::from_pixel(10, 6, Rgb([255, 0, 0]));
        let blue = RgbImage::from_pixel(5, 9, Rgb([0, 0, 255]));
        save(&red, &root.join("cat/b.png"));
        save(&red, &root.join("cat/a.PNG"));
        save(&blue, &root.join("dog/c.png"));
        std::fs::write(root.join("dog/notes.txt"), "not an image").unwrap();
        std::fs::create_dir(root.join(".cache")).unwrap();

        let folder = ImageFolder::open(root, 4).unwrap();
        assert_eq!(folder.class_names(), ["cat", "dog"]);
        assert_eq!(
            (folder.len(), folder.classes(), folder.shape()),
            (3, 2, [3, 4, 4])
        );
        assert!(folder.path(0).ends_with("a.PNG"));
        let labels: Vec<usize> = (0..3).map(|i| folder.label(i)).collect();
        assert_eq!(labels, [0, 0, 1]);
        let blank = vec![0; 16];
        let full = vec![255; 16];
        assert_eq!(
            folder.pixels(0).as_ref(),
            [full.clone(), blank.clone(), blank.clone()].concat()
        );
        assert_eq!(
            folder.pixels(2).as_ref(),
            [blank.clone(), blank, full].concat()
        );
    }

    #[test]
    fn images_are_scaled_to_the_shorter_side_then_centre_cropped() {
        let tmp = tempfile::tempdir().unwrap();
        // 16 × 8, left half white: halving gives 8 × 4 (white columns 0–3),
        // and the central crop keeps columns 2–5.
        let image = RgbImage::from_fn(
            16,
            8,
            |x, _| if x < 8 { Rgb([255; 3]) } else { Rgb([0; 3]) },
        );
        save(&image, &tmp.path().join("only/wide.png"));
        let folder = ImageFolder::open(tmp.path(), 4).unwrap();
        let pixels = folder.decode(0).unwrap();
        assert_eq!(pixels.len(), 3 * 4 * 4);
        for row in pixels.chunks(4) {
            // The middle columns straddle the edge and blend; the outer ones do not.
            assert_eq!(row[0], 255, "{pixels:?}");
            assert_eq!(row[3], 0, "{pixels:?}");
            assert!(row[1] >= row[2], "{pixels:?}");
        }
    }

    #[test]
    fn undecodable_images_come_back_black() {
        let tmp = tempfile::tempdir().unwrap();
        save(&RgbImage::new(3, 3), &tmp.path().join("a/fine.png"));
        std::fs::write(tmp.path().join("a/broken.png"), b"not a png").unwrap();
        let folder = ImageFolder::open(tmp.path(), 8).unwrap();
        assert!(folder.path(0).ends_with("broken.png"));
        let err = folder.decode(0).unwrap_err().to_string();
        assert!(err.contains("broken.png"), "{err}");
        assert_eq!(folder.pixels(0).as_ref(), vec![0; 3 * 8 * 8]);
    }

    #[test]
    fn empty_image_folders_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let err = ImageFolder::open(tmp.path(), 8).unwrap_err().to_string();
        assert!(err.contains("no class directories"), "{err}");
        std::fs::create_dir(tmp.path().join("cat")).unwrap();
        std::fs::write(tmp.path().join("cat/readme.txt"), "hi").unwrap();
        let err = ImageFolder::open(tmp.path(), 8).unwrap_err().to_string();
        assert!(err.contains("no .png, .jpg or .jpeg images"), "{err}");
        let err = ImageFolder::open(&tmp.path().join("missing"), 8)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot list"), "{err}");
    }

    #[test]
    fn image_folder_check_needs_train_and_val_classes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let err = check_image_folder(root).unwrap_err().to_string();
        assert!(err.contains("train not found"), "{err}");
        std::fs::create_dir_all(root.join("train/cat")).unwrap();
        std::fs::create_dir_all(root.join("val")).unwrap();
        let err = check_image_folder(root).unwrap_err().to_string();
        assert!(err.contains("val has no class directories"), "{err}");
        std::fs::create_dir_all(root.join("val/cat")).unwrap();
        check_image_folder(root).unwrap();
    }
}
