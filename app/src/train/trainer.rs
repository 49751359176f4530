//! The training loop of one run, writing its run directory.
//!
//! At every step boundary it takes control commands (pause, resume, stop,
//! apply-config), a new version of its strategy from the plugin watcher, and a
//! saved change of its experiment file; what it did goes to the event log.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Bool, Device, Int, Tensor};

use crate::experiment::{self, Catalog, DropSchedule, ExperimentFile, NONE, RunSpec, StrategySpec};
use crate::plugins::watch::{LiveStrategy, ReloadEvent, SwapOutcome, Watcher};
use crate::plugins::{Library, MaskContext, MaskError};
use crate::run::control::{Command, ControlServer};
use crate::run::dir::{
    self, CheckpointInfo, EventLine, JsonLog, MetricLine, RunDir, SnapshotLine, State, Status,
};
use crate::run::lock::RunLock;
use crate::train::data::{self, EpochItems, ImageBatch, ImageBatcher, SplitBatcher};
use crate::train::device;
use crate::train::models::{InputKind, Model};
use crate::train::optim::{Rule, RunOptimizer, Stepping};
use crate::train::schedule::learning_rate;
use crate::train::text::{TextBatch, TextBatcher, TextTask};
use crate::train::transformer::{NoSlots, TextSlots};
use crate::train::watchdog::Watchdog;

/// How progress is shown while training in the foreground.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A progress bar (stderr is a terminal).
    Bar,
    /// One plain line per logged step.
    Lines,
    Quiet,
}

impl Progress {
    pub fn auto() -> Self {
        if std::io::stderr().is_terminal() {
            Progress::Bar
        } else {
            Progress::Lines
        }
    }
}

#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub plugins_dir: PathBuf,
    pub progress: Progress,
    /// Start over from step 0, discarding the checkpoint and the logs.
    pub restart: bool,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub state: State,
    pub steps: u64,
    pub final_val_acc: Option<f64>,
    pub best_val_acc: Option<f64>,
    pub final_train_loss: Option<f64>,
    pub seconds: f64,
    pub message: String,
}

/// The strategy configured at one slot.
struct Slot {
    name: String,
    enabled: bool,
    p_scale: f64,
    live: Option<LiveStrategy>,
}

/// Everything the loop changes live.
struct Live {
    resolved: ExperimentFile,
    strategy: StrategySpec,
    slots: Vec<Slot>,
}

fn strategy_params(
    spec: &StrategySpec,
    slot_params: Option<&toml::Table>,
) -> Vec<(String, plugin_api::Value)> {
    let mut table = spec.params.clone();
    if let Some(extra) = slot_params {
        table.extend(extra.clone());
    }
    experiment::params_of(&table)
}

fn build_slots(
    file: &ExperimentFile,
    spec: &StrategySpec,
    library: Option<&Library>,
) -> Result<Vec<Slot>, String> {
    let mut slots = Vec::new();
    for name in experiment::model_slots(&file.model) {
        let over = file.model.slots.get(&name);
        let chosen = spec.slots.as_ref().is_none_or(|l| l.contains(&name));
        let enabled = chosen && over.is_none_or(|o| o.enabled);
        let live = match library {
            Some(lib) if enabled => Some(LiveStrategy::new(
                lib,
                strategy_params(spec, over.map(|o| &o.params)),
            )?),
            _ => None,
        };
        slots.push(Slot {
            name,
            enabled,
            p_scale: over.map_or(1.0, |o| o.p_scale),
            live,
        });
    }
    Ok(slots)
}

/// The resolved experiment of a run, as stored in its directory.
pub fn read_resolved(dir: &RunDir) -> Result<ExperimentFile> {
    let path = dir.file(dir::EXPERIMENT);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    experiment::parse(&path, &text).map_err(|errors| anyhow!("{}", errors[0]))
}

struct Writer {
    dir: RunDir,
    metrics: JsonLog,
    events: JsonLog,
    snapshots: JsonLog,
    status: Status,
}

impl Writer {
    /// Opens the run's logs; the status starts from what the run's status.json
    /// says (its step, epoch and accuracies), so a run that fails before its
    /// first step keeps them.
    fn open(run_dir: &RunDir) -> Result<Writer> {
        let previous = run_dir.status();
        let keep = |f: fn(&Status) -> u64| previous.as_ref().map_or(0, f);
        Ok(Writer {
            dir: run_dir.clone(),
            metrics: JsonLog::open(&run_dir.file(dir::METRICS)).context("opening metrics.jsonl")?,
            events: JsonLog::open(&run_dir.file(dir::EVENTS)).context("opening events.jsonl")?,
            snapshots: JsonLog::open(&run_dir.file(dir::SNAPSHOTS))
                .context("opening snapshots.jsonl")?,
            status: Status {
                state: State::Training,
                step: keep(|s| s.step),
                epoch: keep(|s| s.epoch),
                total_steps: keep(|s| s.total_steps),
                pid: std::process::id(),
                updated: dir::now(),
                message: String::new(),
                device: previous
                    .as_ref()
                    .map(|s| s.device.clone())
                    .unwrap_or_default(),
                plugin_version: String::new(),
                best_val_acc: previous.as_ref().and_then(|s| s.best_val_acc),
                last_val_acc: previous.as_ref().and_then(|s| s.last_val_acc),
                samples_per_s: None,
            },
        })
    }

    fn event(&mut self, step: u64, kind: &str, message: impl Into<String>) -> Result<()> {
        let line = EventLine {
            wall: dir::now(),
            step,
            kind: kind.into(),
            message: message.into(),
        };
        self.events.append(&line).context("writing the event log")
    }

    fn status(&mut self) -> Result<()> {
        self.status.updated = dir::now();
        dir::write_json(&self.dir.file(dir::STATUS), &self.status).context("writing status.json")
    }

    /// The run failed: the reason goes to the event log and the status, each as
    /// far as the disk still lets it.
    fn fail(&mut self, message: &str) {
        let _ = self.event(self.status.step, "error", message);
        self.status.state = State::Failed;
        self.status.message = message.to_string();
        self.status.updated = dir::now();
        let _ = dir::write_status_final(&self.dir, &self.status);
    }
}

