//! `probdrop-tui export`: a run's metrics in the formats other tools read —
//! TensorBoard event files (which W&B and Aim import too) and CSV (a long
//! table, timm's `summary.csv`, and the run's settings in `run.csv`) — and a
//! ResNet run's trained weights as safetensors under torchvision's names.

pub mod figures;
pub mod hparams;
pub mod images;
pub mod safetensors;
pub mod sweep_figure;
pub mod tfevents;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::run::comparison::{Manifest, Table};
use crate::run::dir::{MetricLine, RunDir, RunInfo, SnapshotLine, State, metric};
use crate::run::files;
use crate::run::provenance::Provenance;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One TensorBoard event file per run (`tensorboard --logdir OUT`).
    Tensorboard,
    /// metrics.csv (every value, long format), timm's summary.csv and
    /// run.csv (the starting settings and any changes mid-run) per run.
    Csv,
    /// Figures: a run's loss and accuracy curves; a comparison's accuracy
    /// and dropped fraction per strategy, mean ± sd over seeds.
    Png,
    /// The same figures as SVG.
    Svg,
    /// A ResNet run's latest checkpoint as model.safetensors under
    /// torchvision's parameter names (`load_state_dict` into
    /// torchvision.models.resnet18/50; a CIFAR-stem run needs conv1 3×3
    /// stride 1 and no maxpool). Other models are refused.
    Safetensors,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Run directories, or comparison directories (compare/NAME) for all
    /// their runs.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum)]
    pub format: Format,
    /// Where to write: one directory per run, named as the run; a
    /// comparison's runs inside one directory named as the comparison.
    #[arg(long, default_value = "exports")]
    pub out: PathBuf,
}

/// What a path on the command line is.
enum Source {
    Run(RunDir),
    Comparison(String, Box<Manifest>),
}

fn source(path: &Path) -> Result<Source> {
    if let Ok(manifest) = Manifest::load(path) {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        return Ok(Source::Comparison(name.into_owned(), Box::new(manifest)));
    }
    let run = RunDir::new(path);
    if run.info().is_err() {
        bail!(
            "{}: neither a run directory (no run.json) nor a comparison (no manifest)",
            path.display()
        );
    }
    Ok(Source::Run(run))
}

/// `probdrop-tui export`.
pub fn export(args: &ExportArgs) -> Result<()> {
    files::writes_fail_past_size_limit();
    let sources: Vec<Source> = args
        .paths
        .iter()
        .map(|p| source(p))
        .collect::<Result<_>>()?;
    for src in sources {
        let written = match src {
            Source::Comparison(name, manifest) if figure_ext(args.format).is_some() => {
                comparison_figure(&args.out.join(name), &manifest, args.format)?
            }
            // Its runs in a folder of their own, named as the comparison,
            // not among every other export.
            Source::Comparison(name, manifest) => {
                let out = args.out.join(name);
                let mut all = Vec::new();
                for e in manifest.current() {
                    all.extend(export_run(&RunDir::new(&e.dir), &out, args.format)?);
                }
                all
            }
            Source::Run(run) => export_run(&run, &args.out, args.format)?,
        };
        for path in written {
            println!("{}", path.display());
        }
    }
    Ok(())
}

fn figure_ext(format: Format) -> Option<&'static str> {
    match format {
        Format::Png => Some("png"),
        Format::Svg => Some("svg"),
        Format::Tensorboard | Format::Csv | Format::Safetensors => None,
    }
}

/// One run's export in `out/<run directory's name>`.
fn export_run(run: &RunDir, out: &Path, format: Format) -> Result<Vec<PathBuf>> {
    let dir = out.join(run.path.file_name().unwrap_or_default());
    if format == Format::Safetensors {
        // Creates the directory only once the run has weights to write.
        return Ok(vec![safetensors::write(&dir, run)?]);
    }
    export_dir(&dir)?;
    Ok(match (format, figure_ext(format)) {
        (Format::Tensorboard, _) => vec![write_tensorboard(&dir, run)?],
        (Format::Csv, _) => write_csv(&dir, run)?,
        (_, ext) => {
            let path = dir.join(format!("curves.{}", ext.unwrap_or("png")));
            figures::draw(&path, &figures::run_panels(&run.metrics()))?;
            let mut written = vec![path];
            written.extend(last_snapshots(&dir, run, ext.unwrap_or("png"))?);
            written
        }
    })
}

