//! `compare --launcher slurm`: the runs to train go to Slurm as one job array
//! whose task `i` runs `probdrop-tui train <run dir i>` (an index file in the
//! compare directory maps tasks to run directories). Each run's run.json
//! names its task (`<job>_<i>`); `squeue` says which are still queued or
//! running, so compare started again submits only the rest, and a stopped
//! compare cancels (`scancel`) what it submitted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::run::comparison::Entry;
use crate::run::dir::{self, RunDir, State};

/// `sbatch` settings for the array.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct SlurmArgs {
    /// Slurm partition (`sbatch --partition`).
    #[arg(long)]
    pub partition: Option<String>,
    /// Generic resources per task, e.g. `gpu:1` (`sbatch --gres`).
    #[arg(long)]
    pub gres: Option<String>,
    /// Time limit per task, e.g. `4:00:00` (`sbatch --time`).
    #[arg(long)]
    pub time: Option<String>,
    /// At most this many tasks at a time (`--array=0-N%K`).
    #[arg(long)]
    pub array_limit: Option<usize>,
    /// Any other `sbatch` argument, repeated (e.g. `--sbatch-arg=--qos=short`).
    #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
}

/// What Slurm says about one array task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskState {
    /// PENDING, RUNNING, COMPLETING, …
    pub state: String,
    /// Why it waits (`Priority`, `Resources`), `None` when it does not.
    pub reason: String,
}

/// Every task of `jobs` that Slurm still holds, by `<job>_<task>`.
pub fn queue(jobs: &[String]) -> Result<BTreeMap<String, TaskState>> {
    if jobs.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = Command::new("squeue")
        .args(["-h", "-r", "-o", "%i %T %r", "-j", &jobs.join(",")])
        .output()
        .context("running squeue (is Slurm's client on PATH?)")?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        // It refuses job ids it no longer knows: then none of them is queued.
        if why.contains("Invalid job id") {
            return Ok(BTreeMap::new());
        }
        bail!("squeue failed: {}", why.trim());
    }
    Ok(parse_queue(&String::from_utf8_lossy(&out.stdout)))
}

/// `squeue -h -r -o "%i %T %r"` lines: `12_3 PENDING Priority`.
pub fn parse_queue(text: &str) -> BTreeMap<String, TaskState> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let id = parts.next()?.to_string();
            let state = parts.next()?.to_string();
            let reason = parts.collect::<Vec<_>>().join(" ");
            Some((id, TaskState { state, reason }))
        })
        .collect()
}

/// The job of a task id: `12` of `12_3`.
pub fn job_of(task: &str) -> &str {
    task.split('_').next().unwrap_or(task)
}

/// A run and the Slurm array task (`<job>_<i>`) that trains it.
pub type Task = (Entry, String);

/// The runs of `entries` that name a Slurm task in their run.json.
fn recorded_tasks(entries: &[Entry]) -> Vec<Task> {
    entries
        .iter()
        .filter_map(|e| Some((e.clone(), RunDir::new(&e.dir).info().ok()?.slurm_job?)))
        .collect()
}

/// Of `to_start`, the runs whose Slurm task is still queued or running (to
/// wait for), and the rest (to submit).
pub fn split_queued(to_start: Vec<Entry>) -> Result<(Vec<Task>, Vec<Entry>)> {
    let recorded = recorded_tasks(&to_start);
    let jobs: Vec<String> = recorded
        .iter()
        .map(|(_, t)| job_of(t).to_string())
        .collect();
    let held = queue(&dedup(jobs))?;
    let (mut waiting, mut submit) = (Vec::new(), Vec::new());
    for e in to_start {
        match recorded.iter().find(|(r, _)| r.dir == e.dir) {
            Some((_, task)) if held.contains_key(task) => waiting.push((e, task.clone())),
            _ => submit.push(e),
        }
    }
    Ok((waiting, submit))
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// Refuses a path that a batch script, its `--output` or its index file
/// cannot carry: a control character (a newline would end the line it sits
/// on and start a shell command) or bytes that are not UTF-8 (the index is
/// text). `what` names where the path came from, for the user to change it.
pub fn check_path(what: &str, path: &Path) -> Result<()> {
    let Some(text) = path.to_str() else {
        bail!(
            "{what}: {} is not UTF-8, which a Slurm batch script cannot carry; \
             rename it and submit again",
            path.display()
        );
    };
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        bail!(
            "{what}: {text:?} holds the control character {c:?}, which a Slurm batch \
             script cannot carry; rename it and submit again (nothing was submitted)"
        );
    }
    Ok(())
}

