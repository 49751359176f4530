//! `export` on a real trained run: the TensorBoard event file read back (by
//! our reader always, and by TensorBoard's own EventAccumulator where
//! `.ci/run` installed it) holds exactly metrics.jsonl's values under their
//! tags; the CSVs hold every value and timm's summary columns; a run changed
//! mid-run has its starting settings, a flag and its changes in both the
//! HParams and run.csv; a ResNet's
//! safetensors file holds torchvision's names and shapes (read back by the
//! safetensors crate always, and by its Python package where `.ci/run`
//! installed it).

use std::path::Path;
use std::process::Command;

use std::collections::BTreeMap;

use probdrop_tui::export::hparams::{self, HValue};
use probdrop_tui::export::{tag, tfevents};
use probdrop_tui::run::dir::{MetricLine, RunDir};
use probdrop_tui::run::provenance::{self, ConfigChange, Provenance};

use crate::common::{Tiny, harness, repo_root};

/// A tiny run of the probe strategy with snapshots every 4 steps (and the
/// event file written live when `tensorboard`).
fn trained_run(tensorboard: bool) -> (harness::Setup, RunDir) {
    let setup = harness::setup("probe-v1", "");
    let log = if tensorboard {
        "[log]\ntensorboard = true\n"
    } else {
        ""
    };
    let strategies = format!(
        "{log}\n[[strategy]]\nplugin = \"probe\"\nschedule = {{ kind = \"constant\", p = 0.1 }}"
    );
    let file = Tiny {
        name: "tb",
        seeds: "[3]",
        train: "epochs = 1\nlog_every = 2\neval_every = 8\nsnapshot_every = 4",
        strategies: &strategies,
        ..Tiny::default()
    }
    .write(&setup._tmp.path().join("tb.toml"));
    let out = setup.run_file(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = probdrop_tui::run::dir::list_runs(&setup.runs).remove(0);
    (setup, run)
}

/// Every picture of an event file: (tag, step), each a PNG of its size.
fn pictures(file: &Path) -> Vec<(String, i64)> {
    let events = tfevents::read(&std::fs::read(file).unwrap()).unwrap();
    let mut out = Vec::new();
    for e in &events {
        for (tag, image) in &e.images {
            let png = image::load_from_memory(&image.png).unwrap();
            assert_eq!((png.height(), png.width()), (image.height, image.width));
            out.push((tag.clone(), e.step));
        }
    }
    out
}

pub(crate) fn export(
    setup: &harness::Setup,
    run: &RunDir,
    format: &str,
    out: &Path,
) -> Vec<String> {
    let done = setup
        .bin()
        .arg("export")
        .arg(&run.path)
        .args(["--format", format, "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    String::from_utf8_lossy(&done.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// (tag, step) → value, as f32 like the event file.
fn expected(lines: &[MetricLine]) -> Vec<(String, i64, f32)> {
    let mut v: Vec<_> = lines
        .iter()
        .map(|l| (tag(l), l.step as i64, l.value as f32))
        .collect();
    v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    v
}

#[test]
fn a_run_exports_to_tensorboard_with_every_value_under_its_tag() {
    let (setup, run) = trained_run(false);
    let out = setup._tmp.path().join("tb");
    let written = export(&setup, &run, "tensorboard", &out);
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(written[0].contains("events.out.tfevents."), "{written:?}");
    let events = tfevents::read(&std::fs::read(&written[0]).unwrap()).unwrap();
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    let got = scalars(Path::new(&written[0]));
    let want = expected(&run.metrics());
    assert_eq!(got, want);
    let tags: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    for t in ["train/loss", "train/acc", "val/loss", "val/acc", "lr", "p"] {
        assert!(tags.contains(&t), "no {t} in {tags:?}");
    }
    // Two pictures per snapshot, at the snapshot's step.
    let snapshots = run.snapshots();
    assert!(!snapshots.is_empty());
    let pics = pictures(Path::new(&written[0]));
    assert_eq!(pics.len(), 2 * snapshots.len());
    let first = &snapshots[0];
    let tag = format!("mask/{}/sample{}", first.slot, first.sample);
    assert!(pics.contains(&(tag, first.step as i64)), "{pics:?}");
    tensorboards_own_reader_agrees(&written[0], &run, pics.len());
}

/// What TensorBoard's own Python reads from an event file: scalars (but the
/// HParams results), the number of PNG pictures, the HParams session's
/// values and end status, and the HParams results.
const READER: &str = r#"
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
acc = EventAccumulator(sys.argv[1], size_guidance={'scalars': 0, 'images': 0})
acc.Reload()
for t in sorted(acc.Tags()['scalars']):
    for e in acc.Scalars(t):
        kind = 'result' if t.startswith('hparams/') else 'scalar'
        print(kind, t, e.step, repr(e.value))
pngs = [i for t in acc.Tags()['images'] for i in acc.Images(t)]
assert all(i.encoded_image_string[:8] == b'\x89PNG\r\n\x1a\n' for i in pngs)
print('pictures', len(pngs))
content = acc.PluginTagToContent('hparams')
start = plugin_data_pb2.HParamsPluginData.FromString(content['_hparams_/session_start_info'])
for k, v in sorted(start.session_start_info.hparams.items()):
    print('hparam', k, v.WhichOneof('kind'), getattr(v, v.WhichOneof('kind')))
end = plugin_data_pb2.HParamsPluginData.FromString(content['_hparams_/session_end_info'])
print('status', end.session_end_info.status)
exp = plugin_data_pb2.HParamsPluginData.FromString(content['_hparams_/experiment'])
print('metrics', ' '.join(m.name.tag for m in exp.experiment.metric_infos))
"#;

/// What `script` prints when run on `file` by the Python that `.ci/run` sets
/// up (`PROBDROP_TB_PYTHON`, with `package` pinned), or `None` where it is not
/// there; CI fails without it.
fn ci_python(script: &str, file: &str, package: &str) -> Option<String> {
    let Ok(python) = std::env::var("PROBDROP_TB_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI sets PROBDROP_TB_PYTHON (.ci/run installs {package})"
        );
        eprintln!("{package} not checked: PROBDROP_TB_PYTHON is not set");
        return None;
    };
    let out = Command::new(python)
        .args(["-c", script, file])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(said)
}

/// TensorBoard's EventAccumulator over the file, where the Python that CI
/// sets up (`PROBDROP_TB_PYTHON`) is there; CI fails without it.
fn tensorboards_own_reader_agrees(file: &str, run: &RunDir, pictures: usize) {
    let Some(said) = ci_python(READER, file, "tensorboard") else {
        return;
    };
    let read: Vec<(String, i64, f32)> = said
        .lines()
        .filter_map(|l| l.strip_prefix("scalar "))
        .map(|l| {
            let mut parts = l.split(' ');
            let tag = parts.next().unwrap().to_string();
            let step = parts.next().unwrap().parse().unwrap();
            let value: f64 = parts.next().unwrap().parse().unwrap();
            (tag, step, value as f32)
        })
        .collect();
    assert_eq!(read, expected(&run.metrics()));
    assert!(said.contains(&format!("pictures {pictures}\n")), "{said}");
    let status = run.status().unwrap();
    let best = status.best_val_acc.unwrap() as f32;
    for line in [
        "hparam seed number_value 3.0".to_string(),
        "hparam strategy string_value probe".into(),
        "hparam strategy.schedule.p number_value 0.1".into(),
        "hparam train.batch_size number_value 32.0".into(),
        "hparam changed_mid_run bool_value False".into(),
        "status 1".into(),
        format!("result hparams/best_val_acc {} {best:?}", status.step),
        "metrics hparams/final_val_acc hparams/best_val_acc val/acc train/loss".into(),
    ] {
        assert!(said.contains(&line), "no {line:?} in\n{said}");
    }
}

/// Every scalar of an event file but the HParams results, sorted as
/// [`expected`] sorts.
fn scalars(file: &Path) -> Vec<(String, i64, f32)> {
    let events = tfevents::read(&std::fs::read(file).unwrap()).unwrap();
    let mut got: Vec<(String, i64, f32)> = events
        .iter()
        .flat_map(|e| e.scalars.iter().map(move |(t, v)| (t.clone(), e.step, *v)))
        .filter(|s| !s.0.starts_with("hparams/"))
        .collect();
    got.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    got
}

#[test]
fn a_run_with_log_tensorboard_writes_its_event_file_as_it_trains() {
    let (_setup, run) = trained_run(true);
    let file = run.file(tfevents::FILE_NAME);
    let written = scalars(&file);
    assert_eq!(written, expected(&run.metrics()));
    assert!(written.iter().any(|s| s.0 == "val/acc"), "{written:?}");
    assert_eq!(pictures(&file).len(), 2 * run.snapshots().len());
}

#[test]
fn a_run_exports_to_csv_long_and_timm_summary() {
    let (setup, run) = trained_run(false);
    let out = setup._tmp.path().join("csv");
    let written = export(&setup, &run, "csv", &out);
    assert_eq!(written.len(), 3, "{written:?}");
    let settings = run_csv(&written[2]);
    assert_eq!(settings["strategy.schedule.p"], "0.1");
    assert_eq!(settings["changed_mid_run"], "false");
    assert_eq!(settings["changes"], "");
    let metrics = std::fs::read_to_string(&written[0]).unwrap();
    let lines = run.metrics();
    assert_eq!(metrics.lines().count(), lines.len() + 1);
    assert_eq!(
        metrics.lines().next().unwrap(),
        "step,epoch,split,metric,value,wall,p,plugin_version"
    );
    // Every row has the version of the strategy that produced it (issue 34,
    // item 19), as metrics.jsonl has.
    let versions: Vec<String> = metrics
        .lines()
        .skip(1)
        .map(|l| cells(l)[7].clone())
        .collect();
    let want: Vec<String> = lines.iter().map(|l| l.plugin_version.clone()).collect();
    assert_eq!(versions, want);
    assert!(want.iter().all(|v| !v.is_empty()), "{want:?}");
    let summary = std::fs::read_to_string(&written[1]).unwrap();
    let mut rows = summary.lines();
    assert_eq!(
        rows.next().unwrap(),
        "epoch,train_loss,eval_loss,eval_top1,eval_top5,lr"
    );
    let last_val_acc = lines
        .iter()
        .rfind(|l| l.split == "val" && l.metric == "acc")
        .unwrap()
        .value;
    let row: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(row[0], "0");
    assert_eq!(row[3].parse::<f64>().unwrap(), 100.0 * last_val_acc);
    assert!(row[1].parse::<f64>().unwrap() > 0.0);
    pandas_reads_timms_columns(&written[1], 100.0 * last_val_acc);
}

/// run.csv's one row by its header's names, quotes undone.
pub(crate) fn run_csv(path: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    cells(lines[0]).into_iter().zip(cells(lines[1])).collect()
}

/// A CSV line's cells (RFC 4180 quoting).
fn cells(line: &str) -> Vec<String> {
    let (mut out, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => cell.push(chars.next().unwrap()),
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cell)),
            _ => cell.push(c),
        }
    }
    out.push(cell);
    out
}

