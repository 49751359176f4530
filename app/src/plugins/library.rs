//! Loading one strategy library, and running the strategies it makes.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use abi_stable::library::{LibraryError, lib_header_from_path};
use abi_stable::std_types::{RResult, RStr};
use burn::tensor::Tensor;
use plugin_api::abi::{MaskArgs, MaskCtx, StrategyBox, StrategyModRef};
use plugin_api::{Info, Params, Value};

use super::host_ops::{HOST_OPS, Session};

/// Why a library was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// Why a mask could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MaskError(pub String);

/// A loaded strategy library.
#[derive(Clone)]
pub struct Library {
    /// Where the library was found (what the user dropped or cargo built).
    pub path: PathBuf,
    module: StrategyModRef,
    pub info: Info,
    /// The plugin-api version the library was built against.
    pub interface: String,
    /// SHA-256 of the very bytes loaded, in hex: which code this is, whatever
    /// its version says.
    pub sha256: String,
    /// The private copy that was loaded, open: its name is removed once
    /// mapped, but the run store still reads the very bytes loaded from it
    /// (the file at `path` may have been rebuilt since).
    copy: std::sync::Arc<std::fs::File>,
    /// The plugin crate it was built from, read just after the build.
    pub built_from: Option<std::sync::Arc<super::sources::CrateSources>>,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("path", &self.path)
            .field("name", &self.info.name)
            .field("version", &self.info.version)
            .field("interface", &self.interface)
            .finish()
    }
}

/// The prefix of the private directories that library copies are loaded from;
/// the creating process's pid follows, then mkdtemp's random suffix.
const COPY_DIR_PREFIX: &str = "probdrop-tui-libs-";

/// A private copy of a library, removed (file and directory) when dropped: once
/// mapped, the code stays valid without the file.
struct PrivateCopy {
    dir: PathBuf,
    path: PathBuf,
    sha256: String,
    /// Open for reading: outlives the name.
    file: std::fs::File,
}

impl Drop for PrivateCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Copies `path` into a directory of its own: the dynamic loader returns the
/// already-loaded code for a path it has seen, so a reload must use a new one.
/// The directory is made by mkdtemp (a fresh random name, mode 0700, ours, never
/// one someone else prepared) and the copy is created new, never through a
/// symbolic link, so no other user can choose what gets mapped.
fn private_copy(path: &Path) -> Result<PrivateCopy, LoadError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    static CLEANED: std::sync::Once = std::sync::Once::new();
    CLEANED.call_once(|| remove_stale_copies(&std::env::temp_dir()));
    let bytes = read_regular(path)?;
    check_complete(&bytes)?;
    let sha256 = crate::run::provenance::sha256_hex(&bytes);
    let template =
        std::env::temp_dir().join(format!("{COPY_DIR_PREFIX}{}-XXXXXX", std::process::id()));
    let dir = nix::unistd::mkdtemp(&template)
        .map_err(|e| LoadError(format!("cannot create {}: {e}", template.display())))?;
    let name = path
        .file_name()
        .unwrap_or(std::ffi::OsStr::new("plugin.so"));
    let path = dir.join(name);
    let cannot = |e: std::io::Error| LoadError(format!("cannot copy to {}: {e}", path.display()));
    let created = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path);
    let mut file = match created {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_dir(&dir);
            return Err(cannot(e));
        }
    };
    let written = file.write_all(&bytes);
    let copy = PrivateCopy {
        path,
        dir,
        sha256,
        file,
    };
    written.map_err(|e| LoadError(format!("cannot copy to {}: {e}", copy.path.display())))?;
    Ok(copy)
}

