//! Reload latency: a strategy library replaced in the plugins directory → the new
//! version active in a loop that drains events at every step (no compilation).
//! Also the cost of its parts. Run: `cargo bench --bench reload`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use probdrop_tui::plugins::watch::{LiveStrategy, ReloadEvent, SwapOutcome, Watcher, smoke_test};
use probdrop_tui::plugins::{Library, discover};

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{label:<44} median {:>8.2} ms   min {:>8.2} ms   max {:>8.2} ms   (n = {})",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(*samples.last().unwrap()),
        samples.len()
    );
}

fn main() {
    let plugins = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let lib_path = discover(&plugins, &mut |_: &str| {})
        .expect("plugins dir")
        .into_iter()
        .find(|f| f.id == "dropblock")
        .and_then(|f| f.library_path)
        .expect("dropblock built");

    let mut load = Vec::new();
    let mut smoke = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let lib = Library::load(&lib_path).unwrap();
        load.push(t.elapsed());
        let t = Instant::now();
        smoke_test(&lib).unwrap();
        smoke.push(t.elapsed());
    }
    summary("Library::load (copy + dlopen + checks)", load);
    summary("smoke test", smoke);

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("dropblock.so");
    std::fs::copy(&lib_path, &target).unwrap();
    let mut live = LiveStrategy::new(&Library::load(&target).unwrap(), vec![]).unwrap();
    let watcher = Watcher::start(dir.path(), trial()).unwrap();
    let mut end_to_end = Vec::new();
    let mut detect_to_ready = Vec::new();
    for _ in 0..20 {
        let tmp = dir.path().join("dropblock.partial");
        std::fs::copy(&lib_path, &tmp).unwrap();
        let replaced = Instant::now();
        std::fs::rename(&tmp, &target).unwrap();
        'wait: loop {
            for event in watcher.drain() {
                if let ReloadEvent::Ready {
                    library,
                    detected_at,
                } = event
                    && let Some(SwapOutcome::Swapped { .. }) = live.offer(&library)
                {
                    end_to_end.push(replaced.elapsed());
                    detect_to_ready.push(detected_at.elapsed());
                    break 'wait;
                }
            }
            assert!(replaced.elapsed() < Duration::from_secs(10), "no reload");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    summary("replaced -> active (debounce 150 ms incl.)", end_to_end);
    summary("  of which detected -> active", detect_to_ready);
}

/// The watcher's trial process: the probdrop-tui binary this package builds.
fn trial() -> probdrop_tui::plugins::trial::Trial {
    probdrop_tui::plugins::trial::Trial::new(
        env!("CARGO_BIN_EXE_probdrop-tui"),
        probdrop_tui::plugins::trial::DEFAULT_DEADLINE,
    )
}
