//! `probdrop-tui new-strategy NAME`: writes a ready strategy crate (manifest,
//! a documented skeleton on the interface-1.3 ops, a statistics test), builds
//! it and lists it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

const LIB_TEMPLATE: &str = include_str!("lib.rs.template");
const TEST_TEMPLATE: &str = include_str!("statistics.rs.template");

#[derive(clap::Args, Debug)]
pub struct NewStrategyArgs {
    /// The strategy's name, as experiment files will use it (`plugin = "NAME"`):
    /// lowercase letters, digits and dashes.
    pub name: String,
    /// Create the crate in this directory instead of the plugins directory
    /// (the host then loads it only with `--plugins DIR`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The plugin-api crate to depend on (default: the project's, beside this
    /// binary's source).
    #[arg(long, value_name = "PATH")]
    pub plugin_api: Option<PathBuf>,
}

/// Where the new crate goes and what its manifest points at.
struct Plan {
    krate: PathBuf,
    /// The plugin-api path as the manifest writes it.
    api: String,
    /// The project's root when the crate is one of its workspace's plugins;
    /// otherwise the crate is a workspace of its own.
    in_project: bool,
    project: PathBuf,
}

/// Writes the crate and prints what to do next; the build is the caller's.
pub fn new_strategy(plugins: &Path, args: &NewStrategyArgs) -> Result<PathBuf> {
    check_name(&args.name)?;
    let plan = plan(plugins, args)?;
    write_crate(&plan, &args.name)?;
    Ok(plan.krate)
}

/// Names become a package name and a file name: keep them plain.
fn check_name(name: &str) -> Result<()> {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let starts = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    if !plain || !starts || name.ends_with('-') || name == crate::experiment::NONE {
        bail!(
            "`{name}` cannot name a strategy: use lowercase letters, digits and dashes, \
             starting with a letter (and not `none`)"
        );
    }
    Ok(())
}

fn plan(plugins: &Path, args: &NewStrategyArgs) -> Result<Plan> {
    let api = match &args.plugin_api {
        Some(path) => path.clone(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api"),
    };
    let api = api.canonicalize().with_context(|| {
        format!(
            "plugin-api not found at {} (pass --plugin-api PATH)",
            api.display()
        )
    })?;
    let project = api.parent().unwrap_or(&api).to_path_buf();
    let parent = args.dir.as_deref().unwrap_or(plugins);
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let parent = parent.canonicalize()?;
    let krate = parent.join(&args.name);
    if krate.exists() {
        bail!("{} exists already; pick another name", krate.display());
    }
    // The project's workspace takes every crate of its plugins/ as a member.
    let in_project = parent == project.join("plugins");
    let api = if in_project {
        "../../plugin-api".to_string()
    } else {
        api.display().to_string()
    };
    Ok(Plan {
        krate,
        api,
        in_project,
        project,
    })
}

/// `random-rows` → `RandomRows`.
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or(String::new(), |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

fn fill(template: &str, name: &str) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{type}}", &type_name(name))
}

fn manifest(plan: &Plan, name: &str) -> String {
    let mut text = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
         [lib]\n# A strategy is a dynamic library the host loads.\ncrate-type = [\"cdylib\"]\n\n\
         [dependencies]\n# The plugin interface (its version is the interface version).\n\
         plugin-api = {{ path = {:?} }}\nabi_stable = \"0.11.3\"\n",
        plan.api
    );
    if !plan.in_project {
        // Outside the project's workspace: a workspace of its own, whose
        // Cargo.lock is the project's (the same abi_stable as the host).
        text.push_str("\n[workspace]\n");
    }
    text
}

fn write_crate(plan: &Plan, name: &str) -> Result<()> {
    let src = plan.krate.join("src");
    let tests = plan.krate.join("tests");
    std::fs::create_dir_all(&src)?;
    std::fs::create_dir_all(&tests)?;
    std::fs::write(plan.krate.join("Cargo.toml"), manifest(plan, name))?;
    std::fs::write(src.join("lib.rs"), fill(LIB_TEMPLATE, name))?;
    std::fs::write(tests.join("statistics.rs"), fill(TEST_TEMPLATE, name))?;
    let lock = plan.project.join("Cargo.lock");
    if !plan.in_project && lock.is_file() {
        std::fs::copy(&lock, plan.krate.join("Cargo.lock"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_become_type_names() {
        for bad in ["", "Rows", "9rows", "rows_2", "rows-", "none", "a b"] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        check_name("random-rows2").unwrap();
        assert_eq!(type_name("random-rows2"), "RandomRows2");
        assert_eq!(
            fill("{{type}} is {{name}}", "grid-mask"),
            "GridMask is grid-mask"
        );
    }
}
