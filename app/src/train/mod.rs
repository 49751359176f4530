//! Training: data, models, schedule, loop, metrics. So far: the data readers.

pub mod idx;
