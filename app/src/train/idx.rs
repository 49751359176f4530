//! IDX files, the format of MNIST, Fashion-MNIST and their kin, raw or gzipped.
//!
//! Layout: two zero bytes, an element-type byte (0x08 = unsigned byte, the only
//! type this family uses), the number of dimensions, then each dimension as a
//! big-endian u32, then the elements in row-major order.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

/// A decoded IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// As the header declares them.
    pub dims: Vec<usize>,
    /// The records read: all of them, or the first ones a [`Take`] asked for.
    pub data: Vec<u8>,
}

/// Why an IDX file could not be read; always names the file.
#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
}

fn format_error(path: &Path, message: impl Into<String>) -> IdxError {
    IdxError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// How much of an IDX file to read: its header, then at most `records`
/// records (entries of the first dimension; all when `None`). A read that
/// would need more than `memory` bytes is refused before anything is inflated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Take {
    pub records: Option<usize>,
    pub memory: Option<u128>,
}

impl Take {
    /// At most `records` records, within the memory this machine has (the
    /// figure `check` holds models to).
    pub fn first(records: Option<usize>) -> Take {
        use crate::experiment::Machine;
        Take {
            records,
            memory: crate::train::ThisMachine.memory(),
        }
    }
}

/// Reads a whole IDX file; gzip is recognised by its magic bytes, not the
/// file name.
pub fn read_idx(path: &Path) -> Result<IdxArray, IdxError> {
    read_idx_with(path, Take::first(None))
}

/// Reads the header and the first records of an IDX file (see [`Take`]):
/// only what is used is inflated, however many records the header declares.
/// `dims` are the header's; `data` holds the records read.
pub fn read_idx_with(path: &Path, take: Take) -> Result<IdxArray, IdxError> {
    let io = |source| IdxError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
    let gzip = file.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    let result = if gzip {
        read_records(
            &mut flate2::bufread::MultiGzDecoder::new(file),
            take,
            "gzip stream",
        )
    } else {
        read_records(&mut file, take, "file")
    };
    result.map_err(|message| format_error(path, message))
}

/// Decodes IDX bytes, all of them.
pub fn parse_idx(bytes: &[u8]) -> Result<IdxArray, String> {
    read_records(&mut &bytes[..], Take::default(), "file")
}

/// At most `n` bytes of `stream` (fewer at its end).
fn read_up_to(stream: &mut dyn Read, n: u64, what: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    Read::take(&mut *stream, n)
        .read_to_end(&mut out)
        .map_err(|e| format!("damaged {what}: {e}"))?;
    Ok(out)
}

/// The header's dimensions, checked.
fn read_header(stream: &mut dyn Read, what: &str) -> Result<Vec<usize>, String> {
    let magic = read_up_to(stream, 4, what)?;
    if magic.len() < 4 || magic[0] != 0 || magic[1] != 0 {
        return Err("not an IDX file (it must start with two zero bytes)".into());
    }
    if magic[2] != 0x08 {
        return Err(format!(
            "element type 0x{:02X} is not supported (only 0x08, unsigned bytes, as in the MNIST family)",
            magic[2]
        ));
    }
    let ndim = magic[3] as usize;
    if !(1..=4).contains(&ndim) {
        return Err(format!("{ndim} dimensions (expected 1 to 4)"));
    }
    let dims = read_up_to(stream, 4 * ndim as u64, what)?;
    if dims.len() < 4 * ndim {
        return Err("truncated header".into());
    }
    Ok(dims
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect())
}

/// The header, then the records `take` asks for, refused unread when they
/// would not fit in memory; a stream longer than its header declares is
/// refused once all of it was asked for.
fn read_records(stream: &mut dyn Read, take: Take, what: &str) -> Result<IdxArray, String> {
    let dims = read_header(stream, what)?;
    let record = dims[1..]
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64));
    let declared = record.and_then(|r| r.checked_mul(dims[0] as u64));
    let (Some(record), Some(declared)) = (record, declared) else {
        return Err(format!("dimensions {dims:?} overflow"));
    };
    let count = take.records.map_or(dims[0], |n| n.min(dims[0]));
    let wanted = record * count as u64;
    fits_in_memory(&dims, wanted, count, take.memory)?;
    let mut data = Vec::new();
    data.try_reserve_exact(wanted as usize)
        .map_err(|e| format!("cannot hold {wanted} bytes of data: {e}"))?;
    Read::take(&mut *stream, wanted)
        .read_to_end(&mut data)
        .map_err(|e| format!("damaged {what}: {e}"))?;
    if (data.len() as u64) < wanted {
        return Err(format!(
            "header {dims:?} promises {declared} bytes of data, the {what} ends after {} (truncated or damaged?)",
            data.len()
        ));
    }
    if count == dims[0] && !read_up_to(stream, 1, what)?.is_empty() {
        return Err(format!(
            "the {what} holds more than the {declared} bytes of data its IDX header declares"
        ));
    }
    Ok(IdxArray { dims, data })
}