/// Issue 33: `p` went from 0.05 to 0.1 after step 4 and the strategy's code
/// changed after step 6 (recorded as the trainer records them); its
/// experiment.toml has the end's 0.1. Returns the changes as exports say them.
fn change_mid_run(run: &RunDir) -> String {
    let mut record = Provenance::of(run);
    assert_eq!(record.libraries.len(), 1, "{record:?}");
    let started = record.libraries[0].clone();
    record.config_changes.push(ConfigChange {
        after_step: 4,
        key: "strategy.schedule.p".into(),
        from: Some(toml::Value::Float(0.05)),
        to: Some(toml::Value::Float(0.1)),
    });
    record.use_library(provenance::LibraryUse {
        after_step: 6,
        sha256: "9c41d2e0".repeat(8),
        ..started.clone()
    });
    record.write(run).unwrap();
    let v = &started.version;
    format!(
        "strategy.schedule.p 0.05→0.1 @ step 4; library {} {v} ({})→{v} (9c41d2e0) @ step 6",
        started.name,
        provenance::short(&started.sha256)
    )
}

/// Issue 33: a run edited live was exported with its end values as if it
/// had trained with them from step 0. Now the HParams and run.csv hold the
/// values it started with, `changed_mid_run` and the changes.
#[test]
fn a_run_changed_mid_run_exports_its_starting_settings_and_its_changes() {
    let (setup, run) = trained_run(false);
    let changes = change_mid_run(&run);
    let out = setup._tmp.path().join("out");
    let written = export(&setup, &run, "tensorboard", &out);
    let events = tfevents::read(&std::fs::read(&written[0]).unwrap()).unwrap();
    let params = hparams::read_session_start(&events).unwrap();
    assert_eq!(params["strategy.schedule.p"], HValue::Number(0.05));
    assert_eq!(params["seed"], HValue::Number(3.0));
    assert_eq!(params["changed_mid_run"], HValue::Flag(true));
    assert_eq!(params["changes"], HValue::Text(changes.clone()));
    let written = export(&setup, &run, "csv", &out);
    let settings = run_csv(&written[2]);
    let name = run.path.file_name().unwrap().to_string_lossy();
    assert_eq!(settings["run"], name);
    assert_eq!(settings["strategy"], "probe");
    assert_eq!(settings["seed"], "3");
    assert_eq!(settings["strategy.schedule.p"], "0.05");
    assert_eq!(settings["changed_mid_run"], "true");
    assert_eq!(settings["changes"], changes);
}

