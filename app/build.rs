//! With the `tch` feature, make the binary depend on LibTorch's CUDA library.
//!
//! Nothing in the binary calls into `libtorch_cuda.so` directly, so the linker's
//! default `--as-needed` drops it; LibTorch then finds no CUDA backend and
//! `cuda:0` silently reads as unavailable. Linking it with `--no-as-needed` keeps
//! it (check with `readelf -d target/release/probdrop-tui | grep torch_cuda`).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        return;
    }
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
