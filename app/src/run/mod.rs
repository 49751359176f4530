//! Runs: the run directory (the contract with the dashboard) and its control socket.

pub mod control;
pub mod dir;
pub mod lock;

pub use dir::{RunDir, RunInfo, State, Status};