/// Trains the run in `run_dir` to its end, resuming from its checkpoint if it has one.
///
/// Refused without changing anything when another trainer holds the run, or when
/// the run has a checkpoint that cannot be read (unless `opts.restart`). Every
/// other way it ends is written to the status with the reason.
pub fn train(run_dir: &RunDir, opts: &TrainOptions) -> Result<Summary> {
    let _lock = RunLock::acquire(&run_dir.path).map_err(|e| anyhow!(e))?;
    let started = Instant::now();
    // Past a file-size limit, a write should fail (reported below, the run marked
    // failed) rather than the default SIGXFSZ killing the process mid-write.
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    let resume = resume_point(run_dir, opts.restart)?;
    let mut writer = match Writer::open(run_dir) {
        Ok(w) => w,
        Err(e) => {
            dir::record_failure(run_dir, &format!("{e:#}"));
            return Err(e);
        }
    };
    let result = run_dir
        .info()
        .map_err(|e| anyhow!(e))
        .and_then(|info| Ok((info, read_resolved(run_dir)?)))
        .and_then(|(info, resolved)| {
            run(run_dir, &info, resolved, resume, opts, &mut writer, started)
        });
    if let Err(e) = &result {
        writer.fail(&format!("{e:#}"));
    }
    result
}

/// Where the run continues: its checkpoint, or step 0 when it never saved one.
/// A checkpoint that cannot be read is refused (starting over would silently
/// throw away what it stands for) unless `restart` asks for a fresh start, which
/// also clears the logs.
fn resume_point(run_dir: &RunDir, restart: bool) -> Result<Option<CheckpointInfo>> {
    if restart {
        run_dir
            .discard_progress()
            .context("clearing the run for a fresh start")?;
        return Ok(None);
    }
    run_dir.read_checkpoint().map_err(|why| {
        anyhow!(
            "{}: {why}. Nothing was changed; `probdrop-tui run --resume {} --restart` \
             starts the run over from step 0 and clears its logs",
            run_dir.path.display(),
            run_dir.path.display()
        )
    })
}

