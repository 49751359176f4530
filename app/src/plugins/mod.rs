//! The plugin host: loading strategy libraries through the stable ABI, running
//! their ops on burn tensors, discovering and building plugins, hot reload.

pub mod host_ops;
pub mod library;
pub mod registry;
pub mod sources;
pub mod trial;
pub mod watch;

pub use library::{Library, LoadError, MaskContext, MaskError, Strategy};
pub use registry::{BuildObserver, Found, Progress, Source, discover};

use std::path::Path;

use crate::experiment::Catalog;

/// Every strategy of a plugins directory and the catalog experiments are
/// validated against: how the commands, the trainer and the dashboard load
/// them.
pub struct Loaded {
    pub found: Vec<Found>,
    pub catalog: Catalog,
}

impl Loaded {
    /// The libraries that loaded.
    pub fn libraries(&self) -> impl Iterator<Item = &Library> {
        self.found.iter().filter_map(|f| f.outcome.as_ref().ok())
    }
}

/// Finds, builds and loads every strategy in `dir`; `on_build_line` gets the
/// build output of plugin crates.
pub fn load(dir: &Path, on_build_line: &mut dyn BuildObserver) -> std::io::Result<Loaded> {
    let found = discover(dir, on_build_line)?;
    let catalog = catalog_of(&found);
    Ok(Loaded { found, catalog })
}

/// Prints a line of plugin build output to stderr, where the commands show it
/// (and a trainer's stderr is its run's `trainer.log`). Cargo's closing
/// "Finished" line is left out, so nothing is printed when nothing was built.
pub fn report_build_line(line: &str) {
    if !line.trim_start().starts_with("Finished") {
        eprintln!("plugins: {line}");
    }
}

/// The catalog of the strategies that loaded, with their rules: building a
/// strategy runs its constructor's checks.
pub fn catalog_of(found: &[Found]) -> Catalog {
    let libraries: Vec<&Library> = found
        .iter()
        .filter_map(|f| f.outcome.as_ref().ok())
        .collect();
    let mut catalog = Catalog::from_infos(libraries.iter().map(|l| &l.info));
    for f in found {
        if let Err(e) = &f.outcome {
            catalog.refused.insert(f.id.clone(), e.0.clone());
        }
    }
    for library in libraries {
        let lib = library.clone();
        let rules = move |params: &[(String, plugin_api::Value)]| {
            lib.create(params).map(drop).map_err(|e| e.0)
        };
        catalog.rules.insert(
            library.info.name.clone(),
            crate::experiment::Rules(std::sync::Arc::new(rules)),
        );
    }
    catalog
}
