//! `probdrop-tui new-strategy NAME`: writes a ready strategy crate (manifest,
//! a documented skeleton on the interface-1.3 ops, a statistics test) and
//! builds it alone; a crate that does not build is removed, so that it never
//! breaks the build of the plugins beside it.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::plugins::registry::{build_crates, read_crate};

const LIB_TEMPLATE: &str = include_str!("lib.rs.template");
const TEST_TEMPLATE: &str = include_str!("statistics.rs.template");

/// How a new crate's own statistics test is run (printed by `new-strategy`,
/// quoted by plugins/README.md): release, like the host's build of it.
pub const TEST_COMMAND: &str = "cargo test --release";

#[derive(clap::Args, Debug)]
pub struct NewStrategyArgs {
    /// The strategy's name, as experiment files will use it (`plugin = "NAME"`):
    /// lowercase letters, digits and dashes.
    pub name: String,
    /// Create the crate in this directory instead of the plugins directory
    /// (the host then loads it only with `--plugins DIR`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The plugin-api crate to depend on (default: the one of the workspace
    /// the crate joins, else the project's this binary was built from).
    #[arg(long, value_name = "PATH")]
    pub plugin_api: Option<PathBuf>,
}

/// Where the new crate goes and what its manifest points at.
struct Plan {
    krate: PathBuf,
    /// The plugin-api path as the manifest writes it.
    api: String,
    /// A crate no workspace takes as a member is a workspace of its own...
    own_workspace: bool,
    /// ...on a copy of this lock file (the same abi_stable as the host).
    lock: Option<PathBuf>,
}

/// Writes the crate and builds it alone; on failure removes it and says why.
pub fn new_strategy(plugins: &Path, args: &NewStrategyArgs) -> Result<PathBuf> {
    check_name(&args.name)?;
    let plan = plan(plugins, args)?;
    write_crate(&plan, &args.name)?;
    if let Err(why) = build_alone(&plan.krate) {
        std::fs::remove_dir_all(&plan.krate)
            .with_context(|| format!("{why}\nand removing {} failed", plan.krate.display()))?;
        bail!(
            "{} did not build, so it was removed (the plugins beside it build as before):\n{why}",
            plan.krate.display()
        );
    }
    Ok(plan.krate)
}

/// Builds only the new crate, as the host builds plugin crates.
fn build_alone(krate: &Path) -> Result<(), String> {
    let new = read_crate(krate)?;
    let report = build_crates(
        std::slice::from_ref(&new),
        &mut crate::plugins::report_build_line,
    );
    match report.libraries.get(&new.package) {
        Some(Ok(_)) => Ok(()),
        Some(Err(why)) => Err(why.clone()),
        None => Err("cargo built nothing".into()),
    }
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

/// Decided from where the crate goes, never from where this binary was built:
/// a member of a workspace depends on that workspace's plugin-api by a
/// relative path; any other crate is a workspace of its own.
fn plan(plugins: &Path, args: &NewStrategyArgs) -> Result<Plan> {
    let parent = args.dir.as_deref().unwrap_or(plugins);
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let krate = parent.canonicalize()?.join(&args.name);
    if krate.exists() {
        bail!("{} exists already; pick another name", krate.display());
    }
    let given = args.plugin_api.as_deref().map(existing_api).transpose()?;
    if let Some(ws) = workspace_taking(&krate) {
        let api = match given.or(ws.api) {
            Some(api) => api,
            None => bail!(
                "the workspace at {} takes {} as a member but has no plugin-api \
                 (pass --plugin-api PATH)",
                ws.root.display(),
                krate.display()
            ),
        };
        return Ok(Plan {
            api: relative(&krate, &api).display().to_string(),
            krate,
            own_workspace: false,
            lock: None,
        });
    }
    let api = match given {
        Some(api) => api,
        None => existing_api(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api"))?,
    };
    let lock = api.parent().map(|p| p.join("Cargo.lock"));
    Ok(Plan {
        api: api.display().to_string(),
        krate,
        own_workspace: true,
        lock: lock.filter(|l| l.is_file()),
    })
}

fn existing_api(path: &Path) -> Result<PathBuf> {
    path.canonicalize().with_context(|| {
        format!(
            "plugin-api not found at {} (pass --plugin-api PATH)",
            path.display()
        )
    })
}

/// A workspace that takes a crate as a member, and its plugin-api.
struct Workspace {
    root: PathBuf,
    api: Option<PathBuf>,
}

/// The workspace cargo would put a crate at `krate` in: the nearest manifest
/// above it with a `[workspace]` table that does not exclude it, if one of
/// its `members` patterns names it.
fn workspace_taking(krate: &Path) -> Option<Workspace> {
    for root in krate.ancestors().skip(1) {
        let Some(ws) = workspace_table(root) else {
            continue;
        };
        let rel = krate.strip_prefix(root).ok()?;
        if paths(&ws, "exclude").any(|p| rel.starts_with(p)) {
            continue;
        }
        if !paths(&ws, "members").any(|p| matches_pattern(p, rel)) {
            return None;
        }
        let api = paths(&ws, "members")
            .map(|m| root.join(m))
            .find(|dir| read_crate(dir).is_ok_and(|c| c.package == "plugin-api"));
        return Some(Workspace {
            root: root.to_path_buf(),
            api: api.and_then(|a| a.canonicalize().ok()),
        });
    }
    None
}

fn workspace_table(dir: &Path) -> Option<toml::Table> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
    let doc: toml::Table = text.parse().ok()?;
    doc.get("workspace")?.as_table().cloned()
}

/// The paths a `[workspace]` key lists (`members`, `exclude`).
fn paths<'a>(ws: &'a toml::Table, key: &str) -> impl Iterator<Item = &'a str> + use<'a> {
    ws.get(key)
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str())
}

