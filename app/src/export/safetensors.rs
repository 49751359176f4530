//! `export --format safetensors`: a ResNet run's latest checkpoint as
//! `model.safetensors` under torchvision's parameter names, so that
//! `torchvision.models.resnet18()` (or `resnet50()`) takes it with
//! `load_state_dict`.
//!
//! The checkpoint is read as the burnpack file it is (module paths, dtypes,
//! shapes, bytes), not through the model: export sits below `train`. The
//! names (`train::resnet`'s fields on the left):
//!
//! ```text
//! ResNet.stem.conv.weight                 conv1.weight
//! ResNet.stem.bn.{gamma,beta}             bn1.{weight,bias}
//! ResNet.stem.bn.running_{mean,var}       bn1.running_{mean,var}
//! ResNet.stages.S.B.convs.I.conv.weight   layer{S+1}.B.conv{I+1}.weight
//! ResNet.stages.S.B.convs.I.bn.*          layer{S+1}.B.bn{I+1}.*
//! ResNet.stages.S.B.shortcut.conv.weight  layer{S+1}.B.downsample.0.weight
//! ResNet.stages.S.B.shortcut.bn.*         layer{S+1}.B.downsample.1.*
//! ResNet.fc.weight [in, out]              fc.weight [out, in] (transposed)
//! ResNet.fc.bias                          fc.bias
//! ```
//!
//! Every batch norm also gets torchvision's `num_batches_tracked`, an int64
//! scalar: the checkpoint's step (one training forward per optimiser step).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ::safetensors::Dtype;
use ::safetensors::tensor::TensorView;
use anyhow::{Result, anyhow, bail};
use burn_pack::DType;

use crate::experiment::ModelKind;
use crate::run::dir::{CHECKPOINT_DIR, CheckpointInfo, RunDir};

/// The file written in the run's export directory.
pub const FILE_NAME: &str = "model.safetensors";

/// How the names were made, as the file's metadata says.
pub const CONVENTION: &str = "torchvision.models.resnet state_dict names: stem -> conv1/bn1, \
     stages[s][b].convs[i] -> layer{s+1}.{b}.conv{i+1}/bn{i+1}, shortcut -> \
     layer{s+1}.{b}.downsample.0/1, fc; batch norm gamma/beta -> weight/bias; fc.weight \
     transposed from burn's [in, out] to [out, in]; num_batches_tracked = the checkpoint's step";

/// One tensor of the output: its torchvision name, dtype, shape and
/// little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// Writes the run's latest checkpoint to `dir/model.safetensors` (creating
/// `dir`); refuses a run whose model is not a ResNet, or that has no
/// checkpoint yet, before creating anything.
pub fn write(dir: &Path, run: &RunDir) -> Result<PathBuf> {
    let kind = run.experiment()?.model.kind;
    let checkpoint = resnet_checkpoint(run, kind)?;
    let file = run.file(CHECKPOINT_DIR).join(&checkpoint.model);
    let entries = torchvision_entries(&file, checkpoint.step)?;
    let views = entries
        .iter()
        .map(|e| {
            Ok((
                e.name.as_str(),
                TensorView::new(e.dtype, e.shape.clone(), &e.bytes)?,
            ))
        })
        .collect::<Result<Vec<_>, ::safetensors::SafeTensorError>>()?;
    let metadata = metadata(run, kind, &checkpoint, &entries);
    let bytes = ::safetensors::serialize(views, Some(metadata))?;
    super::export_dir(dir)?;
    let path = dir.join(FILE_NAME);
    super::write_file(&path, |out| out.write_all(&bytes))?;
    Ok(path)
}

/// The model kind as experiment files spell it (`resnet18`, `small-cnn`).
pub fn kind_name(kind: ModelKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{kind:?}"))
}

/// The run's checkpoint, where the run is a ResNet that saved one.
fn resnet_checkpoint(run: &RunDir, kind: ModelKind) -> Result<CheckpointInfo> {
    let name = run.path.display();
    if !matches!(kind, ModelKind::Resnet18 | ModelKind::Resnet50) {
        bail!(
            "{name}: the model is {}, and --format safetensors writes torchvision's ResNet \
             parameter names, so it takes resnet18 and resnet50 runs only; this run exports \
             with --format tensorboard, csv, png or svg",
            kind_name(kind)
        );
    }
    run.read_checkpoint()
        .map_err(|why| anyhow!("{name}: {why}"))?
        .ok_or_else(|| {
            anyhow!(
                "{name}: no checkpoint yet (a run saves one every train.checkpoint_every steps \
                 and at its end)"
            )
        })
}

