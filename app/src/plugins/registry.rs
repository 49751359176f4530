//! Finding strategies in the plugins directory: prebuilt libraries are loaded as
//! they are; plugin crates are built with cargo first.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use super::library::{Library, LoadError};

/// Where a strategy came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A crate shipped with probdrop-tui (`[package.metadata.probdrop] bundled = true`).
    Bundled,
    /// A user's plugin crate, built by the host.
    Crate,
    /// A library dropped into the directory.
    Prebuilt,
}

/// One thing found in the plugins directory.
#[derive(Clone, Debug)]
pub struct Found {
    /// Crate package name, or the library's file name.
    pub id: String,
    pub source: Source,
    /// The crate directory or the library file.
    pub origin: PathBuf,
    /// The library that was (or would have been) loaded.
    pub library_path: Option<PathBuf>,
    pub outcome: Result<Library, LoadError>,
}

/// A plugin crate in the directory.
#[derive(Clone, Debug)]
pub struct PluginCrate {
    pub package: String,
    pub dir: PathBuf,
    pub bundled: bool,
}

/// Whether `path` names a dynamic library for this platform.
pub fn is_library(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e == std::env::consts::DLL_EXTENSION)
}

/// Reads a crate's package name and whether it is bundled.
pub fn read_crate(dir: &Path) -> Result<PluginCrate, String> {
    let manifest = dir.join("Cargo.toml");
    let text =
        std::fs::read_to_string(&manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let doc: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: {e}", manifest.display()))?;
    let package = doc
        .get("package")
        .and_then(|p| p.as_table())
        .ok_or_else(|| format!("{}: no [package]", manifest.display()))?;
    let name = package
        .get("name")
        .and_then(|n| n.as_str())
        .ok_or_else(|| format!("{}: no package.name", manifest.display()))?;
    let bundled = package
        .get("metadata")
        .and_then(|m| m.get("probdrop"))
        .and_then(|p| p.get("bundled"))
        .and_then(|b| b.as_bool())
        .unwrap_or(false);
    Ok(PluginCrate {
        package: name.to_string(),
        dir: dir.to_path_buf(),
        bundled,
    })
}

/// The outcome of building plugin crates.
#[derive(Debug, Default)]
pub struct BuildReport {
    /// Package name → the cdylib cargo produced, or the build error.
    pub libraries: BTreeMap<String, Result<PathBuf, String>>,
    /// Everything cargo printed (for the dashboard).
    pub log: String,
}

/// What a plugin build reports as it goes.
pub trait BuildObserver {
    /// A line of build output: cargo's own and the compiler's messages.
    fn line(&mut self, line: &str);
    /// Cargo's progress bar, redrawn as units finish; only a screen that
    /// redraws in place wants it, so by default it is dropped.
    fn progress(&mut self, _progress: &Progress) {}
}

/// Any closure over lines observes a build (and ignores its progress).
impl<F: FnMut(&str) + ?Sized> BuildObserver for F {
    fn line(&mut self, line: &str) {
        self(line);
    }
}

/// How far cargo has got: units (crates and build scripts) done of all it
/// plans, and the first of those it is building now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub building: String,
}

/// Cargo's progress bar, `    Building [===>    ] 3/9: plugin-api, syn(build)`,
/// as cargo prints it when told to outside a terminal (see `cargo_build`).
pub fn parse_progress(line: &str) -> Option<Progress> {
    let bar = line.trim().strip_prefix("Building")?.trim_start();
    let after = bar.strip_prefix('[')?.split_once(']')?.1.trim();
    let (counts, names) = after.split_once(':').unwrap_or((after, ""));
    let (done, total) = counts.trim().split_once('/')?;
    let first = names.split(',').next().unwrap_or("").trim();
    // `syn(build)`, `syn(build.rs)`: the unit's kind, not its crate.
    let building = first.split('(').next().unwrap_or(first);
    Some(Progress {
        done: done.parse().ok()?,
        total: total.parse().ok()?,
        building: building.to_string(),
    })
}

/// Builds crates with `cargo build --release`, streaming each line of cargo's
/// human output to `on_line` and its progress bar to `on_line.progress`: one cargo call per workspace (crates that are not
/// in one are each their own), `--keep-going` so that one broken crate spares
/// the others. A crate whose manifest cargo cannot load fails with that error;
/// the other members of its workspace, which cargo then cannot build, are taken
/// from their last build if they have one.
pub fn build_crates(crates: &[PluginCrate], on_line: &mut dyn BuildObserver) -> BuildReport {
    let mut report = BuildReport::default();
    for (root, group) in by_workspace(crates) {
        let mut part = build_workspace(&group, on_line);
        attribute_manifest_errors(&root, &group, &mut part, on_line);
        report.libraries.extend(part.libraries);
        report.log.push_str(&part.log);
    }
    report
}

