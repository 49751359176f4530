//! `compare --launcher slurm` on a real single-node Slurm cluster that the test
//! starts itself (`scripts/slurm-local.sh`, from Debian's packages that
//! `.ci/run` unpacks into `target/slurm-root`, or `PROBDROP_SLURM_ROOT`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{Tiny, repo_root};
use probdrop_tui::run::comparison::{Manifest, TABLE_CSV};
use probdrop_tui::run::dir::{RunDir, State};

/// A running cluster; stopped when dropped.
struct Cluster {
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/slurm-local.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

/// Starts the cluster, or says why it cannot (an error under CI, where the
/// packages are installed by `.ci/run` and the daemons must start).
fn cluster(name: &str) -> Option<Cluster> {
    let root = std::env::var_os("PROBDROP_SLURM_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/slurm-root"));
    let missing = !root.join("usr/sbin/slurmctld-wlm").is_file();
    if missing {
        let why = format!(
            "no Slurm unpacked at {} (.ci/run unpacks it)",
            root.display()
        );
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipped: {why}");
        return None;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(repo_root().join("scripts/slurm-local.sh"))
        .arg("start")
        .arg(&root)
        .arg(&dir)
        .output()
        .unwrap();
    let mut cluster = Cluster {
        dir: dir.clone(),
        env: Vec::new(),
    };
    if !out.status.success() {
        let why = format!(
            "the Slurm daemons did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipped: {why}");
        return None;
    }
    let env = std::fs::read_to_string(dir.join("env")).unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    let env = env
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("$PATH", &path)))
        .collect();
    cluster.env = env;
    Some(cluster)
}

/// A working directory in the cluster's, with the experiment file.
fn workdir(c: &Cluster, epochs: usize) -> PathBuf {
    let cwd = c.dir.join("work");
    std::fs::create_dir_all(&cwd).unwrap();
    experiment(&cwd, epochs);
    cwd
}

fn experiment(dir: &Path, epochs: usize) -> PathBuf {
    let train = format!("epochs = {epochs}\neval_every = 4\ncheckpoint_every = 4\nlog_every = 1");
    Tiny {
        seeds: "[1, 2]",
        train_limit: 256,
        train: &train,
        strategies: "[[strategy]]\nplugin = \"dropblock\"\nparams = { block_size = 3 }\n\
                     schedule = { kind = \"linear\", end = 0.2 }",
        ..Tiny::default()
    }
    .write(&dir.join("tiny.toml"))
}

fn compare(cwd: &Path, env: &[(String, String)], extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"));
    cmd.current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("--plugins")
        .arg(repo_root().join("plugins"))
        .args(["compare", "tiny.toml"])
        .args(extra);
    cmd
}

fn ok(out: Output) -> String {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

/// Issue 20: a 2-strategy × 2-seed comparison submitted as one job array
/// finishes, each run names its task in run.json, and its table equals the
/// one `compare` makes locally with the same seeds (the runs are
/// deterministic). Started again, it submits nothing.
#[test]
fn a_comparison_on_slurm_equals_the_local_one() {
    let Some(c) = cluster("slurm-compare") else {
        return;
    };
    let cwd = workdir(&c, 1);
    // Issue 32: a directory name a shell would act on, Slurm would expand.
    let out_dir = "compare/slurm $(touch pwned) 'q' 5%j";
    let log = ok(compare(
        &cwd,
        &c.env,
        &[
            "--launcher",
            "slurm",
            "--out",
            out_dir,
            "--runs",
            "runs-slurm",
            "--array-limit",
            "2",
        ],
    )
    .output()
    .unwrap());
    assert!(log.contains("submitted Slurm job"), "{log}");
    assert!(!cwd.join("pwned").exists(), "a path ran as a command");
    let slurm_logs = std::fs::read_dir(cwd.join(out_dir))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("slurm-") && name.ends_with(".out")
        })
        .count();
    assert_eq!(slurm_logs, 4, "each task's Slurm log in --out, its % kept");
    std::fs::rename(cwd.join(out_dir), cwd.join("compare/slurm")).unwrap();
    ok(compare(
        &cwd,
        &[],
        &[
            "--jobs",
            "2",
            "--out",
            "compare/local",
            "--runs",
            "runs-local",
        ],
    )
    .output()
    .unwrap());
    let table = |name: &str| {
        std::fs::read_to_string(cwd.join("compare").join(name).join(TABLE_CSV)).unwrap()
    };
    assert_eq!(table("slurm"), table("local"));
    let manifest = Manifest::load(&cwd.join("compare/slurm")).unwrap();
    let mut tasks: Vec<String> = manifest
        .runs
        .iter()
        .map(|e| {
            let run = RunDir::new(&e.dir);
            assert_eq!(run.status().unwrap().state, State::Done);
            run.info()
                .unwrap()
                .slurm_job
                .expect("a Slurm task in run.json")
        })
        .collect();
    tasks.sort();
    let job = tasks[0].split('_').next().unwrap().to_string();
    assert_eq!(
        tasks,
        (0..4).map(|i| format!("{job}_{i}")).collect::<Vec<_>>()
    );
    let again = ok(compare(
        &cwd,
        &c.env,
        &[
            "--launcher",
            "slurm",
            "--out",
            "compare/slurm",
            "--runs",
            "runs-slurm",
        ],
    )
    .output()
    .unwrap());
    assert!(!again.contains("submitted Slurm job"), "{again}");
    assert!(again.contains("4 finished"), "{again}");
}