/// The checkpoint's tensors under torchvision's names, with each batch
/// norm's `num_batches_tracked` set to `step`.
pub fn torchvision_entries(file: &Path, step: u64) -> Result<Vec<Entry>> {
    let unreadable = |e: burn_pack::Error| anyhow!("cannot read {}: {e}", file.display());
    // burn-pack opens the file itself: a link or a FIFO is refused first.
    crate::run::files::open_regular(file)
        .map_err(|e| anyhow!("cannot read {}: {e}", file.display()))?;
    let tensors = burn_pack::Reader::from_file_exact(file)
        .and_then(burn_pack::Reader::into_tensors)
        .map_err(unreadable)?;
    let mut entries = Vec::with_capacity(tensors.len() * 5 / 4);
    for tensor in tensors {
        let (path, dtype, shape, _, bytes) = tensor.into_parts().map_err(unreadable)?;
        let name = torch_name(&path).ok_or_else(|| {
            anyhow!(
                "{}: `{path}` has no torchvision name (not a ResNet checkpoint?)",
                file.display()
            )
        })?;
        let entry = Entry {
            dtype: float_dtype(&name, dtype)?,
            shape: shape.to_vec(),
            bytes: bytes.to_vec(),
            name,
        };
        if let Some(bn) = entry.name.strip_suffix(".running_var") {
            entries.push(batches_tracked(bn, step));
        }
        entries.push(if entry.name == "fc.weight" {
            transposed(entry)
        } else {
            entry
        });
    }
    Ok(entries)
}

/// torchvision's name of a parameter of `train::resnet::ResNet` inside the
/// run's `Model` (its burn module path), or `None` for one it does not have.
pub fn torch_name(burn_path: &str) -> Option<String> {
    let parts: Vec<&str> = burn_path.strip_prefix("ResNet.")?.split('.').collect();
    match parts.as_slice() {
        ["stem", "conv", "weight"] => Some("conv1.weight".into()),
        ["stem", "bn", field] => Some(format!("bn1.{}", bn_field(field)?)),
        ["stages", stage, block, rest @ ..] => {
            let layer = stage.parse::<usize>().ok()? + 1;
            let block = block.parse::<usize>().ok()?;
            Some(format!("layer{layer}.{block}.{}", block_name(rest)?))
        }
        ["fc", field @ ("weight" | "bias")] => Some(format!("fc.{field}")),
        _ => None,
    }
}

/// A name inside a block: its convs and batch norms, and the shortcut's.
fn block_name(rest: &[&str]) -> Option<String> {
    match rest {
        ["convs", i, "conv", "weight"] => Some(format!("conv{}.weight", index(i)? + 1)),
        ["convs", i, "bn", field] => Some(format!("bn{}.{}", index(i)? + 1, bn_field(field)?)),
        ["shortcut", "conv", "weight"] => Some("downsample.0.weight".into()),
        ["shortcut", "bn", field] => Some(format!("downsample.1.{}", bn_field(field)?)),
        _ => None,
    }
}

fn index(s: &str) -> Option<usize> {
    s.parse().ok()
}

/// burn's batch-norm fields under PyTorch's names.
fn bn_field(field: &str) -> Option<&'static str> {
    match field {
        "gamma" => Some("weight"),
        "beta" => Some("bias"),
        "running_mean" => Some("running_mean"),
        "running_var" => Some("running_var"),
        _ => None,
    }
}

fn float_dtype(name: &str, dtype: DType) -> Result<Dtype> {
    Ok(match dtype {
        DType::F32 | DType::Flex32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        other => bail!("{name} is {other:?}, not a float"),
    })
}

/// torchvision's batch-norm counter: an int64 scalar.
fn batches_tracked(bn: &str, step: u64) -> Entry {
    Entry {
        name: format!("{bn}.num_batches_tracked"),
        dtype: Dtype::I64,
        shape: Vec::new(),
        bytes: (step as i64).to_le_bytes().to_vec(),
    }
}

