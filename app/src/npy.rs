//! Reading and writing `.npy` arrays (float32/float64, C order) for `mask`.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{Context, Result, bail};
use npyz::WriterBuilder;

/// A dense array: shape and row-major values.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Reads a float32 or float64 C-order array.
pub fn read(path: &Path) -> Result<Array> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let npy = npyz::NpyFile::new(BufReader::new(file))
        .with_context(|| format!("{} is not a .npy file", path.display()))?;
    if npy.order() != npyz::Order::C {
        bail!(
            "{}: Fortran-order arrays are not supported; save with np.ascontiguousarray",
            path.display()
        );
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let descr = npy.dtype().descr().trim_matches(['\'', '"']).to_string();
    let data: Vec<f32> = match descr.trim_start_matches(['<', '|', '=']) {
        "f4" => npy.into_vec::<f32>()?,
        "f8" => npy
            .into_vec::<f64>()?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        other => bail!(
            "{}: dtype {other} not supported (use float32 or float64)",
            path.display()
        ),
    };
    Ok(Array { shape, data })
}

/// Writes a float32 C-order array.
/// Written as export files are (a new file renamed over `path`, never through a
/// link there).
pub fn write(path: &Path, array: &Array) -> Result<()> {
    let shape: Vec<u64> = array.shape.iter().map(|&d| d as u64).collect();
    crate::run::files::write_with(path, |out| {
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape)
            .writer(out)
            .begin_nd()?;
        writer.extend(array.data.iter().copied())?;
        writer.finish()
    })
    .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let array = Array {
            shape: vec![2, 3],
            data: vec![1.0, -2.0, 3.5, 0.0, 5.0, 6.0],
        };
        write(&path, &array).unwrap();
        assert_eq!(read(&path).unwrap(), array);
    }
}
