//! One run's training as a `Session`: what the loop changes lives in its
//! fields, and each phase is a short method: `boundary` (control commands,
//! plugin reloads, saved changes of the experiment), `step` (forward, backward,
//! update), `strategy_failed`, `read` (the device's sums, and going back when a
//! loss was not finite), `log`, `evaluate`, `checkpoint`; `train` only orders
//! them, as burn-train's Learner does its epoch.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::tensor::{Device, Tensor};

use crate::experiment::{self, BackendChoice, Catalog, ExperimentFile, NONE, RunSpec};
use crate::plugins::Library;
use crate::plugins::watch::{ReloadEvent, SwapOutcome, Watcher};
use crate::run::control::{Command, ControlServer};
use crate::run::data_files::DataRecord;
use crate::run::dir::metric::{self, ACC, LOSS, LR, P, SAMPLES_PER_S, STEP_TIME, TOP5, TRAIN, VAL};
use crate::run::dir::{self, CheckpointInfo, EventKind, JsonLog, RunDir, SnapshotLine, State};
use crate::run::provenance::{self, LibraryUse, Provenance, SourcesRecord, Start};
use crate::run::replay::Replay;
use crate::run::store::Store;
use crate::train::data::EpochItems;
use crate::train::device;
use crate::train::models::Model;
use crate::train::optim::{Rule, RunOptimizer, Stepping};
use crate::train::schedule::{learning_rate, step_at_fraction};
use crate::train::watchdog::Watchdog;

use super::checkpoint::save_checkpoint;
use super::config::{Against, apply_config, file_stamp, read_source};
use super::reads::{Good, NonFinite, Pending, Totals, correct_top1, evaluate};
use super::slots::{
    FINITE_CHECK_EVERY, Live, SNAPSHOT_SAMPLES, StepSlots, all_finite, build_slots,
};
use super::system::SystemLog;
use super::task::{Batch, Task};
use super::writer::{Writer, metric};
use super::{Progress, Summary, TrainOptions};

pub(super) fn run(
    run_dir: &RunDir,
    info: &dir::RunInfo,
    resolved: ExperimentFile,
    resume: Option<CheckpointInfo>,
    opts: &TrainOptions,
    writer: &mut Writer,
    started: Instant,
) -> Result<Summary> {
    let from = resume.as_ref().map_or(0, |ck| ck.step);
    let mut session = Session::open(run_dir, info, resolved, opts, writer, from)?;
    session.resume_or_start(resume)?;
    session.train()?;
    session.finish(started)
}

/// The strategy's library versions while the run trains.
struct Versions {
    /// In use: replaced when a reload is taken.
    current: Option<Library>,
    /// Before the last reload, for going back when the new one fails.
    previous: Option<Library>,
    /// The version string written with each metric.
    label: String,
}

/// The experiment file as seen at step boundaries, and the changes waiting
/// to be validated.
struct SourceWatch {
    stamp: Option<(std::time::SystemTime, u64)>,
    last_check: Instant,
    pending: Vec<Result<String, String>>,
}

/// What the run is doing besides training, decided at step boundaries.
#[derive(Default)]
struct Flags {
    paused: bool,
    stop_requested: bool,
    /// The step at which the loss (or the validation loss) became non-finite.
    diverged: Option<u64>,
    /// Why the run stops, when not by a signal or a request.
    stop_reason: Option<String>,
}

/// One step's schedule: what it trains with and what it does after.
struct Plan {
    epoch: u64,
    lr: f64,
    p: f64,
    log: bool,
    snapshot: bool,
    evaluate: bool,
    checkpoint: bool,
    last: bool,
}

/// How the loop goes on after a step.
enum Flow {
    Next,
    /// The strategy failed on this batch: nothing was learnt; try it again.
    Retry,
    /// Back to an earlier step (`step` already set): new batches from there.
    Rewind,
    End,
}

/// What the forward pass left: the logits (or why the strategy failed), and
/// what the slots collected.
struct Forward {
    logits: Result<Tensor<2>, String>,
    masks: Vec<(String, Tensor<1>)>,
    collected: Collected,
}

/// What the slots collected for the logs.
struct Collected {
    /// Each slot's dropped fraction, on the device until the step's read.
    dropped: std::collections::BTreeMap<String, Tensor<1>>,
    snapshots: Vec<SnapshotLine>,
}

struct Session<'a> {
    run_dir: &'a RunDir,
    info: &'a dir::RunInfo,
    opts: &'a TrainOptions,
    writer: &'a mut Writer,
    resolved: ExperimentFile,
    backend: BackendChoice,
    device: Device,
    task: Task,
    classes: usize,
    steps_per_epoch: u64,
    total_steps: u64,
    versions: Versions,
    catalog: Catalog,
    live: Live,
    run_spec: RunSpec,
    model: Model,
    optim: RunOptimizer,
    loss_fn: CrossEntropyLoss,
    step: u64,
    pending: Pending,
    /// Where a non-finite loss sends the run back to.
    good: Good,
    /// Steps up to this one are checked one at a time, before their update:
    /// after a window of steps whose losses were not all finite.
    recheck_through: u64,
    best_val_acc: Option<f64>,
    final_val_acc: Option<f64>,
    last_loss: Option<f64>,
    control: ControlServer,
    watchdog: Watchdog,
    watcher: Option<Watcher>,
    source: SourceWatch,
    progress: Option<indicatif::ProgressBar>,
    flags: Flags,
    /// The timeline this run follows instead of its experiment file and the
    /// plugins directory, when it replays another (`reproduce`).
    replay: Option<Replay>,
    /// The trainer's own use of the machine, logged as `system/…`.
    system: SystemLog,
}

