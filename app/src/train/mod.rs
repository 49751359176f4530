//! Training: data, models, schedule, loop, metrics. So far: the IDX reader and
//! the small CNN.

pub mod idx;
pub mod models;
