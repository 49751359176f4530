//! Hot reload: watch the plugins directory, load changed libraries (rebuilding
//! changed crates), smoke-test them, and hand them to the training loop at its next
//! step boundary. A failure leaves the running version in place.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use burn::tensor::{Device, Tensor, TensorData};
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use plugin_api::Value;

use super::library::{Library, MaskContext, Strategy};
use super::registry::{build_crates, is_library, read_crate};
use super::trial::Trial;

/// What the watcher reports.
#[derive(Debug)]
pub enum ReloadEvent {
    /// A new version passed its checks and smoke test.
    Ready {
        library: Library,
        detected_at: Instant,
    },
    /// A changed library or crate was refused; whatever ran before keeps running.
    Refused { path: PathBuf, reason: String },
    /// A line of cargo output while rebuilding a crate.
    BuildOutput { line: String },
    /// A library file or crate directory of the plugins directory went away.
    Gone { path: PathBuf },
}

impl std::fmt::Display for ReloadEvent {
    /// The line the dashboard's build log and log file show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadEvent::Ready { library, .. } => {
                write!(f, "reloaded {} {}", library.info.name, library.info.version)
            }
            ReloadEvent::Refused { path, reason } => {
                write!(f, "refused {}: {reason}", path.display())
            }
            ReloadEvent::BuildOutput { line } => f.write_str(line),
            ReloadEvent::Gone { path } => write!(f, "removed {}", path.display()),
        }
    }
}

/// Watches a plugins directory until dropped.
pub struct Watcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    events: Receiver<ReloadEvent>,
}

/// (inode, mtime ns, size): a file whose triple is unchanged is not reloaded. The
/// host's own copies and cargo's touch-ups otherwise cause reload loops.
type Fingerprint = (u64, i128, u64);

/// Only regular files have one: a FIFO or device named like a library is never
/// opened (opening a FIFO blocks until someone writes to it).
fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
    let mtime = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
    Some((meta.ino(), mtime, meta.size()))
}

struct State {
    dir: PathBuf,
    seen: HashMap<PathBuf, Fingerprint>,
    tx: Sender<ReloadEvent>,
    trial: Trial,
}

impl State {
    fn handle(&mut self, paths: Vec<PathBuf>) {
        let mut crates_to_build = Vec::new();
        for path in paths {
            if path.parent() == Some(self.dir.as_path()) && is_library(&path) {
                self.library_changed(&path);
            } else if path.parent() == Some(self.dir.as_path()) && !path.exists() {
                // A crate directory removed (or renamed away): those who list
                // plugins drop it; a run keeps the library it loaded.
                let _ = self.tx.send(ReloadEvent::Gone { path });
            } else if let Some(crate_dir) = self.crate_dir_of(&path)
                && !crates_to_build.contains(&crate_dir)
            {
                crates_to_build.push(crate_dir);
            }
        }
        for crate_dir in crates_to_build {
            self.crate_changed(&crate_dir);
        }
    }

    /// The plugin crate directory a changed path belongs to (its `Cargo.toml` or a
    /// file under `src/`), if any.
    fn crate_dir_of(&self, path: &Path) -> Option<PathBuf> {
        let rel = path.strip_prefix(&self.dir).ok()?;
        let first = rel.components().next()?;
        let crate_dir = self.dir.join(first);
        let inside = rel
            .components()
            .nth(1)
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        let relevant = matches!(inside.as_deref(), None | Some("Cargo.toml") | Some("src"));
        (relevant && crate_dir.join("Cargo.toml").is_file()).then_some(crate_dir)
    }