/// The directory of the workspace a crate belongs to: the nearest one at or
/// above it whose manifest has a `[workspace]` table, else the crate's own.
fn workspace_root(dir: &Path) -> PathBuf {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml"))
                .ok()
                .and_then(|t| t.parse::<toml::Table>().ok())
                .is_some_and(|t| t.contains_key("workspace"))
        })
        .unwrap_or(&dir)
        .to_path_buf()
}

fn by_workspace(crates: &[PluginCrate]) -> BTreeMap<PathBuf, Vec<PluginCrate>> {
    let mut groups: BTreeMap<PathBuf, Vec<PluginCrate>> = BTreeMap::new();
    for c in crates {
        groups
            .entry(workspace_root(&c.dir))
            .or_default()
            .push(c.clone());
    }
    groups
}

/// The crate directory whose manifest cargo could not load, from its output.
fn manifest_culprit(log: &str) -> Option<PathBuf> {
    let line = log
        .lines()
        .find(|l| l.contains("workspace member") || l.contains("failed to parse manifest"))?;
    let path = PathBuf::from(line.split('`').nth(1)?);
    let dir = if path.ends_with("Cargo.toml") {
        path.parent()?.to_path_buf()
    } else {
        path
    };
    Some(dir.canonicalize().unwrap_or(dir))
}

/// When cargo could not load a workspace because of one member's manifest: that
/// member gets cargo's error; each other member its last build, or an error
/// naming the member at fault.
fn attribute_manifest_errors(
    root: &Path,
    group: &[PluginCrate],
    part: &mut BuildReport,
    on_line: &mut dyn BuildObserver,
) {
    let Some(culprit) = manifest_culprit(&part.log) else {
        return;
    };
    let cargo_said = tail(&part.log, 12);
    for c in group {
        if part.libraries.get(&c.package).is_some_and(Result::is_ok) {
            continue;
        }
        let outcome = if c.dir.canonicalize().is_ok_and(|d| d == culprit) {
            Err(format!("its manifest cannot be loaded:\n{cargo_said}"))
        } else {
            match last_build(root, &c.package) {
                Some(lib) => {
                    on_line.line(&format!(
                        "{}: not rebuilt (cargo cannot load the workspace because of {}); using its last build {}",
                        c.package,
                        culprit.display(),
                        lib.display()
                    ));
                    Ok(lib)
                }
                None => Err(format!(
                    "not built: cargo cannot load the workspace because of {} (fix or remove that crate)",
                    culprit.display()
                )),
            }
        };
        part.libraries.insert(c.package.clone(), outcome);
    }
}

/// The release cdylib of `package` from an earlier build of the workspace.
fn last_build(root: &Path, package: &str) -> Option<PathBuf> {
    let target = target_dir(root);
    let file = format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        package.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    );
    let lib = target.join("release").join(file);
    lib.is_file().then_some(lib)
}

/// Where cargo puts a workspace's builds, as cargo decides it: `CARGO_TARGET_DIR`,
/// else `build.target-dir` of the nearest `.cargo/config.toml` at or above the
/// workspace (relative to that directory), else `target/` in the workspace.
fn target_dir(root: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    for dir in root.ancestors() {
        for name in ["config.toml", "config"] {
            let configured = std::fs::read_to_string(dir.join(".cargo").join(name))
                .ok()
                .and_then(|t| t.parse::<toml::Table>().ok())
                .and_then(|t| {
                    t.get("build")?
                        .get("target-dir")?
                        .as_str()
                        .map(|s| dir.join(s))
                });
            if let Some(target) = configured {
                return target;
            }
        }
    }
    root.join("target")
}