/// Each slot's last snapshot as a figure: of the samples snapped at its
/// last step, the channel that shows the most (most dropped, then most
/// varied salience; never a dead channel where another shows something),
/// named in the file: `mask-<slot>-step<N>-sample<S>-ch<C>.<ext>`.
fn last_snapshots(dir: &Path, run: &RunDir, ext: &str) -> Result<Vec<PathBuf>> {
    let mut last: BTreeMap<String, Vec<SnapshotLine>> = BTreeMap::new();
    for s in run.snapshots() {
        let of_slot = last.entry(s.slot.clone()).or_default();
        if of_slot.first().is_some_and(|f| f.step != s.step) {
            of_slot.clear();
        }
        of_slot.push(s);
    }
    let mut written = Vec::new();
    for (slot, samples) in last {
        let Some((s, c)) = most_telling(&samples) else {
            continue;
        };
        let channel = s.channels.get(c).copied().unwrap_or(c);
        let name = format!(
            "mask-{}-step{}-sample{}-ch{channel}.{ext}",
            slot.replace('/', "_"),
            s.step,
            s.sample
        );
        let path = dir.join(name);
        figures::draw_snapshot(&path, s, Some(c))?;
        written.push(path);
    }
    Ok(written)
}

/// The snapshot and channel (an index into its channels) that show the
/// most; the first among equals.
fn most_telling(snapshots: &[SnapshotLine]) -> Option<(&SnapshotLine, usize)> {
    // `max_by` keeps the last of equals: look from the end.
    snapshots
        .iter()
        .rev()
        .map(|s| (s, s.most_telling_channel()))
        .max_by(|(a, ca), (b, cb)| {
            let (ta, tb) = (a.telling(*ca), b.telling(*cb));
            ta.0.cmp(&tb.0).then(ta.1.total_cmp(&tb.1))
        })
}

/// The comparison's figure, `comparison.png` or `.svg` in `dir`: its
/// finished runs' curves per strategy.
pub fn comparison_figure(dir: &Path, manifest: &Manifest, format: Format) -> Result<Vec<PathBuf>> {
    export_dir(dir)?;
    let mut runs: BTreeMap<String, Vec<Vec<MetricLine>>> = BTreeMap::new();
    for e in manifest.current() {
        let run = RunDir::new(&e.dir);
        if run.status().is_some_and(|s| s.state == State::Done) {
            runs.entry(e.label.clone()).or_default().push(run.metrics());
        }
    }
    let path = dir.join(format!(
        "comparison.{}",
        figure_ext(format).unwrap_or("png")
    ));
    figures::draw(&path, &figures::comparison_panels(&runs))?;
    Ok(vec![path])
}

/// The sweep's figure, `sweep.png` or `.svg` in `dir` (nothing without
/// sweep cells): a panel per sweeping arm.
pub fn sweep_figure(dir: &Path, table: &Table, format: Format) -> Result<Vec<PathBuf>> {
    if table.cells.is_empty() {
        return Ok(Vec::new());
    }
    export_dir(dir)?;
    let path = dir.join(format!("sweep.{}", figure_ext(format).unwrap_or("png")));
    sweep_figure::draw(&path, &sweep_figure::sweep_panels(table))?;
    Ok(vec![path])
}