#[allow(clippy::too_many_lines)]
fn run(
    run_dir: &RunDir,
    info: &dir::RunInfo,
    resolved: ExperimentFile,
    resume: Option<CheckpointInfo>,
    opts: &TrainOptions,
    writer: &mut Writer,
    started: Instant,
) -> Result<Summary> {
    let seed = info.seed;
    let strategy_spec = resolved
        .strategy
        .first()
        .cloned()
        .unwrap_or_else(experiment::none_strategy);

    // Plugins: the strategy's library, and the catalog for re-validating live changes.
    let mut build_log = String::new();
    let found = crate::plugins::discover(&opts.plugins_dir, &mut |l| {
        build_log.push_str(l);
        build_log.push('\n');
    })
    .with_context(|| {
        format!(
            "reading the plugins directory {}",
            opts.plugins_dir.display()
        )
    })?;
    let libraries: Vec<Library> = found.into_iter().filter_map(|f| f.outcome.ok()).collect();
    let catalog = Catalog::from_libraries(&libraries);
    let library = if strategy_spec.plugin == NONE {
        None
    } else {
        Some(
            libraries
                .iter()
                .find(|l| l.info.name == strategy_spec.plugin)
                .ok_or_else(|| {
                    anyhow!(
                        "strategy \"{}\" not found in {}",
                        strategy_spec.plugin,
                        opts.plugins_dir.display()
                    )
                })?,
        )
    };
    let slots = build_slots(&resolved, &strategy_spec, library).map_err(|e| anyhow!(e))?;
    let mut plugin_version = library.map(|l| l.info.version.clone()).unwrap_or_default();
    // The version in use: replaced when a reload is taken.
    let mut current: Option<Library> = library.cloned();
    // The library before the last reload, for going back when the new one fails.
    let mut previous_library: Option<Library> = None;
    writer.status.plugin_version = plugin_version.clone();

    // Device and data.
    let name = device::parse_device(&resolved.device).map_err(|e| anyhow!(e))?;
    let backend = device::backend_for(name, resolved.backend).map_err(|e| anyhow!(e))?;
    let device = device::open(name, backend).map_err(|e| anyhow!(e))?;
    if matches!(name, device::DeviceName::Cuda(_)) {
        device::configure_cudnn(resolved.cudnn_benchmark, resolved.deterministic);
    }
    let train_device = device.clone().autodiff();
    let task = Task::load(&resolved, run_dir).map_err(|e| anyhow!(e))?;
    let classes = task.classes();
    let batch_size = resolved.train.batch_size;
    let steps_per_epoch = task.train_len().div_ceil(batch_size) as u64;
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
    writer.status.total_steps = total_steps;

    // Model and optimiser, seeded; then the checkpoint if there is one.
    device.seed(seed);
    let mut model = Model::build(&resolved.model, task.input(), classes, &train_device)
        .map_err(|e| anyhow!(e))?;
    let mut optim = RunOptimizer::new(Rule::of(&resolved.optimizer), Stepping::best_for(backend));
    let mut step: u64 = 0;
    let mut best_val_acc = None;
    let checkpoint_dir = run_dir.file(dir::CHECKPOINT_DIR);
    if let Some(ck) = resume {
        model = model
            .try_load_file(checkpoint_dir.join(&ck.model))
            .map_err(|e| anyhow!("loading the model checkpoint: {e:?}"))?;
        optim = optim
            .load(&checkpoint_dir.join(&ck.optimizer))
            .map_err(|e| anyhow!("loading the optimiser checkpoint: {e}"))?;
        step = ck.step;
        best_val_acc = ck.best_val_acc;
        run_dir.truncate_log_after(dir::METRICS, step)?;
        run_dir.truncate_log_after(dir::SNAPSHOTS, step)?;
        writer.metrics = JsonLog::open(&run_dir.file(dir::METRICS))?;
        writer.snapshots = JsonLog::open(&run_dir.file(dir::SNAPSHOTS))?;
        writer.event(
            step,
            "resumed",
            format!("resumed from the checkpoint after step {step}"),
        )?;
    } else {
        // Steps logged by an earlier attempt that never saved a checkpoint are
        // trained again: their lines go, so none is logged twice.
        run_dir.truncate_log_after(dir::METRICS, 0)?;
        run_dir.truncate_log_after(dir::SNAPSHOTS, 0)?;
        writer.metrics = JsonLog::open(&run_dir.file(dir::METRICS))?;
        writer.snapshots = JsonLog::open(&run_dir.file(dir::SNAPSHOTS))?;
        let what = if let Some(lib) = library {
            format!("{} {}", lib.info.name, lib.info.version)
        } else {
            "no extra dropout".into()
        };
        writer.event(
            0,
            "started",
            format!(
                "{} on {} ({:?}), {what}, seed {seed}, {total_steps} steps",
                info.experiment, resolved.device, backend
            ),
        )?;
    }
    writer.status.best_val_acc = best_val_acc;
    writer.status.step = step;
    writer.status.state = State::Training;
    writer.status()?;

    // A stop by the socket, Ctrl-C or SIGTERM: taken at the next step boundary
    // (a checkpoint is saved), or by the watchdog when the step in progress hangs.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal while stopping ends the process at once.
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let control = ControlServer::start(&run_dir.file(dir::SOCKET), stop)
        .context("opening the control socket")?;
    let watchdog = Watchdog::start(
        run_dir,
        resolved.train.step_timeout.map(Duration::from_secs_f64),
        control.stop.clone(),
    );
    let watcher = if library.is_some() {
        crate::plugins::trial::Trial::this_binary()
            .ok()
            .and_then(|trial| Watcher::start(&opts.plugins_dir, trial).ok())
    } else {
        None
    };
    let mut source_stamp = file_stamp(&info.source);
    let mut last_source_check = Instant::now();
    let mut pending_config: Vec<Result<String, String>> = Vec::new();
    let mut live = Live {
        resolved: resolved.clone(),
        strategy: strategy_spec.clone(),
        slots,
    };
    let run_spec = RunSpec {
        label: info.label.clone(),
        strategy_index: info.strategy_index,
        seed,
    };

    let progress = match opts.progress {
        Progress::Bar => {
            let bar = indicatif::ProgressBar::new(total_steps);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  eta {eta}  {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_position(step);
            Some(bar)
        }
        _ => None,
    };
    let say = |text: &str| match (&progress, opts.progress) {
        (Some(bar), _) => bar.println(text),
        (None, Progress::Lines) => eprintln!("{text}"),
        _ => {}
    };

    let loss_fn = CrossEntropyLossConfig::new().init(&train_device);
    let mut pending = Pending::default();
    // Where a non-finite loss sends the run back to (see Good).
    let mut good = Good {
        model: model.clone(),
        optim: optim.clone(),
        step,
    };
    // Steps up to this one are checked one at a time, before their update:
    // after a window of steps whose losses were not all finite.
    let mut recheck_through = 0u64;
    let mut final_val_acc = None;
    let mut last_loss = None;
    let mut paused = false;
    let mut stop_requested = false;
    let mut diverged = None;

    'epochs: while step < total_steps {
        let epoch = step / steps_per_epoch;
        let position = (step % steps_per_epoch) as usize * batch_size;
        let items = EpochItems::shuffled(task.train_len(), seed, epoch, position);
        let mut batches = task.batches(
            items,
            batch_size,
            resolved.data.workers,
            &train_device,
            true,
        );
        // A batch whose step failed in the strategy, to be retried (with the
        // previous version, or after a pause) so that the data order is kept.
        let mut retry = None;
        loop {
            let Some(batch) = retry.take().or_else(|| batches.next()) else {
                break;
            };
            // ---- step boundary ----
            loop {
                for cmd in control.commands.try_iter() {
                    match cmd {
                        Command::Pause if !paused => {
                            paused = true;
                            writer.event(step, "paused", "paused by request")?;
                            writer.status.state = State::Paused;
                            writer.status()?;
                        }
                        Command::Resume if paused => {
                            paused = false;
                            writer.event(step, "resumed", "resumed by request")?;
                            writer.status.state = State::Training;
                            writer.status.message.clear();
                            writer.status()?;
                        }
                        Command::Stop => stop_requested = true,
                        Command::ApplyConfig { toml } => pending_config.push(match toml {
                            Some(t) => Ok(t),
                            None => read_source(&info.source),
                        }),
                        _ => {}
                    }
                }
                stop_requested |= control.stop.load(Ordering::SeqCst);
                if stop_requested || !paused {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if stop_requested {
                break 'epochs;
            }
            if let Some(w) = &watcher {
                for event in w.drain() {
                    match event {
                        ReloadEvent::Ready { library: new, .. }
                            if current.as_ref().is_some_and(|c| {
                                c.info.name == new.info.name && c.path != new.path
                            }) =>
                        {
                            // Another file giving the same name is not this run's
                            // strategy: reloads come from where it came from.
                            writer.event(
                                step,
                                "reload_refused",
                                format!(
                                    "{} also calls itself \"{}\"; this run reloads only from {}",
                                    new.path.display(),
                                    new.info.name,
                                    current
                                        .as_ref()
                                        .map(|c| c.path.display().to_string())
                                        .unwrap_or_default()
                                ),
                            )?;
                        }
                        ReloadEvent::Ready { library: new, .. } => {
                            let mut outcome = None;
                            for slot in live.slots.iter_mut() {
                                if let Some(l) = slot.live.as_mut() {
                                    outcome = l.offer(&new).or(outcome);
                                }
                            }
                            match outcome {
                                Some(SwapOutcome::Swapped { name, from, to }) => {
                                    // Later parameter changes build on the new version.
                                    previous_library = current.replace(new.clone());
                                    plugin_version = to.clone();
                                    writer.status.plugin_version = to.clone();
                                    writer.event(
                                        step,
                                        "reload",
                                        format!("{name} {from} → {to}"),
                                    )?;
                                }
                                Some(SwapOutcome::Refused { name, reason }) => {
                                    writer.event(
                                        step,
                                        "reload_refused",
                                        format!("{name}: {reason}"),
                                    )?;
                                }
                                None => {}
                            }
                        }
                        ReloadEvent::Refused { path, reason } => {
                            writer.event(
                                step,
                                "reload_refused",
                                format!("{}: {reason}", path.display()),
                            )?;
                        }
                        ReloadEvent::BuildOutput { .. } => {}
                    }
                }
            }
            if last_source_check.elapsed() >= Duration::from_millis(300) {
                last_source_check = Instant::now();
                let stamp = file_stamp(&info.source);
                if stamp != source_stamp {
                    source_stamp = stamp;
                    pending_config.push(read_source(&info.source));
                }
            }
            // Saved changes and apply-config messages go through the same checks.
            for text in pending_config.drain(..) {
                match text {
                    Ok(text) => apply_config(
                        &text,
                        &info.source,
                        &catalog,
                        &run_spec,
                        current.as_ref(),
                        &mut live,
                        writer,
                        step,
                    )?,
                    Err(e) => writer.event(step, "config_invalid", e)?,
                }
            }

            // ---- one optimiser step ----
            let step_started = Instant::now();
            step += 1;
            let epoch = (step - 1) / steps_per_epoch;
            let lr = learning_rate(
                resolved.optimizer.lr,
                &resolved.lr_schedule,
                step,
                total_steps,
                steps_per_epoch,
            );
            let p = experiment::drop_rate(
                &live.strategy.schedule,
                step - 1,
                total_steps,
                steps_per_epoch,
            );
            let log_now =
                step.is_multiple_of(live.resolved.train.log_every as u64) || step == total_steps;
            let snapshot_every = live.resolved.train.snapshot_every as u64;
            let snapshot_now = snapshot_every > 0 && step.is_multiple_of(snapshot_every);
            let n = batch.targets().dims()[0];
            let mut step_slots = StepSlots {
                slots: &live.slots,
                p,
                step,
                epoch,
                seed,
                log_now,
                snapshot_now,
                // A cheap finiteness check of every mask now and then; shapes are
                // checked at every call by the host.
                check_finite_now: step == 1 || step.is_multiple_of(FINITE_CHECK_EVERY),
                samples: n.min(SNAPSHOT_SAMPLES),
                tokens: match (&batch, task.vocabulary()) {
                    (Batch::Text(b), Some(v)) if snapshot_now => {
                        b.first.iter().map(|ids| v.tokens(ids)).collect()
                    }
                    _ => Vec::new(),
                },
                dropped: BTreeMap::new(),
                snapshots: Vec::new(),
                masks: Vec::new(),
                watchdog: &watchdog,
            };
            watchdog.begin_step(step);
            let logits = match &batch {
                Batch::Image(b) => model.forward(b.images.clone(), &mut |name, x| {
                    step_slots.apply(name, x, || None)
                }),
                Batch::Text(b) => model.forward_text(b.ids.clone(), &b.pad, &mut step_slots),
            };
            let StepSlots {
                dropped,
                snapshots,
                masks,
                ..
            } = step_slots;
            let mut failure = None;
            let mut computed = None;
            match logits {
                Err(e) => failure = Some(e.0),
                // Outside a recheck the loss is read only at the next read point.
                Ok(logits) if step > recheck_through => {
                    let loss = loss_fn.forward(logits.clone(), batch.targets().clone());
                    computed = Some((logits, loss));
                }
                Ok(logits) => {
                    let loss = loss_fn.forward(logits.clone(), batch.targets().clone());
                    let loss_value: f64 = loss.clone().into_scalar::<f32>() as f64;
                    if loss_value.is_finite() {
                        computed = Some((logits, loss));
                    } else if let Some((slot, _)) = masks.iter().find(|(_, m)| !all_finite(m)) {
                        failure = Some(format!(
                            "the mask at {slot} has NaN or infinite values (the loss turned non-finite)"
                        ));
                    } else {
                        watchdog.end_step(None);
                        diverged = Some(step);
                        break 'epochs;
                    }
                }
            }
            let Some((logits, loss)) = computed else {
                // The strategy failed: nothing was learnt from this batch. Go back to
                // the version before the last reload and retry, or pause and wait
                // for a fixed version (a reload) and a resume.
                let reason = failure.unwrap_or_default();
                watchdog.end_step(None);
                step -= 1;
                writer.event(
                    step,
                    "strategy_failed",
                    format!("step {}: {reason}", step + 1),
                )?;
                let mut reverted = None;
                for slot in live.slots.iter_mut() {
                    if let Some(l) = slot.live.as_mut() {
                        reverted = l.revert().or(reverted);
                    }
                }
                if let Some((failed, now)) = reverted {
                    if let Some(lib) = previous_library.take() {
                        current = Some(lib);
                    }
                    plugin_version = now.clone();
                    writer.status.plugin_version = now.clone();
                    writer.event(
                        step,
                        "reverted",
                        format!("{failed} failed; back to {now}, the version before it"),
                    )?;
                } else {
                    paused = true;
                    writer.status.state = State::Paused;
                    writer.status.message = format!(
                        "paused: the strategy failed at step {}: {reason}. Fix the plugin (it is reloaded when rebuilt), then resume",
                        step + 1
                    );
                    writer.event(step, "paused", writer.status.message.clone())?;
                    writer.status()?;
                }
                retry = Some(batch);
                continue;
            };
            let correct = correct_top1(logits.inner(), batch.targets().clone().inner());
            pending.add(loss.clone().inner(), correct, n);
            let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            watchdog.end_step(Some(step));
            pending.took(step_started.elapsed());
            writer.status.step = step;
            writer.status.epoch = epoch;

            let end_of_epoch = step.is_multiple_of(steps_per_epoch);
            let last = step == total_steps;
            let eval_now = match live.resolved.train.eval_every {
                Some(n) => step.is_multiple_of(n as u64),
                None => end_of_epoch,
            } || last;
            let checkpoint_now = match resolved.train.checkpoint_every {
                Some(n) => step.is_multiple_of(n as u64),
                None => end_of_epoch,
            } || last;
            let read_now = log_now || eval_now || checkpoint_now || step <= recheck_through;
            let totals = read_now.then(|| pending.read());
            match totals {
                Some(Ok(t)) => {
                    last_loss = t.last_loss.or(last_loss);
                    good = Good {
                        model: model.clone(),
                        optim: optim.clone(),
                        step,
                    };
                }
                Some(Err(NonFinite)) => {
                    // A loss since the last read was not finite and the updates
                    // went on: back to the last good state, then those steps
                    // again one at a time, checked before each update.
                    recheck_through = step;
                    (model, optim, step) = good.restore();
                    pending = Pending::default();
                    run_dir.truncate_log_after(dir::SNAPSHOTS, step)?;
                    writer.snapshots = JsonLog::open(&run_dir.file(dir::SNAPSHOTS))?;
                    writer.status.step = step;
                    writer.event(
                        step,
                        "rechecking",
                        format!(
                            "a loss of steps {}–{recheck_through} was not finite: back to step {step}; checking them one by one",
                            step + 1
                        ),
                    )?;
                    continue 'epochs;
                }
                None => {}
            }

            if let (true, Some(Ok(t))) = (log_now, totals) {
                pending.restart();
                let Totals {
                    mean_loss,
                    acc,
                    per_s,
                    step_s,
                    ..
                } = t;
                let mut lines = vec![
                    metric(step, epoch, "train", "loss", mean_loss, p, &plugin_version),
                    metric(step, epoch, "train", "acc", acc, p, &plugin_version),
                    metric(step, epoch, "train", "lr", lr, p, &plugin_version),
                    metric(step, epoch, "train", "p", p, p, &plugin_version),
                    metric(
                        step,
                        epoch,
                        "train",
                        "step_time",
                        step_s,
                        p,
                        &plugin_version,
                    ),
                    metric(
                        step,
                        epoch,
                        "train",
                        "samples_per_s",
                        per_s,
                        p,
                        &plugin_version,
                    ),
                ];
                for (slot, frac) in &dropped {
                    lines.push(metric(
                        step,
                        epoch,
                        "train",
                        &format!("dropped/{slot}"),
                        *frac,
                        p,
                        &plugin_version,
                    ));
                }
                writer
                    .metrics
                    .append_all(&lines)
                    .context("writing metrics")?;
                writer.status.samples_per_s = Some(per_s);
                writer.status()?;
                let text = format!(
                    "step {step}/{total_steps} epoch {} loss {mean_loss:.4} acc {acc:.3} p {p:.3} lr {lr:.4} {per_s:.0} samples/s",
                    epoch + 1
                );
                match &progress {
                    Some(bar) => {
                        bar.set_position(step);
                        bar.set_message(format!("loss {mean_loss:.3} p {p:.3}"));
                    }
                    None => say(&text),
                }
            }
            if !snapshots.is_empty() {
                writer
                    .snapshots
                    .append_all(&snapshots)
                    .context("writing snapshots")?;
            }

            if eval_now {
                let (val_loss, top1, top5) = evaluate(
                    &model,
                    &task,
                    batch_size,
                    resolved.data.workers,
                    &device,
                    classes,
                );
                let mut lines = vec![
                    metric(step, epoch, "val", "loss", val_loss, p, &plugin_version),
                    metric(step, epoch, "val", "acc", top1, p, &plugin_version),
                ];
                if let Some(t5) = top5 {
                    lines.push(metric(step, epoch, "val", "top5", t5, p, &plugin_version));
                }
                writer
                    .metrics
                    .append_all(&lines)
                    .context("writing metrics")?;
                if !val_loss.is_finite() {
                    diverged = Some(step);
                    break 'epochs;
                }
                final_val_acc = Some(top1);
                best_val_acc = Some(best_val_acc.map_or(top1, |b: f64| b.max(top1)));
                writer.status.last_val_acc = Some(top1);
                writer.status.best_val_acc = best_val_acc;
                writer.status()?;
                say(&format!(
                    "step {step}: validation loss {val_loss:.4}, accuracy {top1:.4}"
                ));
            }
            if checkpoint_now {
                save_checkpoint(run_dir, &model, &optim, step, epoch, best_val_acc)?;
            }
            if last {
                break 'epochs;
            }
        }
    }
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }

    let (state, message) = if let Some(at) = diverged {
        let message =
            format!("the loss became non-finite at step {at}; the last good checkpoint is kept");
        writer.event(at, "diverged", message.clone())?;
        (State::Diverged, message)
    } else if stop_requested {
        if let Err(NonFinite) = pending.read() {
            // The steps since the last good read are done again on resume.
            (model, optim, step) = good.restore();
            run_dir.truncate_log_after(dir::SNAPSHOTS, step)?;
        }
        save_checkpoint(
            run_dir,
            &model,
            &optim,
            step,
            step.saturating_sub(1) / steps_per_epoch,
            best_val_acc,
        )?;
        writer.event(
            step,
            "stopped",
            "stopped by request; resume continues from here",
        )?;
        (State::Stopped, format!("stopped at step {step}"))
    } else {
        let message = format!(
            "finished {step} steps; validation accuracy {}",
            final_val_acc.map_or("n/a".into(), |a| format!("{a:.4}"))
        );
        writer.event(step, "done", message.clone())?;
        (State::Done, message)
    };
    writer.status.state = state;
    writer.status.message = message.clone();
    writer.status()?;
    writer.metrics.flush()?;
    Ok(Summary {
        state,
        steps: step,
        final_val_acc,
        best_val_acc,
        final_train_loss: last_loss,
        seconds: started.elapsed().as_secs_f64(),
        message,
    })
}

/// Re-validates the experiment text and applies what can change live.
#[allow(clippy::too_many_arguments)]
fn apply_config(
    text: &str,
    source: &Path,
    catalog: &Catalog,
    run: &RunSpec,
    library: Option<&Library>,
    live: &mut Live,
    writer: &mut Writer,
    step: u64,
) -> Result<()> {
    let exp = match experiment::validate(source, text, catalog) {
        Ok(e) => e,
        Err(errors) => {
            let first = errors[0].to_string();
            return writer.event(
                step,
                "config_invalid",
                format!(
                    "change not applied, the file is invalid: {}",
                    first.trim_end()
                ),
            );
        }
    };
    let strategies = exp.strategies();
    let Some(index) = strategies
        .iter()
        .position(|s| experiment::strategy_label(s) == run.label)
    else {
        return writer.event(
            step,
            "needs_restart",
            format!(
                "the strategy \"{}\" is no longer in the file; the run keeps its configuration",
                run.label
            ),
        );
    };
    let new = exp.resolved(&RunSpec {
        strategy_index: index,
        ..run.clone()
    });
    let (changed_live, changed_fixed) = experiment::live_diff(&live.resolved, &new);
    if !changed_fixed.is_empty() {
        writer.event(
            step,
            "needs_restart",
            format!("changed, needs a restart: {}", changed_fixed.join(", ")),
        )?;
    }
    if changed_live.is_empty() {
        return Ok(());
    }
    let new_strategy = new.strategy[0].clone();
    let same_plugin = new_strategy.plugin == live.strategy.plugin;
    if same_plugin {
        match build_slots(&new, &new_strategy, library) {
            Ok(slots) => {
                live.slots = slots;
                live.strategy = new_strategy.clone();
                let mut applied = live.resolved.clone();
                applied.strategy = vec![new_strategy];
                applied.model.slots = new.model.slots.clone();
                applied.train.eval_every = new.train.eval_every;
                applied.train.log_every = new.train.log_every;
                applied.train.snapshot_every = new.train.snapshot_every;
                live.resolved = applied;
                if let Ok(text) = toml::to_string(&live.resolved) {
                    dir::write_atomic(&writer.dir.file(dir::EXPERIMENT), text.as_bytes())?;
                }
                writer.event(
                    step,
                    "config_applied",
                    format!(
                        "applied at step {}{}: {}{}",
                        step + 1,
                        library
                            .map(|l| format!(" with {} {}", l.info.name, l.info.version))
                            .unwrap_or_default(),
                        changed_live.join(", "),
                        describe_schedule(&live.strategy.schedule, &live.strategy.params)
                    ),
                )?;
            }
            Err(e) => writer.event(step, "config_invalid", format!("change not applied: {e}"))?,
        }
    }
    Ok(())
}

fn describe_schedule(s: &DropSchedule, params: &toml::Table) -> String {
    let params: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(" (schedule {:?}, params [{}])", s.kind, params.join(", ")).to_lowercase()
}

fn save_checkpoint(
    run_dir: &RunDir,
    model: &Model,
    optim: &RunOptimizer,
    step: u64,
    epoch: u64,
    best_val_acc: Option<f64>,
) -> Result<()> {
    let dir = run_dir.file(dir::CHECKPOINT_DIR);
    std::fs::create_dir_all(&dir)?;
    let model_name = format!("model-{step:08}.bpk");
    let optim_name = format!("optim-{step:08}.bpk");
    model
        .clone()
        .save_file(dir.join(&model_name))
        .map_err(|e| anyhow!("saving the model checkpoint: {e:?}"))?;
    optim
        .save(&dir.join(&optim_name))
        .map_err(|e| anyhow!("saving the optimiser checkpoint: {e}"))?;
    let previous = run_dir.checkpoint();
    dir::write_json(
        &run_dir.file(dir::CHECKPOINT),
        &CheckpointInfo {
            step,
            epoch,
            model: model_name.clone(),
            optimizer: optim_name.clone(),
            best_val_acc,
        },
    )?;
    // Older files go only once the new pair is recorded as complete.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name != model_name && name != optim_name {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = previous;
    Ok(())
}

/// Top-1 hits in the batch, left on the device.
fn correct_top1(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1, Int> {
    let predicted = logits.argmax(1).squeeze_dim::<1>(1);
    predicted.equal(targets).int().sum()
}

fn correct_top5(logits: Tensor<2>, targets: Tensor<1, Int>) -> usize {
    let (_, idx) = logits.topk_with_indices(5, 1); // [batch, 5]
    let [n, k] = idx.dims();
    let t = targets.reshape([n, 1]).expand([n, k]);
    idx.equal(t).int().sum().into_scalar::<i64>() as usize
}

/// Validation loss, top-1 and (over 10 classes) top-5 accuracy.
fn evaluate(
    model: &Model,
    task: &Task,
    batch_size: usize,
    workers: usize,
    device: &Device,
    classes: usize,
) -> (f64, f64, Option<f64>) {
    let model = model.valid();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let items = EpochItems::sequential(task.val_len());
    let batches = task.batches(items, batch_size, workers, device, false);
    let (mut loss_sum, mut top1, mut top5, mut count) = (0.0, 0usize, 0usize, 0usize);
    for batch in batches {
        let n = batch.targets().dims()[0];
        let logits = match &batch {
            Batch::Image(b) => model.forward(b.images.clone(), &mut |_, x| Ok(x)),
            Batch::Text(b) => model.forward_text(b.ids.clone(), &b.pad, &mut NoSlots),
        };
        let Ok(logits) = logits else {
            continue;
        };
        let targets = batch.targets().clone();
        let loss: f32 = loss_fn
            .forward(logits.clone(), targets.clone())
            .into_scalar();
        loss_sum += loss as f64 * n as f64;
        top1 += correct_top1(logits.clone(), targets.clone()).into_scalar::<i64>() as usize;
        if classes > 10 {
            top5 += correct_top5(logits, targets);
        }
        count += n;
    }
    let count = count.max(1) as f64;
    (
        loss_sum / count,
        top1 as f64 / count,
        (classes > 10).then_some(top5 as f64 / count),
    )
}

/// Samples of a batch and channels of a slot kept in each mask snapshot.
const SNAPSHOT_SAMPLES: usize = 4;
const SNAPSHOT_CHANNELS: usize = 4;

/// Steps between finiteness checks of the masks (and always at the first step).
const FINITE_CHECK_EVERY: u64 = 50;

fn all_finite(m: &Tensor<1>) -> bool {
    m.clone().is_finite().all().into_scalar::<bool>()
}

fn flat<const D: usize>(t: &Tensor<D>) -> Tensor<1> {
    t.clone().reshape([t.dims().iter().product::<usize>()])
}

/// `[batch, channels, height, width]` for a snapshot: text `[batch, tokens,
/// hidden]` becomes one channel of tokens × hidden; attention heads
/// `[batch, heads, tokens, head_dim]` and images stay as they are.
fn as_rank4<const D: usize>(t: Tensor<D>) -> Tensor<4> {
    let dims = t.dims();
    let shape = match D {
        4 => [dims[0], dims[1], dims[2], dims[3]],
        3 => [dims[0], 1, dims[1], dims[2]],
        2 => [dims[0], 1, 1, dims[1]],
        _ => [1, 1, 1, dims.iter().product()],
    };
    t.reshape(shape)
}

/// One sample's salience and mask at a slot; `tokens`, when given, are the
/// sample's real tokens, and only their rows are kept.
fn snapshot(
    x: &Tensor<4>,
    m: &Tensor<4>,
    step: u64,
    slot: &str,
    p: f64,
    sample: usize,
    tokens: Option<&[String]>,
) -> SnapshotLine {
    let x = if x.is_autodiff() {
        x.clone().inner()
    } else {
        x.clone()
    };
    let [_, c, h, w] = x.dims();
    let h = tokens.map_or(h, |t| t.len().min(h));
    let k = c.min(SNAPSHOT_CHANNELS);
    let one = sample..sample + 1;
    let sal = x.clone().slice([one.clone(), 0..k, 0..h, 0..w]).abs();
    // The mask may be broadcast ([n, c, 1, 1] for channel drop): expand it first.
    let full = x.ones_like() * m.clone();
    let mask = full.slice([one, 0..k, 0..h, 0..w]);
    SnapshotLine {
        step,
        slot: slot.to_string(),
        sample,
        channels: (0..k).collect(),
        height: h,
        width: w,
        salience: sal.into_data().try_to_vec::<f32>().unwrap_or_default(),
        mask: mask.into_data().try_to_vec::<f32>().unwrap_or_default(),
        p,
        tokens: tokens.map(|t| t[..h].to_vec()).unwrap_or_default(),
    }
}

/// One batch of either kind.
// Batches are moved a handful at a time: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Batch {
    Image(ImageBatch),
    Text(TextBatch),
}

impl Batch {
    fn targets(&self) -> &Tensor<1, Int> {
        match self {
            Batch::Image(b) => &b.targets,
            Batch::Text(b) => &b.targets,
        }
    }
}

/// A run's data: images through their batchers, or encoded text.
enum Task {
    Image {
        train: SplitBatcher,
        val: SplitBatcher,
        shape: [usize; 3],
        classes: usize,
    },
    Text(TextTask),
}

impl Task {
    fn load(resolved: &ExperimentFile, run_dir: &RunDir) -> Result<Task, String> {
        let spec = &resolved.data;
        if spec.format.is_text() {
            let vocabulary = run_dir.file(dir::TOKENIZER);
            return TextTask::prepare(spec, &spec.path, &vocabulary).map(Task::Text);
        }
        let splits = data::load(spec, &spec.path)?;
        let (mean, std) = if spec.normalize {
            data::channel_stats(splits.train.as_ref())
        } else {
            let c = splits.shape()[0];
            (vec![0.0; c], vec![1.0; c])
        };
        let batcher = |source, augment| SplitBatcher {
            inner: ImageBatcher {
                source,
                mean: mean.clone(),
                std: std.clone(),
                augment: spec.augment,
            },
            augment,
        };
        Ok(Task::Image {
            train: batcher(splits.train.clone(), true),
            val: batcher(splits.val.clone(), false),
            shape: splits.shape(),
            classes: splits.classes(),
        })
    }

    fn input(&self) -> InputKind {
        match self {
            Task::Image { shape, .. } => InputKind::Image(*shape),
            Task::Text(t) => InputKind::Text {
                vocab_size: t.vocabulary.size(),
                max_len: t.vocabulary.max_len,
            },
        }
    }

    fn classes(&self) -> usize {
        match self {
            Task::Image { classes, .. } => *classes,
            Task::Text(t) => t.classes.len(),
        }
    }

    fn train_len(&self) -> usize {
        match self {
            Task::Image { train, .. } => train.inner.source.len(),
            Task::Text(t) => t.train.len(),
        }
    }

    fn val_len(&self) -> usize {
        match self {
            Task::Image { val, .. } => val.inner.source.len(),
            Task::Text(t) => t.val.len(),
        }
    }

    fn vocabulary(&self) -> Option<&crate::train::text::Vocabulary> {
        match self {
            Task::Text(t) => Some(&t.vocabulary),
            Task::Image { .. } => None,
        }
    }

    /// The batches of `items` from the training (`train`) or validation split.
    fn batches(
        &self,
        items: EpochItems,
        batch_size: usize,
        workers: usize,
        device: &Device,
        train: bool,
    ) -> Box<dyn Iterator<Item = Batch>> {
        match self {
            Task::Image {
                train: t, val: v, ..
            } => {
                let batcher = if train { t } else { v }.clone();
                Box::new(
                    data::ordered_batches(batcher, items, batch_size, workers, device)
                        .map(Batch::Image),
                )
            }
            Task::Text(t) => {
                let examples = if train { &t.train } else { &t.val }.clone();
                Box::new(
                    data::ordered_batches(
                        TextBatcher { examples },
                        items,
                        batch_size,
                        workers,
                        device,
                    )
                    .map(Batch::Text),
                )
            }
        }
    }
}

/// What one training step hands the model at its slots, and what it collects.
struct StepSlots<'a> {
    slots: &'a [Slot],
    p: f64,
    step: u64,
    epoch: u64,
    seed: u64,
    log_now: bool,
    snapshot_now: bool,
    check_finite_now: bool,
    /// Samples kept in each snapshot.
    samples: usize,
    /// Text: the real tokens of those samples.
    tokens: Vec<Vec<String>>,
    dropped: BTreeMap<String, f64>,
    snapshots: Vec<SnapshotLine>,
    /// This step's masks, checked when the loss turns non-finite.
    masks: Vec<(String, Tensor<1>)>,
    watchdog: &'a Watchdog,
}