/// What a timm notebook does with summary.csv: pandas reads it into timm's
/// columns, numbers as numbers.
const PANDAS: &str = r#"
import sys, pandas
df = pandas.read_csv(sys.argv[1])
print("columns", ",".join(df.columns))
print("rows", len(df))
print("numeric", all(pandas.api.types.is_numeric_dtype(df[c]) for c in df.columns))
print("top1", repr(float(df["eval_top1"].iloc[-1])))
"#;

/// [`PANDAS`] with the Python that CI sets up (`PROBDROP_TB_PYTHON`, pandas
/// pinned in `.ci/run`); CI fails without it.
fn pandas_reads_timms_columns(file: &str, last_top1: f64) {
    let Some(said) = ci_python(PANDAS, file, "pandas") else {
        return;
    };
    for line in [
        "columns epoch,train_loss,eval_loss,eval_top1,eval_top5,lr".to_string(),
        "rows 1".into(),
        "numeric True".into(),
        format!("top1 {last_top1:?}"),
    ] {
        assert!(said.contains(&line), "no {line:?} in\n{said}");
    }
}

#[test]
fn a_run_draws_its_curves_as_png_and_svg() {
    let (setup, run) = trained_run(false);
    let out = setup._tmp.path().join("figs");
    let png = export(&setup, &run, "png", &out);
    let (w, h) = probdrop_tui::export::figures::SIZE;
    // The curves, then the last snapshot of the slot: salience and mask.
    let last = run
        .snapshots()
        .into_iter()
        .rfind(|s| s.sample == 0)
        .unwrap();
    assert_eq!(png.len(), 2, "{png:?}");
    the_mask_figure_shows_the_channel_with_most_drops(&run, &png[1], last.step);
    let snapshot = image::open(&png[1]).unwrap().to_rgb8();
    assert_eq!(snapshot.dimensions(), (w, h));
    let coloured = snapshot
        .pixels()
        .filter(|p| p.0[0] != p.0[1] || p.0[1] != p.0[2])
        .count();
    assert!(
        coloured > 1000,
        "the salience map and its bar are in colour"
    );
    let picture = image::open(&png[0]).unwrap();
    assert_eq!((picture.width(), picture.height()), (w, h));
    // Mostly white page, with ink on it.
    let grey = picture.to_luma8();
    let ink = grey.pixels().filter(|p| p.0[0] < 128).count();
    assert!(
        ink > 1000 && ink < (w * h / 4) as usize,
        "{ink} dark pixels"
    );
    let svg = export(&setup, &run, "svg", &out);
    assert_eq!(svg.len(), 2, "{svg:?}");
    let text = std::fs::read_to_string(&svg[0]).unwrap();
    assert!(
        text.starts_with("<svg") && text.contains("val/acc"),
        "{}",
        &text[..200]
    );
}

