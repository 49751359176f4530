//! Runs: the run directory (the contract with the dashboard), its control
//! socket, and the trainer process behind it.

pub mod comparison;
pub mod control;
pub mod data_files;
pub mod dir;
pub mod error;
pub mod files;
pub mod lock;
pub mod notes;
pub mod prepare;
pub mod provenance;
pub mod replay;
pub mod store;
pub mod trainer;

pub use dir::{RunDir, RunInfo, State, Status};
pub use error::RunError;
