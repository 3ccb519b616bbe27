//! The training loop of one run: batch -> q_sample -> Unet -> MSE -> backward -> clip -> AdamW -> EMA, with
//! periodic validation (DDIM sampling with the EMA weights, Dice against the ground truth) and checkpoints.
//!
//! Everything random in step k (the batch, its flips, each sample's t and ε) is drawn from generators seeded by
//! (seed, k), so a run resumed from a checkpoint at step k continues with bit-identical losses.

use std::path::Path;

use serde::{Deserialize, Serialize};

use checkpoint::Meta;

pub mod checkpoint;
mod run;

use crate::data::{batch_indices, Dataset};
use crate::diffusion::{Diffusion, Objective, ScheduleKind};
use crate::metrics::{self, Scores};
use crate::model::weights::{self, TensorFile};
use crate::model::{memory, Unet, UnetConfig};
use crate::optim::{AdamW, AdamWConfig, Ema, LrSchedule};
use crate::rng::Rng;
use crate::{autograd, Error, Result, Tensor};
pub use run::{Interrupt, Observer, Outcome, INTERRUPTED_EXIT};

/// Everything about a training run except the network's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    pub steps: u64,
    pub batch_size: usize,
    pub lr: f32,
    pub warmup: u64,
    pub weight_decay: f32,
    pub grad_clip: f32,
    pub ema_decay: f32,
    pub seed: u64,
    pub objective: Objective,
    pub schedule: ScheduleKind,
    pub timesteps: usize,
    pub val_fraction: f64,
    pub val_every: u64,
    pub val_count: usize,
    pub sampling_steps: usize,
    pub checkpoint_every: u64,
    /// Set when a run was resumed with a new --steps: (step, rate) where its learning rate left the original
    /// cosine (see `LrSchedule::restart`).
    pub lr_restart: Option<(u64, f32)>,
    /// The stored label value of each class when the data's were not 1..N (`sample` writes them back).
    pub label_values: Vec<i64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 1000,
            batch_size: 8,
            lr: 1e-3,
            warmup: 50,
            weight_decay: 0.0,
            grad_clip: 1.0,
            ema_decay: 0.99,
            seed: 0,
            objective: Objective::PredNoise,
            schedule: ScheduleKind::Cosine,
            timesteps: 1000,
            val_fraction: 0.1,
            val_every: 200,
            val_count: 8,
            sampling_steps: 10,
            checkpoint_every: 200,
            lr_restart: None,
            label_values: Vec::new(),
        }
    }
}

fn mix(seed: u64, step: u64, salt: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step.wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ salt
}

/// One sampled example: image (first channel), ground truth and prediction as label maps (0..=classes), all
/// (S·S), and their scores (the mean over classes).
pub struct Example {
    pub image: Vec<f32>,
    pub truth: Vec<f32>,
    pub pred: Vec<f32>,
    pub scores: Scores,
}

pub struct Trainer {
    pub unet: Unet,
    pub diffusion: Diffusion,
    pub adam: AdamW,
    pub ema: Ema,
    pub step: u64,
    pub cfg: TrainConfig,
    pub data: Dataset,
    pub train_idx: Vec<usize>,
    pub val_idx: Vec<usize>,
    pub best_dice: Option<f64>,
}

impl TrainConfig {
    /// Warm-up, then a cosine to a tenth of `lr` at `steps` (continued from `lr_restart` when set).
    pub fn lr_schedule(&self) -> LrSchedule {
        LrSchedule { base: self.lr, warmup: self.warmup, total: self.steps, min_ratio: 0.1, restart: self.lr_restart }
    }

    /// Every value in range, whether it came from flags, a preset or a checkpoint's metadata: the error names the
    /// field and its value (a NaN learning rate would otherwise surface as a NaN loss a step later).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("training config: {m}")));
        if self.batch_size == 0 || self.timesteps < 2 || self.sampling_steps == 0 || self.steps == 0 {
            return bad(format!(
                "steps ({}), batch_size ({}) and sampling_steps ({}) must be at least 1, timesteps ({}) at least 2",
                self.steps, self.batch_size, self.sampling_steps, self.timesteps
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be finite and above 0 (--lr), not {}", self.lr));
        }
        for (name, v) in [("weight_decay", self.weight_decay), ("grad_clip", self.grad_clip)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be finite and at least 0, not {v}"));
            }
        }
        if !(0.0..=1.0).contains(&self.ema_decay) {
            return bad(format!("ema_decay must be in [0, 1], not {}", self.ema_decay));
        }
        if let Some((k, r)) = self.lr_restart {
            if !(r.is_finite() && r >= 0.0 && k < self.steps) {
                return bad(format!(
                    "lr_restart ({k}, {r}) must be a step before steps ({}) and a finite rate",
                    self.steps
                ));
            }
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return bad(format!("val_fraction must be in [0, 1), not {}", self.val_fraction));
        }
        Ok(())
    }
}