impl StepSlots<'_> {
    /// Applies the slot's strategy to `x`; `valid` gives where a padded input
    /// is real (1.0), broadcastable to `x`.
    fn apply<const D: usize>(
        &mut self,
        name: &str,
        x: Tensor<D>,
        valid: impl FnOnce() -> Option<Tensor<D>>,
    ) -> Result<Tensor<D>, MaskError> {
        let Some(slot) = self.slots.iter().find(|s| s.name == name) else {
            return Ok(x);
        };
        let (true, Some(live)) = (slot.enabled, slot.live.as_ref()) else {
            return Ok(x);
        };
        let ctx = MaskContext {
            p: (self.p * slot.p_scale).clamp(0.0, 1.0),
            training: true,
            step: self.step,
            epoch: self.epoch,
            slot: name.to_string(),
            seed: self.seed,
        };
        if ctx.p == 0.0 {
            if self.log_now {
                self.dropped.insert(name.to_string(), 0.0);
            }
            return Ok(x);
        }
        let valid = valid();
        let info = &live.strategy.info;
        self.watchdog
            .enter_mask(&format!("{} {}", info.name, info.version), name);
        let m = live.strategy.mask_padded(&x, valid.as_ref(), &ctx);
        self.watchdog.leave_mask();
        let m = m?;
        let m_flat = flat(&m);
        if self.check_finite_now && !all_finite(&m_flat) {
            return Err(MaskError(format!(
                "{} {}: the mask has NaN or infinite values",
                live.strategy.info.name, live.strategy.info.version
            )));
        }
        if self.log_now {
            // The mask is 1 at padding: zeros are all at real positions, and the
            // fraction is of real positions.
            let zeros: f32 = m_flat.clone().equal_elem(0.0).float().mean().into_scalar();
            let real = valid.as_ref().map_or(1.0, |v| {
                flat(v).mean().into_scalar::<f32>().max(f32::MIN_POSITIVE)
            });
            self.dropped
                .insert(name.to_string(), (zeros / real).min(1.0) as f64);
        }
        self.masks.push((name.to_string(), m_flat));
        if self.snapshot_now {
            let (x4, m4) = (as_rank4(x.clone()), as_rank4(m.clone()));
            for sample in 0..self.samples {
                let tokens = self.tokens.get(sample).map(Vec::as_slice);
                self.snapshots
                    .push(snapshot(&x4, &m4, self.step, name, ctx.p, sample, tokens));
            }
        }
        Ok(x * m.autodiff())
    }
}

