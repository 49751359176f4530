//! What checking an experiment needs to know of the machine and its data but
//! cannot work out from the file: whether the data on disk has the layout its
//! format names, what a model's training step needs in memory, how much memory
//! there is, and which devices can be opened. The training layer knows these
//! (`train::ThisMachine`); validation asks through this trait so that
//! `experiment` imports nothing above it.

use std::path::Path;

use super::{DataFormat, ModelSpec};

/// What a training step of a model needs at least, estimated before anything is
/// built: `check` refuses a model that cannot fit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryFloor {
    pub parameters: u128,
    /// Weights, gradients and two optimiser moments per parameter, plus the
    /// activations kept for the backward pass and their gradients, in bytes.
    pub bytes: u128,
}

/// The machine an experiment is checked for.
pub trait Machine: Send + Sync {
    /// `Ok` when `path` looks like data of `format` (read only as far as needed).
    fn check_data(&self, format: DataFormat, path: &Path) -> Result<(), String>;

    /// A floor on the memory of one training step of `model` on inputs of
    /// `input` (`[channels, side, side]`, or `[vocab, tokens, 0]` for text) at
    /// `batch`; `None` for models not estimated.
    fn memory_floor(
        &self,
        model: &ModelSpec,
        input: [usize; 3],
        batch: usize,
    ) -> Option<MemoryFloor>;

    /// The memory this machine has in bytes, where known.
    fn memory(&self) -> Option<u128>;

    /// The devices this build can open here: "cpu", then each "cuda:N".
    fn devices(&self) -> Vec<String>;
}
