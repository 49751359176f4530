//! What the machine is doing, for the Runs view: CPU and memory, and per
//! NVIDIA GPU its utilisation, memory, temperature, power and the processes
//! on it (NVML). Collected on a thread of its own, since NVML calls can take
//! milliseconds, and handed to the dashboard as [`Input::System`].
//!
//! [`Input::System`]: super::app::Input::System

use std::sync::mpsc;
use std::time::Duration;

/// One GPU as NVML reports it. A figure NVML will not give is `None`.
#[derive(Clone, Debug, PartialEq)]
pub struct Gpu {
    pub index: u32,
    pub name: String,
    pub utilisation_percent: Option<u32>,
    /// (used, total) bytes.
    pub memory: Option<(u64, u64)>,
    pub temperature_c: Option<u32>,
    pub power_w: Option<f64>,
    /// (pid, bytes of GPU memory) of each compute process on it.
    pub processes: Vec<(u32, u64)>,
}

/// One look at the machine.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub cpu_percent: Option<f32>,
    /// (used, total) bytes of memory.
    pub memory: Option<(u64, u64)>,
    /// The GPUs, or why there are none to show ("no NVIDIA GPU: …").
    pub gpus: Result<Vec<Gpu>, String>,
}

impl Sample {
    /// GPU memory held by the process `pid`, summed over the GPUs.
    pub fn gpu_memory_of(&self, pid: u32) -> Option<u64> {
        let gpus = self.gpus.as_ref().ok()?;
        let bytes: Vec<u64> = gpus
            .iter()
            .flat_map(|g| &g.processes)
            .filter(|(p, _)| *p == pid)
            .map(|(_, b)| *b)
            .collect();
        (!bytes.is_empty()).then(|| bytes.iter().sum())
    }
}

/// Where GPU figures come from: NVML on a real machine, a fake in tests.
pub trait GpuSource: Send {
    fn gpus(&mut self) -> Result<Vec<Gpu>, String>;
}

/// NVML through the driver's libnvidia-ml, opened at run time: a machine
/// without the NVIDIA driver builds and runs the same binary.
pub struct Nvml(nvml_wrapper::Nvml);

impl Nvml {
    pub fn open() -> Result<Nvml, String> {
        use nvml_wrapper::error::NvmlError;
        nvml_wrapper::Nvml::init().map(Nvml).map_err(|e| match e {
            NvmlError::LibloadingError(_) => "no NVIDIA GPU (no libnvidia-ml: no driver)".into(),
            NvmlError::DriverNotLoaded => "no NVIDIA GPU (the driver is not loaded)".into(),
            other => format!("no NVIDIA GPU ({other})"),
        })
    }

    fn gpu(&self, index: u32) -> Result<Gpu, nvml_wrapper::error::NvmlError> {
        use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
        use nvml_wrapper::enums::device::UsedGpuMemory;
        let d = self.0.device_by_index(index)?;
        let processes = d
            .running_compute_processes()
            .unwrap_or_default()
            .into_iter()
            .map(|p| match p.used_gpu_memory {
                UsedGpuMemory::Used(bytes) => (p.pid, bytes),
                UsedGpuMemory::Unavailable => (p.pid, 0),
            })
            .collect();
        Ok(Gpu {
            index,
            name: d.name().unwrap_or_else(|_| format!("GPU {index}")),
            utilisation_percent: d.utilization_rates().ok().map(|u| u.gpu),
            memory: d.memory_info().ok().map(|m| (m.used, m.total)),
            temperature_c: d.temperature(TemperatureSensor::Gpu).ok(),
            power_w: d.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
            processes,
        })
    }
}

impl GpuSource for Nvml {
    fn gpus(&mut self) -> Result<Vec<Gpu>, String> {
        let count = self.0.device_count().map_err(|e| format!("NVML: {e}"))?;
        (0..count)
            .map(|i| self.gpu(i).map_err(|e| format!("NVML, GPU {i}: {e}")))
            .collect()
    }
}

/// No GPU to show, and why.
pub struct NoGpu(pub String);

impl GpuSource for NoGpu {
    fn gpus(&mut self) -> Result<Vec<Gpu>, String> {
        Err(self.0.clone())
    }
}

/// NVML if the driver is there, else the reason there is nothing to show.
pub fn gpu_source() -> Box<dyn GpuSource> {
    match Nvml::open() {
        Ok(nvml) => Box::new(nvml),
        Err(why) => Box::new(NoGpu(why)),
    }
}

/// Takes samples: CPU and memory from the operating system, GPUs from `gpus`.
pub struct Probe {
    system: Option<sysinfo::System>,
    gpus: Box<dyn GpuSource>,
}