/// Refuses, before reading them, `count` records of `bytes` in all that need
/// more than the machine's memory.
fn fits_in_memory(
    dims: &[usize],
    bytes: u64,
    count: usize,
    memory: Option<u128>,
) -> Result<(), String> {
    match memory {
        Some(memory) if u128::from(bytes) > memory => {
            const GIB: f64 = (1u64 << 30) as f64;
            let of = if count < dims[0] {
                format!(" of the {} the header declares", dims[0])
            } else {
                String::new()
            };
            Err(format!(
                "reading {count} records{of} ({:?} each) needs {:.1} GiB, more than the {:.1} GiB \
                 of memory this machine has (set train_limit or val_limit to read fewer)",
                &dims[1..],
                bytes as f64 / GIB,
                memory as f64 / GIB
            ))
        }
        _ => Ok(()),
    }
}

/// Images with one class label each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSet {
    /// `len × rows × cols` bytes, row-major.
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let size = self.rows * self.cols;
        &self.images[i * size..(i + 1) * size]
    }
}

/// Reads a pair of image and label files and checks that they belong together.
pub fn load_image_set(images: &Path, labels: &Path) -> Result<ImageSet, IdxError> {
    load_image_set_with(images, labels, Take::first(None))
}

/// [`load_image_set`] of the first images only (see [`Take`]).
pub fn load_image_set_with(images: &Path, labels: &Path, take: Take) -> Result<ImageSet, IdxError> {
    let img = read_idx_with(images, take)?;
    let lab = read_idx_with(labels, take)?;
    let [n, rows, cols] = img.dims[..] else {
        return Err(format_error(
            images,
            format!(
                "expected images of dimensions [count, rows, cols], found {:?}",
                img.dims
            ),
        ));
    };
    if lab.dims != [n] {
        return Err(format_error(
            labels,
            format!(
                "expected {n} labels to match {}, found dimensions {:?}",
                images.display(),
                lab.dims
            ),
        ));
    }
    Ok(ImageSet {
        images: img.data,
        labels: lab.data,
        rows,
        cols,
    })
}