/// Issue 34, item 10: the snapshot figure is of the last step's sample and
/// channel with the most dropped positions, then the most varied salience
/// (never a dead channel, all zero), and its name says which: `mask-<slot>-step<N>-sample<S>-ch<C>.png`.
fn the_mask_figure_shows_the_channel_with_most_drops(run: &RunDir, file: &str, step: u64) {
    let name = Path::new(file).file_name().unwrap().to_string_lossy();
    let rest = name
        .strip_prefix(&format!("mask-block2-step{step}-sample"))
        .and_then(|r| r.strip_suffix(".png"))
        .unwrap_or_else(|| panic!("{name}"));
    let (sample, channel) = rest.split_once("-ch").unwrap();
    let (sample, channel): (usize, usize) = (sample.parse().unwrap(), channel.parse().unwrap());
    let last: Vec<_> = run
        .snapshots()
        .into_iter()
        .filter(|s| s.step == step)
        .collect();
    // (dropped positions, salience variance) of a channel.
    let shows = |s: &probdrop_tui::run::dir::SnapshotLine, c: usize| {
        let plane = s.height * s.width;
        let mask = &s.mask[c * plane..(c + 1) * plane];
        let sal: Vec<f64> = s.salience[c * plane..(c + 1) * plane]
            .iter()
            .map(|v| f64::from(*v))
            .collect();
        let mean = sal.iter().sum::<f64>() / plane as f64;
        let var = sal.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / plane as f64;
        (mask.iter().filter(|m| **m == 0.0).count(), var)
    };
    let most = last
        .iter()
        .flat_map(|s| (0..s.channels.len()).map(move |c| shows(s, c)))
        .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .unwrap();
    let shown = last.iter().find(|s| s.sample == sample).unwrap();
    let c = shown.channels.iter().position(|ch| *ch == channel).unwrap();
    assert_eq!(shows(shown, c), most, "{name}");
    let plane = shown.height * shown.width;
    let salience = &shown.salience[c * plane..(c + 1) * plane];
    assert!(salience.iter().any(|v| *v > 0.0), "{name}: a dead channel");
}

