//! `probdrop-tui check` on the shipped experiments and on every malformed file of
//! tests/invalid_experiments/, run as a user runs it.

use crate::common;

use std::path::Path;
use std::process::Command;

use crate::common::repo_root;

fn check(files: &[&Path]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
        .current_dir(repo_root())
        .arg("check")
        .args(files)
        .output()
        .expect("run probdrop-tui");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn shipped_experiments_are_valid() {
    let dir = repo_root().join("experiments");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.iter().any(|f| f.ends_with("quickstart.toml")));
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let (ok, out) = check(&refs);
    assert!(ok, "{out}");
    assert!(
        out.contains("quickstart.toml: ok (1 run: probdropblock"),
        "{out}"
    );
    // Shipped for GPU users with the data: valid, and says it cannot run here.
    assert!(
        out.contains("compare-cifar10-resnet18.toml: ok (18 runs: none, dropout, dropout2d, dropblock, probdropblock, stochastic-depth × seeds [1, 2, 3])"),
        "{out}"
    );
    assert!(
        out.contains("warning: no run can start here until the data is there"),
        "{out}"
    );
    // ResNet-20's count on one-channel images: He et al.'s 0.27 M (269,722
    // on three channels) less the first convolution's 16 × 2 × 9 weights.
    assert!(
        out.contains(
            "placement-resnet20.toml: ok (25 runs: none, dropblock-stage, dropblock-paper, \
             probdropblock-paper, stochastic-depth × seeds [1, 2, 3, 4, 5])\n  \
             model: 269,434 learned parameters (1×28×28 images, 10 classes)"
        ),
        "{out}"
    );
    assert!(
        out.contains("  model: up to 1,298,182 learned parameters (a vocabulary of up to 8000 tokens, 6 classes)"),
        "{out}"
    );
    // The ResNet files put DropBlock where timm and the DropBlock paper do,
    // and stochastic depth on the residual branches with the linear rule.
    assert!(
        out.contains(
            "  dropblock at 8 slots: layer3.0.bn1, layer3.0.shortcut, layer3.1.bn1, \
             layer3.1.shortcut, layer4.0.bn1, layer4.0.shortcut, layer4.1.bn1, layer4.1.shortcut"
        ),
        "{out}"
    );
    assert!(
        out.contains("  stochastic-depth at 8 slots: layer1.0.branch ×0, layer1.1.branch ×0.143"),
        "{out}"
    );
    assert!(
        out.contains("  dropblock at 18 slots: layer3.0.bn2, layer3.0.shortcut"),
        "{out}"
    );
}

