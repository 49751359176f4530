//! Shared helpers of the end-to-end tests: the bundled plugins, built and loaded
//! through the same path the binary uses.

#![allow(dead_code)]

pub mod fixtures;
pub mod harness;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use burn::tensor::{Device, Tensor, TensorData};
use plugin_api::Value;
use probdrop_tui::plugins::{Library, MaskContext, Strategy, discover};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A pseudo-terminal of 80×24, as a user's SSH session might have.
pub fn terminal_80x24() -> portable_pty::PtyPair {
    portable_pty::native_pty_system()
        .openpty(portable_pty::PtySize {
            rows: 24,
            cols: 80,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap()
}

/// The binary under test, run from the repository root as a user runs it.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"));
    cmd.current_dir(repo_root());
    cmd
}

/// Waits (up to `within`) until a run of the comparison in `compare_dir`
/// is done, then kills `compare`: the run directories done by then.
pub fn kill_once_a_run_is_done(
    compare: &mut std::process::Child,
    compare_dir: &Path,
    within: Duration,
) -> Vec<PathBuf> {
    use probdrop_tui::run::comparison::Manifest;
    use probdrop_tui::run::dir::{RunDir, State};
    let start = Instant::now();
    let done = loop {
        assert!(start.elapsed() < within, "no run finished");
        std::thread::sleep(Duration::from_millis(50));
        let Ok(m) = Manifest::load(compare_dir) else {
            continue;
        };
        let done: Vec<PathBuf> = m
            .runs
            .iter()
            .filter(|e| RunDir::new(&e.dir).status().map(|s| s.state) == Some(State::Done))
            .map(|e| e.dir.clone())
            .collect();
        if !done.is_empty() {
            break done;
        }
    };
    compare.kill().unwrap();
    compare.wait().unwrap();
    done
}

/// Polls `done` every 50 ms until it holds; fails the test after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The small experiment the end-to-end tests train: the committed
/// Fashion-MNIST subset, a two-layer CNN, batches of 32. A test sets what
/// differs and writes it.
pub struct Tiny<'a> {
    pub name: &'a str,
    /// Top-level lines after the name (a description, say).
    pub header: &'a str,
    pub seeds: &'a str,
    pub data: String,
    pub train_limit: usize,
    pub val_limit: usize,
    /// `[train]` lines besides the batch size.
    pub train: &'a str,
    /// The `[[strategy]]` tables.
    pub strategies: &'a str,
}

impl Default for Tiny<'_> {
    fn default() -> Self {
        Tiny {
            name: "tiny",
            header: "",
            seeds: "[1]",
            data: repo_root()
                .join("data/fashion-mnist-subset")
                .display()
                .to_string(),
            train_limit: 512,
            val_limit: 128,
            train: "",
            strategies: "",
        }
    }
}

impl Tiny<'_> {
    pub fn text(&self) -> String {
        let Tiny {
            name,
            header,
            seeds,
            data,
            train_limit,
            val_limit,
            train,
            strategies,
        } = self;
        format!(
            "name = \"{name}\"\n{header}\nseeds = {seeds}\n\n[data]\nformat = \"idx\"\n\
             path = \"{data}\"\ntrain_limit = {train_limit}\nval_limit = {val_limit}\n\
             workers = 1\n\n[model]\nkind = \"small-cnn\"\nchannels = [8, 16]\nhidden = 32\n\n\
             [optimizer]\nlr = 0.05\nmomentum = 0.9\n\n[train]\nbatch_size = 32\n{train}\n\n\
             {strategies}\n"
        )
    }

    /// Writes the experiment to `path` and returns it.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.text()).unwrap();
        path.to_path_buf()
    }
}

/// Every bundled strategy by name, built with cargo and loaded as a dynamic library.
pub fn bundled() -> &'static HashMap<String, Library> {
    static LIBS: OnceLock<HashMap<String, Library>> = OnceLock::new();
    LIBS.get_or_init(|| {
        let mut log = String::new();
        let found = discover(&repo_root().join("plugins"), &mut |l: &str| {
            log.push_str(l);
            log.push('\n');
        })
        .expect("plugins directory");
        let mut libs = HashMap::new();
        for f in found {
            let lib = f
                .outcome
                .unwrap_or_else(|e| panic!("{} failed to load: {e}\n{log}", f.id));
            libs.insert(lib.info.name.clone(), lib);
        }
        libs
    })
}

pub fn strategy(name: &str, params: &[(&str, Value)]) -> Strategy {
    let params: Vec<(String, Value)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    bundled()[name].create(&params).expect("valid parameters")
}

pub fn int(v: i64) -> Value {
    Value::Int(v)
}

pub fn choice(v: &str) -> Value {
    Value::Str(v.to_string())
}

pub fn tensor<const D: usize>(shape: [usize; D], data: Vec<f32>) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data, shape), &Device::default())
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// The mask broadcast to the input's shape, as a flat vector.
pub fn mask_of<const D: usize>(s: &Strategy, x: &Tensor<D>, ctx: &MaskContext) -> Vec<f32> {
    let m = s.mask(x, ctx).expect("mask");
    to_vec(m.expand(x.dims()))
}

pub fn dropped_fraction(mask: &[f32]) -> f64 {
    mask.iter().filter(|&&m| m == 0.0).count() as f64 / mask.len() as f64
}

/// Deterministic pseudo-random N(0, 1) values (Box-Muller over an LCG), so test
/// inputs do not depend on the backend's generator.
pub fn gaussian(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (next(), next());
            ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
        })
        .collect()
}

/// Number of seed centres whose block covers position `i` of an axis of `len`,
/// for seeds allowed at `centres` (indices into the axis) and block `b`.
fn cover_counts(len: usize, b: usize, centres: std::ops::Range<usize>) -> Vec<usize> {
    (0..len)
        .map(|i| {
            centres
                .clone()
                .filter(|&c| {
                    // A seed at c covers [c + b/2 - (b - 1), c + b/2] (the even-b crop
                    // drops the last row, so even blocks sit one step after the seed).
                    let hi = (c + b / 2) as isize;
                    let lo = hi - (b as isize - 1);
                    (lo..=hi).contains(&(i as isize))
                })
                .count()
        })
        .collect()
}

/// Exact expected dropped fraction of independent seeds at rate `gamma`, blocks
/// `b` wide along each axis of `lens`; `valid_only` restricts seeds to centres
/// where a full block fits (DropBlock), otherwise every position (ProbDropBlock).
pub fn expected_block_fraction(lens: &[usize], b: usize, gamma: f64, valid_only: bool) -> f64 {
    let counts: Vec<Vec<usize>> = lens
        .iter()
        .map(|&len| {
            let centres = if valid_only {
                b / 2..b / 2 + len - b + 1
            } else {
                0..len
            };
            cover_counts(len, b, centres)
        })
        .collect();
    let mut total = 0.0;
    let mut positions = 0usize;
    let mut idx = vec![0; lens.len()];
    loop {
        let n: usize = idx.iter().zip(&counts).map(|(&i, c)| c[i]).product();
        total += 1.0 - (1.0 - gamma.min(1.0)).powi(n as i32);
        positions += 1;
        let mut d = lens.len();
        loop {
            if d == 0 {
                return total / positions as f64;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < lens[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}