/// The paths a submission puts into its script, index and `--output`, each
/// checked ([`check_path`]) before anything is written or submitted.
struct Paths {
    exe: PathBuf,
    plugins: PathBuf,
    compare_dir: PathBuf,
    runs: Vec<PathBuf>,
}

impl Paths {
    fn of(plugins: &Path, compare_dir: &Path, entries: &[Entry]) -> Result<Paths> {
        let absolute = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        let paths = Paths {
            exe: std::env::current_exe().context("finding this program")?,
            plugins: absolute(plugins),
            compare_dir: absolute(compare_dir),
            runs: entries.iter().map(|e| absolute(&e.dir)).collect(),
        };
        check_path("this program's path", &paths.exe)?;
        check_path("--plugins", &paths.plugins)?;
        check_path("the directory beside the runs (--out)", &paths.compare_dir)?;
        for run in &paths.runs {
            check_path("a run directory (--runs, the experiment's name)", run)?;
        }
        Ok(paths)
    }
}

/// Submits `entries` as one job array, each task to stop at fraction
/// `stop_at` of its training if given (a halving rung); records each task in
/// its run.json and returns them with their task ids.
pub fn submit(
    plugins: &Path,
    compare_dir: &Path,
    entries: Vec<Entry>,
    args: &SlurmArgs,
    stop_at: Option<f64>,
) -> Result<Vec<Task>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let paths = Paths::of(plugins, compare_dir, &entries)?;
    let stem = fresh_stem(&paths.compare_dir);
    let index = paths.compare_dir.join(format!("{stem}.tasks"));
    let lines: Vec<&str> = paths.runs.iter().filter_map(|p| p.to_str()).collect();
    dir::write_atomic(&index, (lines.join("\n") + "\n").as_bytes())
        .with_context(|| format!("writing {}", index.display()))?;
    let script = paths.compare_dir.join(format!("{stem}.sh"));
    dir::write_atomic(&script, batch_script(&paths, &index, stop_at).as_bytes())
        .with_context(|| format!("writing {}", script.display()))?;
    let job = sbatch(
        &script,
        &output_pattern(&paths.compare_dir),
        entries.len(),
        args,
    )?;
    let mut submitted = Vec::new();
    for (i, e) in entries.into_iter().enumerate() {
        let task = format!("{job}_{i}");
        let run = RunDir::new(&e.dir);
        let mut info = run.info().context("reading run.json")?;
        info.slurm_job = Some(task.clone());
        run.write_info(&info)?;
        submitted.push((e, task));
    }
    eprintln!(
        "submitted Slurm job {job}: {} task(s), index {}",
        submitted.len(),
        index.display()
    );
    Ok(submitted)
}

/// `slurm-<time>` for a new array's script and index, with `-2`, `-3`, …
/// when arrays submitted within the same second (one per halving rung) would
/// take the same name.
fn fresh_stem(compare_dir: &Path) -> String {
    let stamp = format!("slurm-{}", dir::timestamp(dir::now() as u64));
    (1..)
        .map(|n| match n {
            1 => stamp.clone(),
            n => format!("{stamp}-{n}"),
        })
        .find(|s| !compare_dir.join(format!("{s}.tasks")).exists())
        .unwrap_or(stamp)
}

/// A path as one single-quoted shell word: nothing in it is expanded.
fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// The array's script: task `i` trains the run on line `i + 1` of `index`.
/// Every path in it is a quoted word; none is in an `#SBATCH` line (the
/// output file goes to `sbatch` as an argument, where no shell reads it).
/// The stop fraction is a number Rust wrote: digits and a point.
fn batch_script(paths: &Paths, index: &Path, stop_at: Option<f64>) -> String {
    let stop = stop_at.map_or(String::new(), |f| format!(" --stop-at {f}"));
    format!(
        "#!/bin/sh\n\
         #SBATCH --job-name=probdrop-compare\n\
         run=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {index})\n\
         exec {exe} --plugins {plugins} train \"$run\"{stop} >> \"$run/trainer.log\" 2>&1\n",
        index = shell_quote(index),
        exe = shell_quote(&paths.exe),
        plugins = shell_quote(&paths.plugins),
    )
}

/// `--output` for the array: each task's Slurm log in `dir`. A `%` of the
/// path is doubled, since Slurm reads `%x` in it as a replacement symbol.
fn output_pattern(dir: &Path) -> String {
    let dir = dir.display().to_string().replace('%', "%%");
    format!("--output={dir}/slurm-%A_%a.out")
}

