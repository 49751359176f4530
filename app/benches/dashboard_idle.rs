//! The real dashboard in a pseudo-terminal (80×24) watching a training run:
//! CPU it uses and bytes it writes to the terminal per second.
//! `cargo bench --bench dashboard_idle` (about a minute).

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

#[path = "common/mod.rs"]
mod common;
use common::cpu_seconds;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = root.join("target/release/probdrop-tui");
    assert!(
        bin.is_file(),
        "build the release binary first: cargo build --release"
    );
    let tmp = tempfile::tempdir().unwrap();
    let experiments = tmp.path().join("experiments");
    std::fs::create_dir_all(&experiments).unwrap();
    let quickstart = std::fs::read_to_string(root.join("experiments/quickstart.toml")).unwrap();
    let data = root
        .join("data/fashion-mnist-subset")
        .canonicalize()
        .unwrap();
    std::fs::write(
        experiments.join("quickstart.toml"),
        quickstart.replace("../data/fashion-mnist-subset", &data.display().to_string()),
    )
    .unwrap();
    let mut trainer = std::process::Command::new(&bin)
        .arg("--plugins")
        .arg(root.join("plugins"))
        .args(["run", "-q", "experiments/quickstart.toml"])
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));

    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 80,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(&bin);
    cmd.arg("--plugins");
    cmd.arg(root.join("plugins"));
    cmd.cwd(tmp.path());
    cmd.env("TERM", "xterm-256color");
    let mut child = pty.slave.spawn_command(cmd).unwrap();
    let pid = child.process_id().unwrap();
    let mut reader = pty.master.try_clone_reader().unwrap();
    let bytes = Arc::new(AtomicUsize::new(0));
    let counter = bytes.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            counter.fetch_add(n, Ordering::Relaxed);
        }
    });
    let mut writer = pty.master.take_writer().unwrap();
    // Warm up, then watch the runs view while training goes on.
    std::thread::sleep(Duration::from_secs(5));
    use std::io::Write;
    writer.write_all(b"1").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let window = Duration::from_secs(20);
    let (cpu0, bytes0, t0) = (
        cpu_seconds(pid),
        bytes.load(Ordering::Relaxed),
        Instant::now(),
    );
    std::thread::sleep(window);
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(pid) - cpu0) / secs;
    let rate = (bytes.load(Ordering::Relaxed) - bytes0) as f64 / secs;
    println!(
        "dashboard watching a training run (runs view, 80×24): {:.2} % of a core, {:.2} KB/s to the terminal over {secs:.0} s",
        100.0 * cpu,
        rate / 1000.0
    );
    writer.write_all(b"2").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, bytes0, t0) = (
        cpu_seconds(pid),
        bytes.load(Ordering::Relaxed),
        Instant::now(),
    );
    std::thread::sleep(window);
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "dashboard watching a training run (charts view, 80×24): {:.2} % of a core, {:.2} KB/s to the terminal over {secs:.0} s",
        100.0 * (cpu_seconds(pid) - cpu0) / secs,
        (bytes.load(Ordering::Relaxed) - bytes0) as f64 / secs / 1000.0
    );
    writer.write_all(b"q").unwrap();
    let _ = child.wait();
    let _ = trainer.kill();
    let _ = trainer.wait();
}