/// The image and label files of `split` ("train", "t10k") in `dir`, under the
/// usual names (`train-images-idx3-ubyte[.gz]`, or `train-images.idx3-ubyte`).
pub fn split_files(dir: &Path, split: &str) -> Result<(PathBuf, PathBuf), IdxError> {
    let find = |kind: &str, rank: u8| -> Result<PathBuf, IdxError> {
        let candidates = [
            format!("{split}-{kind}-idx{rank}-ubyte.gz"),
            format!("{split}-{kind}-idx{rank}-ubyte"),
            format!("{split}-{kind}.idx{rank}-ubyte.gz"),
            format!("{split}-{kind}.idx{rank}-ubyte"),
        ];
        candidates
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format_error(
                    dir,
                    format!(
                        "no {split} {kind} file (looked for {})",
                        candidates.join(", ")
                    ),
                )
            })
    };
    Ok((find("images", 3)?, find("labels", 1)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, 0x08, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn a_gzip_stream_longer_than_its_header_declares_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb-idx1-ubyte.gz");
        // 64 MiB of zeros behind a header that declares 10 bytes: ~65 kB on disk.
        let mut bomb = idx(&[10], &[]);
        bomb.resize(bomb.len() + (64 << 20), 0);
        std::fs::write(&path, gzip(&bomb)).unwrap();
        let err = read_idx(&path).unwrap_err().to_string();
        assert!(err.contains("more than the 10 bytes"), "{err}");
        // The same header with its 10 bytes reads.
        std::fs::write(&path, gzip(&idx(&[10], &[7; 10]))).unwrap();
        assert_eq!(read_idx(&path).unwrap().data, [7; 10]);
    }

    /// An IDX header declaring 4.1 M images of 28 × 28 (3.2 GB), then zeros
    /// without end; counts the bytes taken from it.
    struct Endless {
        header: Vec<u8>,
        taken: u64,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let at = self.taken as usize;
            let n = buf.len().min(1 << 16);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = self.header.get(at + i).copied().unwrap_or(0);
            }
            self.taken += n as u64;
            Ok(n)
        }
    }

    fn endless() -> Endless {
        Endless {
            header: idx(&[4_100_000, 28, 28], &[]),
            taken: 0,
        }
    }

    #[test]
    fn a_stream_declaring_millions_of_images_is_read_only_to_the_limit() {
        let mut stream = endless();
        let take = Take {
            records: Some(512),
            memory: Some(2 << 30),
        };
        let read = read_records(&mut stream, take, "gzip stream").unwrap();
        assert_eq!(read.dims, [4_100_000, 28, 28]);
        assert_eq!(read.data.len(), 512 * 784);
        // The header and 512 images: nothing of the rest was asked for.
        assert_eq!(stream.taken, 16 + 512 * 784);

        // The same from a gzip file: an honest header over a stream that ends
        // after 600 images reads when 512 are used.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train-images-idx3-ubyte.gz");
        let mut bytes = idx(&[4_100_000, 28, 28], &[]);
        bytes.resize(16 + 600 * 784, 3);
        std::fs::write(&path, gzip(&bytes)).unwrap();
        let read = read_idx_with(&path, take).unwrap();
        assert_eq!(read.data, vec![3; 512 * 784]);
    }

    #[test]
    fn a_declared_size_beyond_the_machines_memory_is_refused_unread() {
        let mut stream = endless();
        let take = Take {
            records: None,
            memory: Some(2 << 30),
        };
        let err = read_records(&mut stream, take, "gzip stream").unwrap_err();
        assert!(
            err.contains("reading 4100000 records ([28, 28] each) needs 3.0 GiB, more than the 2.0 GiB of memory this machine has"),
            "{err}"
        );
        assert_eq!(stream.taken, 16, "only the header was read");
        // A limit past the memory is refused the same way.
        let mut stream = endless();
        let take = Take {
            records: Some(3_000_000),
            ..take
        };
        let err = read_records(&mut stream, take, "file").unwrap_err();
        assert!(
            err.contains("reading 3000000 records of the 4100000 the header declares"),
            "{err}"
        );
        assert_eq!(stream.taken, 16);
    }

    #[test]
    fn parses_a_well_formed_array() {
        let a = parse_idx(&idx(&[2, 3], &[1, 2, 3, 4, 5, 6])).unwrap();
        assert_eq!(a.dims, [2, 3]);
        assert_eq!(a.data, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn refuses_what_is_not_a_complete_ubyte_idx() {
        assert!(
            parse_idx(b"PK\x03\x04")
                .unwrap_err()
                .contains("not an IDX file")
        );
        let mut floats = idx(&[1], &[0, 0, 0, 0]);
        floats[2] = 0x0D;
        assert!(parse_idx(&floats).unwrap_err().contains("0x0D"));
        let short = idx(&[2, 3], &[1, 2, 3]);
        assert!(parse_idx(&short).unwrap_err().contains("promises 6 bytes"));
        assert!(
            parse_idx(&[0, 0, 8, 2, 0, 0])
                .unwrap_err()
                .contains("truncated header")
        );
    }

    #[test]
    fn reads_gzip_and_names_the_file_in_errors() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-labels-idx1-ubyte.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&idx(&[3], &[7, 8, 9])).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        assert_eq!(read_idx(&path).unwrap().data, [7, 8, 9]);

        let bad = dir.path().join("bad");
        std::fs::write(&bad, [0x1f, 0x8b, 1, 2, 3]).unwrap();
        let err = read_idx(&bad).unwrap_err().to_string();
        assert!(err.contains("bad") && err.contains("gzip"), "{err}");
    }

    #[test]
    fn image_and_label_counts_must_agree() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("i");
        let labels = dir.path().join("l");
        std::fs::write(&images, idx(&[2, 1, 2], &[1, 2, 3, 4])).unwrap();
        std::fs::write(&labels, idx(&[3], &[0, 1, 2])).unwrap();
        let err = load_image_set(&images, &labels).unwrap_err().to_string();
        assert!(err.contains("expected 2 labels"), "{err}");
        std::fs::write(&labels, idx(&[2], &[5, 6])).unwrap();
        let set = load_image_set(&images, &labels).unwrap();
        assert_eq!((set.len(), set.image(1)), (2, &[3, 4][..]));
    }
}