/// The strategy's library (None for "none") and every library's catalog.
fn open_plugins(opts: &TrainOptions, plugin: &str) -> Result<(Option<Library>, Catalog)> {
    let loaded = crate::plugins::load(&opts.plugins_dir, &mut crate::plugins::report_build_line)
        .with_context(|| {
            format!(
                "reading the plugins directory {}",
                opts.plugins_dir.display()
            )
        })?;
    if plugin == NONE {
        return Ok((None, loaded.catalog));
    }
    let library = loaded
        .libraries()
        .find(|l| l.info.name == plugin)
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "strategy \"{plugin}\" not found in {}",
                opts.plugins_dir.display()
            )
        })?;
    Ok((Some(library), loaded.catalog))
}

/// The library a replay starts with (from the run store) and the catalog of
/// every library it will use: the plugins directory may hold other code now.
fn open_replayed(replay: &Replay, step: u64) -> Result<(Option<Library>, Catalog)> {
    let mut found = Vec::new();
    for lib in &replay.libraries {
        let library = Library::load(&lib.path)
            .map_err(|e| anyhow!("loading {} from the run store: {e}", lib.path.display()))?;
        found.push(crate::plugins::Found {
            id: lib.name.clone(),
            source: crate::plugins::Source::Prebuilt,
            origin: lib.path.clone(),
            library_path: Some(lib.path.clone()),
            outcome: Ok(library),
        });
    }
    let first = replay.library_after(step).and_then(|at| {
        found
            .iter()
            .filter_map(|f| f.outcome.as_ref().ok())
            .find(|l| l.sha256 == at.sha256)
            .cloned()
    });
    // One catalog entry per name: the library in force at the start.
    found.retain(|f| match (&f.outcome, &first) {
        (Ok(l), Some(first)) => l.info.name != first.info.name || l.sha256 == first.sha256,
        _ => true,
    });
    found.dedup_by(|a, b| a.id == b.id);
    Ok((first, crate::plugins::catalog_of(&found)))
}

/// Steps per epoch and in all, as the experiment asks.
fn step_counts(resolved: &ExperimentFile, task: &Task) -> Result<(u64, u64)> {
    let steps_per_epoch = task.train_len().div_ceil(resolved.train.batch_size) as u64;
    let mut total_steps = (resolved.train.epochs as u64)
        .checked_mul(steps_per_epoch)
        .ok_or_else(|| {
            anyhow!(
                "{} epochs of {steps_per_epoch} steps overflow",
                resolved.train.epochs
            )
        })?;
    if let Some(max) = resolved.train.max_steps {
        total_steps = total_steps.min(max as u64);
    }
    Ok((steps_per_epoch, total_steps))
}

/// A stop by the socket or a signal (train::signals): taken at the next step boundary (a
/// checkpoint is saved), or by the watchdog when the step in progress hangs.
fn open_control(run_dir: &RunDir, resolved: &ExperimentFile) -> Result<(ControlServer, Watchdog)> {
    let stop = crate::train::signals::stop_flag();
    let control = ControlServer::start(&run_dir.file(dir::SOCKET), stop)
        .context("opening the control socket")?;
    let watchdog = Watchdog::start(
        run_dir,
        resolved.train.step_timeout.map(Duration::from_secs_f64),
        crate::train::limits::Limits::of(&resolved.train),
        control.stop.clone(),
    );
    Ok((control, watchdog))
}

fn progress_bar(mode: Progress, total_steps: u64) -> Option<indicatif::ProgressBar> {
    if mode != Progress::Bar {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total_steps);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            // The message takes what the terminal has left and is cut there:
            // a redrawn line that wraps scrolls the screen at every step.
            "{spinner} {elapsed_precise} {bar:20} {pos}/{len} eta {eta} {wide_msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // Draws are rate-limited: a message set just after a draw (a pause, which
    // stops the steps that would redraw) would otherwise never be shown.
    bar.enable_steady_tick(Duration::from_millis(250));
    Some(bar)
}

/// How provenance.json names `library`, in use after `after_step`.
fn library_use(after_step: u64, library: &Library) -> LibraryUse {
    LibraryUse {
        after_step,
        name: library.info.name.clone(),
        version: library.info.version.clone(),
        interface: library.interface.clone(),
        path: library.path.clone(),
        sha256: library.sha256.clone(),
        sources: library.built_from.as_deref().map(SourcesRecord::of),
    }
}

/// `library` in the run store (after provenance.json names it, so that a
/// store cleanup never finds it unreferenced). A failure is said in the
/// trainer's log and the run goes on: only its replay would miss the code.
fn keep_in_store(run_dir: &RunDir, library: &Library) {
    if let Err(e) = Store::of_run(&run_dir.path).keep(library) {
        eprintln!(
            "could not keep {} {} ({}) in the run store: {e}",
            library.info.name,
            library.info.version,
            provenance::short(&library.sha256)
        );
    }
}

