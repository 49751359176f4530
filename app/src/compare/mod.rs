//! `probdrop-tui compare`: every strategy × seed of an experiment, with a `none`
//! baseline, at most N trainers at a time and resumable; then the table of
//! `run::comparison`.
//!
//! A compare directory (`compare/<file stem>/`) is described in
//! `run::comparison`. The runs themselves live in the runs directory, where the
//! dashboard shows them like any other.

pub mod halving;
pub mod placement;
pub mod slurm;
pub mod starts;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::experiment::{self, Experiment, Machine, NONE};
use crate::export::{Format, comparison_figure, sweep_figure};
use crate::run::control::{self, Command as Ctl};
use crate::run::dir::{self, RunDir, State};
use crate::run::prepare::{create_run, load_for_runs};
use crate::run::trainer::Trainer;
use halving::Ladder;
use placement::{PLACED_DEVICE, Placement};

use crate::run::comparison::{
    Entry, MANIFEST, Manifest, RUNS_CSV, SweepCell, TABLE_CSV, TABLE_MD, markdown, outcome_of,
    write_reports,
};

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// The experiment file.
    pub file: PathBuf,
    /// Trainers at a time.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Spread the trainers over these GPUs, `all` or `cuda:0,cuda:1`: each
    /// trainer sees only its GPU (`CUDA_VISIBLE_DEVICES`), new ones go to the
    /// least busy.
    #[arg(long, conflicts_with_all = ["device", "jobs"])]
    pub devices: Option<String>,
    /// Trainers at a time on each GPU of --devices.
    #[arg(long, default_value_t = 1, requires = "devices")]
    pub jobs_per_device: usize,
    /// Where the trainers run: here, or as one Slurm job array (each task
    /// trains one run; the run directories must be on a filesystem the
    /// nodes share).
    #[arg(long, value_enum, default_value_t = Launcher::Local)]
    pub launcher: Launcher,
    #[command(flatten)]
    pub slurm: slurm::SlurmArgs,
    /// Seeds per strategy: the file's first K, continued upwards if it lists fewer.
    #[arg(long)]
    pub seeds: Option<usize>,
    /// Where run directories go.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// The compare directory [default: compare/<file stem>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run on this device instead of the file's.
    #[arg(long)]
    pub device: Option<String>,
    /// Train this many epochs instead of the file's.
    #[arg(long)]
    pub epochs: Option<usize>,
}

/// Where compare's trainers run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Launcher {
    /// Trainer processes on this machine, `--jobs` (or `--devices`) at a time.
    #[default]
    Local,
    /// One Slurm job array (`sbatch`), watched with `squeue`.
    Slurm,
}

/// The seeds to use: the file's first `k`, continued upwards from its largest.
pub fn pick_seeds(file_seeds: &[u64], k: Option<usize>) -> Vec<u64> {
    let Some(k) = k else {
        return file_seeds.to_vec();
    };
    let mut seeds: Vec<u64> = file_seeds.iter().copied().take(k).collect();
    let mut next = file_seeds.iter().copied().max().map_or(1, |m| m + 1);
    while seeds.len() < k {
        seeds.push(next);
        next += 1;
    }
    seeds
}

/// A trainer this invocation started.
struct Running {
    entry: Entry,
    trainer: Trainer,
    started: Instant,
    /// Whether its pause has been reported (a paused trainer waits for a fixed
    /// plugin and a resume, which compare cannot give it).
    paused: bool,
    /// Its place in `--devices`.
    gpu: Option<usize>,
}