/// Reads a regular file; anything else (a FIFO, a device) is refused without
/// blocking on it.
fn read_regular(path: &Path) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let cannot = |e: std::io::Error| LoadError(format!("cannot read {}: {e}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    if !file.metadata().map_err(cannot)?.is_file() {
        return Err(LoadError(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(cannot)?;
    Ok(bytes)
}

/// Removes the copy directories that processes now gone left behind (killed while
/// loading). Only real directories of this user are touched: a name someone else
/// made, or a link, is left alone.
pub fn remove_stale_copies(tmp: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    let uid = nix::unistd::getuid().as_raw();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(COPY_DIR_PREFIX)) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() && meta.uid() == uid && pid.is_some_and(|p| !crate::run::dir::pid_alive(p))
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Refuses a file that is not an object file, or one whose segments reach past its
/// end (half-written or truncated): the dynamic loader would map those pages and
/// the process would die of SIGBUS on first touch.
fn check_complete(bytes: &[u8]) -> Result<(), LoadError> {
    use object::read::{Object, ObjectSegment};
    let file = object::File::parse(bytes).map_err(|e| {
        let what = if bytes.starts_with(b"\x7fELF") {
            "truncated or damaged ELF file"
        } else {
            "not an object file"
        };
        LoadError(format!(
            "not a loadable library: {what} ({e}, {} bytes)",
            bytes.len()
        ))
    })?;
    for segment in file.segments() {
        segment.data().map_err(|_| {
            LoadError(format!(
                "not a loadable library: truncated or half-written ({} bytes; a segment reaches past the end)",
                bytes.len()
            ))
        })?;
    }
    Ok(())
}

/// Keeps abi_stable's report short: its layout mismatch report runs to hundreds of
/// lines, the `Error:` lines say what differs.
fn describe_library_error(e: &LibraryError) -> String {
    match e {
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => format!(
            "built against plugin-api {actual_version}, this host has plugin-api {expected_version} \
             (major versions must match): rebuild the plugin against plugin-api {}",
            plugin_api::INTERFACE_VERSION
        ),
        LibraryError::AbiInstability(_) => {
            let report = e.to_string();
            let errors: Vec<&str> = report
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("Error:"))
                .take(8)
                .collect();
            format!(
                "its ABI does not match this host's plugin-api {}: {}",
                plugin_api::INTERFACE_VERSION,
                if errors.is_empty() {
                    "layout mismatch".to_string()
                } else {
                    errors.join("; ")
                }
            )
        }
        LibraryError::OpenError { err, .. } => format!("not a loadable library: {err}"),
        LibraryError::GetSymbolError { .. } => {
            "not a probdrop strategy: the library exports no abi_stable root module \
             (did it use plugin_api::export_strategy!?)"
                .to_string()
        }
        other => other.to_string(),
    }
}

impl Library {
    /// Loads, checks and reads the metadata of the library at `path`.
    pub fn load(path: &Path) -> Result<Library, LoadError> {
        let copy = private_copy(path)?;
        Self::load_copy(path, copy)
    }

    /// The bytes the code was loaded from (`path` as it was then; their
    /// SHA-256 is `sha256`).
    pub fn loaded_bytes(&self) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let len = self.copy.metadata()?.len();
        let mut bytes = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
        self.copy.read_exact_at(&mut bytes, 0)?;
        Ok(bytes)
    }

    /// Loads the library at `path` once `trial` has accepted the very bytes that
    /// get loaded (a private copy: the file at `path` may change meanwhile).
    pub fn load_tried(
        path: &Path,
        trial: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<Library, LoadError> {
        let copy = private_copy(path)?;
        trial(&copy.path).map_err(LoadError)?;
        Self::load_copy(path, copy)
    }

    fn load_copy(path: &Path, copy: PrivateCopy) -> Result<Library, LoadError> {
        let header =
            lib_header_from_path(&copy.path).map_err(|e| LoadError(describe_library_error(&e)))?;
        let version = header.version_strings().version.to_string();
        let module = header
            .init_root_module::<StrategyModRef>()
            .map_err(|e| LoadError(describe_library_error(&e)))?;
        check_minor(&version)?;
        let info = match (module.info())() {
            RResult::ROk(info) => Info::from_r(&info).map_err(LoadError)?,
            RResult::RErr(e) => return Err(LoadError(format!("metadata failed: {e}"))),
        };
        if info.name.is_empty() || semver::Version::parse(&info.version).is_err() {
            return Err(LoadError(format!(
                "invalid metadata: name {:?}, version {:?} (must be semver)",
                info.name, info.version
            )));
        }
        Ok(Library {
            path: path.to_path_buf(),
            module,
            info,
            interface: version,
            sha256: copy.sha256.clone(),
            copy: std::sync::Arc::new(copy.file.try_clone().map_err(|e| {
                LoadError(format!("cannot keep {} open: {e}", copy.path.display()))
            })?),
            built_from: None,
        })
    }

    /// Validates `given` against the schema and builds a strategy. The
    /// constructor is the plugin's code: it runs on a thread of its own with
    /// the trial deadline, so that one that never returns is an error here
    /// (its thread is left to it) instead of a command that never ends.
    pub fn create(&self, given: &[(String, Value)]) -> Result<Strategy, LoadError> {
        let params = plugin_api::validate(&self.info.params, given)
            .map_err(|e| LoadError(format!("{}: {e}", self.info.name)))?;
        let key = format!("{}|{:?}", self.path.display(), given);
        let deadline = super::trial::deadline();
        let late = format!(
            "Strategy::new did not return within {:.0} s with these parameters",
            deadline.as_secs_f64()
        );
        if hung_constructors().contains(&key) {
            return Err(LoadError(self.named(&format!("{late} (seen before)"))));
        }
        let (lib, (tx, rx)) = (self.clone(), std::sync::mpsc::channel());
        std::thread::Builder::new()
            .name(format!("{}::new", self.info.name))
            .spawn(move || {
                // Nobody listens any more once the deadline passed.
                let _ = tx.send(lib.create_validated(&params));
            })
            .map_err(|e| LoadError(format!("{}: cannot start a thread: {e}", self.info.name)))?;
        let why = match rx.recv_timeout(deadline) {
            Ok(made) => return made,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                hung_constructors().push(key);
                late
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                "Strategy::new ended without an answer (it panicked)".to_string()
            }
        };
        Err(LoadError(self.named(&why)))
    }

    /// [`Library::create`] on this thread, with no deadline: for the trial
    /// child, whose parent keeps the deadline (and says which call hung).
    pub(super) fn create_here(&self, given: &[(String, Value)]) -> Result<Strategy, LoadError> {
        let params = plugin_api::validate(&self.info.params, given)
            .map_err(|e| LoadError(format!("{}: {e}", self.info.name)))?;
        self.create_validated(&params)
    }

    fn create_validated(&self, params: &Params) -> Result<Strategy, LoadError> {
        match (self.module.create())(plugin_api::params_to_abi(params)) {
            RResult::ROk(obj) => Ok(Strategy {
                obj,
                info: self.info.clone(),
                params: params.clone(),
            }),
            RResult::RErr(e) => Err(LoadError(self.named(&e))),
        }
    }

    /// `name: message`, the name once even when the plugin's message starts
    /// with it already.
    fn named(&self, message: &str) -> String {
        let name = &self.info.name;
        let own = message
            .strip_prefix(name.as_str())
            .and_then(|m| m.strip_prefix(": "));
        format!("{name}: {}", own.unwrap_or(message))
    }
}

/// Libraries and parameters whose constructor did not return: not called
/// again, since each call would leave one more thread behind.
fn hung_constructors() -> std::sync::MutexGuard<'static, Vec<String>> {
    static HUNG: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    HUNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// A plugin built against a newer minor than the host may call ops the host lacks.
fn check_minor(plugin_version: &str) -> Result<(), LoadError> {
    let plugin = semver::Version::parse(plugin_version)
        .map_err(|e| LoadError(format!("bad interface version {plugin_version:?}: {e}")))?;
    if plugin.major != plugin_api::INTERFACE_MAJOR as u64
        || plugin.minor > plugin_api::INTERFACE_MINOR as u64
    {
        return Err(LoadError(format!(
            "built against plugin-api {plugin}, newer than this host's plugin-api {}: \
             update probdrop-tui",
            plugin_api::INTERFACE_VERSION
        )));
    }
    Ok(())
}

/// Per-call facts the host passes to a strategy: the plugin API's own type,
/// so host and plugins cannot disagree on it.
pub use plugin_api::Ctx as MaskContext;

/// The generator seed for a call: a hash of run seed, step and slot, so every
/// (step, slot) draws its own reproducible mask.
fn call_seed(ctx: &MaskContext) -> u64 {
    let mut h = splitmix(ctx.seed ^ 0x9e37_79b9_7f4a_7c15);
    h = splitmix(h ^ ctx.step);
    for byte in ctx.slot.bytes() {
        h = splitmix(h ^ byte as u64);
    }
    h
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Backends keep one global generator: a mask call seeds it and draws from it
/// without another thread drawing in between.
static RNG_LOCK: Mutex<()> = Mutex::new(());

/// Runs `f`, which seeds or draws from the backend's generator (initialising a
/// model, say), while no mask call can: code that shares a process with mask
/// calls on other threads would otherwise change their masks.
pub fn with_generator<T>(f: impl FnOnce() -> T) -> T {
    let _rng = RNG_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    f()
}

/// A strategy instance made by a [`Library`].
pub struct Strategy {
    obj: StrategyBox,
    pub info: Info,
    pub params: Params,
}

impl Strategy {
    /// The keep-tensor for `x` (never differentiated), checked to broadcast to `x`.
    pub fn mask<const D: usize>(
        &self,
        x: &Tensor<D>,
        ctx: &MaskContext,
    ) -> Result<Tensor<D>, MaskError> {
        self.mask_padded(x, None, ctx)
    }

    /// [`Strategy::mask`] of a padded input: `valid` (1.0 real, 0.0 padding,
    /// broadcastable to `x`) is lent to the strategy, and the mask is 1 at padding
    /// whatever the strategy returned there, so padding is never touched.
    pub fn mask_padded<const D: usize>(
        &self,
        x: &Tensor<D>,
        valid: Option<&Tensor<D>>,
        ctx: &MaskContext,
    ) -> Result<Tensor<D>, MaskError> {
        let input = x.clone().inner();
        let device = input.device();
        let _rng = RNG_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(call_seed(ctx));
        let session = Session::open(device);
        let handle = session.insert(input).map_err(MaskError)?;
        if let Some(v) = valid {
            session.set_valid(v.clone()).map_err(MaskError)?;
        }
        let args = MaskArgs {
            ops: &HOST_OPS,
            x: handle,
            ctx: MaskCtx {
                p: ctx.p,
                training: ctx.training,
                step: ctx.step,
                epoch: ctx.epoch,
                slot: RStr::from_str(&ctx.slot),
                seed: ctx.seed,
            },
        };
        let result = match self.obj.mask(args) {
            RResult::ROk(h) => h,
            RResult::RErr(e) => {
                let host = session
                    .last_error()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                return Err(MaskError(format!(
                    "{} {}: {e}{host}",
                    self.info.name, self.info.version
                )));
            }
        };
        let shape = session.shape(result).map_err(|e| {
            MaskError(format!(
                "{} returned an invalid handle: {e}",
                self.info.name
            ))
        })?;
        let dims = x.dims();
        let broadcasts = shape.len() == D && shape.iter().zip(dims).all(|(&m, d)| m == d || m == 1);
        if !broadcasts {
            return Err(MaskError(format!(
                "{} returned a mask of shape {shape:?}, which does not broadcast to the input {dims:?}",
                self.info.name
            )));
        }
        let m = session.take::<D>(result).map_err(MaskError)?;
        Ok(match valid {
            Some(v) => m * v.clone() + v.clone().neg().add_scalar(1.0),
            None => m,
        })
    }

    /// `y = x * m` with `m` a constant of the autodiff graph. Identity (no call) when
    /// not training or at `p == 0`.
    pub fn apply<const D: usize>(
        &self,
        x: Tensor<D>,
        ctx: &MaskContext,
    ) -> Result<Tensor<D>, MaskError> {
        if ctx.is_identity() {
            return Ok(x);
        }
        let m = self.mask(&x, ctx)?;
        let m = if x.is_autodiff() { m.autodiff() } else { m };
        Ok(x * m)
    }
}
