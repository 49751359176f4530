//! The trainer's own use of the machine as `system/…` metrics (as W&B and
//! MLflow record them): its CPU and resident memory, and on CUDA its GPU's
//! utilisation, memory (the trainer's and the device's), temperature and
//! power. On the CPU the GPU series are absent, not zero.

use std::time::{Duration, Instant};

use crate::experiment::DeviceName;
use crate::probe::{Gpu, GpuSource, NoGpu, Probe, gpu_source};
use crate::run::dir::metric;

/// Logged steps sample at most this often: NVML calls take milliseconds,
/// and fast steps logged at every step should not pay for them each time.
const AT_MOST_EVERY: Duration = Duration::from_secs(1);
/// Sampled at least this often, logged step or not.
const AT_LEAST_EVERY: Duration = Duration::from_secs(10);

pub(super) struct SystemLog {
    probe: Probe,
    /// The CUDA device the trainer runs on; none on the CPU.
    cuda: Option<usize>,
    opened: Instant,
    last: Option<Instant>,
}

impl SystemLog {
    pub(super) fn open(device: DeviceName) -> SystemLog {
        let (gpus, cuda): (Box<dyn GpuSource>, _) = match device {
            DeviceName::Cuda(n) => (gpu_source(), Some(n)),
            DeviceName::Cpu => (Box::new(NoGpu("the run is on the CPU".into())), None),
        };
        let mut probe = Probe::new(gpus);
        // CPU use is a difference between two readings: take the first now.
        probe.this_process();
        SystemLog {
            probe,
            cuda,
            opened: Instant::now(),
            last: None,
        }
    }

    /// Whether to sample after a step (`logged`: one whose metrics are
    /// logged).
    pub(super) fn due(&self, logged: bool) -> bool {
        let since = self.last.unwrap_or(self.opened).elapsed();
        since >= AT_LEAST_EVERY || (logged && (self.last.is_none() || since >= AT_MOST_EVERY))
    }

    /// The figures now, by metric name: the GPU's only where one is read.
    pub(super) fn sample(&mut self) -> Vec<(&'static str, f64)> {
        self.last = Some(Instant::now());
        let me = self.probe.this_process();
        let mut figures = Vec::new();
        figures.extend(me.cpu_percent.map(|c| (metric::CPU_PERCENT, f64::from(c))));
        figures.extend(me.rss_bytes.map(|b| (metric::RSS_BYTES, b as f64)));
        if let Some(ordinal) = self.cuda
            && let Ok(gpus) = self.probe.gpus()
            && let Some(gpu) = trainers_gpu(&gpus, std::process::id(), ordinal)
        {
            figures.extend(gpu_figures(gpu, std::process::id()));
        }
        figures
    }
}

/// The GPU the trainer (`pid`) holds memory on, else the one its CUDA
/// ordinal names (through `CUDA_VISIBLE_DEVICES` where that lists indices:
/// NVML counts every GPU).
fn trainers_gpu(gpus: &[Gpu], pid: u32, ordinal: usize) -> Option<&Gpu> {
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let index = visible
        .as_deref()
        .and_then(|v| v.split(',').nth(ordinal)?.trim().parse::<u32>().ok())
        .unwrap_or(ordinal as u32);
    gpus.iter()
        .find(|g| g.memory_of(pid).is_some())
        .or_else(|| gpus.iter().find(|g| g.index == index))
}

/// A GPU's figures, each where NVML gave it.
fn gpu_figures(g: &Gpu, pid: u32) -> Vec<(&'static str, f64)> {
    [
        (metric::GPU_PERCENT, g.utilisation_percent.map(f64::from)),
        (
            metric::GPU_PROCESS_MEMORY_BYTES,
            g.memory_of(pid).map(|b| b as f64),
        ),
        (
            metric::GPU_MEMORY_BYTES,
            g.memory.map(|(used, _)| used as f64),
        ),
        (metric::GPU_TEMPERATURE_C, g.temperature_c.map(f64::from)),
        (metric::GPU_POWER_W, g.power_w),
    ]
    .into_iter()
    .filter_map(|(name, v)| Some((name, v?)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(index: u32, processes: Vec<(u32, u64)>) -> Gpu {
        Gpu {
            index,
            name: "NVIDIA H100".into(),
            utilisation_percent: Some(87),
            memory: Some((20 << 30, 80 << 30)),
            temperature_c: Some(61),
            power_w: None,
            processes,
        }
    }

    #[test]
    fn the_trainers_gpu_is_where_it_holds_memory_else_its_ordinal() {
        let gpus = [gpu(0, vec![(7, 1 << 30)]), gpu(1, vec![(42, 3 << 30)])];
        assert_eq!(trainers_gpu(&gpus, 42, 0).map(|g| g.index), Some(1));
        assert_eq!(trainers_gpu(&gpus, 5, 1).map(|g| g.index), Some(1));
        assert_eq!(trainers_gpu(&gpus, 5, 3).map(|g| g.index), None);
    }

    #[test]
    fn a_gpu_gives_what_nvml_read_and_nothing_it_did_not() {
        let figures = gpu_figures(&gpu(0, vec![(42, 3 << 30)]), 42);
        let names: Vec<&str> = figures.iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            [
                metric::GPU_PERCENT,
                metric::GPU_PROCESS_MEMORY_BYTES,
                metric::GPU_MEMORY_BYTES,
                metric::GPU_TEMPERATURE_C
            ],
            "no power: NVML gave none"
        );
        assert_eq!(figures[1].1, (3u64 << 30) as f64);
        let other = gpu_figures(&gpu(0, vec![]), 42);
        assert!(
            other
                .iter()
                .all(|f| f.0 != metric::GPU_PROCESS_MEMORY_BYTES)
        );
    }

    #[test]
    fn on_the_cpu_only_the_process_is_sampled() {
        let mut log = SystemLog::open(DeviceName::Cpu);
        assert!(log.due(true) && !log.due(false), "the first logged step");
        let names: Vec<&str> = log.sample().iter().map(|f| f.0).collect();
        assert_eq!(names, [metric::CPU_PERCENT, metric::RSS_BYTES]);
        assert!(names.iter().all(|n| metric::is_system(n)));
    }
}