/// The run's device by its name and backend (cuDNN set up on CUDA).
fn open_device(
    resolved: &ExperimentFile,
) -> Result<(experiment::DeviceName, BackendChoice, Device)> {
    let name = experiment::parse_device(&resolved.device)?;
    let backend = experiment::backend_for(name, resolved.backend)?;
    let device = device::open(name, backend)?;
    if matches!(name, experiment::DeviceName::Cuda(_)) {
        device::configure_cudnn(resolved.cudnn_benchmark, resolved.deterministic);
    }
    Ok((name, backend, device))
}

/// The run's data, its input normalisation written beside it (`input.json`:
/// what an exported model needs to be fed as in training).
fn load_task(resolved: &ExperimentFile, run_dir: &RunDir) -> Result<Task> {
    let task = Task::load(resolved, run_dir)?;
    if let Some(input) = task.image_input() {
        run_dir
            .write_input(input)
            .context("writing the run's input.json")?;
    }
    Ok(task)
}

impl<'a> Session<'a> {
    /// Plugins, device, data, model and optimiser (seeded), and the control
    /// channels.
    fn open(
        run_dir: &'a RunDir,
        info: &'a dir::RunInfo,
        resolved: ExperimentFile,
        opts: &'a TrainOptions,
        writer: &'a mut Writer,
        from: u64,
    ) -> Result<Self> {
        let strategy = resolved
            .strategy
            .first()
            .cloned()
            .unwrap_or_else(experiment::none_strategy);
        let replay = Replay::of_run(run_dir);
        let (library, catalog) = match &replay {
            Some(r) => open_replayed(r, from)?,
            None => open_plugins(opts, &strategy.plugin)?,
        };
        let slots = build_slots(&resolved, &strategy, library.as_ref()).map_err(|e| anyhow!(e))?;
        let label = library
            .as_ref()
            .map(|l| l.info.version.clone())
            .unwrap_or_default();
        writer.status.plugin_version = label.clone();

        let (name, backend, device) = open_device(&resolved)?;
        let train_device = device.clone().autodiff();
        let task = load_task(&resolved, run_dir)?;
        let classes = task.classes();
        let (steps_per_epoch, total_steps) = step_counts(&resolved, &task)?;
        writer.status.total_steps = total_steps;

        device.seed(info.seed);
        let model = Model::build(&resolved.model, task.input(), classes, &train_device)
            .map_err(|e| anyhow!(e))?;
        let optim = RunOptimizer::new(Rule::of(&resolved.optimizer), Stepping::best_for(backend));
        let (control, watchdog) = open_control(run_dir, &resolved)?;
        let watcher = library.as_ref().filter(|_| replay.is_none()).and_then(|_| {
            let trial = crate::plugins::trial::Trial::this_binary().ok()?;
            Watcher::start(&opts.plugins_dir, trial).ok()
        });
        Ok(Session {
            run_dir,
            info,
            opts,
            writer,
            backend,
            device,
            task,
            classes,
            steps_per_epoch,
            total_steps,
            versions: Versions {
                current: library,
                previous: None,
                label,
            },
            catalog,
            live: Live {
                resolved: resolved.clone(),
                strategy,
                slots,
            },
            run_spec: RunSpec {
                label: info.label.clone(),
                strategy_index: info.strategy_index,
                seed: info.seed,
            },
            good: Good {
                model: model.clone(),
                optim: optim.clone(),
                step: 0,
            },
            model,
            optim,
            loss_fn: CrossEntropyLossConfig::new().init(&train_device),
            step: 0,
            pending: Pending::default(),
            recheck_through: 0,
            best_val_acc: None,
            final_val_acc: None,
            last_loss: None,
            control,
            watchdog,
            watcher,
            source: SourceWatch {
                stamp: file_stamp(&info.source),
                last_check: Instant::now(),
                pending: Vec::new(),
            },
            progress: progress_bar(opts.progress, total_steps),
            flags: Flags::default(),
            resolved,
            replay,
            system: SystemLog::open(name),
        })
    }

    /// From the checkpoint if there is one (its logs cut back to it), else
    /// from step 0 (logs of an attempt that never saved one cleared).
    fn resume_or_start(&mut self, resume: Option<CheckpointInfo>) -> Result<()> {
        let cut_at = resume.as_ref().map_or(0, |ck| ck.step);
        if let Some(ck) = &resume {
            self.load_checkpoint(ck)?;
        }
        // Steps logged after the point we continue from are trained again:
        // their lines go, so none is logged twice.
        self.run_dir.truncate_log_after(dir::METRICS, cut_at)?;
        self.run_dir.truncate_log_after(dir::SNAPSHOTS, cut_at)?;
        self.writer.metrics = JsonLog::open(&self.run_dir.file(dir::METRICS))?;
        self.writer.snapshots = JsonLog::open(&self.run_dir.file(dir::SNAPSHOTS))?;
        if self.resolved.log.tensorboard {
            self.writer.open_tensorboard()?;
        }
        match resume {
            Some(_) => self.writer.event(
                self.step,
                EventKind::Resumed,
                format!("resumed from the checkpoint after step {}", self.step),
            )?,
            None => {
                let message = self.start_message();
                self.writer.event(0, EventKind::Started, message)?;
            }
        }
        self.record_start()?;
        self.good = Good {
            model: self.model.clone(),
            optim: self.optim.clone(),
            step: self.step,
        };
        if let Some(bar) = &self.progress {
            bar.set_position(self.step);
        }
        self.writer.status.best_val_acc = self.best_val_acc;
        self.writer.status.step = self.step;
        self.writer.status.state = State::Training;
        self.writer.status()
    }