/// Refuse a model and batch whose largest tensor (estimated from the config, [`memory`]) the adapter cannot
/// bind, before anything is allocated; the message names the tensor and the image size or batch (`flags`) that
/// fits.
pub fn check_fits(model: &UnetConfig, batch: usize, flags: memory::Flags) -> Result<()> {
    let g = crate::gpu::gpu();
    // a tensor must fit a buffer as well as a binding (they can differ: llvmpipe 2 GiB vs 128 MiB)
    let limit = g.limits.max_storage_buffer_binding_size.min(g.limits.max_buffer_size);
    match memory::does_not_fit(model, batch, flags, limit, &g.info.name) {
        Some(msg) => Err(Error::Config(msg)),
        None => Ok(()),
    }
}

impl Trainer {
    pub fn new(model: &UnetConfig, cfg: TrainConfig, data: Dataset) -> Result<Trainer> {
        cfg.validate()?;
        if model.mask_channels != data.classes {
            return Err(Error::Config(format!(
                "{} has {} class(es), one mask channel each, but the model has mask_channels = {} (set --classes, or \
                 the config's mask_channels, to match)",
                data.source, data.classes, model.mask_channels
            )));
        }
        if data.channels != model.input_img_channels || data.size != model.image_size {
            return Err(Error::Config(format!(
                "data is {}-channel {}x{} but the model expects {}-channel {}x{}",
                data.channels, data.size, data.size, model.input_img_channels, model.image_size, model.image_size
            )));
        }
        model.validate()?;
        check_fits(model, cfg.batch_size, memory::Flags { size: Some("--image-size"), batch: "--batch-size" })?;
        let unet = Unet::new(model, cfg.seed)?;
        let params: Vec<&Tensor> = unet.params().iter().map(|(_, t)| t).collect();
        let adam = AdamW::new(
            &params,
            AdamWConfig { lr: cfg.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: cfg.weight_decay },
        );
        let ema = Ema::new(&params, cfg.ema_decay)?;
        let diffusion = Diffusion::new(cfg.schedule, cfg.timesteps, model.image_size, cfg.objective);
        let (train_idx, val_idx) = data.split(cfg.val_fraction, cfg.seed);
        if train_idx.is_empty() {
            return Err(Error::Config("the dataset has no training samples".into()));
        }
        Ok(Trainer { unet, diffusion, adam, ema, step: 0, cfg, data, train_idx, val_idx, best_dice: None })
    }

    /// Continue from a checkpoint. `steps` (if given) replaces the total step count; the data must be the same.
    pub fn resume(path: &Path, data: Dataset, steps: Option<u64>) -> Result<Trainer> {
        let (file, meta) = checkpoint::load(path)?;
        Trainer::resume_loaded(path, &file, meta, data, steps)
    }

    /// Like [`Trainer::resume`], for a checkpoint already read with `checkpoint::load`.
    pub fn resume_loaded(
        path: &Path,
        file: &TensorFile,
        meta: Meta,
        data: Dataset,
        steps: Option<u64>,
    ) -> Result<Trainer> {
        if meta.data_fingerprint != data.fingerprint() {
            return Err(Error::format(
                path,
                format!(
                    "was trained on other data (fingerprint {} vs {} for {}); resume with the same data",
                    meta.data_fingerprint,
                    data.fingerprint(),
                    data.source
                ),
            ));
        }
        let mut cfg = meta.train.clone();
        if let Some(s) = steps.filter(|&s| s != cfg.steps) {
            if s <= meta.step {
                return Err(Error::Config(format!(
                    "{} is at step {} already; --steps {s} must be larger to continue it",
                    path.display(),
                    meta.step
                )));
            }
            // a new total: past warm-up, the rate continues from where it is down a half cosine to the new end
            // (recorded, so resuming this run again follows the same rates); in warm-up the cosine has not begun
            if meta.step > cfg.warmup {
                cfg.lr_restart = Some((meta.step, cfg.lr_schedule().at(meta.step)));
            }
            cfg.steps = s;
        }
        let mut t = Trainer::new(&meta.model, cfg, data)?;
        weights::load_into(&t.unet.vars, file, "param.", path)?;
        // the optimizer moments and the EMA are stored under the parameters' names with their own prefixes
        for (prefix, tensors) in [("adam_m.", &t.adam.m), ("adam_v.", &t.adam.v), ("ema.", &t.ema.shadow)] {
            let params = t.unet.params().iter().zip(tensors.iter()).map(|((n, _), x)| (n.clone(), x.clone())).collect();
            weights::load_into(&crate::nn::VarStore { params }, file, prefix, path)?;
        }
        t.step = meta.step;
        t.adam.step = meta.step as u32;
        t.best_dice = meta.best_dice;
        Ok(t)
    }

