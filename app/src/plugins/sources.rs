//! The sources of a plugin crate as built: every file but its build output and
//! hidden ones, hashed, and kept with the library in the run store so that the
//! code behind a curve stays readable after the crate is edited.

use std::path::{Path, PathBuf};

/// More than this in one crate is hashed but not kept (a crate that vendors
/// data); the record says so.
pub const MAX_KEPT_BYTES: u64 = 4 << 20;

/// A plugin crate's files when its library was built.
#[derive(Clone, Debug, PartialEq)]
pub struct CrateSources {
    pub dir: PathBuf,
    /// SHA-256 over every file's relative path, length and bytes, in path order.
    pub sha256: String,
    /// `commit` plus " (dirty)" when the crate has uncommitted changes; None
    /// outside a git checkout.
    pub git: Option<String>,
    /// Relative path and bytes; empty when over [`MAX_KEPT_BYTES`].
    pub files: Vec<(PathBuf, Vec<u8>)>,
}

impl CrateSources {
    /// Reads `dir` (a plugin crate) now.
    pub fn read(dir: &Path) -> std::io::Result<CrateSources> {
        let mut paths = Vec::new();
        walk(dir, Path::new(""), &mut paths)?;
        paths.sort();
        let mut files = Vec::new();
        for rel in paths {
            let bytes = crate::run::files::read_regular(&dir.join(&rel), MAX_KEPT_BYTES)?;
            files.push((rel, bytes));
        }
        let sha256 = hash(&files);
        if files.iter().map(|(_, b)| b.len() as u64).sum::<u64>() > MAX_KEPT_BYTES {
            files.clear();
        }
        Ok(CrateSources {
            dir: dir.to_path_buf(),
            sha256,
            git: git_state(dir),
            files,
        })
    }
}

/// Regular files under `dir/rel`, skipping `target` and hidden entries (build
/// output and version-control data are not the crate's sources).
fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir.join(rel))? {
        let entry = entry?;
        let name = entry.file_name();
        let text = name.to_string_lossy();
        if text.starts_with('.') || (rel.as_os_str().is_empty() && text == "target") {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(dir, &rel.join(&name), out)?;
        } else if kind.is_file() {
            out.push(rel.join(&name));
        }
    }
    Ok(())
}

fn hash(files: &[(PathBuf, Vec<u8>)]) -> String {
    let mut all = Vec::new();
    for (path, bytes) in files {
        all.extend_from_slice(path.to_string_lossy().as_bytes());
        all.push(0);
        all.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        all.extend_from_slice(bytes);
    }
    crate::run::provenance::sha256_hex(&all)
}

/// The commit checked out where `dir` is, and whether `dir` has changes.
fn git_state(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"])?;
    let dirty = !git(&["status", "--porcelain", "--", "."])?.is_empty();
    Some(if dirty {
        format!("{commit} (dirty)")
    } else {
        commit
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_hashed_without_build_output_and_any_edit_changes_the_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::create_dir_all(dir.join("target/release")).unwrap();
        std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
        std::fs::write(dir.join("src/lib.rs"), "pub fn f() {}\n").unwrap();
        std::fs::write(dir.join("target/release/libx.so"), "binary").unwrap();
        let first = CrateSources::read(dir).unwrap();
        let names: Vec<_> = first.files.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(
            names,
            [PathBuf::from("Cargo.toml"), PathBuf::from("src/lib.rs")]
        );
        std::fs::write(dir.join("target/release/libx.so"), "rebuilt").unwrap();
        assert_eq!(CrateSources::read(dir).unwrap().sha256, first.sha256);
        std::fs::write(dir.join("src/lib.rs"), "pub fn f() { }\n").unwrap();
        assert_ne!(CrateSources::read(dir).unwrap().sha256, first.sha256);
    }
}
