//! probdrop-tui: a terminal dashboard for structured-dropout research.
//!
//! Modules follow the data flow of `docs/architecture.md`; this crate so far holds
//! the plugin host and the commands that inspect strategies.

pub mod cli;
pub mod npy;
pub mod plugins;
pub mod stats;
pub mod train;