/// A `members` entry against a relative path, component by component; `*`
/// stands for any run of characters within one component, as in cargo's globs.
fn matches_pattern(pattern: &str, rel: &Path) -> bool {
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let names: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.len() == names.len() && parts.iter().zip(&names).all(|(p, n)| wildcard(p, n))
}

fn wildcard(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            let Some(rest) = name.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| wildcard(tail, &rest[i..]))
        }
    }
}

/// The path from directory `from` to `to`, both absolute.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let shared = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let ups = from.components().count() - shared;
    let mut path: PathBuf = std::iter::repeat_n(Component::ParentDir, ups).collect();
    path.extend(to.components().skip(shared));
    path
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
    if plan.own_workspace {
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
    if let Some(lock) = &plan.lock {
        std::fs::copy(lock, plan.krate.join("Cargo.lock"))?;
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

    #[test]
    fn members_patterns_name_crates_as_cargo_globs_do() {
        let rel = Path::new("plugins/grid-rows");
        assert!(matches_pattern("plugins/*", rel));
        assert!(matches_pattern("plugins/grid-*", rel));
        assert!(matches_pattern("plugins/grid-rows/", rel));
        assert!(!matches_pattern("plugins/*", Path::new("grid-rows")));
        assert!(!matches_pattern("other/*", rel));
        assert!(!matches_pattern("*", rel));
    }

    #[test]
    fn plugin_api_is_reached_by_a_relative_path() {
        assert_eq!(
            relative(
                Path::new("/w/plugins/grid-rows"),
                Path::new("/w/plugin-api")
            ),
            Path::new("../../plugin-api")
        );
    }

    /// A plugins directory is a member of the workspace above it, found from
    /// where it is, wherever the binary was built; `exclude` is honoured.
    #[test]
    fn the_workspace_is_found_from_the_plugins_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("plugin-api")).unwrap();
        std::fs::write(
            root.join("plugin-api/Cargo.toml"),
            "[package]\nname = \"plugin-api\"\n",
        )
        .unwrap();
        std::fs::write(
            root.join("Cargo.toml"),
            "[workspace]\nmembers = [\"plugin-api\", \"plugins/*\"]\nexclude = [\"plugins/old\"]\n",
        )
        .unwrap();
        let ws = workspace_taking(&root.join("plugins/grid-rows")).unwrap();
        assert_eq!(ws.root, root);
        assert_eq!(ws.api, Some(root.join("plugin-api")));
        assert!(workspace_taking(&root.join("elsewhere/grid-rows")).is_none());
        assert!(workspace_taking(&root.join("plugins/old/grid-rows")).is_none());
    }
}