/// The TensorBoard tag of a metric: `train/loss`, `val/acc`, and the
/// step-level values under their own names (`lr`, `p`, `dropped/block2`).
pub fn tag(line: &MetricLine) -> String {
    let quality = [metric::LOSS, metric::ACC, metric::TOP5].contains(&line.metric.as_str());
    match metric::Split::of(&line.split) {
        Some(split) if split == metric::Split::Val || quality => {
            metric::SeriesKey::new(split, &line.metric).to_string()
        }
        _ => line.metric.clone(),
    }
}

/// One event per logged step, every metric of the step as a scalar.
pub fn step_events(lines: &[MetricLine]) -> Vec<tfevents::Event> {
    let mut by_step: BTreeMap<u64, tfevents::Event> = BTreeMap::new();
    for line in lines {
        let event = by_step.entry(line.step).or_insert_with(|| tfevents::Event {
            wall_time: line.wall,
            step: line.step as i64,
            file_version: None,
            scalars: Vec::new(),
            images: Vec::new(),
            plugin_values: Vec::new(),
        });
        event.wall_time = event.wall_time.max(line.wall);
        event.scalars.push((tag(line), line.value as f32));
    }
    by_step.into_values().collect()
}

/// One event per snapshot, its mask and salience pictures at its step.
pub fn snapshot_events(snapshots: &[SnapshotLine], wall: f64) -> Result<Vec<tfevents::Event>> {
    snapshots
        .iter()
        .map(|s| {
            Ok(tfevents::Event {
                wall_time: wall,
                step: s.step as i64,
                file_version: None,
                scalars: Vec::new(),
                images: images::snapshot_images(s)?.into(),
                plugin_values: Vec::new(),
            })
        })
        .collect()
}

/// A whole event file's events: the version event, then every step's
/// scalars and snapshots in step order.
pub fn events(lines: &[MetricLine], snapshots: &[SnapshotLine]) -> Result<Vec<tfevents::Event>> {
    let first_wall = lines.first().map_or(0.0, |l| l.wall);
    let mut events = step_events(lines);
    events.extend(snapshot_events(snapshots, first_wall)?);
    events.sort_by_key(|e| e.step);
    events.insert(0, tfevents::version_event(first_wall));
    Ok(events)
}

/// Writes `events` as records.
pub fn write_events(out: &mut impl Write, events: &[tfevents::Event]) -> std::io::Result<()> {
    for event in events {
        tfevents::write_record(out, &tfevents::encode(event))?;
    }
    Ok(())
}

/// Everything a run's event file holds: its metrics and snapshots, its
/// hyperparameters, and, once the run has ended and `with_end`, its final
/// and best validation accuracy (TensorBoard keeps the first end it reads,
/// so a resumed run leaves its earlier end out).
pub fn run_events(run: &RunDir, with_end: bool) -> Result<Vec<tfevents::Event>> {
    let lines = run.metrics();
    let mut events = events(&lines, &run.snapshots())?;
    let wall = events[0].wall_time;
    let (info, params) = settings(run)?;
    let group = format!("{}/{}", info.experiment, info.label);
    events.splice(1..1, hparams::start_events(&params, &group, wall));
    if let Some(status) = run.status().filter(|s| with_end && s.state.is_final()) {
        let last = lines.last().map_or(wall, |l| l.wall);
        let (final_acc, best) = (status.last_val_acc, status.best_val_acc);
        events.push(hparams::end_event(
            status.step as i64,
            last,
            final_acc.unwrap_or(f64::NAN),
            best.unwrap_or(f64::NAN),
            status.state == State::Done,
        ));
    }
    Ok(events)
}

/// The run's run.json and its hyperparameters as it started (see
/// [`hparams::of_run`]): what the HParams dashboard and run.csv both carry.
fn settings(run: &RunDir) -> Result<(RunInfo, BTreeMap<String, hparams::HValue>)> {
    let info = run.info()?;
    let params = hparams::of_run(&info, &Provenance::of(run), &run.experiment()?);
    Ok((info, params))
}

