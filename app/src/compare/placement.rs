//! Which GPU each of compare's trainers runs on (`--devices`): at most
//! `--jobs-per-device` trainers per GPU, each new one on the least busy GPU.
//!
//! A trainer sees only its GPU (`CUDA_VISIBLE_DEVICES` set to that GPU's
//! entry) and opens `cuda:0`. The GPUs are named as compare sees them: with an
//! inherited `CUDA_VISIBLE_DEVICES=2,3`, `cuda:1` is the second entry, `3`, as
//! CUDA numbers them.

use anyhow::{Result, bail};

use crate::experiment::{DeviceName, parse_device};

/// The device each placed trainer opens: the only GPU it can see.
pub const PLACED_DEVICE: DeviceName = DeviceName::Cuda(0);

/// One GPU: its name as the user gave it, and its `CUDA_VISIBLE_DEVICES` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gpu {
    pub name: String,
    pub visible: String,
}

/// The GPUs of `spec` (`all`, or `cuda:0,cuda:2`), among the `available`
/// devices, with the entry each trainer gets from `inherited`
/// (`CUDA_VISIBLE_DEVICES` of this process, if set).
pub fn parse_devices(
    spec: &str,
    available: &[String],
    inherited: Option<&str>,
) -> Result<Vec<Gpu>> {
    let gpus: Vec<&String> = available.iter().filter(|d| DeviceName::is_gpu(d)).collect();
    let names: Vec<String> = if spec.trim() == "all" {
        gpus.iter().map(|d| d.to_string()).collect()
    } else {
        spec.split(',').map(|d| d.trim().to_string()).collect()
    };
    if names.is_empty() {
        bail!(
            "--devices {spec}: this build sees no CUDA device (devices here: {})",
            available.join(", ")
        );
    }
    let entries: Option<Vec<&str>> = inherited.map(|v| v.split(',').map(str::trim).collect());
    let mut out: Vec<Gpu> = Vec::new();
    for name in names {
        if !gpus.iter().any(|g| **g == name) {
            bail!(
                "--devices: {name} is not a CUDA device here (devices here: {})",
                available.join(", ")
            );
        }
        if out.iter().any(|g| g.name == name) {
            bail!("--devices: {name} is listed twice");
        }
        let index = parse_device(&name)?.cuda_index().unwrap_or_default();
        let visible = match &entries {
            Some(e) => e
                .get(index)
                .map(|s| s.to_string())
                .unwrap_or_else(|| index.to_string()),
            None => index.to_string(),
        };
        out.push(Gpu { name, visible });
    }
    Ok(out)
}

/// How many trainers each GPU holds.
#[derive(Debug)]
pub struct Placement {
    pub gpus: Vec<Gpu>,
    per_gpu: usize,
    load: Vec<usize>,
}

impl Placement {
    pub fn new(gpus: Vec<Gpu>, per_gpu: usize) -> Placement {
        let load = vec![0; gpus.len()];
        Placement {
            gpus,
            per_gpu,
            load,
        }
    }

    /// Trainers at a time over every GPU.
    pub fn capacity(&self) -> usize {
        self.gpus.len() * self.per_gpu
    }

    /// A place for one more trainer: the least busy GPU with room (the first
    /// of equals), or `None` when every GPU is full.
    pub fn take(&mut self) -> Option<usize> {
        let i = (0..self.gpus.len())
            .filter(|&i| self.load[i] < self.per_gpu)
            .min_by_key(|&i| self.load[i])?;
        self.load[i] += 1;
        Some(i)
    }

    /// Counts a trainer an earlier compare left on the GPU named `device`
    /// (its status says where): its place, or `None` if that is none of
    /// these GPUs.
    pub fn hold(&mut self, device: &str) -> Option<usize> {
        let i = self.gpus.iter().position(|g| g.name == device)?;
        self.load[i] += 1;
        Some(i)
    }

    pub fn release(&mut self, i: usize) {
        self.load[i] = self.load[i].saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(gpus: usize) -> Vec<String> {
        std::iter::once("cpu".to_string())
            .chain((0..gpus).map(|i| DeviceName::Cuda(i).to_string()))
            .collect()
    }

    #[test]
    fn all_is_every_gpu_and_a_list_is_checked() {
        let all = parse_devices("all", &machine(3), None).unwrap();
        let names: Vec<&str> = all.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["cuda:0", "cuda:1", "cuda:2"]);
        assert_eq!(all[2].visible, "2");
        let two = parse_devices("cuda:2, cuda:0", &machine(3), None).unwrap();
        assert_eq!(
            two[0],
            Gpu {
                name: "cuda:2".into(),
                visible: "2".into()
            }
        );
        let err = |spec: &str, n| {
            parse_devices(spec, &machine(n), None)
                .unwrap_err()
                .to_string()
        };
        assert!(err("cuda:3", 3).contains("cuda:3 is not a CUDA device here"));
        assert!(err("cuda:0,cuda:0", 1).contains("listed twice"));
        assert!(err("cpu", 1).contains("cpu is not a CUDA device"));
        assert!(err("all", 0).contains("sees no CUDA device"));
    }

    #[test]
    fn an_inherited_cuda_visible_devices_is_renumbered_as_cuda_does() {
        let gpus = parse_devices("all", &machine(2), Some("2,GPU-5f2e")).unwrap();
        assert_eq!(gpus[0].visible, "2");
        assert_eq!(gpus[1].visible, "GPU-5f2e");
    }

    #[test]
    fn trainers_go_to_the_least_busy_gpu_up_to_k_each() {
        let gpus = parse_devices("all", &machine(3), None).unwrap();
        let mut p = Placement::new(gpus, 2);
        assert_eq!(p.capacity(), 6);
        let order: Vec<usize> = (0..6).map(|_| p.take().unwrap()).collect();
        assert_eq!(order, [0, 1, 2, 0, 1, 2]);
        assert_eq!(p.take(), None);
        p.release(1);
        assert_eq!(p.take(), Some(1));
        // An earlier compare's trainer counts where its status says it runs.
        let mut q = Placement::new(parse_devices("all", &machine(2), None).unwrap(), 1);
        assert_eq!(q.hold("cuda:0"), Some(0));
        assert_eq!(q.hold("cpu"), None);
        assert_eq!(q.take(), Some(1));
        assert_eq!(q.take(), None);
    }
}