    fn library_changed(&mut self, path: &Path) {
        let Some(print) = fingerprint(path) else {
            // Removed or renamed away.
            if self.seen.remove(path).is_some() || !path.exists() {
                let _ = self.tx.send(ReloadEvent::Gone {
                    path: path.to_path_buf(),
                });
            }
            return;
        };
        if self.seen.get(path) == Some(&print) {
            return;
        }
        self.seen.insert(path.to_path_buf(), print);
        // A library dropped here must really be here (not a link out of it); a
        // crate's build output lives in its target directory and is not checked.
        if let Err(reason) = super::registry::check_inside(&self.dir, path) {
            let _ = self.tx.send(ReloadEvent::Refused {
                path: path.to_path_buf(),
                reason,
            });
            return;
        }
        self.try_load(path, None);
    }

    /// Loads `path` once its trial passed; `built_from` is its crate.
    fn try_load(&mut self, path: &Path, built_from: Option<&Path>) {
        let detected_at = Instant::now();
        let event = match Library::load_tried(path, |copy| self.trial.run(copy)).map_err(|e| e.0) {
            Ok(mut library) => {
                library.built_from = built_from.and_then(super::registry::read_sources);
                ReloadEvent::Ready {
                    library,
                    detected_at,
                }
            }
            Err(reason) => ReloadEvent::Refused {
                path: path.to_path_buf(),
                reason,
            },
        };
        let _ = self.tx.send(event);
    }

    fn crate_changed(&mut self, crate_dir: &Path) {
        let krate = match super::registry::check_inside(&self.dir, crate_dir)
            .and_then(|()| read_crate(crate_dir))
        {
            Ok(c) => c,
            Err(reason) => {
                let _ = self.tx.send(ReloadEvent::Refused {
                    path: crate_dir.to_path_buf(),
                    reason,
                });
                return;
            }
        };
        let tx = self.tx.clone();
        let report = build_crates(std::slice::from_ref(&krate), &mut |line: &str| {
            let _ = tx.send(ReloadEvent::BuildOutput {
                line: line.to_string(),
            });
        });
        match report.libraries.get(&krate.package) {
            Some(Ok(lib)) => {
                let lib = lib.clone();
                match fingerprint(&lib) {
                    Some(print) if self.seen.get(&lib) == Some(&print) => {}
                    print => {
                        if let Some(print) = print {
                            self.seen.insert(lib.clone(), print);
                        }
                        self.try_load(&lib, Some(crate_dir));
                    }
                }
            }
            Some(Err(reason)) => {
                let _ = self.tx.send(ReloadEvent::Refused {
                    path: crate_dir.to_path_buf(),
                    reason: reason.clone(),
                });
            }
            None => {}
        }
    }
}

fn relevant(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Modify(ModifyKind::Data(_))
            | EventKind::Modify(ModifyKind::Name(_))
            | EventKind::Modify(ModifyKind::Any)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    )
}

impl Watcher {
    /// Starts watching `dir`: the directory itself (libraries dropped or replaced,
    /// crates added) and each plugin crate's `src/` and `Cargo.toml`.
    /// A changed library is smoke-tested by `trial` (in a child process) before
    /// it is loaded here.
    pub fn start(dir: &Path, trial: Trial) -> anyhow::Result<Watcher> {
        let dir = dir.canonicalize()?;
        let (tx, rx) = channel();
        let mut state = State {
            dir: dir.clone(),
            seen: HashMap::new(),
            tx,
            trial,
        };
        // What is there now counts as seen: only changes trigger a reload.
        if let Ok((_, libs)) = super::registry::scan(&dir) {
            for lib in libs {
                if let Some(p) = fingerprint(&lib) {
                    state.seen.insert(lib, p);
                }
            }
        }
        let mut debouncer = new_debouncer(
            Duration::from_millis(150),
            None,
            move |res: DebounceEventResult| {
                let Ok(events) = res else { return };
                let paths: Vec<PathBuf> = events
                    .into_iter()
                    .filter(|e| relevant(&e.kind))
                    .flat_map(|e| e.event.paths)
                    .collect();
                if !paths.is_empty() {
                    state.handle(paths);
                }
            },
        )?;
        debouncer.watch(&dir, RecursiveMode::NonRecursive)?;
        if let Ok((crates, _)) = super::registry::scan(&dir) {
            for c in crates {
                let src = c.join("src");
                if src.is_dir() {
                    debouncer.watch(&src, RecursiveMode::Recursive)?;
                }
                debouncer.watch(c.join("Cargo.toml"), RecursiveMode::NonRecursive)?;
            }
        }
        Ok(Watcher {
            _debouncer: debouncer,
            events: rx,
        })
    }

