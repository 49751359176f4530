//! The plugin host: loading strategy libraries through the stable ABI, running
//! their ops on burn tensors, discovering and building plugins, hot reload.

pub mod host_ops;
pub mod library;
pub mod registry;
pub mod trial;
pub mod watch;

pub use library::{Library, LoadError, MaskContext, MaskError, Strategy};
pub use registry::{Found, Source, discover};