/// `sbatch --parsable --array=0-(n-1)[%K] --output=… …`; the job id.
fn sbatch(script: &Path, output: &str, n: usize, args: &SlurmArgs) -> Result<String> {
    let mut array = format!("--array=0-{}", n - 1);
    if let Some(k) = args.array_limit {
        array.push_str(&format!("%{k}"));
    }
    let mut cmd = Command::new("sbatch");
    cmd.args(["--parsable", &array, output]);
    for (flag, value) in [
        ("--partition", &args.partition),
        ("--gres", &args.gres),
        ("--time", &args.time),
    ] {
        if let Some(v) = value {
            cmd.arg(format!("{flag}={v}"));
        }
    }
    cmd.args(&args.sbatch_args).arg(script);
    let out = cmd
        .output()
        .context("running sbatch (is Slurm's client on PATH?)")?;
    if !out.status.success() {
        bail!(
            "sbatch refused the array: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // `--parsable` prints `<job>` or `<job>;<cluster>`.
    let job = text
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if job.is_empty() {
        bail!("sbatch printed no job id");
    }
    Ok(job)
}

/// Cancels the jobs of `tasks` (Ctrl-C or `stop` of compare).
pub fn cancel(tasks: &[Task]) {
    let jobs = dedup(tasks.iter().map(|(_, t)| job_of(t).to_string()).collect());
    if jobs.is_empty() {
        return;
    }
    eprintln!("cancelling Slurm job(s) {}", jobs.join(", "));
    let _ = Command::new("scancel").args(&jobs).status();
}

/// What `follow`'s tick says after each look: tasks it submitted since (to
/// follow too), and whether anything else is still going.
pub struct Ticked {
    pub submitted: Vec<Task>,
    pub others: bool,
}

/// Follows `waiting` with `squeue` until none is queued or running. `tick`
/// gets the runs whose tasks left the queue since the last look. True if
/// `stop` was raised (then the tasks of `mine`, what this invocation
/// submitted, are cancelled).
pub fn follow(
    mut waiting: Vec<Task>,
    mut mine: Vec<Task>,
    stop: &AtomicBool,
    mut tick: impl FnMut(Vec<Entry>) -> Result<Ticked>,
) -> Result<bool> {
    loop {
        if stop.load(Ordering::Relaxed) {
            cancel(&mine);
            return Ok(true);
        }
        let jobs = dedup(waiting.iter().map(|(_, t)| job_of(t).to_string()).collect());
        let held = queue(&jobs)?;
        let mut ended = Vec::new();
        waiting.retain(|(e, task)| match held.get(task) {
            Some(state) => {
                show_state(e, task, state);
                true
            }
            None => {
                ended.push(e.clone());
                false
            }
        });
        let Ticked { submitted, others } = tick(ended)?;
        waiting.extend(submitted.iter().cloned());
        mine.extend(submitted);
        if waiting.is_empty() && !others {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Writes a queued run's Slurm state into its status message, so that the
/// dashboard shows why it waits.
pub fn show_state(e: &Entry, task: &str, state: &TaskState) {
    let run = RunDir::new(&e.dir);
    let Some(mut status) = run.status() else {
        return;
    };
    if status.state != State::Queued {
        return;
    }
    let why = match state.reason.as_str() {
        "None" | "" => String::new(),
        r => format!(" ({r})"),
    };
    let message = format!("Slurm {task} {}{why}", state.state);
    if status.message != message {
        status.message = message;
        let _ = dir::write_json(&run.file(dir::STATUS), &status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_read_as_task_states() {
        let q = parse_queue(
            "12_0 RUNNING None\n12_3 PENDING Priority\n13_1 PENDING QOSMaxJobsPerUserLimit\n",
        );
        assert_eq!(q.len(), 3);
        assert_eq!(
            q["12_3"],
            TaskState {
                state: "PENDING".into(),
                reason: "Priority".into()
            }
        );
        assert_eq!(q["12_0"].state, "RUNNING");
        assert_eq!(job_of("12_3"), "12");
    }

    #[test]
    fn control_characters_are_refused_and_the_rest_quoted() {
        for bad in ["a\nb", "a\rb", "a\tb", "x\u{1b}y"] {
            let e = check_path("--out", Path::new(bad)).unwrap_err().to_string();
            assert!(e.starts_with("--out: "), "{e}");
            assert!(e.contains("control character"), "{e}");
        }
        check_path("--out", Path::new("/w/it's $(touch x) `y` %j")).unwrap();
        assert_eq!(shell_quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
        assert_eq!(
            output_pattern(Path::new("/w/50%j")),
            "--output=/w/50%%j/slurm-%A_%a.out"
        );
    }
}