#[test]
fn export_refuses_what_is_not_a_run() {
    let setup = harness::setup("probe-v1", "epochs = 1");
    let out = setup
        .bin()
        .args(["export", "--format", "csv"])
        .arg(setup._tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("neither a run directory"), "{said}");
}

/// The small experiment with a ResNet-18 in place of the CNN: Fashion-MNIST's
/// 28×28 grey images get the CIFAR stem, so conv1 is [64, 1, 3, 3]. Two
/// steps of 8 images, checkpointed at the end.
fn resnet_experiment(path: &Path) -> std::path::PathBuf {
    let text = Tiny {
        name: "resnet",
        seeds: "[5]",
        train_limit: 16,
        val_limit: 8,
        train: "epochs = 1\nmax_steps = 2\nlog_every = 1\nsnapshot_every = 0",
        strategies: "[[strategy]]\nplugin = \"probe\"\nschedule = { kind = \"constant\", p = 0.1 }",
        ..Tiny::default()
    }
    .text();
    let cnn = "kind = \"small-cnn\"\nchannels = [8, 16]\nhidden = 32";
    assert!(text.contains(cnn) && text.contains("batch_size = 32"));
    let text = text
        .replace(cnn, "kind = \"resnet18\"")
        .replace("batch_size = 32", "batch_size = 8");
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// torchvision's `resnet18()` state dict as the committed list has it, with
/// conv1 and fc as a CIFAR-stem run on `channels`-channel images of
/// `classes` classes has them; sorted by name.
fn torchvision_resnet18(channels: usize, classes: usize) -> Vec<(String, Vec<usize>)> {
    let list = repo_root().join("tests/fixtures/torchvision_resnet18_state_dict.txt");
    let text = std::fs::read_to_string(list).unwrap();
    let mut entries: Vec<(String, Vec<usize>)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (name, shape) = l.split_once(' ').unwrap();
            let dims = match name {
                "conv1.weight" => vec![64, channels, 3, 3],
                "fc.weight" => vec![classes, 512],
                "fc.bias" => vec![classes],
                _ if shape == "-" => Vec::new(),
                _ => shape.split(',').map(|d| d.parse().unwrap()).collect(),
            };
            (name.to_string(), dims)
        })
        .collect();
    assert_eq!(entries.len(), 122);
    entries.sort();
    entries
}