/// 1.0 where `pad` is false, shaped by `shape` (the batch and token dims
/// placed, every other dim 1), outside the autodiff graph.
fn validity<const D: usize>(pad: &Tensor<2, Bool>, shape: [usize; D]) -> Tensor<D> {
    let v = pad.clone().bool_not().float();
    let v = if v.is_autodiff() { v.inner() } else { v };
    v.reshape(shape)
}

impl TextSlots for StepSlots<'_> {
    fn hidden(
        &mut self,
        slot: &str,
        x: Tensor<3>,
        pad: &Tensor<2, Bool>,
    ) -> Result<Tensor<3>, MaskError> {
        let [b, t] = pad.dims();
        self.apply(slot, x, || Some(validity(pad, [b, t, 1])))
    }

    fn heads(
        &mut self,
        slot: &str,
        x: Tensor<4>,
        pad: &Tensor<2, Bool>,
    ) -> Result<Tensor<4>, MaskError> {
        let [b, t] = pad.dims();
        self.apply(slot, x, || Some(validity(pad, [b, 1, t, 1])))
    }
}

fn metric(
    step: u64,
    epoch: u64,
    split: &str,
    name: &str,
    value: f64,
    p: f64,
    version: &str,
) -> MetricLine {
    MetricLine {
        step,
        epoch,
        split: split.into(),
        metric: name.into(),
        value,
        wall: dir::now(),
        p,
        plugin_version: version.into(),
    }
}