#[test]
fn every_malformed_file_is_refused_with_its_message_and_position() {
    let dir = repo_root().join("tests/invalid_experiments");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "only {} malformed files", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let at = text
            .lines()
            .find_map(|l| l.strip_prefix("# at: "))
            .unwrap_or_else(|| panic!("{}: no `# at:` header", file.display()));
        let expects: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expects.is_empty(),
            "{}: no `# expect:` header",
            file.display()
        );
        let relative = file.strip_prefix(repo_root()).unwrap_or(file);
        let name = relative.display().to_string();
        // A file that is valid but cannot run here (its data is missing) is
        // refused by `run`, not by `check`.
        let by_run = text.lines().any(|l| l == "# command: run");
        let (ok, out) = if by_run {
            let runs = tempfile::tempdir().unwrap();
            let out = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
                .current_dir(repo_root())
                .arg("--plugins")
                .arg(repo_root().join("plugins"))
                .args(["run", "-q", "--runs"])
                .arg(runs.path())
                .arg(relative)
                .output()
                .unwrap();
            let created = std::fs::read_dir(runs.path()).unwrap().count();
            assert_eq!(created, 0, "{name}: a run directory was created");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        } else {
            check(&[relative])
        };
        let mut problems = Vec::new();
        if ok {
            problems.push("accepted".to_string());
        }
        // Plugin build lines (cargo waiting for a lock another test holds)
        // may come before the error; the error is the first line of ours.
        let first = out
            .lines()
            .find(|l| !l.starts_with("plugins: "))
            .unwrap_or("")
            .trim_start_matches("error: cannot start: ");
        if !first.starts_with(&format!("{name}:{at}: ")) {
            problems.push(format!("first line should start with {name}:{at}:"));
        }
        for e in &expects {
            if !out.contains(e) {
                problems.push(format!("missing {e:?}"));
            }
        }
        // The offending line is quoted under the position.
        let line_no: usize = at.split(':').next().unwrap().parse().unwrap();
        let offending = text.lines().nth(line_no - 1).unwrap_or("");
        if !out.contains(&format!("{line_no} | {offending}")) {
            problems.push(format!("offending line {offending:?} not quoted"));
        }
        if !problems.is_empty() {
            failures.push(format!("{name}: {}\n{out}", problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_missing_file_and_several_files_are_reported_together() {
    let (ok, out) = check(&[
        Path::new("experiments/quickstart.toml"),
        Path::new("tests/invalid_experiments/zero-epochs.toml"),
        Path::new("experiments/no-such-file.toml"),
    ]);
    assert!(!ok);
    assert!(out.contains("quickstart.toml: ok"), "{out}");
    assert!(out.contains("zero-epochs.toml:21:10:"), "{out}");
    assert!(
        out.contains("no-such-file.toml:1:1: cannot read the file"),
        "{out}"
    );
    assert!(out.contains("2 of 3 experiment file(s) invalid"), "{out}");
}

/// xorshift from a fixed seed: a failing case replays.
struct Xorshift(u64);

impl Xorshift {
    /// A number in [0, n) (0 when n is 0).
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// Tokens the fuzzer inserts: TOML syntax, odd values and the schema's keys.
const ALPHABET: &[&str] = &[
    "=",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "\"",
    "'",
    ",",
    ".",
    "\n",
    " ",
    "#",
    "-",
    "0",
    "1e400",
    "-1",
    "nan",
    "inf",
    "true",
    "1979-05-27",
    "\\u",
    "é",
    "\t",
    "\"\"\"",
    "p",
    "strategy",
    "plugin",
    "schedule",
    "kind",
    "seeds",
    "data",
    "train",
    "epochs",
];

/// The shipped and the invalid experiment files, the fuzzer's starting points.
fn seed_files() -> Vec<String> {
    ["experiments", "tests/invalid_experiments"]
        .iter()
        .flat_map(|d| std::fs::read_dir(repo_root().join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// One case: a soup of tokens or a seed file, then one to four mutations
/// (a cut, an inserted token, a truncation, a repeated stretch, a changed
/// character).
fn fuzz_case(seeds: &[String], rng: &mut Xorshift) -> String {
    let mut next = |n: usize| rng.next(n);
    let mut text: Vec<char> = if next(10) == 0 {
        (0..next(200))
            .flat_map(|_| ALPHABET[next(ALPHABET.len())].chars().collect::<Vec<_>>())
            .collect()
    } else {
        seeds[next(seeds.len())].chars().collect()
    };
    for _ in 0..1 + next(4) {
        let at = next(text.len() + 1);
        match next(5) {
            0 => {
                let end = (at + next(20)).min(text.len());
                text.drain(at..end);
            }
            1 => {
                let token: Vec<char> = ALPHABET[next(ALPHABET.len())].chars().collect();
                text.splice(at..at, token);
            }
            2 => text.truncate(at),
            3 => {
                // Duplicate a stretch (a repeated key or table).
                let end = (at + next(80)).min(text.len());
                let copy: Vec<char> = text[at..end].to_vec();
                text.splice(at..at, copy);
            }
            _ => {
                if at < text.len() {
                    text[at] = char::from_u32(next(0x3000) as u32).unwrap_or('?');
                }
            }
        }
    }
    text.into_iter().collect()
}

/// A fixed budget of arbitrary and mutated experiment files through the whole
/// validation: it never panics, and every error it reports has a position inside
/// the file. Deterministic (xorshift from a fixed seed), so a failure replays.
#[test]
fn mutated_and_arbitrary_files_never_panic_and_always_get_a_position() {
    use probdrop_tui::experiment::{Catalog, validate};
    use probdrop_tui::train::ThisMachine;
    let catalog = Catalog::from_infos(common::bundled().values().map(|l| &l.info));
    let seeds = seed_files();
    let mut rng = Xorshift(0x2545_f491_4f6c_dd1d);
    let dir = std::env::temp_dir();
    let path = dir.join("fuzz.toml");
    let cases = 10_000;
    let (mut valid, mut refused) = (0, 0);
    for case in 0..cases {
        let text = fuzz_case(&seeds, &mut rng);
        let lines = text.lines().count().max(1) + 1;
        let result = std::panic::catch_unwind(|| validate(&path, &text, &catalog, &ThisMachine));
        let Ok(result) = result else {
            panic!("case {case}: validation panicked on:\n{text}");
        };
        if result.is_ok() {
            valid += 1;
        }
        if let Err(errors) = result {
            refused += 1;
            assert!(
                !errors.is_empty(),
                "case {case}: an error without a message"
            );
            for e in errors {
                assert!(
                    e.line >= 1 && e.line <= lines && e.column >= 1,
                    "case {case}: position {}:{} outside the file:\n{text}\n{e}",
                    e.line,
                    e.column
                );
            }
        }
    }
    // Both sides were exercised: some mutations keep the file valid (semantic
    // checks ran), most break it somewhere.
    assert!(
        valid > 100 && refused > cases / 2,
        "{valid} valid, {refused} refused"
    );
}
