//! Checkpoints: where a run resumes, and saving one.

use anyhow::{Context, Result, anyhow};
use burn::module::Module;

use crate::run::dir::{self, CheckpointInfo, RunDir};
use crate::train::models::Model;
use crate::train::optim::RunOptimizer;

/// Where the run continues: its checkpoint, or step 0 when it never saved one.
/// A checkpoint that cannot be read is refused (starting over would silently
/// throw away what it stands for) unless `restart` asks for a fresh start, which
/// also clears the logs.
pub(super) fn resume_point(run_dir: &RunDir, restart: bool) -> Result<Option<CheckpointInfo>> {
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

pub(super) fn save_checkpoint(
    run_dir: &RunDir,
    model: &Model,
    optim: &RunOptimizer,
    step: u64,
    epoch: u64,
    best_val_acc: Option<f64>,
) -> Result<()> {
    let _saving = crate::train::watchdog::saving();
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