/// One cargo call for the crates of one workspace.
fn build_workspace(crates: &[PluginCrate], on_line: &mut dyn BuildObserver) -> BuildReport {
    let mut report = BuildReport::default();
    if crates.is_empty() {
        return report;
    }
    let mut child = match cargo_build(crates).spawn() {
        Ok(child) => child,
        Err(e) => {
            let msg = format!("cannot run cargo to build plugin crates: {e}");
            on_line.line(&msg);
            for c in crates {
                report.libraries.insert(c.package.clone(), Err(msg.clone()));
            }
            return report;
        }
    };
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in merged_output(&mut child) {
        match line {
            Output::Text(text) => match parse_progress(&text) {
                Some(progress) => on_line.progress(&progress),
                None => report.note(&text, on_line),
            },
            Output::Json(line) => report.read_message(&line, &mut errors, on_line),
        }
    }
    let failed = !matches!(child.wait(), Ok(s) if s.success());
    for c in crates {
        if report.libraries.contains_key(&c.package) {
            continue;
        }
        let why = match errors.get(&c.package) {
            Some(errs) => format!("build failed:\n{}", errs.join("\n")),
            None if failed => format!("build failed:\n{}", tail(&report.log, 20)),
            None => "cargo produced no cdylib (is crate-type = [\"cdylib\"] set?)".to_string(),
        };
        report.libraries.insert(c.package.clone(), Err(why));
    }
    report
}

/// One cargo call building every crate of a workspace, with JSON messages.
fn cargo_build(crates: &[PluginCrate]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // From the crate's directory, so its own `.cargo/config.toml` applies.
    let first = crates[0]
        .dir
        .canonicalize()
        .unwrap_or_else(|_| crates[0].dir.clone());
    cmd.current_dir(&first)
        .arg("build")
        .arg("--release")
        .arg("--keep-going")
        .arg("--message-format=json-diagnostic-rendered-ansi")
        // The progress bar, which cargo draws only on a terminal, for the
        // dashboard's loading line (`parse_progress` reads it).
        .args(["--config", "term.progress.when=\"always\""])
        .args(["--config", "term.progress.width=100"])
        .arg("--manifest-path")
        .arg(first.join("Cargo.toml"));
    for c in crates {
        cmd.arg("-p").arg(&c.package);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// A line cargo printed: a JSON message (stdout) or text (stderr): a status
/// line, a warning, or a redrawing of the progress bar.
enum Output {
    Json(String),
    Text(String),
}

/// Both of the child's pipes, read on their own threads and merged, so that
/// cargo's progress lines arrive as they are printed.
fn merged_output(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<Output> {
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let tx_err = tx.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(Output::Json(l));
        }
    });
    std::thread::spawn(move || {
        split_lines(BufReader::new(stderr), &mut |l| {
            let _ = tx_err.send(Output::Text(l));
        });
    });
    rx
}

/// Cargo's stderr as it comes, split at newlines and at the carriage returns
/// that end each redrawing of the progress bar (a blank redrawing, which
/// only clears the bar, is no line).
fn split_lines(mut from: impl BufRead, each: &mut dyn FnMut(String)) {
    let mut line = Vec::new();
    while let Ok(buf) = from.fill_buf() {
        if buf.is_empty() {
            break;
        }
        for &byte in buf {
            match byte {
                b'\n' => each(String::from_utf8_lossy(&std::mem::take(&mut line)).into_owned()),
                b'\r' if line.iter().all(u8::is_ascii_whitespace) => line.clear(),
                b'\r' => each(String::from_utf8_lossy(&std::mem::take(&mut line)).into_owned()),
                _ => line.push(byte),
            }
        }
        let n = buf.len();
        from.consume(n);
    }
    if !line.is_empty() {
        each(String::from_utf8_lossy(&line).into_owned());
    }
}

impl BuildReport {
    /// A line of build output: shown as it comes and kept in the log.
    fn note(&mut self, line: &str, on_line: &mut dyn BuildObserver) {
        on_line.line(line);
        self.log.push_str(line);
        self.log.push('\n');
    }

    /// One of cargo's JSON messages: a built cdylib, or a compiler message
    /// (kept per package when it is an error).
    fn read_message(
        &mut self,
        line: &str,
        errors: &mut BTreeMap<String, Vec<String>>,
        on_line: &mut dyn BuildObserver,
    ) {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        let package = msg["package_id"]
            .as_str()
            .map(package_name_of)
            .unwrap_or_default();
        match msg["reason"].as_str() {
            Some("compiler-artifact") => {
                if let Some(file) = cdylib_of(&msg) {
                    self.libraries.insert(package, Ok(file));
                }
            }
            Some("compiler-message") => {
                let Some(rendered) = msg["message"]["rendered"].as_str() else {
                    return;
                };
                let plain = strip_ansi(rendered);
                for l in plain.lines() {
                    self.note(l, on_line);
                }
                if msg["message"]["level"] == "error" {
                    errors.entry(package).or_default().push(plain);
                }
            }
            _ => {}
        }
    }
}

