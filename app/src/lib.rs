//! probdrop-tui: a terminal dashboard for structured-dropout research.
//!
//! Data flows one way: `experiment` (TOML schema, validation) → `run` (run
//! directory, control) → `train` (data, models, loop) → `plugins` (the strategy
//! host). The commands in `cli` tie them together.

pub mod cli;
pub mod commands;
pub mod compare;
pub mod experiment;
pub mod npy;
pub mod plugins;
pub mod run;
pub mod stats;
pub mod train;
pub mod ui;
