//! `compare --launcher slurm`: the runs to train go to Slurm as one job array
//! whose task `i` runs `probdrop-tui train <run dir i>` (an index file in the
//! compare directory maps tasks to run directories). Each run's run.json
//! names its task (`<job>_<i>`); `squeue` says which are still queued or
//! running, so compare started again submits only the rest, and a stopped
//! compare cancels (`scancel`) what it submitted.

use std::collections::BTreeMap;
use std::path::Path;
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

/// Submits `entries` as one job array; records each task in its run.json and
/// returns them with their task ids.
pub fn submit(
    plugins: &Path,
    compare_dir: &Path,
    entries: Vec<Entry>,
    args: &SlurmArgs,
) -> Result<Vec<Task>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let stamp = dir::timestamp(dir::now() as u64);
    let index = compare_dir.join(format!("slurm-{stamp}.tasks"));
    let lines: Vec<String> = entries
        .iter()
        .map(|e| e.dir.display().to_string())
        .collect();
    crate::export::write_file(&index, |out| {
        out.write_all((lines.join("\n") + "\n").as_bytes())
    })?;
    let script = compare_dir.join(format!("slurm-{stamp}.sh"));
    let text = batch_script(plugins, compare_dir, &index)?;
    crate::export::write_file(&script, |out| out.write_all(text.as_bytes()))?;
    let job = sbatch(&script, entries.len(), args)?;
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

/// The array's script: task `i` trains the run on line `i + 1` of `index`.
fn batch_script(plugins: &Path, compare_dir: &Path, index: &Path) -> Result<String> {
    let exe = std::env::current_exe().context("finding this program")?;
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    Ok(format!(
        "#!/bin/sh\n\
         #SBATCH --job-name=probdrop-compare\n\
         #SBATCH --output={out}/slurm-%A_%a.out\n\
         run=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {index})\n\
         exec {exe} --plugins {plugins} train \"$run\" >> \"$run/trainer.log\" 2>&1\n",
        out = compare_dir.display(),
        index = quote(index),
        exe = quote(&exe),
        plugins = quote(&plugins.canonicalize().unwrap_or(plugins.to_path_buf())),
    ))
}

/// `sbatch --parsable --array=0-(n-1)[%K] …`; the job id.
fn sbatch(script: &Path, n: usize, args: &SlurmArgs) -> Result<String> {
    let mut array = format!("--array=0-{}", n - 1);
    if let Some(k) = args.array_limit {
        array.push_str(&format!("%{k}"));
    }
    let mut cmd = Command::new("sbatch");
    cmd.args(["--parsable", &array]);
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

/// Follows `waiting` with `squeue` until none is queued or running. `tick`
/// gets the runs whose tasks left the queue since the last look and says
/// whether anything else is still going. True if `stop` was raised (then the
/// tasks of `mine`, what this invocation submitted, are cancelled).
pub fn follow(
    mut waiting: Vec<Task>,
    mine: &[Task],
    stop: &AtomicBool,
    mut tick: impl FnMut(Vec<Entry>) -> Result<bool>,
) -> Result<bool> {
    loop {
        if stop.load(Ordering::Relaxed) {
            cancel(mine);
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
        let others = tick(ended)?;
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
}
