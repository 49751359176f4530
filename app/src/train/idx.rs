//! IDX files, the format of MNIST, Fashion-MNIST and their kin, raw or gzipped.
//!
//! Layout: two zero bytes, an element-type byte (0x08 = unsigned byte, the only
//! type this family uses), the number of dimensions, then each dimension as a
//! big-endian u32, then the elements in row-major order.

use std::io::Read;
use std::path::{Path, PathBuf};

/// A decoded IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
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

/// Reads an IDX file; gzip is recognised by its magic bytes, not the file name.
pub fn read_idx(path: &Path) -> Result<IdxArray, IdxError> {
    let io = |source| IdxError::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        gunzip_bounded(&raw).map_err(|message| format_error(path, message))?
    } else {
        raw
    };
    parse_idx(&bytes).map_err(|message| format_error(path, message))
}

/// Decompresses no more than the IDX header inside declares (plus one byte, to
/// tell a longer stream): a small file that inflates to gigabytes is refused
/// after reading what the header promised.
fn gunzip_bounded(raw: &[u8]) -> Result<Vec<u8>, String> {
    let damaged = |e: std::io::Error| format!("damaged gzip stream: {e}");
    let mut stream = flate2::read::MultiGzDecoder::new(raw);
    let mut out = vec![0u8; 4];
    stream.read_exact(&mut out).map_err(damaged)?;
    let ndim = usize::from(out[3]).min(4);
    out.resize(4 + 4 * ndim, 0);
    stream.read_exact(&mut out[4..]).map_err(damaged)?;
    let declared = out[4..]
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64)
        .try_fold(1u64, u64::checked_mul)
        .ok_or("the header's dimensions overflow")?;
    stream
        .take(declared.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(damaged)?;
    if out.len() as u64 > 4 + 4 * ndim as u64 + declared {
        return Err(format!(
            "the gzip stream holds more than the {declared} bytes of data its IDX header declares"
        ));
    }
    Ok(out)
}

/// Decodes IDX bytes.
pub fn parse_idx(bytes: &[u8]) -> Result<IdxArray, String> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err("not an IDX file (it must start with two zero bytes)".into());
    }
    if bytes[2] != 0x08 {
        return Err(format!(
            "element type 0x{:02X} is not supported (only 0x08, unsigned bytes, as in the MNIST family)",
            bytes[2]
        ));
    }
    let ndim = bytes[3] as usize;
    if !(1..=4).contains(&ndim) {
        return Err(format!("{ndim} dimensions (expected 1 to 4)"));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err("truncated header".into());
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let found = bytes.len() - header;
    match expected {
        Some(n) if n == found => Ok(IdxArray {
            dims,
            data: bytes[header..].to_vec(),
        }),
        Some(n) => Err(format!(
            "header {dims:?} promises {n} bytes of data, the file has {found} (truncated or damaged?)"
        )),
        None => Err(format!("dimensions {dims:?} overflow")),
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
    let img = read_idx(images)?;
    let lab = read_idx(labels)?;
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