impl Probe {
    pub fn new(gpus: Box<dyn GpuSource>) -> Probe {
        let mut system = sysinfo::System::new().ok();
        // CPU use is a difference between two readings: take the first now.
        if let Some(s) = &mut system {
            s.refresh_cpu_usage();
        }
        Probe { system, gpus }
    }

    pub fn sample(&mut self) -> Sample {
        let (cpu_percent, memory) = match &mut self.system {
            Some(s) => {
                s.refresh_cpu_usage();
                s.refresh_memory();
                (
                    Some(s.global_cpu_usage()),
                    Some((s.used_memory(), s.total_memory())),
                )
            }
            None => (None, None),
        };
        Sample {
            cpu_percent,
            memory,
            gpus: self.gpus.gpus(),
        }
    }
}

/// Samples every `every` on a thread of its own until the receiver is dropped.
pub fn spawn(mut probe: Probe, every: Duration) -> mpsc::Receiver<Sample> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(every);
            if tx.send(probe.sample()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Bytes as GiB with one decimal.
pub fn gib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1u64 << 30) as f64)
}

/// GPUs described one a line, at most; the rest are counted.
pub const GPU_LINES: usize = 4;

/// The machine in words: CPU and memory (and why no GPU is shown, if none
/// is), then a line per GPU. The Runs view draws these; `doctor` prints them.
pub fn describe(s: &Sample) -> Vec<String> {
    let mut first = Vec::new();
    if let Some(cpu) = s.cpu_percent {
        first.push(format!("cpu {cpu:.0} %"));
    }
    if let Some((used, total)) = s.memory {
        first.push(format!("memory {}/{} GiB", gib(used), gib(total)));
    }
    let gpus = match &s.gpus {
        Ok(gpus) => gpus.as_slice(),
        Err(why) => {
            first.push(why.clone());
            &[]
        }
    };
    let mut lines = vec![first.join(" · ")];
    for (i, g) in gpus.iter().enumerate() {
        if i + 1 == GPU_LINES && gpus.len() > GPU_LINES {
            lines.push(format!("… {} more GPUs", gpus.len() - i));
            break;
        }
        lines.push(gpu_line(g));
    }
    lines
}

fn gpu_line(g: &Gpu) -> String {
    let mut parts = vec![format!("gpu{} {}", g.index, g.name)];
    if let Some(u) = g.utilisation_percent {
        parts.push(format!("{u} %"));
    }
    if let Some((used, total)) = g.memory {
        parts.push(format!("{}/{} GiB", gib(used), gib(total)));
    }
    if let Some(t) = g.temperature_c {
        parts.push(format!("{t} °C"));
    }
    if let Some(w) = g.power_w {
        parts.push(format!("{w:.0} W"));
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TwoGpus;

    impl GpuSource for TwoGpus {
        fn gpus(&mut self) -> Result<Vec<Gpu>, String> {
            Ok((0..2)
                .map(|index| Gpu {
                    index,
                    name: "NVIDIA H200".into(),
                    utilisation_percent: Some(50 + index),
                    memory: Some((10 << 30, 140 << 30)),
                    temperature_c: Some(60),
                    power_w: Some(300.0),
                    processes: vec![(4242, 3 << 30), (7, 1 << 30)],
                })
                .collect())
        }
    }

    #[test]
    fn a_sample_has_the_machine_and_each_gpu() {
        let mut probe = Probe::new(Box::new(TwoGpus));
        let s = probe.sample();
        let (used, total) = s.memory.expect("memory on Linux");
        assert!(used <= total && total > 0);
        assert!(s.cpu_percent.is_some_and(|c| (0.0..=100.0).contains(&c)));
        assert_eq!(s.gpus.as_ref().map(Vec::len), Ok(2));
        assert_eq!(s.gpu_memory_of(4242), Some(6 << 30), "summed over GPUs");
        assert_eq!(s.gpu_memory_of(1), None);
        let none = Probe::new(Box::new(NoGpu("no NVIDIA GPU (test)".into()))).sample();
        assert_eq!(none.gpus, Err("no NVIDIA GPU (test)".into()));
        assert_eq!(gib(3 << 29), "1.5");
    }

    #[test]
    fn without_the_driver_nvml_says_there_is_no_gpu() {
        // This machine has no NVIDIA driver (CI's neither); on one that has,
        // the test reads real GPUs instead.
        match Nvml::open() {
            Err(why) => assert!(why.starts_with("no NVIDIA GPU ("), "{why}"),
            Ok(mut nvml) => assert!(nvml.gpus().is_ok()),
        }
    }
}
