//! What the machine is doing: CPU and memory, a process's own CPU use and
//! resident memory, and per NVIDIA GPU its utilisation, memory, temperature,
//! power and the processes on it (NVML). The dashboard's machine line
//! (`ui::system`) and a trainer's `system/…` metrics both sample through
//! here.

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

impl Gpu {
    /// GPU memory held on it by the process `pid`; none where it holds none.
    pub fn memory_of(&self, pid: u32) -> Option<u64> {
        let bytes: Vec<u64> = (self.processes.iter())
            .filter(|(p, _)| *p == pid)
            .map(|(_, b)| *b)
            .collect();
        (!bytes.is_empty()).then(|| bytes.iter().sum())
    }
}

impl Sample {
    /// GPU memory held by the process `pid`, summed over the GPUs.
    pub fn gpu_memory_of(&self, pid: u32) -> Option<u64> {
        let held: Vec<u64> = (self.gpus.as_ref().ok()?.iter())
            .filter_map(|g| g.memory_of(pid))
            .collect();
        (!held.is_empty()).then(|| held.iter().sum())
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

/// One process's own use of the machine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcessSample {
    /// CPU time over wall time since the last sample, in % of one core
    /// (above 100 for several threads); 0 at the first.
    pub cpu_percent: Option<f32>,
    /// Resident memory.
    pub rss_bytes: Option<u64>,
}

impl Probe {
    /// This process's CPU use since the last call (or since the probe was
    /// made) and its resident memory.
    pub fn this_process(&mut self) -> ProcessSample {
        use sysinfo::{ProcessRefreshKind, ProcessesToUpdate};
        let (Some(s), Ok(pid)) = (&mut self.system, sysinfo::get_current_pid()) else {
            return ProcessSample {
                cpu_percent: None,
                rss_bytes: None,
            };
        };
        let kind = ProcessRefreshKind::nothing().with_cpu().with_memory();
        s.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), false, kind);
        let process = s.process(pid);
        ProcessSample {
            cpu_percent: process.map(sysinfo::Process::cpu_usage),
            rss_bytes: process.map(sysinfo::Process::memory),
        }
    }

    /// The GPUs now, or why there are none.
    pub fn gpus(&mut self) -> Result<Vec<Gpu>, String> {
        self.gpus.gpus()
    }
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
    }

    #[test]
    fn a_process_sample_has_its_cpu_and_resident_memory() {
        let mut probe = Probe::new(Box::new(NoGpu("no NVIDIA GPU (test)".into())));
        let _first = probe.this_process();
        let held: Vec<u8> = vec![1; 8 << 20];
        let s = probe.this_process();
        assert!(s.rss_bytes.is_some_and(|b| b >= held.len() as u64), "{s:?}");
        assert!(s.cpu_percent.is_some_and(|c| c >= 0.0), "{s:?}");
        assert!(held.iter().all(|b| *b == 1));
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