/// The library file of a `compiler-artifact` message for a cdylib target.
fn cdylib_of(msg: &serde_json::Value) -> Option<PathBuf> {
    let is_cdylib = msg["target"]["kind"]
        .as_array()
        .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
    if !is_cdylib {
        return None;
    }
    msg["filenames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str())
        .find(|f| is_library(Path::new(f)))
        .map(PathBuf::from)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `path+file:///x/plugins/dropout#1.0.0` or `dropout 1.0.0 (path+...)` → `dropout`.
fn package_name_of(id: &str) -> String {
    if let Some((_, frag)) = id.rsplit_once('#') {
        let name_ver = frag;
        return match name_ver.split_once('@') {
            Some((name, _)) => name.to_string(),
            // `#1.0.0` alone: the name is the last path segment.
            None => id[..id.len() - frag.len() - 1]
                .rsplit('/')
                .next()
                .unwrap_or(id)
                .to_string(),
        };
    }
    id.split_whitespace().next().unwrap_or(id).to_string()
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Plugins load only from the plugins directory: a path that resolves (through
/// symbolic links) to somewhere else is refused.
pub fn check_inside(dir: &Path, path: &Path) -> Result<(), String> {
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let real = path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if real.starts_with(&dir) {
        Ok(())
    } else {
        Err(format!(
            "refused: {} resolves to {}, outside the plugins directory {} (plugins load only from there)",
            path.display(),
            real.display(),
            dir.display()
        ))
    }
}

/// What the directory holds: crate directories and prebuilt libraries, sorted.
pub fn scan(dir: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut crates = Vec::new();
    let mut libs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && path.join("Cargo.toml").is_file() {
            crates.push(path);
        } else if path.is_file() && is_library(&path) {
            libs.push(path);
        }
    }
    crates.sort();
    libs.sort();
    Ok((crates, libs))
}

/// Loads a library of the plugins directory: its first calls through a
/// trial with a deadline where this process runs them (`trial::for_loading`).
fn load_first(path: &Path) -> Result<Library, LoadError> {
    match super::trial::for_loading() {
        Some(trial) => Library::load_tried(path, |copy| trial.run_load(copy)),
        None => Library::load(path),
    }
}

/// Loads the libraries of `to_load` that have a path, all at once: each first
/// load may take up to the trial deadline, and a hanging one must not hold
/// the others (nor a dashboard's first frame) back by more than that.
fn load_all(to_load: Vec<(Found, Option<PathBuf>)>) -> Vec<Found> {
    std::thread::scope(|scope| {
        let loading: Vec<_> = to_load
            .into_iter()
            .map(|(found, path)| {
                let load = path.map(|p| scope.spawn(move || load_first(&p)));
                (found, load)
            })
            .collect();
        loading
            .into_iter()
            .map(|(mut found, load)| {
                if let Some(load) = load {
                    found.outcome = load
                        .join()
                        .unwrap_or_else(|_| Err(LoadError("loading it panicked".into())));
                }
                found
            })
            .collect()
    })
}

/// Finds, builds and loads every strategy in `dir`.
pub fn discover(dir: &Path, on_build_line: &mut dyn BuildObserver) -> std::io::Result<Vec<Found>> {
    let (crate_dirs, libs) = scan(dir)?;
    let mut found = Vec::new();
    let mut crates = Vec::new();
    for d in crate_dirs {
        match check_inside(dir, &d).and_then(|()| read_crate(&d)) {
            Ok(c) => crates.push(c),
            Err(e) => found.push(Found {
                id: d
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                source: Source::Crate,
                origin: d,
                library_path: None,
                outcome: Err(LoadError(e)),
            }),
        }
    }
    let report = build_crates(&crates, on_build_line);
    let mut to_load: Vec<(Found, Option<PathBuf>)> = Vec::new();
    for c in crates {
        let built = report
            .libraries
            .get(&c.package)
            .cloned()
            .unwrap_or_else(|| Err("not built".into()));
        let (library_path, refused) = match built {
            Ok(lib) => (Some(lib), None),
            Err(e) => (None, Some(e)),
        };
        let source = if c.bundled {
            Source::Bundled
        } else {
            Source::Crate
        };
        let found = Found {
            id: c.package,
            source,
            origin: c.dir,
            library_path: library_path.clone(),
            outcome: Err(LoadError(refused.unwrap_or_default())),
        };
        to_load.push((found, library_path));
    }
    for lib in libs {
        let inside = check_inside(dir, &lib);
        let found = Found {
            id: lib
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            source: Source::Prebuilt,
            origin: lib.clone(),
            library_path: Some(lib.clone()),
            outcome: Err(LoadError(inside.clone().err().unwrap_or_default())),
        };
        to_load.push((found, inside.ok().map(|()| lib)));
    }
    found.extend(load_all(to_load));
    for f in found.iter_mut().filter(|f| f.source != Source::Prebuilt) {
        if let Ok(library) = f.outcome.as_mut() {
            library.built_from = read_sources(&f.origin);
        }
    }
    refuse_name_clashes(&mut found);
    Ok(found)
}

/// The sources of the crate at `dir` just built, for the run store; a crate
/// that cannot be read is still loaded, only not recorded.
pub fn read_sources(dir: &Path) -> Option<std::sync::Arc<super::sources::CrateSources>> {
    super::sources::CrateSources::read(dir)
        .ok()
        .map(std::sync::Arc::new)
}

/// Two libraries giving one strategy name: neither is used (which one `check`
/// and `run` took would depend on the order of the directory), each is refused
/// naming the other.
pub fn refuse_name_clashes(found: &mut [Found]) {
    let mut by_name: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for f in found.iter() {
        if let Ok(lib) = &f.outcome {
            by_name
                .entry(lib.info.name.clone())
                .or_default()
                .push(lib.path.clone());
        }
    }
    for f in found.iter_mut() {
        let Ok(lib) = &f.outcome else { continue };
        let paths = &by_name[&lib.info.name];
        if paths.len() > 1 {
            let others: Vec<String> = paths
                .iter()
                .filter(|p| **p != lib.path)
                .map(|p| p.display().to_string())
                .collect();
            f.outcome = Err(LoadError(format!(
                "refused: {} also calls itself \"{}\"; neither is used until one is removed or renamed",
                others.join(", "),
                lib.info.name
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_ids_of_both_cargo_formats() {
        assert_eq!(
            package_name_of("path+file:///w/plugins/dropout#1.0.0"),
            "dropout"
        );
        assert_eq!(
            package_name_of("path+file:///w/plugins/x#my-drop@0.2.0"),
            "my-drop"
        );
        assert_eq!(
            package_name_of("dropout 1.0.0 (path+file:///w/plugins/dropout)"),
            "dropout"
        );
    }

    #[test]
    fn ansi_codes_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[1m\u{1b}[38;5;9merror\u{1b}[0m: x"),
            "error: x"
        );
    }

    /// Cargo 1.95's stderr with `term.progress.when = "always"`, as read.
    const CARGO_STDERR: &[u8] = b"   Compiling a v0.1.0 (/w/a)\n    Building \
        [                             ] 0/4: a(build.rs)            \r    Building \
        [======>                      ] 1/4: a(build)               \r   Compiling b v0.1.0 (/w/b)\n\
        \n    Building [====================>        ] 3/4: b, c     \r      \r    Finished `release`\n";

    #[test]
    fn cargo_stderr_splits_at_each_redrawing_of_the_bar() {
        let mut lines = Vec::new();
        split_lines(CARGO_STDERR, &mut |l| lines.push(l));
        let progress: Vec<Progress> = lines.iter().filter_map(|l| parse_progress(l)).collect();
        let text: Vec<&str> = lines
            .iter()
            .filter(|l| parse_progress(l).is_none())
            .map(|l| l.trim())
            .collect();
        assert_eq!(
            text,
            [
                "Compiling a v0.1.0 (/w/a)",
                "Compiling b v0.1.0 (/w/b)",
                "",
                "Finished `release`"
            ]
        );
        let bar = |done, building: &str| Progress {
            done,
            total: 4,
            building: building.into(),
        };
        assert_eq!(progress, [bar(0, "a"), bar(1, "a"), bar(3, "b")]);
    }

    #[test]
    fn only_the_progress_bar_is_progress() {
        assert_eq!(parse_progress("   Compiling a v0.1.0 (/w/a)"), None);
        assert_eq!(parse_progress("    Building [ ] x/4: a"), None);
        assert_eq!(
            parse_progress("    Building [=>  ] 2/7"),
            Some(Progress {
                done: 2,
                total: 7,
                building: String::new()
            })
        );
    }
}