/// `probdrop-tui compare`.
pub fn compare(plugins: &Path, machine: &dyn Machine, args: &CompareArgs) -> Result<()> {
    if args.jobs == 0 {
        bail!("--jobs: expected at least 1");
    }
    if args.seeds == Some(0) || args.jobs_per_device == 0 {
        bail!("--seeds and --jobs-per-device: expected at least 1");
    }
    if args.launcher == Launcher::Slurm && args.devices.is_some() {
        bail!(
            "--devices places trainers on this machine; with --launcher slurm ask for GPUs with --gres"
        );
    }
    let placement = placement_of(machine, args)?;
    let jobs = placement.as_ref().map_or(args.jobs, Placement::capacity);
    let (exp, source) = load_comparison(plugins, machine, args)?;
    let stem = args
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| exp.file.name.clone());
    let compare_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("compare").join(stem));
    if args.launcher == Launcher::Slurm {
        slurm::check_path("--out (or compare/<experiment file name>)", &compare_dir)?;
        slurm::check_path("--runs", &args.runs)?;
        slurm::check_path("--plugins", plugins)?;
    }
    let halving = exp.file.sweep.as_ref().and_then(|s| s.halving.clone());
    let mut manifest = open_manifest(&compare_dir, &exp, &source)?;
    let mut pool = Pool {
        placement,
        ..Pool::default()
    };
    let mut to_start = sort_runs(
        &exp,
        &source,
        &args.runs,
        &compare_dir,
        &mut manifest,
        &mut pool,
    )?;
    let ladder = halving.as_ref().map(|h| Ladder::new(h, &manifest));
    if let Some(l) = &ladder {
        to_start.retain(|e| !l.parked(&manifest, e));
    }
    eprintln!(
        "compare {}: {} strategies × {} seeds = {} runs; {} finished, {} still \
         training, {} to run, {} at a time (in {})",
        args.file.display(),
        manifest.strategies.len(),
        manifest.seeds.len(),
        exp.runs().len(),
        pool.finished,
        pool.attached.len(),
        to_start.len(),
        jobs,
        compare_dir.display()
    );
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    if args.launcher == Launcher::Slurm {
        let interrupted = on_slurm(
            (plugins, &compare_dir),
            &mut manifest,
            ladder.as_ref(),
            &mut pool,
            to_start,
            args,
            &stop,
        )?;
        return finish(&compare_dir, &manifest, interrupted, &pool.failed);
    }
    let mut queue: VecDeque<Entry> = to_start.into();
    let interrupted = loop {
        pool.collect_ended(&compare_dir, &manifest, ladder.as_ref())?;
        if stop.load(Ordering::Relaxed) {
            pool.stop_all()?;
            break true;
        }
        if let Some(l) = &ladder {
            // Their trainers stop at their rungs by themselves.
            queue.extend(decide_and_save(l, &mut manifest, &compare_dir)?);
        }
        let rung = |e: &Entry| ladder.as_ref().and_then(|l| l.next_rung(&manifest, e));
        let mut next = std::iter::from_fn(|| queue.pop_front().map(|e| (rung(&e), e)));
        pool.fill(plugins, &mut next, jobs)?;
        if pool.running.is_empty() && pool.attached.is_empty() && queue.is_empty() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    finish(&compare_dir, &manifest, interrupted, &pool.failed)
}

/// Decides the arms whose cells all stand at their rung; the manifest and
/// the reports written again when anything was decided; the runs that go on.
fn decide_and_save(
    ladder: &Ladder,
    manifest: &mut Manifest,
    compare_dir: &Path,
) -> Result<Vec<Entry>> {
    let (cleared, halted) = (manifest.cleared.clone(), manifest.halted.len());
    let going = ladder.decide(manifest);
    if manifest.cleared != cleared || manifest.halted.len() != halted {
        manifest.save(compare_dir)?;
        write_reports(compare_dir, manifest)?;
    }
    Ok(going)
}

