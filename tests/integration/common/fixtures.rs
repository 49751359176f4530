//! Builds the fixture plugins once per test binary, under `CARGO_TARGET_TMPDIR`:
//! several versions of `tests/fixtures/probe.rs`, two of them against
//! plugin-api as it was at interfaces 1.0 and 1.2 (kept in
//! tests/fixtures/plugin-api-1.*) and one against a copy claiming interface 2.0.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use probdrop_tui::plugins::registry::{PluginCrate, build_crates};

use super::repo_root;

/// Library path of each fixture crate, by package name.
pub fn fixtures() -> &'static BTreeMap<String, PathBuf> {
    static BUILT: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(build)
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures()[name].clone()
}

/// plugin-api's source as it is, claiming interface `version`.
fn copy_api(to: &Path, version: &str) {
    let from = repo_root().join("plugin-api");
    std::fs::create_dir_all(to.join("src")).unwrap();
    for entry in std::fs::read_dir(from.join("src")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join("src").join(path.file_name().unwrap())).unwrap();
    }
    let manifest = std::fs::read_to_string(from.join("Cargo.toml")).unwrap();
    let manifest = manifest.replacen(
        &format!("version = \"{}\"", plugin_api::INTERFACE_VERSION),
        &format!("version = \"{version}\""),
        1,
    );
    assert!(
        manifest.contains(version),
        "plugin-api's version line moved"
    );
    std::fs::write(to.join("Cargo.toml"), manifest).unwrap();
}

fn build() -> BTreeMap<String, PathBuf> {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-fixtures");
    let ws = root.join("ws");
    std::fs::create_dir_all(ws.join(".cargo")).unwrap();
    copy_api(&root.join("api-2.0"), "2.0.0");
    // Interfaces 1.0 and 1.2 as they were released, kept in the repository.
    let released = |v: &str| {
        repo_root()
            .join(format!("tests/fixtures/plugin-api-{v}"))
            .canonicalize()
            .unwrap()
    };
    let probe_src = repo_root()
        .join("tests/fixtures/probe.rs")
        .canonicalize()
        .unwrap();
    let current_api = repo_root().join("plugin-api").canonicalize().unwrap();
    let probes = [
        ("probe-v1", "1.0.0", current_api.clone()),
        ("probe-v2", "2.0.0", current_api.clone()),
        ("probe-old-minor", "3.0.0", released("1.0")),
        ("probe-minor-1-2", "12.0.0", released("1.2")),
        ("probe-other-major", "4.0.0", root.join("api-2.0")),
        ("probe-bad-shape", "5.0.0", current_api.clone()),
        ("probe-panics", "6.0.0", current_api.clone()),
        ("probe-panics-in-training", "7.0.0", current_api.clone()),
        ("probe-nan-in-training", "8.0.0", current_api.clone()),
        ("probe-aborts-in-training", "9.0.0", current_api.clone()),
        ("probe-hangs", "10.0.0", current_api.clone()),
        ("probe-hangs-in-training", "11.0.0", current_api.clone()),
        ("probe-hangs-in-new", "13.0.0", current_api.clone()),
        ("probe-leaks-memory", "14.0.0", current_api.clone()),
        ("probe-leaks-threads", "15.0.0", current_api),
    ];
    let mut members = Vec::new();
    let mut crates = Vec::new();
    for (name, version, api) in probes {
        let dir = ws.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2021\"\n\n\
                 [lib]\npath = {probe_src:?}\ncrate-type = [\"cdylib\"]\n\n\
                 [dependencies]\nplugin-api = {{ path = {api:?} }}\nabi_stable = \"0.11.3\"\n"
            ),
        )
        .unwrap();
        members.push(format!("{name:?}"));
        crates.push(PluginCrate {
            package: name.to_string(),
            dir,
            bundled: false,
        });
    }
    std::fs::write(
        ws.join("Cargo.toml"),
        format!(
            "[workspace]\nresolver = \"2\"\nmembers = [{}]\n",
            members.join(", ")
        ),
    )
    .unwrap();
    // Same dependency versions as the project, from the local cache: no network.
    std::fs::copy(repo_root().join("Cargo.lock"), ws.join("Cargo.lock")).unwrap();
    std::fs::write(
        ws.join(".cargo/config.toml"),
        format!(
            "[net]\noffline = true\n[build]\ntarget-dir = {:?}\n",
            root.join("target")
        ),
    )
    .unwrap();
    let mut log = String::new();
    let report = build_crates(&crates, &mut |l: &str| {
        log.push_str(l);
        log.push('\n');
    });
    report
        .libraries
        .into_iter()
        .map(|(name, lib)| {
            (
                name.clone(),
                lib.unwrap_or_else(|e| panic!("fixture {name}: {e}\n{log}")),
            )
        })
        .collect()
}

/// Copies `examples/my-strategy` into `<root>/plugins/my-strategy` as a user would,
/// building offline into the fixtures' target directory (abi_stable built once).
/// Returns the plugins directory.
pub fn example_crate_in(root: &Path) -> PathBuf {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-fixtures/target");
    let plugins = root.join("plugins");
    let krate = plugins.join("my-strategy");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::create_dir_all(root.join(".cargo")).unwrap();
    let example = repo_root().join("examples/my-strategy");
    std::fs::copy(example.join("src/lib.rs"), krate.join("src/lib.rs")).unwrap();
    let api = repo_root().join("plugin-api").canonicalize().unwrap();
    let manifest = std::fs::read_to_string(example.join("Cargo.toml"))
        .unwrap()
        .replace("path = \"../../plugin-api\"", &format!("path = {api:?}"));
    // Its own workspace: outside the project tree it has no parent one.
    std::fs::write(
        krate.join("Cargo.toml"),
        format!("{manifest}\n[workspace]\n"),
    )
    .unwrap();
    std::fs::copy(repo_root().join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    std::fs::write(
        root.join(".cargo/config.toml"),
        format!("[net]\noffline = true\n[build]\ntarget-dir = {target:?}\n"),
    )
    .unwrap();
    plugins
}