/// A matrix's transpose, bytes moved element by element.
fn transposed(entry: Entry) -> Entry {
    let [rows, cols] = entry.shape[..] else {
        return entry;
    };
    let size = entry.bytes.len() / (rows * cols).max(1);
    let mut bytes = Vec::with_capacity(entry.bytes.len());
    for c in 0..cols {
        for r in 0..rows {
            let at = (r * cols + c) * size;
            bytes.extend_from_slice(&entry.bytes[at..at + size]);
        }
    }
    Entry {
        shape: vec![cols, rows],
        bytes,
        ..entry
    }
}

/// The run's input ([`crate::run::dir::InputSpec`]) as metadata, a JSON
/// array under each of its field names: `mean` and `std` per channel of
/// pixels in [0, 1] (torchvision's `Normalize(mean, std)` after
/// `ToTensor()`), and `classes`, the class of each output. None, and a
/// warning, for a run trained before its trainer wrote input.json.
fn input_metadata(run: &RunDir) -> Vec<(String, String)> {
    let fields = run.input().map(serde_json::to_value);
    let Some(Ok(serde_json::Value::Object(fields))) = fields else {
        eprintln!(
            "{}: no {} (trained by an older version): the file has no input normalisation",
            run.path.display(),
            crate::run::dir::INPUT
        );
        return Vec::new();
    };
    fields
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
}

/// `__metadata__`: who the weights are, how they were named, and what input
/// they take.
fn metadata(
    run: &RunDir,
    kind: ModelKind,
    checkpoint: &CheckpointInfo,
    entries: &[Entry],
) -> HashMap<String, String> {
    let run_name = run.path.file_name().unwrap_or_default().to_string_lossy();
    let stem = entries
        .iter()
        .find(|e| e.name == "conv1.weight")
        .map_or("", |e| match e.shape.get(2) {
            Some(3) => "cifar: conv1 3x3 stride 1 padding 1, no maxpool",
            _ => "imagenet: conv1 7x7 stride 2 padding 3, maxpool 3x3 stride 2",
        });
    let mut metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("run".to_string(), run_name.into_owned()),
        ("model".to_string(), kind_name(kind)),
        ("step".to_string(), checkpoint.step.to_string()),
        ("epoch".to_string(), checkpoint.epoch.to_string()),
        ("stem".to_string(), stem.to_string()),
        ("names".to_string(), CONVENTION.to_string()),
    ]);
    metadata.extend(input_metadata(run));
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_paths_map_to_torchvision_names() {
        for (burn, torch) in [
            ("ResNet.stem.conv.weight", "conv1.weight"),
            ("ResNet.stem.bn.gamma", "bn1.weight"),
            ("ResNet.stem.bn.beta", "bn1.bias"),
            ("ResNet.stem.bn.running_var", "bn1.running_var"),
            (
                "ResNet.stages.0.1.convs.1.conv.weight",
                "layer1.1.conv2.weight",
            ),
            (
                "ResNet.stages.3.0.convs.2.bn.running_mean",
                "layer4.0.bn3.running_mean",
            ),
            (
                "ResNet.stages.1.0.shortcut.conv.weight",
                "layer2.0.downsample.0.weight",
            ),
            (
                "ResNet.stages.2.0.shortcut.bn.gamma",
                "layer3.0.downsample.1.weight",
            ),
            ("ResNet.fc.weight", "fc.weight"),
            ("ResNet.fc.bias", "fc.bias"),
        ] {
            assert_eq!(torch_name(burn).as_deref(), Some(torch), "{burn}");
        }
        for other in [
            "SmallCnn.fc1.weight",
            "ResNet.stem.bn.training",
            "ResNet.stages.x.0.convs.0.conv.weight",
            "ResNet.stages.0.0.convs.0.conv.bias",
        ] {
            assert_eq!(torch_name(other), None, "{other}");
        }
    }

    #[test]
    fn a_transpose_moves_whole_elements() {
        let bytes: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let entry = Entry {
            name: "fc.weight".into(),
            dtype: Dtype::F32,
            shape: vec![2, 3],
            bytes,
        };
        let t = transposed(entry);
        assert_eq!(t.shape, [3, 2]);
        let values: Vec<f32> = t
            .bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(values, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn kinds_are_named_as_experiment_files_spell_them() {
        assert_eq!(kind_name(ModelKind::SmallCnn), "small-cnn");
        assert_eq!(kind_name(ModelKind::Resnet50), "resnet50");
    }
}
