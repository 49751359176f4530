//! The `plugins` and `mask` commands, run as a user runs them: the real binary
//! over the real plugins directory (cargo builds the crates on first use).

use crate::common;

use std::path::Path;
use std::process::Output;

use crate::common::bin;

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run probdrop-tui")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Issue 18: the text listing says what each strategy computes.
#[test]
fn plugins_text_output_describes_each_strategy() {
    let out = run(&["plugins"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let block = text
        .split("\nprobdropblock ")
        .nth(1)
        .expect("probdropblock listed");
    let description = block.lines().nth(1).unwrap_or_default();
    assert!(
        description.starts_with("  ProbDropBlock (Revisiting Structured Dropout"),
        "{text}"
    );
}

#[test]
fn plugins_lists_all_ten_bundled_strategies_as_dynamic_libraries() {
    let out = run(&["plugins", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let list = list.as_array().unwrap();
    let mut names: Vec<&str> = list.iter().map(|p| p["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cutout",
            "dropblock",
            "dropblock1d",
            "drophead",
            "dropkey",
            "dropout",
            "dropout2d",
            "droppath",
            "probdropblock",
            "probdropblock1d"
        ]
    );
    for p in list {
        assert_eq!(p["source"], "bundled", "{p}");
        assert!(p["error"].is_null(), "{p}");
        let lib = p["library"].as_str().unwrap();
        assert!(
            lib.ends_with(std::env::consts::DLL_SUFFIX) && Path::new(lib).is_file(),
            "{lib}"
        );
        assert_eq!(p["interface"], plugin_api::INTERFACE_VERSION);
    }
    let prob = list.iter().find(|p| p["name"] == "probdropblock").unwrap();
    let params: Vec<&str> = prob["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for switch in [
        "block_size",
        "mode",
        "salience",
        "group",
        "normalize",
        "tau",
        "drop",
        "gamma",
        "valid_only",
    ] {
        assert!(
            params.contains(&switch),
            "probdropblock lacks {switch}: {params:?}"
        );
    }
}

#[test]
fn mask_prints_statistics_and_writes_npy() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("m.npy");
    let out = run(&[
        "mask",
        "dropblock",
        "--shape",
        "4,8,32,32",
        "--p",
        "0.1",
        "--param",
        "block_size=5",
        "--seed",
        "3",
        "--json",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let fraction = report["dropped_fraction"].as_f64().unwrap();
    assert!(fraction > 0.05 && fraction < 0.12, "{report}");
    assert!(report["dropped_blocks"].as_u64().unwrap() > 0);
    assert!((report["mean"].as_f64().unwrap() - 1.0).abs() < 1e-3);
    let written = probdrop_tui::npy::read(&out_path).unwrap();
    assert_eq!(written.shape, [4, 8, 32, 32]);
    let zeros =
        written.data.iter().filter(|&&v| v == 0.0).count() as f64 / written.data.len() as f64;
    assert!((zeros - fraction).abs() < 1e-9);
    // Same seed, same mask.
    let again = run(&[
        "mask",
        "dropblock",
        "--shape",
        "4,8,32,32",
        "--p",
        "0.1",
        "--param",
        "block_size=5",
        "--seed",
        "3",
        "--json",
    ]);
    let again: serde_json::Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(again["dropped_fraction"], report["dropped_fraction"]);
}

#[test]
fn mask_reads_the_feature_map_from_npy() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.npy");
    // Bright left half, dark right half: ProbDropBlock must drop mostly on the left.
    let (h, w) = (32, 32);
    let data: Vec<f32> = (0..2 * 4 * h * w)
        .map(|i| if i % w < w / 2 { 3.0 } else { 0.1 })
        .collect();
    probdrop_tui::npy::write(
        &input,
        &probdrop_tui::npy::Array {
            shape: vec![2, 4, h, w],
            data,
        },
    )
    .unwrap();
    let mask_path = dir.path().join("m.npy");
    let out = run(&[
        "mask",
        "probdropblock",
        "--input",
        input.to_str().unwrap(),
        "--p",
        "0.2",
        "--param",
        "block_size=3",
        "--out",
        mask_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("dropped"), "{}", stdout(&out));
    let m = probdrop_tui::npy::read(&mask_path).unwrap();
    let (mut left, mut right) = (0, 0);
    for (i, &v) in m.data.iter().enumerate() {
        if v == 0.0 {
            if i % w < w / 2 { left += 1 } else { right += 1 }
        }
    }
    assert!(left > 5 * right, "left {left} right {right}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let out = run(&["mask", "dropblok", "--shape", "1,1,8,8", "--p", "0.1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("did you mean `dropblock`"),
        "{}",
        stderr(&out)
    );

    let out = run(&[
        "mask",
        "dropblock",
        "--shape",
        "1,1,8,8",
        "--p",
        "0.1",
        "--param",
        "blok_size=3",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("`blok_size`") && err.contains("did you mean `block_size`"),
        "{err}"
    );

    let out = run(&[
        "mask",
        "dropblock",
        "--shape",
        "1,1,8,8",
        "--p",
        "0.1",
        "--param",
        "block_size=0",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("`block_size`"), "{}", stderr(&out));

    let out = run(&[
        "mask",
        "probdropblock",
        "--shape",
        "1,1,8,8",
        "--p",
        "0.1",
        "--param",
        "drop=middle",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("\"high\", \"low\""),
        "{}",
        stderr(&out)
    );

    let out = run(&["mask", "dropblock", "--shape", "1,1,8,8", "--p", "1.5"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("outside [0, 1]"), "{}", stderr(&out));
}

#[test]
fn the_example_crate_builds_when_dropped_into_plugins() {
    // A fresh plugins directory holding a copy of examples/my-strategy.
    let dir = tempfile::tempdir().unwrap();
    let plugins = common::fixtures::example_crate_in(dir.path());
    let krate = plugins.join("my-strategy");
    let out = run(&["--plugins", plugins.to_str().unwrap(), "plugins", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The build is shown while it happens (stderr; stdout stays the JSON).
    assert!(
        stderr(&out).contains("plugins:") && stderr(&out).contains("Compiling my-strategy"),
        "{}",
        stderr(&out)
    );
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(list[0]["name"], "stripes", "{list}");
    assert_eq!(list[0]["source"], "crate");
    assert!(list[0]["error"].is_null(), "{list}");
    // Break it: the build error is reported, nothing crashes.
    std::fs::write(krate.join("src/lib.rs"), "this is not rust").unwrap();
    let out = run(&["--plugins", plugins.to_str().unwrap(), "plugins", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let err = list[0]["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("build failed") && err.contains("error"),
        "{list}"
    );
    assert!(stderr(&out).contains("plugins: error"), "{}", stderr(&out));
    // Built and unchanged: nothing compiled, nothing to show.
    std::fs::copy(
        common::repo_root().join("examples/my-strategy/src/lib.rs"),
        krate.join("src/lib.rs"),
    )
    .unwrap();
    run(&["--plugins", plugins.to_str().unwrap(), "plugins", "--json"]);
    let again = run(&["--plugins", plugins.to_str().unwrap(), "plugins", "--json"]);
    assert!(!stderr(&again).contains("Compiling"), "{}", stderr(&again));
}
