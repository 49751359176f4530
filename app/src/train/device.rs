//! The devices and backends compiled in, opened for the device an experiment names.

use burn::tensor::Device;

use crate::experiment::{BackendChoice, DeviceError, DeviceName, LIBTORCH_BUILT};

/// The burn device (without autodiff) for `name` on `backend`.
pub fn open(name: DeviceName, backend: BackendChoice) -> Result<Device, DeviceError> {
    match (backend, name) {
        (BackendChoice::Flex, DeviceName::Cpu) => Ok(Device::flex()),
        (BackendChoice::Flex, DeviceName::Cuda(_)) => Err(DeviceError::FlexOnCuda),
        (BackendChoice::Libtorch, name) => open_libtorch(name),
    }
}

// burn marks burn-tch deprecated in favour of its CubeCL backends, but those
// download LLVM at build time (no offline build) and LibTorch is what GPU users
// already have: the project chose it (see architecture.md).
#[cfg(feature = "tch")]
#[allow(deprecated)]
fn open_libtorch(name: DeviceName) -> Result<Device, DeviceError> {
    match name {
        DeviceName::Cpu => Ok(Device::libtorch()),
        DeviceName::Cuda(i) => {
            let count = cuda_device_count();
            if count == 0 {
                return Err(DeviceError::NoCuda(name));
            }
            if i >= count {
                return Err(DeviceError::NoSuchCuda {
                    device: name,
                    count,
                });
            }
            Ok(Device::libtorch_cuda(i))
        }
    }
}

#[cfg(not(feature = "tch"))]
fn open_libtorch(_: DeviceName) -> Result<Device, DeviceError> {
    Err(DeviceError::NoLibTorch)
}

/// How cuDNN picks convolution algorithms on CUDA. By default it times them per
/// shape and keeps the fastest (a run's shapes are fixed); `benchmark = false`
/// takes its heuristic pick; `deterministic` keeps to algorithms that repeat bit
/// for bit, without the search.
pub fn configure_cudnn(benchmark: Option<bool>, deterministic: bool) {
    let benchmark = cudnn_benchmark(benchmark, deterministic);
    // burn-tch is deprecated upstream; the project keeps it (see open_libtorch).
    #[cfg(feature = "tch")]
    #[allow(deprecated)]
    {
        tch::Cuda::cudnn_set_benchmark(benchmark);
        burn_tch::set_cudnn_deterministic(deterministic);
    }
    #[cfg(not(feature = "tch"))]
    let _ = benchmark;
}

/// Whether cuDNN searches per shape: as asked, on by default, never when
/// deterministic.
fn cudnn_benchmark(asked: Option<bool>, deterministic: bool) -> bool {
    asked.unwrap_or(true) && !deterministic
}

/// CUDA devices LibTorch can use (0 without the `tch` feature).
pub fn cuda_device_count() -> usize {
    #[cfg(feature = "tch")]
    {
        if tch::Cuda::is_available() {
            return tch::Cuda::device_count().max(0) as usize;
        }
    }
    0
}

/// Devices this build can open: the CPU, then each CUDA device LibTorch sees.
pub fn available_devices() -> Vec<String> {
    std::iter::once(DeviceName::Cpu)
        .chain((0..cuda_device_count()).map(DeviceName::Cuda))
        .map(|d| d.to_string())
        .collect()
}

/// Human-readable backends compiled in.
pub fn backends_built() -> Vec<&'static str> {
    let mut v = vec!["flex (CPU, pure Rust)"];
    if LIBTORCH_BUILT {
        v.push("libtorch (CPU and CUDA, via burn-tch)");
    }
    v
}

/// What a run's provenance says of the machine behind a device.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    /// The GPU's name for `cuda:N`, else the CPU's model.
    pub name: String,
    /// The LibTorch this binary was built against (the `tch` feature).
    pub libtorch: Option<String>,
    /// The CUDA runtime and cuDNN LibTorch loaded, when CUDA is available.
    pub cuda: Option<String>,
}

/// The facts for `device` (as an experiment names it).
pub fn facts(device: &str) -> Facts {
    let name = match crate::experiment::parse_device(device).map(DeviceName::cuda_index) {
        Ok(Some(index)) => gpu_name(index),
        _ => cpu_model(),
    };
    #[cfg(feature = "tch")]
    let (libtorch, cuda) = (
        Some(env!("PROBDROP_LIBTORCH_VERSION").to_string()),
        tch::Cuda::is_available().then(|| {
            format!(
                "runtime {}, cuDNN {}",
                tch::utils::version_cudart(),
                tch::utils::version_cudnn()
            )
        }),
    );
    #[cfg(not(feature = "tch"))]
    let (libtorch, cuda) = (None, None);
    Facts {
        name,
        libtorch,
        cuda,
    }
}

/// The CPU's model name, from /proc/cpuinfo.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The GPU's name as the driver gives it (`nvidia-smi`), or "GPU <index>".
fn gpu_name(index: usize) -> String {
    std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader", "-i"])
        .arg(index.to_string())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("GPU {index}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cudnn_searches_by_default_and_never_when_deterministic() {
        assert!(cudnn_benchmark(None, false));
        assert!(!cudnn_benchmark(Some(false), false));
        assert!(!cudnn_benchmark(None, true));
        assert!(!cudnn_benchmark(Some(true), true));
    }
}