/// Submits what is neither finished, queued nor running as job arrays (one
/// per halving rung the runs stop at), and waits for every task (and for
/// trainers an earlier compare left here), submitting the survivors of each
/// halving decision as it is made; true if interrupted (what this invocation
/// submitted is cancelled).
fn on_slurm(
    (plugins, compare_dir): (&Path, &Path),
    manifest: &mut Manifest,
    ladder: Option<&Ladder>,
    pool: &mut Pool,
    to_start: Vec<Entry>,
    args: &CompareArgs,
    stop: &AtomicBool,
) -> Result<bool> {
    let (mut waiting, mut submit) = slurm::split_queued(to_start)?;
    if !waiting.is_empty() {
        eprintln!("{} run(s) still queued or running in Slurm", waiting.len());
    }
    if let Some(l) = ladder {
        submit.extend(decide_and_save(l, manifest, compare_dir)?);
    }
    let mine = submit_by_rung((plugins, compare_dir), manifest, ladder, submit, args)?;
    waiting.extend(mine.iter().cloned());
    slurm::follow(waiting, mine, stop, |ended| {
        pool.collect_ended(compare_dir, manifest, ladder)?;
        for e in &ended {
            if said_at_rung(ladder, manifest, e) {
                continue;
            }
            let d = RunDir::new(&e.dir);
            report_end(&d, e, Duration::ZERO, &mut pool.finished, &mut pool.failed);
        }
        if !ended.is_empty() {
            write_reports(compare_dir, manifest)?;
        }
        let going = match ladder {
            Some(l) => decide_and_save(l, manifest, compare_dir)?,
            None => Vec::new(),
        };
        Ok(slurm::Ticked {
            submitted: submit_by_rung((plugins, compare_dir), manifest, ladder, going, args)?,
            others: !pool.attached.is_empty(),
        })
    })
}

/// Whether `e`'s run ended where halving parked it (at its rung, or its
/// cell halted), not for good; says so.
fn said_at_rung(ladder: Option<&Ladder>, manifest: &Manifest, e: &Entry) -> bool {
    if !ladder.is_some_and(|l| l.parked(manifest, e)) {
        return false;
    }
    let step = RunDir::new(&e.dir).status().map_or(0, |s| s.step);
    eprintln!("{} seed {}: at its rung (step {step})", e.label, e.seed);
    true
}

/// `entries` submitted as one array per rung they stop at next (one for
/// those that train to the end).
fn submit_by_rung(
    (plugins, compare_dir): (&Path, &Path),
    manifest: &Manifest,
    ladder: Option<&Ladder>,
    entries: Vec<Entry>,
    args: &CompareArgs,
) -> Result<Vec<slurm::Task>> {
    let mut by_rung: Vec<(Option<f64>, Vec<Entry>)> = Vec::new();
    for e in entries {
        let rung = ladder.and_then(|l| l.next_rung(manifest, &e));
        match by_rung.iter_mut().find(|(r, _)| *r == rung) {
            Some((_, group)) => group.push(e),
            None => by_rung.push((rung, vec![e])),
        }
    }
    let mut tasks = Vec::new();
    for (rung, group) in by_rung {
        tasks.extend(slurm::submit(
            plugins,
            compare_dir,
            group,
            &args.slurm,
            rung,
        )?);
    }
    Ok(tasks)
}

/// Where `--devices` puts trainers, if it was given.
fn placement_of(machine: &dyn Machine, args: &CompareArgs) -> Result<Option<Placement>> {
    let Some(spec) = &args.devices else {
        return Ok(None);
    };
    let inherited = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let gpus = placement::parse_devices(spec, &machine.devices(), inherited.as_deref())?;
    Ok(Some(Placement::new(gpus, args.jobs_per_device)))
}

/// The experiment with the baseline added and the seeds chosen, and its source.
fn load_comparison(
    plugins: &Path,
    machine: &dyn Machine,
    args: &CompareArgs,
) -> Result<(Experiment, PathBuf)> {
    let loaded = crate::plugins::load(plugins, &mut crate::plugins::report_build_line)
        .with_context(|| format!("cannot read the plugins directory {}", plugins.display()))?;
    // A placed trainer sees one GPU, its cuda:0.
    let placed = PLACED_DEVICE.to_string();
    let (mut exp, source) = load_for_runs(
        &loaded.catalog,
        machine,
        &args.file,
        args.devices
            .as_ref()
            .map_or(args.device.as_deref(), |_| Some(placed.as_str())),
        args.epochs,
    )?;
    // The baseline is always there: first, whether the file lists it or not.
    if !exp.strategies().iter().any(|s| s.plugin == NONE) {
        exp.file.strategy.insert(0, experiment::none_strategy());
    }
    exp.file.seeds = pick_seeds(&exp.file.seeds, args.seeds);
    Ok((exp, source))
}