    pub fn lr_schedule(&self) -> LrSchedule {
        self.cfg.lr_schedule()
    }

    /// One optimisation step; returns the loss (the step's one readback).
    pub fn train_step(&mut self) -> Result<f32> {
        let (cfg, step) = (&self.cfg, self.step);
        let idx = batch_indices(&self.train_idx, cfg.batch_size, step, cfg.seed);
        let mut flips = Rng::new(mix(cfg.seed, step, 1));
        let (images, masks) = self.data.batch(&idx, Some(&mut flips))?;
        let mut rng = Rng::new(mix(cfg.seed, step, 2));
        autograd::clear();
        let loss = self.diffusion.training_loss(&self.unet, &masks, &images, &mut rng)?;
        let grads = autograd::backward(&loss)?;
        // no weight update from gradients whose kernels were skipped (a tensor over the binding limit)
        crate::gpu::gpu().check()?;
        let params: Vec<&Tensor> = self.unet.params().iter().map(|(_, t)| t).collect();
        let g: Vec<Option<&Tensor>> = params.iter().map(|p| grads.get(p)).collect();
        let lr = self.lr_schedule().at(step);
        let clip = (self.cfg.grad_clip > 0.0).then_some(self.cfg.grad_clip);
        self.adam.update(&params, &g, lr, clip)?;
        self.ema.update(&params)?;
        self.step += 1;
        Ok(loss.item())
    }

    /// A network holding the EMA weights (what sampling uses by default).
    pub fn ema_unet(&self) -> Result<Unet> {
        let u = Unet::new(&self.unet.cfg, 0)?;
        for ((name, _), s) in self.unet.params().iter().zip(&self.ema.shadow) {
            weights::write_param(&u.vars, name, &s.to_vec())?;
        }
        Ok(u)
    }

    /// DDIM-sample the first `val_count` validation images with the EMA weights; mean Dice/IoU/HD95 (over images
    /// of the per-image mean over classes).
    pub fn validate(&self) -> Result<Option<Scores>> {
        let idx: Vec<usize> = self.val_idx.iter().take(self.cfg.val_count).copied().collect();
        if idx.is_empty() {
            return Ok(None);
        }
        let rows = self.sample_examples(&idx, mix(self.cfg.seed, 0, 3))?;
        Ok(Some(metrics::mean(&rows.iter().map(|r| r.scores).collect::<Vec<_>>())))
    }

    /// DDIM-sample masks for dataset examples `idx` with the EMA weights (η = 0); per example its image's first
    /// channel, the ground truth, the prediction and their scores.
    pub fn sample_examples(&self, idx: &[usize], seed: u64) -> Result<Vec<Example>> {
        let unet = self.ema_unet()?;
        let mut rng = Rng::new(seed);
        let (s, c, n) = (self.data.size, self.data.channels, self.data.classes);
        let rows = |v: &[f32], i: usize, stride: usize, len: usize| v[i * stride..i * stride + len].to_vec();
        let mut out = Vec::with_capacity(idx.len());
        // at most a training batch at once: whatever fits a training step fits validation
        for part in idx.chunks(self.cfg.batch_size.max(1)) {
            let (images, _) = self.data.batch(part, None)?;
            let pred = self.diffusion.ddim_sample(&unet, &images, self.cfg.sampling_steps, 0.0, &mut rng, |_, _| {})?;
            let (iv, pred) = (images.to_vec(), pred.to_vec());
            for (i, &k) in part.iter().enumerate() {
                let image = rows(&iv, i, c * s * s, s * s);
                let soft = rows(&pred, i, n * s * s, n * s * s);
                let binary: Vec<f32> = soft.iter().map(|&v| f32::from(u8::from(v >= 0.5))).collect();
                let pred = crate::diffusion::fusion::label_map(&binary, &soft, n);
                let truth = self.data.samples[k].mask.clone(); // the batch's one-hot, as the label map
                let scores = metrics::mean(&metrics::class_scores(&pred, &truth, n, s, s));
                out.push(Example { image, truth, pred, scores });
            }
        }
        Ok(out)
    }

