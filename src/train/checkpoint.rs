//! Checkpoints: one safetensors file with the weights (`param.*`, PyTorch names), the AdamW moments
//! (`adam_m.*`, `adam_v.*`), the EMA weights (`ema.*`), and metadata: the model and training configs (JSON),
//! the step, the data fingerprint and the best validation Dice. Writes are atomic (temp file + fsync + rename),
//! so a crash never leaves a broken checkpoint. Everything else a resumed run needs (batches, t, ε) is a pure
//! function of (seed, step) — see `data` and `train` — so step and seed are the whole RNG state.

use std::collections::HashMap;
use std::path::Path;

use super::TrainConfig;
use crate::model::weights::{to_safetensors_bytes, write_atomic, TensorFile};
use crate::model::UnetConfig;
use crate::{Error, Result, Tensor};

pub const FORMAT: &str = "medsegdiff-checkpoint-v1";

pub struct Meta {
    pub model: UnetConfig,
    pub train: TrainConfig,
    pub step: u64,
    pub data_fingerprint: String,
    pub best_dice: Option<f64>,
}

/// Write a checkpoint. `groups` are (prefix, names, tensors): ("param.", ..), ("adam_m.", ..), ...
pub fn save(path: &Path, meta: &Meta, groups: &[(&str, &[(String, Tensor)])]) -> Result<()> {
    let mut tensors = Vec::new();
    for (prefix, items) in groups {
        for (name, t) in items.iter() {
            tensors.push((format!("{prefix}{name}"), t.shape().to_vec(), t.to_vec()));
        }
    }
    let mut md = HashMap::new();
    md.insert("format".into(), FORMAT.into());
    md.insert("config".into(), serde_json::to_string(&meta.model).expect("config serialises"));
    md.insert("train".into(), serde_json::to_string(&meta.train).expect("train config serialises"));
    md.insert("step".into(), meta.step.to_string());
    md.insert("data_fingerprint".into(), meta.data_fingerprint.clone());
    if let Some(d) = meta.best_dice {
        md.insert("best_dice".into(), d.to_string());
    }
    write_atomic(path, &to_safetensors_bytes(&tensors, md)?)
}

/// Read a checkpoint's file and metadata; errors say what is wrong with which file.
pub fn load(path: &Path) -> Result<(TensorFile, Meta)> {
    let file = TensorFile::read(path)?;
    let meta = meta(&file, path)?;
    Ok((file, meta))
}

/// Whether an already-read file is one of our checkpoints (rather than a plain state_dict).
pub fn is_checkpoint(file: &TensorFile) -> bool {
    file.metadata.get("format").map(String::as_str) == Some(FORMAT)
}

/// The checkpoint metadata of an already-read file (`path` names it in errors).
pub fn meta(file: &TensorFile, path: &Path) -> Result<Meta> {
    let m = &file.metadata;
    if !is_checkpoint(file) {
        return Err(Error::format(
            path,
            format!("is not a medsegdiff checkpoint (metadata format is {:?}, expected {FORMAT:?})", m.get("format")),
        ));
    }
    let field = |k: &str| m.get(k).ok_or_else(|| Error::format(path, format!("checkpoint metadata has no `{k}`")));
    let model: UnetConfig =
        serde_json::from_str(field("config")?).map_err(|e| Error::format(path, format!("bad model config: {e}")))?;
    let train: TrainConfig =
        serde_json::from_str(field("train")?).map_err(|e| Error::format(path, format!("bad train config: {e}")))?;
    train.validate().map_err(|e| Error::format(path, e.to_string()))?;
    model.validate().map_err(|e| Error::format(path, e.to_string()))?;
    let step = field("step")?.parse().map_err(|e| Error::format(path, format!("bad step: {e}")))?;
    Ok(Meta {
        model,
        train,
        step,
        data_fingerprint: field("data_fingerprint")?.clone(),
        best_dice: m.get("best_dice").and_then(|s| s.parse().ok()),
    })
}

/// The metadata `format` of an exported state_dict.
pub const EXPORT_FORMAT: &str = "medsegdiff-export-v1";

/// What [`export`] wrote.
pub struct Exported {
    pub tensors: usize,
    pub json: std::path::PathBuf,
    /// A note for PyTorch users when the schedule is one the package lacks.
    pub note: Option<String>,
}

/// Write a checkpoint's EMA weights (its raw weights with `raw`) as a plain state_dict under the package's
/// names, carrying the model config and the diffusion settings (`objective`, `schedule`, `timesteps`) in its
/// metadata, so `sample` needs no flags for it; and beside it `<out stem>.kwargs.json`, the `Unet(**unet)` and
/// `MedSegDiff(unet, **diffusion)` keyword arguments for PyTorch. Neither may replace the checkpoint.
pub fn export(ckpt: &Path, out: &Path, raw: bool) -> Result<Exported> {
    let json = out.with_extension("kwargs.json");
    let same = |a: &Path, b: &Path| a == b || a.canonicalize().ok().is_some_and(|x| b.canonicalize().ok() == Some(x));
    if same(out, ckpt) || same(&json, ckpt) {
        return Err(Error::format(out, format!("would replace the checkpoint {} it exports", ckpt.display())));
    }
    let (file, meta) = load(ckpt)?;
    let prefix = if raw { "param." } else { "ema." };
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = file
        .tensors
        .iter()
        .filter_map(|(k, t)| k.strip_prefix(prefix).map(|n| (n.to_string(), t.shape.clone(), t.data.clone())))
        .collect();
    if tensors.is_empty() {
        return Err(Error::format(ckpt, format!("holds no {prefix}* tensors to export")));
    }
    let t = &meta.train;
    let schedule = serde_json::to_value(t.schedule).expect("a schedule serialises");
    let objective = serde_json::to_value(t.objective).expect("an objective serialises");
    let mut md = HashMap::new();
    md.insert("format".into(), EXPORT_FORMAT.into());
    md.insert("config".into(), serde_json::to_string(&meta.model).expect("config serialises"));
    md.insert("objective".into(), objective.as_str().unwrap_or_default().into());
    md.insert("schedule".into(), schedule.as_str().unwrap_or_default().into());
    md.insert("timesteps".into(), t.timesteps.to_string());
    md.insert("step".into(), meta.step.to_string());
    md.insert("weights".into(), if raw { "raw" } else { "ema" }.into());
    write_atomic(out, &to_safetensors_bytes(&tensors, md)?)?;
    // the package knows linear and cosine; the shifted cosine has no name there
    let (beta_schedule, note) = match t.schedule {
        crate::diffusion::ScheduleKind::ShiftedCosine => (
            serde_json::Value::Null,
            Some("the shifted-cosine schedule is not in med-seg-diff-pytorch: its MedSegDiff would sample this model with another schedule".to_string()),
        ),
        _ => (schedule.clone(), None),
    };
    let kwargs = serde_json::json!({
        "unet": meta.model,
        "diffusion": { "timesteps": t.timesteps, "objective": objective, "beta_schedule": beta_schedule },
        "medsegdiff": { "schedule": schedule, "step": meta.step, "weights": if raw { "raw" } else { "ema" } },
    });
    let text = serde_json::to_string_pretty(&kwargs).expect("kwargs serialise");
    write_atomic(&json, text.as_bytes())?;
    Ok(Exported { tensors: tensors.len(), json, note })
}

/// The diffusion settings an exported state_dict carries (objective, schedule, timesteps), each when present.
pub fn exported_settings(file: &TensorFile) -> [Option<&str>; 3] {
    ["objective", "schedule", "timesteps"].map(|k| file.metadata.get(k).map(String::as_str))
}