    fn load_checkpoint(&mut self, ck: &CheckpointInfo) -> Result<()> {
        let dir = self.run_dir.file(dir::CHECKPOINT_DIR);
        self.model = self
            .model
            .clone()
            .try_load_file(dir.join(&ck.model))
            .map_err(|e| anyhow!("loading the model checkpoint: {e:?}"))?;
        self.optim = self
            .optim
            .clone()
            .load(&dir.join(&ck.optimizer))
            .map_err(|e| anyhow!("loading the optimiser checkpoint: {e}"))?;
        self.step = ck.step;
        self.best_val_acc = ck.best_val_acc;
        Ok(())
    }

    /// This trainer, and the library it starts with, in provenance.json.
    fn record_start(&self) -> Result<()> {
        let mut record = Provenance::of(self.run_dir);
        let backend = format!("{:?}", self.backend);
        let start = Start::here(self.step, &backend, &self.resolved.device);
        record
            .add_start(self.run_dir, start)
            .context("writing the checkout's diff into the run directory")?;
        if record.data.is_none() {
            let cache = Store::of_run(&self.run_dir.path).dir;
            record.data = Some(DataRecord::of(&self.resolved.data, self.info.seed, &cache));
        }
        if let Some(lib) = &self.versions.current {
            record.use_library(library_use(self.step, lib));
        }
        record
            .write(self.run_dir)
            .context("writing the run's provenance.json")?;
        if let Some(lib) = &self.versions.current {
            keep_in_store(self.run_dir, lib);
        }
        Ok(())
    }

    /// `library` in use from now on, in provenance.json and the run store.
    fn record_library(&self, after_step: u64, library: &Library) -> Result<()> {
        Provenance::record_library(self.run_dir, library_use(after_step, library))
            .context("writing the run's provenance.json")?;
        keep_in_store(self.run_dir, library);
        Ok(())
    }

    fn start_message(&self) -> String {
        let what = match &self.versions.current {
            Some(lib) => format!("{} {}", lib.info.name, lib.info.version),
            None => "no extra dropout".into(),
        };
        format!(
            "{} on {} ({:?}), {what}, seed {}, {} steps",
            self.info.experiment,
            self.resolved.device,
            self.backend,
            self.info.seed,
            self.total_steps
        )
    }

    /// A change of state (paused, resumed) on the progress bar, or as a line.
    fn show_state(&self, text: &str) {
        match &self.progress {
            Some(bar) => bar.set_message(text.to_string()),
            None => self.say(&format!("step {}: {text}", self.step)),
        }
    }

    fn say(&self, text: &str) {
        match (&self.progress, self.opts.progress) {
            (Some(bar), _) => bar.println(text),
            (None, Progress::Lines) => eprintln!("{text}"),
            _ => {}
        }
    }