/// The comparison's manifest, as an earlier invocation left it or new, with
/// this invocation's strategies and seeds; refused, before anything is
/// written, if the directory holds a comparison of another file or runs that
/// started from other than what the file asks for now.
fn open_manifest(compare_dir: &Path, exp: &Experiment, source: &Path) -> Result<Manifest> {
    let labels: Vec<String> = exp
        .strategies()
        .iter()
        .map(experiment::strategy_label)
        .collect();
    let baseline = exp
        .strategies()
        .iter()
        .find(|s| s.plugin == NONE)
        .map(experiment::strategy_label)
        .unwrap_or_else(|| NONE.to_string());
    let mut manifest = match Manifest::load(compare_dir) {
        Ok(m) if m.source != source => bail!(
            "{} holds a comparison of {}, not {}; choose another --out",
            compare_dir.display(),
            m.source.display(),
            source.display()
        ),
        Ok(m) => {
            starts::check(exp, &m, source, compare_dir)?;
            m
        }
        Err(_) => Manifest {
            experiment: exp.file.name.clone(),
            source: source.to_path_buf(),
            created: dir::timestamp(dir::now() as u64),
            baseline: baseline.clone(),
            strategies: Vec::new(),
            seeds: Vec::new(),
            runs: Vec::new(),
            cells: Default::default(),
            halted: Default::default(),
            cleared: Default::default(),
        },
    };
    manifest.baseline = baseline;
    manifest.strategies = labels;
    manifest.cells = sweep_cells(exp);
    manifest.seeds = exp.file.seeds.clone();
    manifest
        .save(compare_dir)
        .with_context(|| format!("writing {}", compare_dir.join(MANIFEST).display()))?;
    Ok(manifest)
}

/// The sweep cells among `exp`'s arms, by label, as the manifest keeps them.
fn sweep_cells(exp: &Experiment) -> BTreeMap<String, SweepCell> {
    let file_arms = exp.file.strategy.iter().flat_map(|s| {
        let seed = experiment::sweep_seed(&exp.file);
        let arm = experiment::strategy_label(s);
        experiment::sweep::expand(s, seed)
            .unwrap_or_default()
            .into_iter()
            .filter_map(move |(cell_arm, cell)| Some((cell_arm, cell?, arm.clone())))
    });
    file_arms
        .map(|(s, cell, arm)| {
            let values = cell
                .values
                .iter()
                .map(|(k, v)| (k.clone(), experiment::sweep::show(v)))
                .collect();
            (experiment::strategy_label(&s), SweepCell { arm, values })
        })
        .collect()
}

/// What each strategy × seed needs: nothing (finished, counted in the pool),
/// waiting for a trainer an earlier compare started (attached to the pool), or a
/// trainer (returned, its run directory created if it had none).
fn sort_runs(
    exp: &Experiment,
    source: &Path,
    runs_dir: &Path,
    compare_dir: &Path,
    manifest: &mut Manifest,
    pool: &mut Pool,
) -> Result<Vec<Entry>> {
    let mut to_start = Vec::new();
    let created = dir::timestamp(dir::now() as u64);
    for run in exp.runs() {
        if let Some(e) = manifest.reusable(&run.label, run.seed).cloned() {
            let d = RunDir::new(&e.dir);
            match d.status() {
                Some(s) if s.state == State::Done || s.state == State::Diverged => {
                    pool.finished += 1
                }
                Some(s) if !s.state.is_final() && d.trainer_alive(&s) => pool.attach(e, &s.device),
                _ => to_start.push(e),
            }
            continue;
        }
        let d = create_run(exp, source, &run, runs_dir, &created)?;
        // Absolute: the dashboard reads the manifest from wherever it runs.
        let e = Entry {
            label: run.label.clone(),
            seed: run.seed,
            dir: d.path.canonicalize().unwrap_or(d.path.clone()),
        };
        manifest
            .runs
            .retain(|x| !(x.label == e.label && x.seed == e.seed));
        manifest.runs.push(e.clone());
        manifest.save(compare_dir)?;
        to_start.push(e);
    }
    Ok(to_start)
}

