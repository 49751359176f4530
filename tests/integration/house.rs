//! House rules a code review asked for, checked on the sources: no crate of
//! the workspace allows unsafe code of its own, and ARCHITECTURE.md's table
//! names every module of the app.

use crate::common::repo_root;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_crate_refuses_unsafe_code() {
    let workspace: toml::Table = read("Cargo.toml").parse().unwrap();
    assert_eq!(
        workspace["workspace"]["lints"]["rust"]["unsafe_code"].as_str(),
        Some("forbid")
    );
    let app: toml::Table = read("app/Cargo.toml").parse().unwrap();
    assert_eq!(app["lints"]["workspace"].as_bool(), Some(true));
    // The crates that keep out of workspace inheritance say it themselves.
    let mut libs = vec![
        "plugin-api/src/lib.rs".to_string(),
        "strategy-kit/src/lib.rs".into(),
    ];
    for entry in std::fs::read_dir(repo_root().join("plugins")).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("Cargo.toml").is_file() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            libs.push(format!("plugins/{name}/src/lib.rs"));
        }
    }
    for lib in libs {
        let text = read(&lib);
        assert!(
            text.contains("#![forbid(unsafe_code)]") || text.contains("#![deny(unsafe_code)]"),
            "{lib} does not refuse unsafe code"
        );
    }
}

#[test]
fn the_architecture_table_names_every_module_of_the_app() {
    let table: Vec<String> = read("ARCHITECTURE.md")
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(str::to_string)
        .collect();
    let lib = read("app/src/lib.rs");
    let modules = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';'));
    for module in modules {
        let named = format!("`{module}`");
        assert!(
            table.iter().any(|row| row.contains(&named)),
            "ARCHITECTURE.md's table does not name {named}"
        );
    }
}
