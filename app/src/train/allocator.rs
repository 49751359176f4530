//! glibc's malloc, set up for tensors. With its defaults glibc hands every
//! freed buffer above a dynamic threshold (at most 32 MiB) back to the kernel
//! and trims the heap's top past 128 KiB, so each training step maps, faults in
//! and zeroes its activations again: about a fifth of a ResNet-18 step on flex
//! (BENCHMARKS.md). The thresholds can only be raised past 32 MiB through
//! `GLIBC_TUNABLES`, which glibc reads at start-up, so the training commands
//! run themselves again once with it set (same process: `exec`).

/// Buffers up to 256 MiB come from the heap, and the heap keeps up to 1 GiB free.
pub const TUNABLES: &str =
    "glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824";

/// Replaces this process with itself under [TUNABLES], unless `GLIBC_TUNABLES`
/// is already set (by the user, or by this) or `PROBDROP_MALLOC=default`.
/// Returns only where nothing was replaced.
pub fn tune_for_tensors() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        let keep = std::env::var_os("PROBDROP_MALLOC").is_some_and(|v| v == "default");
        if keep || std::env::var_os("GLIBC_TUNABLES").is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new(exe);
        if let Some(name) = args.next() {
            command.arg0(name);
        }
        let error = command.args(args).env("GLIBC_TUNABLES", TUNABLES).exec();
        eprintln!(
            "note: glibc's malloc keeps its defaults: could not run again with GLIBC_TUNABLES ({error})"
        );
    }
}
