//! probdrop-tui: a terminal dashboard for structured-dropout research.
//!
//! Data flows one way: `experiment` (TOML schema, validation) → `run` (run
//! directory, control, preparing and starting runs) → `plugins` (the strategy
//! host) → `train` (data, models, loop), `compare` and `ui` (the dashboard).
//! The commands in `cli` and `commands` tie them together; ARCHITECTURE.md
//! has the table.

pub mod cli;
pub mod commands;
pub mod compare;
pub mod experiment;
pub mod export;
pub mod npy;
pub mod plugins;
pub mod probe;
pub mod reproduce;
pub mod run;
pub mod scaffold;
pub mod stats;
pub mod train;
pub mod ui;
