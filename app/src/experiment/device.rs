//! The device an experiment names ("cpu" or "cuda:N") and the backend it
//! resolves to in this build.

use super::BackendChoice;

/// A device as named in an experiment file, on the command line and in the
/// dashboard: the one place "cuda:N" is read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceName {
    Cpu,
    Cuda(usize),
}

impl DeviceName {
    /// The CUDA index of a GPU; `None` for the CPU.
    pub fn cuda_index(self) -> Option<usize> {
        match self {
            DeviceName::Cpu => None,
            DeviceName::Cuda(i) => Some(i),
        }
    }

    /// Whether `text` names a GPU.
    pub fn is_gpu(text: &str) -> bool {
        parse_device(text).is_ok_and(|d| d.cuda_index().is_some())
    }
}

impl std::fmt::Display for DeviceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceName::Cpu => f.write_str("cpu"),
            DeviceName::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// Why a device cannot be used; each message says what would work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("expected \"cpu\" or \"cuda:N\" (e.g. \"cuda:0\"), found {0:?}")]
    Unknown(String),
    #[error("the flex backend runs on the CPU only; use backend = \"libtorch\" for CUDA")]
    FlexOnCuda,
    #[error("{LIBTORCH_MISSING}")]
    NoLibTorch,
    #[error(
        "{0} requested but LibTorch sees no CUDA device (CUDA build of torch? driver? \
         `probdrop-tui doctor` shows what was found)"
    )]
    NoCuda(DeviceName),
    #[error("{device} requested but LibTorch sees {count} CUDA device(s)")]
    NoSuchCuda { device: DeviceName, count: usize },
}

/// Parses a device name.
pub fn parse_device(text: &str) -> Result<DeviceName, DeviceError> {
    let text = text.trim();
    if text == "cpu" {
        return Ok(DeviceName::Cpu);
    }
    if text == "cuda" {
        return Ok(DeviceName::Cuda(0));
    }
    if let Some(index) = text.strip_prefix("cuda:")
        && let Ok(i) = index.parse()
    {
        return Ok(DeviceName::Cuda(i));
    }
    Err(DeviceError::Unknown(text.to_string()))
}

/// Whether the LibTorch backend is compiled into this binary.
pub const LIBTORCH_BUILT: bool = cfg!(feature = "tch");

/// What to tell a user who asked for LibTorch in a build without it.
pub const LIBTORCH_MISSING: &str = "this probdrop-tui was built without LibTorch: rebuild with \
`--features tch` (see README: \"GPU training with LibTorch\")";

/// The backend a run on `name` uses: `forced` if given, else LibTorch when compiled
/// in, else flex.
pub fn backend_for(
    name: DeviceName,
    forced: Option<BackendChoice>,
) -> Result<BackendChoice, DeviceError> {
    let choice = match (name, forced) {
        (DeviceName::Cuda(_), Some(BackendChoice::Flex)) => return Err(DeviceError::FlexOnCuda),
        (DeviceName::Cuda(_), _) => BackendChoice::Libtorch,
        (DeviceName::Cpu, Some(b)) => b,
        (DeviceName::Cpu, None) if LIBTORCH_BUILT => BackendChoice::Libtorch,
        (DeviceName::Cpu, None) => BackendChoice::Flex,
    };
    if choice == BackendChoice::Libtorch && !LIBTORCH_BUILT {
        return Err(DeviceError::NoLibTorch);
    }
    Ok(choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        assert_eq!(parse_device("cpu"), Ok(DeviceName::Cpu));
        assert_eq!(parse_device("cuda:1"), Ok(DeviceName::Cuda(1)));
        assert_eq!(parse_device("cuda"), Ok(DeviceName::Cuda(0)));
        assert!(
            parse_device("gpu")
                .unwrap_err()
                .to_string()
                .contains("cuda:N")
        );
        assert!(parse_device("cuda:x").is_err());
        for name in [DeviceName::Cpu, DeviceName::Cuda(3)] {
            assert_eq!(parse_device(&name.to_string()), Ok(name));
        }
        assert!(DeviceName::is_gpu("cuda:2") && !DeviceName::is_gpu("cpu"));
        assert!(!DeviceName::is_gpu("cuda:all"));
    }

    #[test]
    fn backend_choice() {
        assert!(backend_for(DeviceName::Cuda(0), Some(BackendChoice::Flex)).is_err());
        if !LIBTORCH_BUILT {
            assert_eq!(backend_for(DeviceName::Cpu, None), Ok(BackendChoice::Flex));
            assert!(
                backend_for(DeviceName::Cuda(0), None)
                    .unwrap_err()
                    .to_string()
                    .contains("--features tch")
            );
        }
    }
}