/// A checkpoint tensor's values by its burn module path.
fn checkpoint_values(run: &RunDir, path: &str) -> (Vec<usize>, Vec<f32>) {
    let model = run.checkpoint().unwrap().model;
    let file = run.file("checkpoint").join(model);
    let reader = burn_pack::Reader::from_file(file).unwrap();
    let t = reader.into_tensors().unwrap();
    let t = t.into_iter().find(|t| t.name == path).unwrap();
    let shape = t.shape.to_vec();
    (shape, floats(&t.into_bytes().unwrap()))
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn a_resnet_run_exports_torchvision_named_safetensors() {
    use safetensors::{Dtype, SafeTensors};
    let setup = harness::setup("probe-v1", "");
    let file = resnet_experiment(&setup._tmp.path().join("resnet.toml"));
    let out = setup.run_file(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = probdrop_tui::run::dir::list_runs(&setup.runs).remove(0);
    let step = run.checkpoint().unwrap().step;
    assert_eq!(step, 2);
    let written = export(&setup, &run, "safetensors", &setup._tmp.path().join("st"));
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(written[0].ends_with("model.safetensors"), "{written:?}");
    let bytes = std::fs::read(&written[0]).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut got: Vec<(String, Vec<usize>)> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| (name, t.shape().to_vec()))
        .collect();
    got.sort();
    let want = torchvision_resnet18(1, 10);
    assert_eq!(got, want);
    for (name, t) in st.tensors() {
        let tracked = name.ends_with(".num_batches_tracked");
        assert_eq!(
            t.dtype(),
            if tracked { Dtype::I64 } else { Dtype::F32 },
            "{name}"
        );
        if tracked {
            assert_eq!(t.data(), 2i64.to_le_bytes(), "{name}");
        }
    }
    // Values: fc's weight transposed from burn's [in, out], batch norm's
    // gamma as weight, a running variance as it is (trained, so not all 1).
    let values = |name: &str| floats(st.tensor(name).unwrap().data());
    let (shape, fc) = checkpoint_values(&run, "ResNet.fc.weight");
    assert_eq!(shape, [512, 10]);
    let exported = values("fc.weight");
    for (o, i) in [(0, 0), (3, 100), (9, 511)] {
        assert_eq!(exported[o * 512 + i], fc[i * 10 + o], "fc.weight[{o}][{i}]");
    }
    let var = checkpoint_values(&run, "ResNet.stages.3.1.convs.1.bn.running_var").1;
    assert_eq!(values("layer4.1.bn2.running_var"), var);
    assert!(var.iter().any(|&v| v != 1.0), "trained running variance");
    let gamma = checkpoint_values(&run, "ResNet.stages.1.0.shortcut.bn.gamma").1;
    assert_eq!(values("layer2.0.downsample.1.weight"), gamma);
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    let run_name = run.path.file_name().unwrap().to_string_lossy();
    assert_eq!(meta["run"], run_name);
    assert_eq!(meta["model"], "resnet18");
    assert_eq!(meta["step"], "2");
    assert!(meta["stem"].starts_with("cifar"), "{meta:?}");
    assert!(meta["names"].contains("torchvision"), "{meta:?}");
    the_metadata_has_the_runs_input(&run, &meta);
    pythons_safetensors_agrees(&written[0], &want);
}

/// Issue 34, item 20: the file says how the run normalised its input (the
/// per-channel mean and std of its training split, as the trainer's own
/// `channel_stats` computes them) and names its classes, as JSON arrays.
fn the_metadata_has_the_runs_input(run: &RunDir, meta: &std::collections::HashMap<String, String>) {
    use probdrop_tui::train::data;
    let spec = run.experiment().unwrap().data;
    assert!(spec.normalize, "the experiment normalises its input");
    let splits = data::load(&spec, &spec.path).unwrap();
    let (mean, std) = data::channel_stats(splits.train.as_ref());
    let floats = |key: &str| -> Vec<f32> { serde_json::from_str(&meta[key]).unwrap() };
    assert_eq!(floats("mean"), mean, "{meta:?}");
    assert_eq!(floats("std"), std, "{meta:?}");
    assert!(
        mean[0] > 0.0 && std[0] > 0.0 && std[0] != 1.0,
        "{mean:?} {std:?}"
    );
    let classes: Vec<String> = serde_json::from_str(&meta["classes"]).unwrap();
    let numbered: Vec<String> = (0..10).map(|c| c.to_string()).collect();
    assert_eq!(classes, numbered, "IDX files name no classes");
    let recorded = run.input().unwrap();
    assert_eq!((recorded.mean, recorded.std), (mean, std));
}

/// Every tensor of a safetensors file as the safetensors Python package
/// reads it (into NumPy): name, dtype, comma-separated shape (`-` for a
/// scalar); then the metadata's model and how many channels its mean and
/// std have.
const SAFETENSORS_READER: &str = r#"
import json, sys
from safetensors import safe_open
from safetensors.numpy import load_file
for name, array in sorted(load_file(sys.argv[1]).items()):
    print(name, array.dtype, ','.join(map(str, array.shape)) or '-')
with safe_open(sys.argv[1], 'np') as f:
    print('model', f.metadata()['model'])
    print('channels', len(json.loads(f.metadata()['mean'])), len(json.loads(f.metadata()['std'])))
"#;

/// The safetensors Python package over the file, where the Python that CI
/// sets up (`PROBDROP_TB_PYTHON`) is there; CI fails without it.
fn pythons_safetensors_agrees(file: &str, want: &[(String, Vec<usize>)]) {
    let Some(said) = ci_python(SAFETENSORS_READER, file, "safetensors") else {
        return;
    };
    let mut expected: Vec<String> = want
        .iter()
        .map(|(name, dims)| {
            let dtype = if dims.is_empty() { "int64" } else { "float32" };
            let shape: Vec<String> = dims.iter().map(usize::to_string).collect();
            let shape = if shape.is_empty() {
                "-".into()
            } else {
                shape.join(",")
            };
            format!("{name} {dtype} {shape}")
        })
        .collect();
    expected.push("model resnet18".into());
    expected.push("channels 1 1".into());
    let read: Vec<&str> = said.lines().collect();
    assert_eq!(read, expected);
}

#[test]
fn safetensors_export_refuses_other_models_and_runs_without_a_checkpoint() {
    let setup = harness::setup("probe-v1", "epochs = 1");
    let cnn = setup.prepare();
    let refused = |run: &RunDir| {
        let out = setup
            .bin()
            .args(["export", "--format", "safetensors", "--out"])
            .arg(setup._tmp.path().join("st"))
            .arg(&run.path)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let said = refused(&cnn);
    for part in [
        "the model is small-cnn",
        "takes resnet18 and resnet50 runs only",
        "--format tensorboard, csv, png or svg",
    ] {
        assert!(said.contains(part), "no {part:?} in {said}");
    }
    // A ResNet run that never trained has nothing to export yet.
    resnet_experiment(&setup.file);
    let fresh = setup.prepare();
    let said = refused(&fresh);
    assert!(said.contains("no checkpoint yet"), "{said}");
    assert!(!setup._tmp.path().join("st").exists(), "nothing written");
}

/// `export` with `args` on `run`, as the binary ran it.
fn export_output(
    cmd: &mut Command,
    run: &RunDir,
    format: &str,
    out: &Path,
) -> std::process::Output {
    cmd.arg("export")
        .arg(&run.path)
        .args(["--format", format, "--out"])
        .arg(out)
        .output()
        .unwrap()
}

/// Issue 32: through a shared `--out`, links planted where export files go
/// pointed at another file of the user's, and export wrote through them.
#[test]
fn export_replaces_links_planted_in_its_directory_and_never_writes_through_them() {
    use std::os::unix::fs::PermissionsExt;
    let (setup, run) = trained_run(false);
    let tmp = setup._tmp.path();
    let victim = tmp.join("victim");
    std::fs::write(&victim, "the user's own file").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = tmp.join("shared");
    let dir = out.join(run.path.file_name().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    let planted = [
        ("csv", "metrics.csv"),
        ("csv", "summary.csv"),
        ("csv", "run.csv"),
        ("tensorboard", tfevents::FILE_NAME),
        ("png", "curves.png"),
        ("svg", "curves.svg"),
    ];
    for (_, name) in planted {
        std::os::unix::fs::symlink(&victim, dir.join(name)).unwrap();
    }
    for format in ["csv", "tensorboard", "png", "svg"] {
        export(&setup, &run, format, &out);
    }
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "the user's own file"
    );
    for (_, name) in planted {
        let meta = std::fs::symlink_metadata(dir.join(name)).unwrap();
        assert!(meta.is_file() && meta.len() > 0, "{name}: {meta:?}");
    }
    // A link in place of the run's directory is refused, not followed.
    let elsewhere = tmp.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let out = tmp.join("shared2");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join(run.path.file_name().unwrap())).unwrap();
    let done = export_output(&mut setup.bin(), &run, "csv", &out);
    let said = String::from_utf8_lossy(&done.stderr);
    assert!(!done.status.success());
    assert!(said.contains("is a symbolic link"), "{said}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

/// Issue 32: export on a full disk (a file-size limit: writes fail with
/// EFBIG, as with ENOSPC) left a truncated file and did not say which.
#[test]
fn a_full_disk_during_export_leaves_no_truncated_file_and_names_the_file() {
    let (setup, run) = trained_run(false);
    let out = setup._tmp.path().join("out");
    let written = export(&setup, &run, "csv", &out);
    let metrics = Path::new(&written[0]);
    let before = std::fs::read(metrics).unwrap();
    let dir = metrics.parent().unwrap();
    let fresh = setup._tmp.path().join("fresh");
    for (out, kept) in [(&out, Some(&before)), (&fresh, None)] {
        let mut limited = Command::new("prlimit");
        limited
            .arg(format!("--fsize={}", before.len() / 2))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_probdrop-tui"));
        let done = export_output(&mut limited, &run, "csv", out);
        let said = String::from_utf8_lossy(&done.stderr);
        assert!(
            done.status.code() == Some(1),
            "an error, not a signal: {said}"
        );
        let path = out.join(dir.file_name().unwrap()).join("metrics.csv");
        assert!(
            said.contains(&format!("writing {}", path.display())) && said.contains("too large"),
            "{said}"
        );
        // The earlier export as it was, or nothing; no temporary file.
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        match kept {
            Some(bytes) => {
                assert_eq!(&std::fs::read(&path).unwrap(), bytes);
                assert_eq!(left.len(), 3, "{left:?}");
            }
            None => assert!(left.is_empty(), "{left:?}"),
        }
    }
}