/// The runs of the comparison in `dir`, once its manifest lists all four.
fn runs_of(dir: &Path) -> Vec<RunDir> {
    Manifest::load(dir)
        .map(|m| m.runs.iter().map(|e| RunDir::new(&e.dir)).collect())
        .unwrap_or_default()
}

fn squeue(env: &[(String, String)]) -> String {
    let out = Command::new("squeue")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["-h", "-r", "-o", "%i %T"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits (up to two minutes) until `ready` holds.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !ready() {
        assert!(
            start.elapsed().as_secs() < 120,
            "waited two minutes for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Issue 20: compare killed outright and one running task cancelled
/// mid-way; compare started again waits for the tasks still queued or
/// running, submits only the cancelled run (which resumes from its
/// checkpoint), and every step of every run is logged once.
#[test]
fn a_killed_compare_on_slurm_resubmits_only_what_is_missing() {
    let Some(c) = cluster("slurm-resume") else {
        return;
    };
    let cwd = workdir(&c, 4);
    let args = [
        "--launcher",
        "slurm",
        "--out",
        "compare/s",
        "--runs",
        "runs",
        "--array-limit",
        "2",
    ];
    let mut first = compare(&cwd, &c.env, &args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dir = cwd.join("compare/s");
    let mut victim = None;
    wait_for("a task past its first checkpoint", || {
        victim = runs_of(&dir).into_iter().find(|r| {
            r.status()
                .is_some_and(|s| s.state == State::Training && s.step >= 6)
        });
        victim.is_some()
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let victim = victim.unwrap();
    let task = victim.info().unwrap().slurm_job.unwrap();
    let status = Command::new("scancel")
        .envs(c.env.iter().map(|(k, v)| (k, v)))
        .arg(&task)
        .status()
        .unwrap();
    assert!(status.success());
    wait_for("the cancelled task to leave the queue", || {
        !squeue(&c.env)
            .lines()
            .any(|l| l.starts_with(&format!("{task} ")))
    });
    let log = ok(compare(&cwd, &c.env, &args).output().unwrap());
    assert!(log.contains("submitted Slurm job"), "{log}");
    assert!(
        log.contains(": 1 task(s)"),
        "only the cancelled run again: {log}"
    );
    let runs = runs_of(&dir);
    assert_eq!(runs.len(), 4);
    for run in &runs {
        assert_eq!(
            run.status().unwrap().state,
            State::Done,
            "{}",
            run.path.display()
        );
        let mut steps: Vec<u64> = run
            .metrics()
            .iter()
            .filter(|l| l.split == "train" && l.metric == "loss")
            .map(|l| l.step)
            .collect();
        let n = steps.len();
        steps.dedup();
        assert_eq!(
            steps.len(),
            n,
            "a step logged twice in {}",
            run.path.display()
        );
    }
    let again = victim.info().unwrap().slurm_job.unwrap();
    assert_ne!(again, task, "the cancelled run went to a new task");
    assert!(
        victim
            .events()
            .iter()
            .any(|e| e.message.contains("resumed")),
        "it resumed from its checkpoint"
    );
}

/// Issue 20: `run FILE --launcher slurm` trains an experiment's runs as one
/// array and prints the same closing table as a local `run`.
#[test]
fn run_on_slurm_trains_each_run_as_an_array_task() {
    let Some(c) = cluster("slurm-run") else {
        return;
    };
    let cwd = workdir(&c, 1);
    let out = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
        .current_dir(&cwd)
        .envs(c.env.iter().map(|(k, v)| (k, v)))
        .arg("--plugins")
        .arg(repo_root().join("plugins"))
        .args([
            "run",
            "tiny.toml",
            "--launcher",
            "slurm",
            "--strategy",
            "dropblock",
        ])
        .output()
        .unwrap();
    let text = ok(out);
    assert!(text.contains("submitted Slurm job"), "{text}");
    let runs = probdrop_tui::run::dir::list_runs(&cwd.join("runs"));
    assert_eq!(runs.len(), 2, "dropblock at seeds 1 and 2");
    for run in &runs {
        assert_eq!(run.status().unwrap().state, State::Done);
        assert!(run.info().unwrap().slurm_job.is_some());
        let name = run.path.file_name().unwrap().to_string_lossy().into_owned();
        let row = text
            .lines()
            .find(|l| l.ends_with(&name))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(row.starts_with("done"), "{row}");
    }
}

/// Issue 20: Ctrl-C to compare cancels (`scancel`) the array it submitted:
/// nothing of it stays queued or running.
#[test]
fn ctrl_c_cancels_what_compare_submitted() {
    let Some(c) = cluster("slurm-cancel") else {
        return;
    };
    let cwd = workdir(&c, 20);
    let args = [
        "--launcher",
        "slurm",
        "--out",
        "compare/c",
        "--runs",
        "runs",
        "--array-limit",
        "1",
    ];
    let child = compare(&cwd, &c.env, &args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let dir = cwd.join("compare/c");
    wait_for("a task training", || {
        runs_of(&dir)
            .iter()
            .any(|r| r.status().is_some_and(|s| s.state == State::Training))
    });
    assert!(!squeue(&c.env).trim().is_empty());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("cancelling Slurm job"), "{said}");
    wait_for("the queue to empty", || squeue(&c.env).trim().is_empty());
}

/// A fake `sbatch` (and an empty `squeue`) on PATH that records each
/// submission's arguments and script in `record`.
fn fake_slurm(bin: &Path, record: &Path) -> Vec<(String, String)> {
    std::fs::create_dir_all(bin).unwrap();
    std::fs::create_dir_all(record).unwrap();
    let sbatch = format!(
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > '{r}/args'\n\
         for a in \"$@\"; do last=$a; done\ncp \"$last\" '{r}/script'\necho 4242\n",
        r = record.display()
    );
    for (name, text) in [("sbatch", sbatch.as_str()), ("squeue", "#!/bin/sh\n")] {
        let path = bin.join(name);
        std::fs::write(&path, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    vec![("PATH".into(), path)]
}

/// Issue 32: a newline in the experiment file's name, in `--out` or in
/// `--runs` is refused before anything is created or submitted, naming where
/// it came from; a directory with quotes, `$(…)` and `%` is carried as one
/// quoted word, and the script sbatch got trains the run when a shell runs it
/// as Slurm would, executing nothing of the path.
#[test]
fn no_path_in_a_batch_script_runs_as_a_command() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path().join("work");
    std::fs::create_dir_all(&cwd).unwrap();
    let record = tmp.path().join("record");
    let env = fake_slurm(&tmp.path().join("bin"), &record);
    let evil = "x\ntouch pwned";
    std::fs::copy(experiment(&cwd, 1), cwd.join(format!("{evil}.toml"))).unwrap();
    let refusals = [
        (format!("{evil}.toml"), vec![], "--out (or compare/"),
        ("tiny.toml".into(), vec!["--out", evil], "--out"),
        ("tiny.toml".into(), vec!["--runs", evil], "--runs"),
    ];
    for (file, extra, named) in refusals {
        let out = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
            .current_dir(&cwd)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg("--plugins")
            .arg(repo_root().join("plugins"))
            .args(["compare", &file, "--launcher", "slurm"])
            .args(&extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains(named) && err.contains("control character"),
            "{err}"
        );
        assert!(!record.join("script").exists(), "submitted: {err}");
        assert!(
            !cwd.join(evil).exists() && !cwd.join("compare").exists(),
            "{err}"
        );
    }
    let out_dir = cwd.join("it's $(touch pwned) `touch pwned` 50%j");
    let mut cmd = compare(&cwd, &env, &["--launcher", "slurm", "--seeds", "1"]);
    cmd.arg("--out").arg(&out_dir).output().unwrap();
    let args = std::fs::read_to_string(record.join("args")).unwrap();
    let doubled = out_dir.display().to_string().replace('%', "%%");
    let output = format!("--output={doubled}/slurm-%A_%a.out");
    assert!(args.split('\0').any(|a| a == output), "{args:?}");
    let script = std::fs::read_to_string(record.join("script")).unwrap();
    assert!(!script.contains("#SBATCH --output"), "{script}");
    let ran = Command::new("sh")
        .arg(record.join("script"))
        .current_dir(&cwd)
        .env("SLURM_ARRAY_TASK_ID", "0")
        .status()
        .unwrap();
    assert!(ran.success(), "{script}");
    let index = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "tasks"))
        .unwrap();
    let first = std::fs::read_to_string(index).unwrap();
    let run = RunDir::new(first.lines().next().unwrap());
    assert_eq!(run.status().unwrap().state, State::Done, "{script}");
    assert!(
        !cwd.join("pwned").exists() && !out_dir.join("pwned").exists(),
        "{script}"
    );
}

/// Issue 37: successive halving through Slurm. The cells' runs go as one
/// array that stops at the rung (`--stop-at` in its script), compare decides
/// when the array has ended, and the survivors go as a second array that
/// trains them to the end; the bad cell (dropout at p = 1) stays halted.
#[test]
fn halving_on_slurm_submits_each_rung_and_the_survivors() {
    let Some(c) = cluster("slurm-halving") else {
        return;
    };
    let cwd = c.dir.join("work");
    std::fs::create_dir_all(&cwd).unwrap();
    Tiny {
        seeds: "[1, 2]",
        train: "epochs = 2\neval_every = 4\nlog_every = 1",
        strategies: "[[strategy]]\nplugin = \"dropout\"\n\
                     schedule = { kind = \"constant\", p = 0.0 }\n\
                     sweep = { p = [0.0, 1.0] }\n\n\
                     [sweep]\nhalving = { rungs = [0.5], keep = 0.5 }",
        ..Tiny::default()
    }
    .write(&cwd.join("tiny.toml"));
    let log = ok(compare(&cwd, &c.env, &["--launcher", "slurm"])
        .output()
        .unwrap());
    let cdir = cwd.join("compare/tiny");
    let m = Manifest::load(&cdir).unwrap();
    let (good, bad) = ("dropout p=0.0", "dropout p=1.0");
    assert_eq!(m.halted.keys().collect::<Vec<_>>(), [bad], "{log}");
    for seed in [1, 2] {
        let run = |label| RunDir::new(&m.entry(label, seed).unwrap().dir);
        let (g, b) = (run(good).status().unwrap(), run(bad).status().unwrap());
        assert_eq!((g.state, g.step), (State::Done, 32), "{log}");
        assert_eq!((b.state, b.step), (State::Stopped, 16), "{log}");
    }
    // The rung's array, the baseline's (to the end) and the survivors'.
    let scripts: Vec<String> = std::fs::read_dir(&cdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(scripts.len(), 3, "{log}");
    let stopping = scripts
        .iter()
        .filter(|s| s.contains(" --stop-at 0.5 "))
        .count();
    assert_eq!(stopping, 1, "{scripts:?}");
    assert_eq!(log.matches("submitted Slurm job").count(), 3, "{log}");
    let md = std::fs::read_to_string(cdir.join("compare.md")).unwrap();
    assert!(md.contains("halted at 50 %"), "{md}");
}