fn read_source(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn file_stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Loss and top-1 hits of the steps since the last log line, summed on the
/// device. Reading them waits for the device, so it happens only at read
/// points (logging, evaluation, checkpoints), not after every step (issue 14).
#[derive(Default)]
struct Pending {
    loss: Option<Tensor<1>>,
    last: Option<Tensor<1>>,
    correct: Option<Tensor<1, Int>>,
    samples: usize,
    steps: usize,
    time: Duration,
}

/// A loss since the last read was NaN or infinite.
struct NonFinite;

#[derive(Clone, Copy)]
struct Totals {
    mean_loss: f64,
    acc: f64,
    per_s: f64,
    step_s: f64,
    last_loss: Option<f64>,
}

impl Pending {
    fn add(&mut self, loss: Tensor<1>, correct: Tensor<1, Int>, samples: usize) {
        self.loss = Some(match self.loss.take() {
            Some(sum) => sum + loss.clone(),
            None => loss.clone(),
        });
        self.last = Some(loss);
        self.correct = Some(match self.correct.take() {
            Some(sum) => sum + correct,
            None => correct,
        });
        self.samples += samples;
        self.steps += 1;
    }

    /// Host time of a step (the device may still be working on it: the wait
    /// shows up in the next read).
    fn took(&mut self, host: Duration) {
        self.time += host;
    }

    /// The totals since the last restart, in one transfer.
    fn read(&mut self) -> Result<Totals, NonFinite> {
        let (Some(loss), Some(last), Some(correct)) = (&self.loss, &self.last, &self.correct)
        else {
            return Ok(self.totals(0.0, None, 0.0));
        };
        let waited = Instant::now();
        let parts = vec![loss.clone(), last.clone(), correct.clone().float()];
        let values = Tensor::cat(parts, 0)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        self.time += waited.elapsed();
        match values[..] {
            [sum, last, correct] if sum.is_finite() => {
                Ok(self.totals(f64::from(sum), Some(f64::from(last)), f64::from(correct)))
            }
            _ => Err(NonFinite),
        }
    }

    fn totals(&self, loss_sum: f64, last_loss: Option<f64>, correct: f64) -> Totals {
        let steps = self.steps.max(1) as f64;
        let secs = self.time.as_secs_f64().max(1e-9);
        Totals {
            mean_loss: loss_sum / steps,
            acc: correct / self.samples.max(1) as f64,
            per_s: self.samples as f64 / secs,
            step_s: secs / steps,
            last_loss,
        }
    }

    /// A new window (after a log line).
    fn restart(&mut self) {
        *self = Pending::default();
    }
}

/// The model and optimiser at the last read that found every loss finite.
/// Both are cheap to keep: updates are out of place, so this holds the old
/// tensors rather than copies.
struct Good {
    model: Model,
    optim: RunOptimizer,
    step: u64,
}

impl Good {
    fn restore(&self) -> (Model, RunOptimizer, u64) {
        (self.model.clone(), self.optim.clone(), self.step)
    }
}