/// The trainers a comparison waits for, and how its runs ended.
#[derive(Default)]
struct Pool {
    /// Trainers this invocation started.
    running: Vec<Running>,
    /// Runs whose trainers an earlier invocation started, with the GPU of
    /// `--devices` each holds (by its status).
    attached: Vec<(Entry, Option<usize>)>,
    finished: usize,
    failed: Vec<String>,
    placement: Option<Placement>,
}

impl Pool {
    /// Waits for a run an earlier invocation started, counted on the GPU
    /// `device` its status names.
    fn attach(&mut self, e: Entry, device: &str) {
        let gpu = self.placement.as_mut().and_then(|p| p.hold(device));
        self.attached.push((e, gpu));
    }

    fn release(&mut self, gpu: Option<usize>) {
        if let (Some(p), Some(i)) = (&mut self.placement, gpu) {
            p.release(i);
        }
    }

    /// Reports the runs that ended since the last look (rewriting the reports
    /// after each one this invocation started) and the pauses.
    fn collect_ended(
        &mut self,
        compare_dir: &Path,
        manifest: &Manifest,
        ladder: Option<&Ladder>,
    ) -> Result<()> {
        let mut i = 0;
        while i < self.running.len() {
            let Some(exit) = self.running[i].trainer.exited()? else {
                report_pause(&mut self.running[i]);
                i += 1;
                continue;
            };
            // A resumed run can finish between two looks: it went again all the same.
            report_pause(&mut self.running[i]);
            let r = self.running.remove(i);
            self.release(r.gpu);
            let _ = r.trainer.record(exit);
            if said_at_rung(ladder, manifest, &r.entry) {
                continue;
            }
            let d = RunDir::new(&r.entry.dir);
            let took = r.started.elapsed();
            report_end(&d, &r.entry, took, &mut self.finished, &mut self.failed);
            write_reports(compare_dir, manifest)?;
        }
        let (finished, failed) = (&mut self.finished, &mut self.failed);
        let mut ended = Vec::new();
        self.attached.retain(|(e, gpu)| {
            let d = RunDir::new(&e.dir);
            let going = d
                .status()
                .is_some_and(|s| !s.state.is_final() && d.trainer_alive(&s));
            if !going {
                report_end(&d, e, Duration::ZERO, finished, failed);
                ended.push(*gpu);
            }
            going
        });
        for gpu in ended {
            self.release(gpu);
        }
        Ok(())
    }

    /// Starts trainers from `queue` until `jobs` are going, each to stop at
    /// its halving rung if it has one.
    fn fill(
        &mut self,
        plugins: &Path,
        queue: &mut impl Iterator<Item = (Option<f64>, Entry)>,
        jobs: usize,
    ) -> Result<()> {
        while self.running.len() + self.attached.len() < jobs {
            let gpu = match &mut self.placement {
                Some(p) => match p.take() {
                    Some(i) => Some(i),
                    None => break,
                },
                None => None,
            };
            let Some((rung, entry)) = queue.next() else {
                self.release(gpu);
                break;
            };
            let trainer = self.start(plugins, &entry, gpu, rung)?;
            self.running.push(Running {
                entry,
                trainer,
                started: Instant::now(),
                paused: false,
                gpu,
            });
        }
        Ok(())
    }

    /// Starts the trainer of `entry`, on GPU `gpu` of `--devices` (named in
    /// its status, so that the dashboard shows where it runs), to stop at
    /// fraction `rung` of training if given.
    fn start(
        &self,
        plugins: &Path,
        entry: &Entry,
        gpu: Option<usize>,
        rung: Option<f64>,
    ) -> Result<Trainer> {
        let run = RunDir::new(&entry.dir);
        let placed = gpu.and_then(|i| Some(&self.placement.as_ref()?.gpus[i]));
        if let (Some(g), Some(mut status)) = (placed, run.status()) {
            status.device = g.name.clone();
            dir::write_json(&run.file(dir::STATUS), &status)?;
        }
        let visible = placed.map(|g| g.visible.as_str());
        let trainer = Trainer::start_seeing(plugins, &run, visible, rung)
            .with_context(|| format!("starting a trainer for {}", entry.dir.display()))?;
        let on = placed.map_or(String::new(), |g| format!(" on {}", g.name));
        eprintln!(
            "started {} seed {}{on} ({})",
            entry.label,
            entry.seed,
            entry.dir.display()
        );
        Ok(trainer)
    }

