//! Training: data, models, schedules, the loop and its metrics.

pub mod allocator;
pub mod bench;
pub mod data;
pub mod data_error;
pub mod device;
pub mod idx;
pub mod limits;
pub mod machine;
pub mod models;
pub mod norm;
pub mod optim;
pub mod resnet;
pub mod schedule;
pub mod signals;
pub mod sources;
pub mod text;
pub mod trainer;
pub mod transformer;
pub mod watchdog;

pub use machine::ThisMachine;