    /// Every event reported since the last call, without waiting.
    pub fn drain(&self) -> Vec<ReloadEvent> {
        self.events.try_iter().collect()
    }
}

/// Runs a fresh library once on small random inputs (rank 4, then rank 3): it must
/// produce a finite mask that broadcasts to the input for at least one of them.
pub fn smoke_test(library: &Library) -> Result<(), String> {
    let strategy = library
        .create(&[])
        .map_err(|e| format!("smoke test: {e}"))?;
    let device = Device::default();
    let ctx = MaskContext::training(0.2, 7);
    let x4 = trial_input([2, 3, 12, 12], &device);
    let first = check_finite(&strategy, &x4, &ctx);
    if first.is_ok() {
        return Ok(());
    }
    let x3 = trial_input([2, 10, 16], &device);
    check_finite(&strategy, &x3, &ctx).map_err(|second| {
        format!(
            "smoke test failed: on [2, 3, 12, 12]: {}; on [2, 10, 16]: {second}",
            first.unwrap_err()
        )
    })
}

/// A fixed input in [-1, 1] (a sine over the element index). Not random: the
/// host's generator belongs to seeded mask calls, and a draw from another
/// thread between a call's seeding and its draws would change that mask.
fn trial_input<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|i| (i as f32 * 0.618_034).sin()).collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn check_finite<const D: usize>(
    strategy: &Strategy,
    x: &Tensor<D>,
    ctx: &MaskContext,
) -> Result<(), String> {
    let m = strategy.mask(x, ctx).map_err(|e| e.0)?;
    let finite = m.is_finite().all().into_scalar::<bool>();
    if finite {
        Ok(())
    } else {
        Err("mask has NaN or infinite values".into())
    }
}

/// A strategy in use by a training loop, swapped for a new version of the same
/// strategy at a step boundary.
pub struct LiveStrategy {
    pub strategy: Strategy,
    params: Vec<(String, Value)>,
    /// The version before the last swap: where a failing new version goes back to.
    previous: Option<Strategy>,
}

/// What happened at a step boundary.
#[derive(Debug, Clone, PartialEq)]
pub enum SwapOutcome {
    Swapped {
        name: String,
        from: String,
        to: String,
    },
    Refused {
        name: String,
        reason: String,
    },
}

impl LiveStrategy {
    pub fn new(library: &Library, params: Vec<(String, Value)>) -> Result<Self, String> {
        let strategy = library.create(&params).map_err(|e| e.0)?;
        Ok(Self {
            strategy,
            params,
            previous: None,
        })
    }

    /// Goes back to the version before the last swap, if there is one (once: a
    /// second failure finds none). Returns (failed version, version now in use).
    pub fn revert(&mut self) -> Option<(String, String)> {
        let previous = self.previous.take()?;
        let failed = std::mem::replace(&mut self.strategy, previous);
        Some((failed.info.version, self.strategy.info.version.clone()))
    }

    /// Takes a ready library of this strategy's name: the new version replaces the
    /// old one only if it accepts the same parameters.
    pub fn offer(&mut self, library: &Library) -> Option<SwapOutcome> {
        if library.info.name != self.strategy.info.name {
            return None;
        }
        let name = library.info.name.clone();
        Some(match library.create(&self.params) {
            Ok(next) => {
                let old = std::mem::replace(&mut self.strategy, next);
                let from = old.info.version.clone();
                self.previous = Some(old);
                SwapOutcome::Swapped {
                    name,
                    from,
                    to: library.info.version.clone(),
                }
            }
            Err(e) => SwapOutcome::Refused { name, reason: e.0 },
        })
    }
}
