//! The checkout the binary is built from (`git describe --always --dirty` and
//! the commit), embedded for every run's provenance.
//!
//! With the `tch` feature, make the binary depend on LibTorch's CUDA library.
//!
//! Nothing in the binary calls into `libtorch_cuda.so` directly, so the linker's
//! default `--as-needed` drops it; LibTorch then finds no CUDA backend and
//! `cuda:0` silently reads as unavailable. Linking it with `--no-as-needed` keeps
//! it (check with `readelf -d target/release/probdrop-tui | grep torch_cuda`).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    embed_checkout();
    embed_burn_version();
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        return;
    }
    embed_libtorch_version();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" {
        return;
    }
    // Set by torch-sys (its `links = "tch"` key) for crates depending on it directly.
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB not set; libtorch_cuda is not force-linked");
        return;
    };
    let lib = std::path::PathBuf::from(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    } else {
        println!(
            "cargo:warning=LibTorch at {} has no CUDA library: CPU only",
            lib.display()
        );
    }
}

/// `PROBDROP_GIT_DESCRIBE` and `PROBDROP_GIT_COMMIT` ("unknown" outside a git
/// checkout). Run again when the checkout moves or any source changes, so
/// that "-dirty" is never stale.
fn embed_checkout() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for watched in [
        ".git/HEAD",
        ".git/index",
        "app/src",
        "plugin-api/src",
        "strategy-kit/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    println!(
        "cargo:rustc-env=PROBDROP_GIT_DESCRIBE={}",
        git(&["describe", "--always", "--dirty"])
    );
    println!(
        "cargo:rustc-env=PROBDROP_GIT_COMMIT={}",
        git(&["rev-parse", "HEAD"])
    );
    let diff = std::process::Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["diff", "HEAD", "--no-color"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| o.stdout)
        .unwrap_or_default();
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let _ = std::fs::write(out.join("host.diff"), capped(diff));
}

/// A checkout's diff for the binary to carry: at most 1 MiB, with a last
/// line saying how much was cut.
fn capped(mut diff: Vec<u8>) -> Vec<u8> {
    const MAX: usize = 1 << 20;
    if diff.len() > MAX {
        let all = diff.len();
        diff.truncate(MAX);
        diff.extend_from_slice(format!("\n[cut at {MAX} of {all} bytes]\n").as_bytes());
    }
    diff
}

/// `PROBDROP_BURN_VERSION`: the burn the lock file resolved, for provenance.
fn embed_burn_version() {
    let lock = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    let version = text
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"burn\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .map_or("unknown".into(), |v| v.trim_matches('"').to_string());
    println!("cargo:rustc-env=PROBDROP_BURN_VERSION={version}");
}

/// `PROBDROP_LIBTORCH_VERSION`: the PyTorch (and its CUDA) the binary was
/// linked against, from `torch/version.py` beside the LibTorch libraries.
fn embed_libtorch_version() {
    let version = std::env::var_os("DEP_TCH_LIBTORCH_LIB")
        .map(|lib| std::path::PathBuf::from(lib).join("../version.py"))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|text| {
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{name} = ")))
                    .map(|v| v.trim_matches(['\'', '"']).to_string())
            };
            match (field("__version__"), field("cuda")) {
                (Some(v), Some(c)) if c != "None" => format!("{v} (CUDA {c})"),
                (Some(v), _) => v,
                _ => "unknown".into(),
            }
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PROBDROP_LIBTORCH_VERSION={version}");
}
