//! This machine as experiment validation sees it: the data readers' layout
//! checks, the models' memory floors, `/proc/meminfo` and the devices LibTorch
//! finds.

use std::path::Path;

use crate::experiment::{DataFormat, Machine, MemoryFloor, ModelSpec};
use crate::train::{data, device, models};

/// The machine this process runs on.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThisMachine;

impl Machine for ThisMachine {
    fn check_data(&self, format: DataFormat, path: &Path) -> Result<(), String> {
        data::check_layout(format, path).map_err(|e| e.to_string())
    }

    fn memory_floor(
        &self,
        model: &ModelSpec,
        input: [usize; 3],
        batch: usize,
    ) -> Option<MemoryFloor> {
        models::memory_floor(model, input, batch)
    }

    fn memory(&self) -> Option<u128> {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kib: u128 = info
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    fn devices(&self) -> Vec<String> {
        device::available_devices()
    }
}
