//! The data a run trained on, by content: every file under the data path with
//! its size and SHA-256. Hashes are cached beside the runs by path, size and
//! modification time, so a second run on the same files reads none of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dir;
use crate::experiment::DataSpec;

/// The cache's file in the run store's directory.
const CACHE: &str = ".data-hashes.json";
/// A data directory with more files than this (an image folder of a large
/// dataset) is recorded by its file count only: hashing it at every start
/// would cost more than the runs.
pub const MAX_FILES: usize = 10_000;

/// What provenance.json says of the data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataRecord {
    pub path: PathBuf,
    pub format: String,
    pub train_limit: Option<usize>,
    pub val_limit: Option<usize>,
    /// The splits are the dataset's own files; the training order is shuffled
    /// with this seed (the run's).
    pub order_seed: u64,
    /// Relative to `path` (empty for a file).
    pub files: Vec<DataFile>,
    /// Why `files` is empty (too many files), if it is for that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_hashed: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

impl DataRecord {
    /// The data of `spec` now, for a run seeded with `seed`; hashes through
    /// the cache in `cache_dir`. Data that cannot be read is recorded as such.
    pub fn of(spec: &DataSpec, seed: u64, cache_dir: &Path) -> DataRecord {
        let (files, not_hashed) = match hash_files(&spec.path, cache_dir) {
            Ok(hashed) => hashed,
            Err(e) => (Vec::new(), Some(format!("cannot read it: {e}"))),
        };
        DataRecord {
            path: spec.path.clone(),
            format: format!("{:?}", spec.format).to_lowercase(),
            train_limit: spec.train_limit,
            val_limit: spec.val_limit,
            order_seed: seed,
            files,
            not_hashed,
        }
    }
}

/// One cached hash: valid while the file keeps its size and time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Cached {
    bytes: u64,
    mtime_ns: i128,
    sha256: String,
}

/// The files under `path` (a file or a directory), hashed through the cache
/// in `cache_dir`.
pub fn hash_files(
    path: &Path,
    cache_dir: &Path,
) -> std::io::Result<(Vec<DataFile>, Option<String>)> {
    let mut found = Vec::new();
    if path.is_file() {
        found.push(PathBuf::new());
    } else {
        walk(path, Path::new(""), &mut found)?;
    }
    if found.len() > MAX_FILES {
        let why = format!("{} files, more than the {MAX_FILES} hashed", found.len());
        return Ok((Vec::new(), Some(why)));
    }
    found.sort();
    let cache_file = cache_dir.join(CACHE);
    let mut cache: BTreeMap<PathBuf, Cached> = dir::read_json(&cache_file).unwrap_or_default();
    let before = cache.clone();
    let mut files = Vec::new();
    for rel in found {
        let full = if rel.as_os_str().is_empty() {
            path.to_path_buf()
        } else {
            path.join(&rel)
        };
        let sha = hash_one(&full, &mut cache)?;
        files.push(DataFile {
            path: rel,
            bytes: std::fs::metadata(&full)?.len(),
            sha256: sha,
        });
    }
    if cache != before && super::files::own_dir(cache_dir).is_ok() {
        // A cache that cannot be written only costs the next run a hash.
        let _ = dir::write_json(&cache_file, &cache);
    }
    Ok((files, None))
}

fn hash_one(path: &Path, cache: &mut BTreeMap<PathBuf, Cached>) -> std::io::Result<String> {
    let full = std::fs::canonicalize(path)?;
    let meta = std::fs::metadata(&full)?;
    let mtime_ns = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    if let Some(c) = cache.get(&full)
        && c.bytes == meta.len()
        && c.mtime_ns == mtime_ns
    {
        return Ok(c.sha256.clone());
    }
    let sha256 = sha256_of_file(&full)?;
    cache.insert(
        full,
        Cached {
            bytes: meta.len(),
            mtime_ns,
            sha256: sha256.clone(),
        },
    );
    Ok(sha256)
}

/// SHA-256 of a file, read in pieces (a dataset need not fit in memory).
pub fn sha256_of_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Regular files under `dir/rel`, hidden ones left out.
fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir.join(rel))? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let meta = std::fs::metadata(entry.path())?;
        if meta.is_dir() {
            walk(dir, &rel.join(&name), out)?;
        } else if meta.is_file() {
            out.push(rel.join(&name));
        }
        if out.len() > MAX_FILES {
            return Ok(());
        }
    }
    Ok(())
}

/// How two records of the same data differ: one line per file added,
/// removed or changed, and per limit.
pub fn differences(was: &DataRecord, now: &DataRecord) -> Vec<String> {
    let mut out = Vec::new();
    let index = |r: &DataRecord| -> BTreeMap<PathBuf, (u64, String)> {
        r.files
            .iter()
            .map(|f| (f.path.clone(), (f.bytes, f.sha256.clone())))
            .collect()
    };
    let (a, b) = (index(was), index(now));
    let name = |p: &Path| was.path.join(p).display().to_string();
    for (path, (bytes, sha)) in &a {
        match b.get(path) {
            None => out.push(format!("{} is gone", name(path))),
            Some((_, s)) if s != sha => out.push(format!(
                "{} changed: SHA-256 {} ({bytes} bytes) then, {} now",
                name(path),
                &sha[..12.min(sha.len())],
                &s[..12.min(s.len())]
            )),
            _ => {}
        }
    }
    for path in b.keys().filter(|p| !a.contains_key(*p)) {
        out.push(format!("{} is new", name(path)));
    }
    if (was.train_limit, was.val_limit) != (now.train_limit, now.val_limit) {
        out.push(format!(
            "limits: train {:?} val {:?} then, {:?} {:?} now",
            was.train_limit, was.val_limit, now.train_limit, now.val_limit
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::provenance::sha256_hex;

    #[test]
    fn hashes_match_sha256sum_and_come_from_the_cache_until_a_file_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("a"), "abc").unwrap();
        std::fs::write(data.join("sub/b"), "").unwrap();
        let cache = tmp.path().join("store");
        let (files, none) = hash_files(&data, &cache).unwrap();
        assert!(none.is_none());
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path, Path::new("a"));
        assert_eq!(
            files[0].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // The cache answers for an unchanged file: a forged entry shows it.
        let cache_file = cache.join(CACHE);
        let text = std::fs::read_to_string(&cache_file).unwrap();
        std::fs::write(&cache_file, text.replace("ba7816bf", "00000000")).unwrap();
        assert!(
            hash_files(&data, &cache).unwrap().0[0]
                .sha256
                .starts_with("00000000")
        );
        // A changed file (size or time) is hashed again.
        std::fs::write(data.join("a"), "abcd").unwrap();
        let (again, _) = hash_files(&data, &cache).unwrap();
        assert_eq!(again[0].sha256, sha256_hex(b"abcd"));
        let record = |files| DataRecord {
            path: data.clone(),
            format: "idx".into(),
            train_limit: None,
            val_limit: None,
            order_seed: 1,
            files,
            not_hashed: None,
        };
        let said = differences(&record(files), &record(again));
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("/a changed"), "{said:?}");
    }
}