    /// Asks the trainers this invocation started to stop, and waits for them.
    fn stop_all(&mut self) -> Result<()> {
        eprintln!(
            "interrupted: stopping {} trainer(s) at their next step",
            self.running.len()
        );
        for r in &self.running {
            let _ = control::send(&RunDir::new(&r.entry.dir).file(dir::SOCKET), &Ctl::Stop);
        }
        for r in &mut self.running {
            let exit = r.trainer.wait()?;
            let _ = r.trainer.record(exit);
        }
        Ok(())
    }
}

/// Says when a running trainer pauses (compare cannot resume it) or goes again.
fn report_pause(r: &mut Running) {
    let status = RunDir::new(&r.entry.dir).status();
    let paused = status.as_ref().is_some_and(|s| s.state == State::Paused);
    if paused && !r.paused {
        let why = status.map(|s| s.message).unwrap_or_default();
        eprintln!(
            "{} seed {} paused, and compare waits for it: {why} (resume it from the dashboard, or Ctrl-C to stop here)",
            r.entry.label, r.entry.seed
        );
    } else if !paused && r.paused {
        eprintln!("{} seed {} going again", r.entry.label, r.entry.seed);
    }
    r.paused = paused;
}

/// Writes the reports, prints the table, and fails if anything did not finish.
fn finish(
    compare_dir: &Path,
    manifest: &Manifest,
    interrupted: bool,
    failed: &[String],
) -> Result<()> {
    let t = write_reports(compare_dir, manifest)?;
    println!("{}", markdown(&t));
    let mut figures = Vec::new();
    for format in [Format::Png, Format::Svg] {
        figures.extend(comparison_figure(compare_dir, manifest, format)?);
        figures.extend(sweep_figure(compare_dir, &t, format)?);
    }
    println!(
        "written: {}, {}, {}, {}",
        compare_dir.join(TABLE_MD).display(),
        compare_dir.join(TABLE_CSV).display(),
        compare_dir.join(RUNS_CSV).display(),
        figures
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if interrupted {
        bail!("interrupted; run the same command again to continue where it stopped");
    }
    if !failed.is_empty() {
        bail!(
            "{} run(s) did not finish: {}; run the same command again to resume them",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

fn report_end(
    d: &RunDir,
    e: &Entry,
    took: Duration,
    finished: &mut usize,
    failed: &mut Vec<String>,
) {
    let o = outcome_of(d);
    let status = d.status();
    let took = if took.is_zero() {
        String::new()
    } else {
        format!(" in {:.0} s", took.as_secs_f64())
    };
    match o.state {
        Some(State::Done) | Some(State::Diverged) => {
            *finished += 1;
            eprintln!(
                "{} seed {}: {}{took}, validation accuracy {} (best {})",
                e.label,
                e.seed,
                format!("{:?}", o.state.unwrap()).to_lowercase(),
                o.final_acc.map_or("–".into(), |a| format!("{a:.4}")),
                o.best_acc.map_or("–".into(), |a| format!("{a:.4}")),
            );
        }
        other => {
            let why = status.map(|s| s.message).unwrap_or_default();
            eprintln!(
                "{} seed {}: {}{took}: {why}",
                e.label,
                e.seed,
                other.map_or("no status".into(), |s| format!("{s:?}").to_lowercase())
            );
            failed.push(format!("{} seed {}", e.label, e.seed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_the_files_first_k_then_upwards() {
        assert_eq!(pick_seeds(&[1, 2, 3], None), [1, 2, 3]);
        assert_eq!(pick_seeds(&[1, 2, 3], Some(2)), [1, 2]);
        assert_eq!(pick_seeds(&[5, 2], Some(4)), [5, 2, 6, 7]);
    }
}