    /// Write a checkpoint, refusing weights that are no longer finite (a diverged update): the file on disk then
    /// stays the last good one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let params: Vec<&Tensor> = self.unet.params().iter().map(|(_, t)| t).collect();
        let norm = crate::ops::optim::global_grad_norm(&params)?.item();
        if !norm.is_finite() {
            let kept = if path.exists() {
                format!("{} still holds the last good checkpoint", path.display())
            } else {
                "no checkpoint had been written yet".to_string()
            };
            return Err(Error::Config(format!(
                "the weights became non-finite at step {} (try a lower --lr); {kept}",
                self.step
            )));
        }
        let names: Vec<String> = self.unet.params().iter().map(|(n, _)| n.clone()).collect();
        let zip = |ts: &[Tensor]| -> Vec<(String, Tensor)> { names.iter().cloned().zip(ts.iter().cloned()).collect() };
        let meta = Meta {
            model: self.unet.cfg.clone(),
            train: self.cfg.clone(),
            step: self.step,
            data_fingerprint: self.data.fingerprint(),
            best_dice: self.best_dice,
        };
        checkpoint::save(
            path,
            &meta,
            &[
                ("param.", self.unet.params()),
                ("adam_m.", &zip(&self.adam.m)),
                ("adam_v.", &zip(&self.adam.v)),
                ("ema.", &zip(&self.ema.shadow)),
            ],
        )
    }
}

/// A trainer for preset `name` at `batch_size` on a small synthetic set (two batches), no validation: what
/// `medsegdiff profile`, `trace` and `bench` measure.
pub fn preset_trainer(name: &str, batch_size: usize) -> Result<Trainer> {
    let (model, cfg) = preset(name)?;
    let data = crate::data::synthetic::generate(2 * batch_size.max(1), model.image_size, model.input_img_channels, 0);
    Trainer::new(&model, TrainConfig { batch_size, val_every: 0, ..cfg }, data)
}

/// Named starting points: `tiny` (learns the synthetic set in minutes on a software adapter), `small`, `paper`.
pub fn preset(name: &str) -> Result<(UnetConfig, TrainConfig)> {
    let base = UnetConfig { input_img_channels: 1, ..UnetConfig::default() };
    match name {
        "tiny" => Ok((
            UnetConfig {
                dim: 16,
                image_size: 32,
                dim_mults: vec![1, 2],
                full_self_attn: vec![false, true],
                attn_heads: 2,
                attn_dim_head: 16,
                ..base
            },
            // pred_x0: the network predicts the clean mask directly, which a small model learns in a few hundred
            // steps; the other presets keep the package's default, pred_noise
            TrainConfig {
                steps: 500,
                batch_size: 8,
                lr: 2e-3,
                warmup: 50,
                objective: Objective::PredX0,
                val_every: 100,
                val_count: 16,
                checkpoint_every: 100,
                ..TrainConfig::default()
            },
        )),
        "small" => Ok((
            UnetConfig {
                dim: 32,
                image_size: 64,
                dim_mults: vec![1, 2, 4],
                full_self_attn: vec![false, false, true],
                ..base
            },
            TrainConfig {
                steps: 20_000,
                batch_size: 8,
                lr: 1e-3,
                val_every: 1000,
                checkpoint_every: 1000,
                ..TrainConfig::default()
            },
        )),
        "paper" => Ok((
            UnetConfig {
                dim: 64,
                image_size: 256,
                dim_mults: vec![1, 2, 4, 8],
                full_self_attn: vec![false, false, false, true],
                ..base
            },
            TrainConfig {
                steps: 100_000,
                batch_size: 8,
                lr: 1e-4,
                schedule: ScheduleKind::ShiftedCosine,
                val_every: 5000,
                checkpoint_every: 5000,
                ..TrainConfig::default()
            },
        )),
        other => Err(Error::Config(format!("unknown preset {other:?}; use tiny, small or paper"))),
    }
}