fn write_tensorboard(dir: &Path, run: &RunDir) -> Result<PathBuf> {
    let path = dir.join(tfevents::FILE_NAME);
    let events = run_events(run, true)?;
    write_file(&path, |mut out| write_events(&mut out, &events))?;
    Ok(path)
}

/// The directory of one run's (or comparison's) export: made if need be, and
/// only ever this user's own directory, never a link to somewhere else (see
/// [`files::own_dir`]); a shared `--out` is followed as the user named it.
pub fn export_dir(dir: &Path) -> Result<()> {
    files::own_dir(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes an export file the way checkpoints are written (see
/// [`files::write_with`]): a link at `path` is replaced, not followed, and a
/// failed write leaves the earlier file, or none, never a truncated one.
pub fn write_file(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    files::write_with(path, fill).with_context(|| format!("writing {}", path.display()))
}

/// A column of metrics.csv: its name and its cell of a line.
type MetricColumn = (&'static str, fn(&MetricLine) -> String);

/// metrics.csv's columns, every field of a metrics.jsonl line (a test holds
/// them to the fields): the header and each row are made from this list.
pub const METRIC_COLUMNS: [MetricColumn; 8] = [
    ("step", |l| l.step.to_string()),
    ("epoch", |l| l.epoch.to_string()),
    ("split", |l| csv_cell(&l.split)),
    ("metric", |l| csv_cell(&l.metric)),
    ("value", |l| l.value.to_string()),
    ("wall", |l| l.wall.to_string()),
    ("p", |l| l.p.to_string()),
    ("plugin_version", |l| csv_cell(&l.plugin_version)),
];

/// metrics.csv: every line of metrics.jsonl.
pub fn metrics_csv(lines: &[MetricLine]) -> String {
    let row = |cells: Vec<String>| cells.join(",") + "\n";
    let mut out = row(METRIC_COLUMNS.iter().map(|c| c.0.to_string()).collect());
    for l in lines {
        out.push_str(&row(METRIC_COLUMNS.iter().map(|c| (c.1)(l)).collect()));
    }
    out
}

/// What timm's summary.csv holds for one epoch.
#[derive(Default)]
struct EpochRow {
    train_losses: Vec<f64>,
    eval_loss: Option<f64>,
    eval_top1: Option<f64>,
    eval_top5: Option<f64>,
    lr: Option<f64>,
}

/// timm's summary.csv: per epoch the mean logged training loss, the last
/// evaluation's loss and top-1/top-5 accuracy in percent (as timm writes
/// them), and the learning rate. Top-5 is empty where it was not measured.
pub fn summary_csv(lines: &[MetricLine]) -> String {
    let mut epochs: BTreeMap<u64, EpochRow> = BTreeMap::new();
    for l in lines {
        let row = epochs.entry(l.epoch).or_default();
        match (l.split.as_str(), l.metric.as_str()) {
            (metric::TRAIN, metric::LOSS) => row.train_losses.push(l.value),
            (metric::TRAIN, metric::LR) => row.lr = Some(l.value),
            (metric::VAL, metric::LOSS) => row.eval_loss = Some(l.value),
            (metric::VAL, metric::ACC) => row.eval_top1 = Some(100.0 * l.value),
            (metric::VAL, metric::TOP5) => row.eval_top5 = Some(100.0 * l.value),
            _ => {}
        }
    }
    let cell = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    let mut out = String::from("epoch,train_loss,eval_loss,eval_top1,eval_top5,lr\n");
    for (epoch, r) in epochs {
        let n = r.train_losses.len();
        let train_loss = (n > 0).then(|| r.train_losses.iter().sum::<f64>() / n as f64);
        out.push_str(&format!(
            "{epoch},{},{},{},{},{}\n",
            cell(train_loss),
            cell(r.eval_loss),
            cell(r.eval_top1),
            cell(r.eval_top5),
            cell(r.lr)
        ));
    }
    out
}

/// The columns of run.csv before the run's experiment keys.
const RUN_COLUMNS: [&str; 4] = ["run", "experiment", "strategy", "seed"];

/// run.csv: the run on one row, as the HParams dashboard has it — its name,
/// experiment, strategy and seed, every key of the configuration it started
/// with, then `changed_mid_run` (as compare's runs.csv has it) and the
/// changes themselves.
pub fn run_csv(name: &str, info: &RunInfo, params: &BTreeMap<String, hparams::HValue>) -> String {
    let last = [hparams::CHANGED_MID_RUN, hparams::CHANGES];
    let keys: Vec<&str> = params
        .keys()
        .map(String::as_str)
        .filter(|k| !["seed", "strategy"].contains(k) && !last.contains(k))
        .chain(last)
        .collect();
    let header: Vec<&str> = RUN_COLUMNS
        .iter()
        .copied()
        .chain(keys.iter().copied())
        .collect();
    let fixed = [name, &info.experiment, &info.label, &info.seed.to_string()].map(csv_cell);
    let values = keys
        .iter()
        .map(|k| csv_cell(&params.get(*k).map_or(String::new(), cell_text)));
    let row: Vec<String> = fixed.into_iter().chain(values).collect();
    format!("{}\n{}\n", header.join(","), row.join(","))
}

/// A hyperparameter as a CSV cell's text: numbers as Rust prints them (`32`,
/// `0.1`), flags as `true`/`false`.
fn cell_text(value: &hparams::HValue) -> String {
    match value {
        hparams::HValue::Number(n) => n.to_string(),
        hparams::HValue::Text(t) => t.clone(),
        hparams::HValue::Flag(b) => b.to_string(),
    }
}

/// One CSV cell (RFC 4180): quoted where it holds a comma, quote or line
/// break, as a TOML array (`[8, 16]`) or a list of changes can.
fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// metrics.csv, summary.csv and run.csv, run.csv made before any is
/// written: a run whose experiment cannot be read gets no partial export.
fn write_csv(dir: &Path, run: &RunDir) -> Result<Vec<PathBuf>> {
    let (info, params) = settings(run)?;
    let name = run.path.file_name().unwrap_or_default().to_string_lossy();
    let row = run_csv(&name, &info, &params);
    let lines = run.metrics();
    let metrics = dir.join("metrics.csv");
    let summary = dir.join("summary.csv");
    let run_file = dir.join("run.csv");
    write_file(&metrics, |out| {
        out.write_all(metrics_csv(&lines).as_bytes())
    })?;
    write_file(&summary, |out| {
        out.write_all(summary_csv(&lines).as_bytes())
    })?;
    write_file(&run_file, |out| out.write_all(row.as_bytes()))?;
    Ok(vec![metrics, summary, run_file])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::provenance::ConfigChange;

    const NOW: &str = "name = \"t\"\nseeds = [1, 2]\n[data]\nformat = \"idx\"\npath = \"d\"\n\
                       [model]\nkind = \"small-cnn\"\n[train]\nepochs = 1\nbatch_size = 8\n\
                       log_every = 10\n[[strategy]]\nplugin = \"dropblock\"\n\
                       params = { block_size = 5 }\n";

    /// A run directory whose block size went from 3 to 5 after step 190.
    fn changed_run(tmp: &Path) -> RunDir {
        let info = RunInfo {
            experiment: "t".into(),
            source: tmp.join("t.toml"),
            label: "dropblock".into(),
            strategy_index: 0,
            seed: 2,
            created: "20260101-000000".into(),
            slurm_job: None,
        };
        let run = RunDir::create(&tmp.join("runs"), &info, NOW).unwrap();
        let change = ConfigChange {
            after_step: 190,
            key: "strategy.params.block_size".into(),
            from: Some(toml::Value::Integer(3)),
            to: Some(toml::Value::Integer(5)),
        };
        Provenance::record_changes(&run, vec![change]).unwrap();
        run
    }

    /// A CSV line's cells, quotes undone.
    fn cells(line: &str) -> Vec<String> {
        let (mut out, mut cell, mut quoted) = (Vec::new(), String::new(), false);
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => cell.push(chars.next().unwrap_or('"')),
                ('"', _) => quoted = !quoted,
                (',', false) => out.push(std::mem::take(&mut cell)),
                _ => cell.push(c),
            }
        }
        out.push(cell);
        out
    }

    /// Issue 33: the event file's HParams are the run's starting values,
    /// flagged as changed mid-run, with the change said.
    #[test]
    fn a_run_changed_live_exports_its_starting_hparams_and_the_change() {
        use hparams::HValue::{Flag, Number, Text};
        let tmp = tempfile::tempdir().unwrap();
        let run = changed_run(tmp.path());
        let mut file = Vec::new();
        write_events(&mut file, &run_events(&run, true).unwrap()).unwrap();
        let params = hparams::read_session_start(&tfevents::read(&file).unwrap()).unwrap();
        assert_eq!(params["strategy.params.block_size"], Number(3.0));
        assert_eq!(params[hparams::CHANGED_MID_RUN], Flag(true));
        let said = "strategy.params.block_size 3→5 @ step 190";
        assert_eq!(params[hparams::CHANGES], Text(said.into()));
    }

    /// Issue 33: run.csv carries what the HParams carry.
    #[test]
    fn run_csv_holds_the_starting_values_and_the_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let run = changed_run(tmp.path());
        let written = write_csv(tmp.path(), &run).unwrap();
        assert_eq!(written[2], tmp.path().join("run.csv"));
        let text = std::fs::read_to_string(&written[2]).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let row: BTreeMap<String, String> =
            cells(lines[0]).into_iter().zip(cells(lines[1])).collect();
        let name = run.path.file_name().unwrap().to_string_lossy();
        assert_eq!(row["run"], name);
        assert_eq!(
            (row["experiment"].as_str(), row["strategy"].as_str()),
            ("t", "dropblock")
        );
        assert_eq!(row["seed"], "2");
        assert_eq!(row["strategy.params.block_size"], "3");
        assert_eq!(row["seeds"], "[1, 2]");
        assert_eq!(row["changed_mid_run"], "true");
        assert_eq!(row["changes"], "strategy.params.block_size 3→5 @ step 190");
        let header = cells(lines[0]);
        assert_eq!(header[..4], RUN_COLUMNS);
        assert_eq!(header[header.len() - 2..], ["changed_mid_run", "changes"]);
    }

    /// Issue 34, item 19: metrics.csv has a column for every field of a
    /// metrics.jsonl line, the plugin version among them.
    #[test]
    fn metrics_csv_has_every_field_of_metrics_jsonl() {
        let line = MetricLine {
            step: 4,
            epoch: 0,
            split: "train".into(),
            metric: "loss".into(),
            value: 0.5,
            wall: 1.25,
            p: 0.1,
            plugin_version: "1.2.0".into(),
        };
        let json = serde_json::to_value(&line).unwrap();
        let mut fields: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut columns: Vec<&str> = METRIC_COLUMNS.iter().map(|c| c.0).collect();
        fields.sort();
        columns.sort();
        assert_eq!(columns, fields);
        let text = metrics_csv(&[line]);
        let rows: Vec<Vec<String>> = text.lines().map(cells).collect();
        let row: BTreeMap<&str, &str> = rows[0]
            .iter()
            .map(String::as_str)
            .zip(rows[1].iter().map(String::as_str))
            .collect();
        assert_eq!(row["plugin_version"], "1.2.0");
        assert_eq!((row["step"], row["metric"], row["p"]), ("4", "loss", "0.1"));
    }

    #[test]
    fn csv_cells_are_quoted_only_where_they_must_be() {
        assert_eq!(csv_cell("3"), "3");
        assert_eq!(csv_cell("[8, 16]"), "\"[8, 16]\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cells(&csv_cell("a,\"b\"")), ["a,\"b\""]);
    }
}
