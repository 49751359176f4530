//! What the machine is doing, for the Runs view: the samples of
//! [`crate::probe`], taken on a thread of its own, since NVML calls can take
//! milliseconds, and handed to the dashboard as [`Input::System`]; and the
//! machine in words.
//!
//! [`Input::System`]: super::app::Input::System

use std::sync::mpsc;
use std::time::Duration;

pub use crate::probe::{Gpu, GpuSource, NoGpu, Nvml, Probe, Sample, gpu_source};

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
    #[test]
    fn bytes_read_as_gib() {
        assert_eq!(super::gib(3 << 29), "1.5");
    }
}