    /// Epochs of batches in the seeded order, from the current step, until
    /// the last step, a stop or a divergence.
    fn train(&mut self) -> Result<()> {
        'epochs: while self.step < self.total_steps {
            let epoch = self.step / self.steps_per_epoch;
            let batch_size = self.resolved.train.batch_size;
            let position = (self.step % self.steps_per_epoch) as usize * batch_size;
            let items =
                EpochItems::shuffled(self.task.train_len(), self.info.seed, epoch, position);
            let mut batches = self.task.batches(
                items,
                batch_size,
                self.resolved.data.workers,
                &self.device.clone().autodiff(),
                true,
            );
            // A batch whose step failed in the strategy, retried (with the
            // previous version, or after a pause) so that the data order is kept.
            let mut retry = None;
            while let Some(batch) = retry.take().or_else(|| batches.next()) {
                if !self.boundary()? {
                    break 'epochs;
                }
                match self.step(&batch)? {
                    Flow::Next => {}
                    Flow::Retry => retry = Some(batch),
                    Flow::Rewind => continue 'epochs,
                    Flow::End => break 'epochs,
                }
            }
        }
        Ok(())
    }

    // ---- step boundary ----

    /// Control commands (waiting while paused), reloads and saved changes.
    /// False when the run is to stop.
    fn boundary(&mut self) -> Result<bool> {
        loop {
            self.take_commands()?;
            self.flags.stop_requested |= self.control.stop.load(Ordering::SeqCst);
            if self.flags.stop_requested || !self.flags.paused {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.flags.stop_requested || self.at_stop_fraction() {
            return Ok(false);
        }
        if self.replay.is_some() {
            return self.take_replayed();
        }
        self.take_reloads()?;
        self.take_config_changes()?;
        Ok(true)
    }

    /// Whether `--stop-at`'s fraction of training is done: then the run
    /// stops as if asked to.
    fn at_stop_fraction(&mut self) -> bool {
        let Some(f) = self.opts.stop_at else {
            return false;
        };
        let at = step_at_fraction(f, self.total_steps);
        if self.step < at || self.step >= self.total_steps {
            return false;
        }
        self.flags.stop_requested = true;
        self.flags.stop_reason = Some(format!("--stop-at {f} (step {at})"));
        true
    }

    /// What the replayed run did after this step: its library swaps, then its
    /// configuration changes (the order a boundary takes them in); false
    /// where the replay is to stop.
    fn take_replayed(&mut self) -> Result<bool> {
        let Some(replay) = self.replay.clone() else {
            return Ok(true);
        };
        if replay.stop_after == Some(self.step) {
            self.flags.stop_requested = true;
            self.flags.stop_reason = Some(format!("reproduce --steps {}", self.step));
            return Ok(false);
        }
        for lib in replay.libraries_due(self.step) {
            if self.versions.current.as_ref().map(|c| &c.sha256) == Some(&lib.sha256) {
                continue;
            }
            let new = Library::load(&lib.path)
                .map_err(|e| anyhow!("loading {} from the run store: {e}", lib.path.display()))?;
            self.offer(new)?;
        }
        for config in replay.configs_due(self.step) {
            self.source.pending.push(Ok(config.toml.clone()));
        }
        self.take_config_changes()?;
        Ok(true)
    }

    fn take_commands(&mut self) -> Result<()> {
        let commands: Vec<Command> = self.control.commands.try_iter().collect();
        for cmd in commands {
            match cmd {
                Command::Pause if !self.flags.paused => {
                    self.flags.paused = true;
                    self.show_state("paused (resume: r in the dashboard)");
                    self.writer
                        .event(self.step, EventKind::Paused, "paused by request")?;
                    self.writer.status.state = State::Paused;
                    self.writer.status()?;
                }
                Command::Resume if self.flags.paused => {
                    self.flags.paused = false;
                    self.show_state("resumed");
                    self.writer
                        .event(self.step, EventKind::Resumed, "resumed by request")?;
                    self.writer.status.state = State::Training;
                    self.writer.status.message.clear();
                    self.writer.status()?;
                }
                Command::Stop => self.flags.stop_requested = true,
                Command::ApplyConfig { toml } => self.source.pending.push(match toml {
                    Some(t) => Ok(t),
                    None => read_source(&self.info.source),
                }),
                _ => {}
            }
        }
        Ok(())
    }

    fn take_reloads(&mut self) -> Result<()> {
        let events = self
            .watcher
            .as_ref()
            .map(Watcher::drain)
            .unwrap_or_default();
        for event in events {
            match event {
                ReloadEvent::Ready { library: new, .. } => {
                    if let Some(message) = self.not_this_runs(&new) {
                        self.plugin_event(EventKind::ReloadRefused, message)?;
                    } else {
                        self.offer(new)?;
                    }
                }
                ReloadEvent::Refused { path, reason } => self.plugin_event(
                    EventKind::ReloadRefused,
                    format!("{}: {reason}", path.display()),
                )?,
                // A run keeps the library it loaded whatever happens to the file.
                ReloadEvent::BuildOutput { .. } | ReloadEvent::Gone { .. } => {}
            }
        }
        Ok(())
    }

    /// Why `new`, another file giving this run's strategy's name, is not
    /// this run's strategy: reloads come from where it came from.
    fn not_this_runs(&self, new: &Library) -> Option<String> {
        let current = self.versions.current.as_ref()?;
        (current.info.name == new.info.name && current.path != new.path).then(|| {
            format!(
                "{} also calls itself \"{}\"; this run reloads only from {}",
                new.path.display(),
                new.info.name,
                current.path.display()
            )
        })
    }

    /// A new build of this run's strategy (its trial passed, or the replay's
    /// next library): taken by the slots unless they refuse it.
    fn offer(&mut self, new: Library) -> Result<()> {
        let mut outcome = None;
        for slot in self.live.slots.iter_mut() {
            if let Some(l) = slot.live.as_mut() {
                outcome = l.offer(&new).or(outcome);
            }
        }
        match outcome {
            Some(SwapOutcome::Swapped { name, from, to }) => {
                self.record_library(self.step, &new)?;
                let message = match &self.versions.current {
                    // The same version number, other code: the hashes tell.
                    Some(old) if from == to => format!(
                        "{name} {from} ({}) → {to} ({})",
                        provenance::short(&old.sha256),
                        provenance::short(&new.sha256)
                    ),
                    _ => format!("{name} {from} → {to}"),
                };
                // Later parameter changes build on the new version.
                self.versions.previous = self.versions.current.replace(new);
                self.versions.label = to.clone();
                self.writer.status.plugin_version = to.clone();
                self.plugin_event(EventKind::Reload, message)
            }
            Some(SwapOutcome::Refused { name, reason }) => {
                self.plugin_event(EventKind::ReloadRefused, format!("{name}: {reason}"))
            }
            None => Ok(()),
        }
    }

    /// A reload or a refused library: in the event log, and said on the
    /// terminal of a foreground run (the dashboard shows the event log).
    fn plugin_event(&mut self, kind: EventKind, message: String) -> Result<()> {
        let what = match kind {
            EventKind::Reload => "strategy reloaded",
            _ => "new strategy library refused, the run keeps its version",
        };
        self.say(&format!("step {}: {what}: {message}", self.step));
        self.writer.event(self.step, kind, message)
    }

    /// Saved changes of the experiment file and apply-config messages, through
    /// the same checks.
    fn take_config_changes(&mut self) -> Result<()> {
        if self.replay.is_none() && self.source.last_check.elapsed() >= Duration::from_millis(300) {
            self.source.last_check = Instant::now();
            let stamp = file_stamp(&self.info.source);
            if stamp != self.source.stamp {
                self.source.stamp = stamp;
                self.source.pending.push(read_source(&self.info.source));
            }
        }
        for text in std::mem::take(&mut self.source.pending) {
            match text {
                Ok(text) => {
                    let against = Against {
                        source: &self.info.source,
                        catalog: &self.catalog,
                        run: &self.run_spec,
                        library: self.versions.current.as_ref(),
                    };
                    apply_config(&text, &against, &mut self.live, self.writer, self.step)?
                }
                Err(e) => self.writer.event(self.step, EventKind::ConfigInvalid, e)?,
            }
        }
        Ok(())
    }

    // ---- one optimiser step ----

    fn plan(&self, step: u64) -> Plan {
        let train = &self.live.resolved.train;
        let epoch = (step - 1) / self.steps_per_epoch;
        let end_of_epoch = step.is_multiple_of(self.steps_per_epoch);
        let last = step == self.total_steps;
        let every = |n: Option<usize>| n.map_or(end_of_epoch, |n| step.is_multiple_of(n as u64));
        Plan {
            epoch,
            lr: learning_rate(
                self.resolved.optimizer.lr,
                &self.resolved.lr_schedule,
                step,
                self.total_steps,
                self.steps_per_epoch,
            ),
            p: experiment::drop_rate(
                &self.live.strategy.schedule,
                step - 1,
                self.total_steps,
                self.steps_per_epoch,
            ),
            log: step.is_multiple_of(train.log_every as u64) || last,
            snapshot: train.snapshot_every > 0 && step.is_multiple_of(train.snapshot_every as u64),
            evaluate: every(train.eval_every) || last,
            checkpoint: every(self.resolved.train.checkpoint_every) || last,
            last,
        }
    }

    /// Forward with the strategy at every slot.
    fn forward(&self, batch: &Batch, plan: &Plan, step: u64) -> Forward {
        let n = batch.targets().dims()[0];
        let mut slots = StepSlots {
            slots: &self.live.slots,
            p: plan.p,
            step,
            epoch: plan.epoch,
            seed: self.info.seed,
            log_now: plan.log,
            snapshot_now: plan.snapshot,
            // A cheap finiteness check of every mask now and then; shapes are
            // checked at every call by the host.
            check_finite_now: step == 1 || step.is_multiple_of(FINITE_CHECK_EVERY),
            samples: n.min(SNAPSHOT_SAMPLES),
            tokens: match (batch, self.task.vocabulary()) {
                (Batch::Text(b), Some(v)) if plan.snapshot => {
                    b.first.iter().map(|ids| v.tokens(ids)).collect()
                }
                _ => Vec::new(),
            },
            dropped: Default::default(),
            snapshots: Vec::new(),
            masks: Vec::new(),
            watchdog: &self.watchdog,
        };
        let logits = match batch {
            Batch::Image(b) => self.model.forward(b.images.clone(), &mut |name, x| {
                slots.apply(name, x, || None)
            }),
            Batch::Text(b) => self.model.forward_text(b.ids.clone(), &b.pad, &mut slots),
        };
        Forward {
            logits: logits.map_err(|e| e.0),
            masks: slots.masks,
            collected: Collected {
                dropped: slots.dropped,
                snapshots: slots.snapshots,
            },
        }
    }

    fn step(&mut self, batch: &Batch) -> Result<Flow> {
        let started = Instant::now();
        let step = self.step + 1;
        let plan = self.plan(step);
        self.watchdog.begin_step(step);
        let Forward {
            logits,
            masks,
            collected,
        } = self.forward(batch, &plan, step);
        let logits = match logits {
            Ok(logits) => logits,
            Err(reason) => {
                self.watchdog.end_step(None);
                return self.strategy_failed(step, &reason);
            }
        };
        let loss = self
            .loss_fn
            .forward(logits.clone(), batch.targets().clone());
        // Outside a recheck the loss is read only at the next read point.
        if step <= self.recheck_through {
            let value = loss.clone().into_scalar::<f32>();
            if !value.is_finite() {
                self.watchdog.end_step(None);
                return self.non_finite_loss(step, &masks);
            }
        }
        let correct = correct_top1(logits.inner(), batch.targets().clone().inner());
        self.pending
            .add(loss.clone().inner(), correct, batch.targets().dims()[0]);
        let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optim.step(plan.lr, self.model.clone(), grads);
        self.watchdog.end_step(Some(step));
        self.pending.took(started.elapsed());
        self.step = step;
        self.writer.status.step = step;
        self.writer.status.epoch = plan.epoch;
        self.after_step(&plan, collected)
    }

    /// Reading, logging, evaluation and checkpoint, each when due.
    fn after_step(&mut self, plan: &Plan, collected: Collected) -> Result<Flow> {
        let read_now =
            plan.log || plan.evaluate || plan.checkpoint || self.step <= self.recheck_through;
        let (names, fractions): (Vec<String>, Vec<Tensor<1>>) =
            collected.dropped.into_iter().unzip();
        let totals = if read_now {
            match self.read(&fractions)? {
                Some(t) => Some(t),
                None => return Ok(Flow::Rewind),
            }
        } else {
            None
        };
        if let (true, Some((t, values))) = (plan.log, totals) {
            self.pending.restart();
            self.log(plan, &t, names.into_iter().zip(values))?;
        }
        if self.system.due(plan.log) {
            self.log_system(plan)?;
        }
        if !collected.snapshots.is_empty() {
            self.writer.log_snapshots(&collected.snapshots)?;
        }
        if plan.evaluate && !self.evaluate(plan)? {
            return Ok(Flow::End);
        }
        if plan.checkpoint {
            self.save_checkpoint(plan.epoch)?;
        }
        Ok(if plan.last { Flow::End } else { Flow::Next })
    }

    /// The loss of a checked step was not finite: the strategy's fault when a
    /// mask was, else the run diverged. Nothing was learnt from the batch.
    fn non_finite_loss(&mut self, step: u64, masks: &[(String, Tensor<1>)]) -> Result<Flow> {
        match masks.iter().find(|(_, m)| !all_finite(m)) {
            Some((slot, _)) => self.strategy_failed(
                step,
                &format!(
                    "the mask at {slot} has NaN or infinite values (the loss turned non-finite)"
                ),
            ),
            None => {
                self.flags.diverged = Some(step);
                Ok(Flow::End)
            }
        }
    }

    /// The strategy failed at `step`: nothing was learnt from this batch. Back
    /// to the version before the last reload and retry, or pause and wait for
    /// a fixed version (a reload) and a resume.
    fn strategy_failed(&mut self, step: u64, reason: &str) -> Result<Flow> {
        let at = step - 1;
        self.writer.event(
            at,
            EventKind::StrategyFailed,
            format!("step {step}: {reason}"),
        )?;
        let mut reverted = None;
        for slot in self.live.slots.iter_mut() {
            if let Some(l) = slot.live.as_mut() {
                reverted = l.revert().or(reverted);
            }
        }
        if let Some((failed, now)) = reverted {
            if let Some(lib) = self.versions.previous.take() {
                self.record_library(at, &lib)?;
                self.versions.current = Some(lib);
            }
            self.versions.label = now.clone();
            self.writer.status.plugin_version = now.clone();
            self.writer.event(
                at,
                EventKind::Reverted,
                format!("{failed} failed; back to {now}, the version before it"),
            )?;
        } else {
            self.flags.paused = true;
            self.writer.status.state = State::Paused;
            self.writer.status.message = format!(
                "paused: the strategy failed at step {step}: {reason}. Fix the plugin (it is reloaded when rebuilt), then resume"
            );
            let message = self.writer.status.message.clone();
            self.show_state(&message);
            self.writer.event(at, EventKind::Paused, message)?;
            self.writer.status()?;
        }
        Ok(Flow::Retry)
    }

    // ---- after a step ----

    /// The device's sums since the last log line. None when a loss among
    /// them was not finite: the run is then back at the last good read and
    /// checks those steps again one at a time, before each update.
    /// The step's read: the totals since the last one, and `extra`'s values.
    fn read(&mut self, extra: &[Tensor<1>]) -> Result<Option<(Totals, Vec<f64>)>> {
        match self.pending.read(extra) {
            Ok((t, values)) => {
                self.last_loss = t.last_loss.or(self.last_loss);
                self.good = Good {
                    model: self.model.clone(),
                    optim: self.optim.clone(),
                    step: self.step,
                };
                Ok(Some((t, values)))
            }
            Err(NonFinite) => {
                self.recheck_through = self.step;
                self.go_back_to_good()?;
                self.writer.event(
                    self.step,
                    EventKind::Rechecking,
                    format!(
                        "a loss of steps {}–{} was not finite: back to step {}; checking them one by one",
                        self.step + 1,
                        self.recheck_through,
                        self.step
                    ),
                )?;
                Ok(None)
            }
        }
    }

    /// Model, optimiser and step as at the last good read; the snapshots
    /// logged since then go.
    fn go_back_to_good(&mut self) -> Result<()> {
        (self.model, self.optim, self.step) = self.good.restore();
        self.pending.restart();
        self.run_dir.truncate_log_after(dir::SNAPSHOTS, self.step)?;
        self.writer.snapshots = JsonLog::open(&self.run_dir.file(dir::SNAPSHOTS))?;
        self.writer.status.step = self.step;
        Ok(())
    }

    fn log(
        &mut self,
        plan: &Plan,
        t: &Totals,
        dropped: impl Iterator<Item = (String, f64)>,
    ) -> Result<()> {
        let (step, epoch, p, version) = (self.step, plan.epoch, plan.p, &self.versions.label);
        let line = |name: &str, value: f64| metric(step, epoch, TRAIN, name, value, p, version);
        let mut lines = vec![
            line(LOSS, t.mean_loss),
            line(ACC, t.acc),
            line(LR, plan.lr),
            line(P, p),
            line(STEP_TIME, t.step_s),
            line(SAMPLES_PER_S, t.per_s),
        ];
        for (slot, frac) in dropped {
            lines.push(line(&metric::dropped(&slot), frac));
        }
        self.writer.log_metrics(&lines)?;
        self.writer.status.samples_per_s = Some(t.per_s);
        self.writer.status()?;
        match &self.progress {
            Some(bar) => {
                bar.set_position(step);
                bar.set_message(format!("loss {:.3} p {p:.3}", t.mean_loss));
            }
            None => self.say(&format!(
                "step {step}/{} epoch {} loss {:.4} acc {:.3} p {p:.3} lr {:.4} {:.0} samples/s",
                self.total_steps,
                epoch + 1,
                t.mean_loss,
                t.acc,
                plan.lr,
                t.per_s
            )),
        }
        Ok(())
    }

    /// The trainer's use of the machine now, as `system/…` metrics.
    fn log_system(&mut self, plan: &Plan) -> Result<()> {
        let (step, epoch, p, version) = (self.step, plan.epoch, plan.p, &self.versions.label);
        let lines: Vec<_> = (self.system.sample().into_iter())
            .map(|(name, value)| metric(step, epoch, TRAIN, name, value, p, version))
            .collect();
        self.writer.log_metrics(&lines)
    }

    /// Validation; false when its loss is not finite (the run diverged).
    fn evaluate(&mut self, plan: &Plan) -> Result<bool> {
        let (val_loss, top1, top5) = evaluate(
            &self.model,
            &self.task,
            self.resolved.train.batch_size,
            self.resolved.data.workers,
            &self.device,
            self.classes,
        );
        let (step, epoch, p, version) = (self.step, plan.epoch, plan.p, &self.versions.label);
        let line = |name: &str, value: f64| metric(step, epoch, VAL, name, value, p, version);
        let mut lines = vec![line(LOSS, val_loss), line(ACC, top1)];
        if let Some(t5) = top5 {
            lines.push(line(TOP5, t5));
        }
        self.writer.log_metrics(&lines)?;
        if !val_loss.is_finite() {
            self.flags.diverged = Some(step);
            return Ok(false);
        }
        self.final_val_acc = Some(top1);
        self.best_val_acc = Some(self.best_val_acc.map_or(top1, |b| b.max(top1)));
        self.writer.status.last_val_acc = Some(top1);
        self.writer.status.best_val_acc = self.best_val_acc;
        self.writer.status()?;
        self.say(&format!(
            "step {step}: validation loss {val_loss:.4}, accuracy {top1:.4}"
        ));
        Ok(true)
    }

    fn save_checkpoint(&self, epoch: u64) -> Result<()> {
        save_checkpoint(
            self.run_dir,
            &self.model,
            &self.optim,
            self.step,
            epoch,
            self.best_val_acc,
        )
    }

    // ---- the end ----

    fn finish(mut self, started: Instant) -> Result<Summary> {
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
        let (state, message) = self.outcome()?;
        self.writer.status.state = state;
        self.writer.status.message = message.clone();
        self.writer.status()?;
        self.writer.metrics.flush()?;
        self.writer.close_tensorboard()?;
        Ok(Summary {
            state,
            steps: self.step,
            final_val_acc: self.final_val_acc,
            best_val_acc: self.best_val_acc,
            final_train_loss: self.last_loss,
            seconds: started.elapsed().as_secs_f64(),
            message,
        })
    }

    /// How the run ended, with its event (and, for a stop, its checkpoint).
    fn outcome(&mut self) -> Result<(State, String)> {
        if let Some(at) = self.flags.diverged {
            let message = format!(
                "the loss became non-finite at step {at}; the last good checkpoint is kept"
            );
            self.writer
                .event(at, EventKind::Diverged, message.clone())?;
            return Ok((State::Diverged, message));
        }
        if self.flags.stop_requested {
            if let Err(NonFinite) = self.pending.read(&[]) {
                // The steps since the last good read are done again on resume.
                self.go_back_to_good()?;
            }
            self.save_checkpoint(self.step.saturating_sub(1) / self.steps_per_epoch)?;
            let by = (self.flags.stop_reason.clone())
                .or_else(crate::train::signals::reason)
                .unwrap_or_else(|| "request".into());
            self.writer.event(
                self.step,
                EventKind::Stopped,
                format!("stopped by {by}; resume continues from here"),
            )?;
            return Ok((State::Stopped, format!("stopped at step {}", self.step)));
        }
        let message = format!(
            "finished {} steps; validation accuracy {}",
            self.step,
            self.final_val_acc
                .map_or("n/a".into(), |a| format!("{a:.4}"))
        );
        self.writer
            .event(self.step, EventKind::Done, message.clone())?;
        Ok((State::Done, message))
    }
}
