//! The weights `sample` and `eval` run (a checkpoint, or a state_dict with its config and diffusion settings),
//! the sampler the flags ask for, and ensembles of masks for images at their own sizes.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

use super::inputs::unverified_note;
use super::run::given;
use crate::diffusion::{Diffusion, Sampler, Spec};
use crate::model::weights::{load_into, TensorFile};
use crate::model::{Unet, UnetConfig};
use crate::train::TrainConfig;
use crate::Tensor;

/// Weights and the diffusion settings that go with them.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A medsegdiff checkpoint, or a PyTorch state_dict saved as safetensors (then --config is needed).
    /// Required, except by `eval --merge`.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Model config JSON for a plain state_dict.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Use the raw weights of a checkpoint instead of its EMA weights.
    #[arg(long)]
    pub no_ema: bool,
    /// ddim | dpmpp (DPM-Solver++(2M): as good in 10-20 steps as DDIM in 50) | ddpm (all timesteps).
    #[arg(long, default_value = "ddim", value_parser = ["ddim", "dpmpp", "ddpm"])]
    pub sampler: String,
    /// Network evaluations of the DDIM or DPM-Solver++ sampler (DDPM runs all timesteps).
    #[arg(long, default_value_t = 50, value_parser = super::at_least_one)]
    pub sampling_steps: usize,
    /// DDIM eta in [0, 1]: 0 is deterministic given the starting noise.
    #[arg(long, default_value_t = 0.0, value_parser = super::unit_f64)]
    pub eta: f64,
    /// The same as --sampler ddpm.
    #[arg(long)]
    pub ddpm: bool,
    /// How the ensemble's masks become one: mean (the mean soft mask ≥ ½) | vote (majority of the members) |
    /// staple (STAPLE's EM estimate, which weighs members by their agreement).
    #[arg(long, default_value = "mean")]
    pub fusion: crate::diffusion::Fusion,
    /// Masks sampled per image; their mean is the soft mask, their variance the uncertainty map.
    #[arg(long, default_value_t = 1, value_parser = super::at_least_one)]
    pub ensemble: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// For a plain state_dict: what the network predicts (pred_noise | pred_x0 | pred_v; default pred_noise,
    /// the package's). A medsegdiff checkpoint carries its own and refuses this flag.
    #[arg(long)]
    pub objective: Option<String>,
    /// For a plain state_dict: the noise schedule it was trained with (cosine | linear | shifted-cosine;
    /// default cosine).
    #[arg(long)]
    pub schedule: Option<String>,
    /// For a plain state_dict: the diffusion timesteps it was trained with (default 1000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..))]
    pub timesteps: Option<u64>,
}

/// The sampler the flags ask for.
fn sampler(a: &ModelArgs) -> Result<Sampler> {
    if a.ddpm && a.sampler != "ddim" && a.sampler != "ddpm" {
        bail!("--ddpm and --sampler {} ask for two samplers; give one", a.sampler);
    }
    if a.eta != 0.0 && (a.ddpm || a.sampler != "ddim") {
        bail!("--eta applies to the DDIM sampler only (DPM-Solver++ is deterministic, DDPM fully stochastic)");
    }
    Ok(match (a.ddpm, a.sampler.as_str()) {
        (true, _) | (_, "ddpm") => Sampler::Ddpm,
        (_, "dpmpp") => Sampler::DpmSolver { steps: a.sampling_steps },
        _ => Sampler::Ddim { steps: a.sampling_steps, eta: a.eta },
    })
}

pub struct Loaded {
    pub unet: Unet,
    pub diffusion: Diffusion,
    /// What `sample` writes for class k: the value it had in the training label maps (a checkpoint records
    /// them when they were not 1..N and all fit 8 bits), else k.
    pub label_values: Vec<i64>,
}

pub fn load_model(a: &ModelArgs) -> Result<Loaded> {
    let weights = a.weights.as_deref().context("--weights FILE is required (a checkpoint or a state_dict)")?;
    let file = TensorFile::read(weights)?;
    unverified_note(&file, weights);
    let is_ckpt = crate::train::checkpoint::is_checkpoint(&file);
    let (cfg, train) = if is_ckpt {
        let meta = crate::train::checkpoint::meta(&file, weights)?;
        (meta.model, meta.train)
    } else {
        let cfg_text = match (&a.config, file.metadata.get("config")) {
            (Some(p), _) => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            (None, Some(c)) => c.clone(),
            (None, None) => {
                bail!("{} is a plain state_dict: give its model config with --config cfg.json", weights.display())
            }
        };
        let what = a
            .config
            .as_ref()
            .map_or_else(|| format!("the config in {}'s metadata", weights.display()), |p| p.display().to_string());
        // an exported state_dict carries its diffusion settings; a flag may restate them, not contradict them
        let mut train = TrainConfig::default();
        let [objective, schedule, timesteps] = crate::train::checkpoint::exported_settings(&file);
        let steps_flag = a.timesteps.map(|t| t.to_string());
        let pick = |flag: Option<&str>, stored: Option<&str>, name: &str| -> Result<Option<String>> {
            match (flag, stored) {
                (Some(f), Some(m)) if f != m => {
                    bail!("{} was exported with {name} {m}; --{name} {f} contradicts it", weights.display())
                }
                (f, m) => Ok(f.or(m).map(String::from)),
            }
        };
        if let Some(o) = pick(a.objective.as_deref(), objective, "objective")? {
            train.objective = o.parse()?;
        }
        if let Some(sch) = pick(a.schedule.as_deref(), schedule, "schedule")? {
            train.schedule = sch.parse()?;
        }
        if let Some(t) = pick(steps_flag.as_deref(), timesteps, "timesteps")? {
            train.timesteps = t
                .parse::<usize>()
                .ok()
                .filter(|&t| t >= 2)
                .with_context(|| format!("{}: timesteps {t:?} is not a count of at least 2", weights.display()))?;
        }
        (UnetConfig::from_json(&cfg_text).with_context(|| format!("in {what}"))?, train)
    };
    if is_ckpt {
        // a checkpoint's diffusion settings are the ones it was trained with: a flag would silently disagree
        let given = given(&[
            ("--objective", a.objective.is_some()),
            ("--schedule", a.schedule.is_some()),
            ("--timesteps", a.timesteps.is_some()),
        ]);
        if !given.is_empty() {
            bail!(
                "{} is a medsegdiff checkpoint, which records its objective, schedule and timesteps; {} apply only to \
                 plain state_dicts",
                weights.display(),
                given.join(", ")
            );
        }
    }
    let unet = Unet::new(&cfg, 0)?;
    let prefix = if is_ckpt {
        if a.no_ema {
            "param."
        } else {
            "ema."
        }
    } else if file.tensors.keys().any(|k| k.starts_with("param.")) {
        "param."
    } else {
        ""
    };
    load_into(&unet.vars, &file, prefix, weights)?;
    let diffusion = Diffusion::new(train.schedule, train.timesteps, cfg.image_size, train.objective);
    // label maps are written as 8-bit values: larger stored values come back as class indices
    let label_values = if train.label_values.iter().all(|v| (1..=255).contains(v)) {
        train.label_values.clone()
    } else {
        eprintln!("note: the training labels held values over 255; the label maps written hold class indices 1..N");
        Vec::new()
    };
    Ok(Loaded { unet, diffusion, label_values })
}

impl Loaded {
    /// Masks for images at their own sizes: each (channel planes, h, w) resized to the model's size, all sampled
    /// as one batch (image i's noise from `seeds[i]`), and each ensemble's label map brought back to (h, w) by
    /// nearest neighbour (it stays the fused decision), its per-class means and its uncertainty bilinearly.
    pub(super) fn segment_at(
        &self,
        images: &[(&[f32], usize, usize)],
        a: &ModelArgs,
        seeds: &[u64],
        pb: &indicatif::ProgressBar,
    ) -> Result<Vec<AtSize>> {
        let (c, s, n) = (self.unet.cfg.input_img_channels, self.unet.cfg.image_size, self.unet.cfg.mask_channels);
        let data: Vec<f32> = images.iter().flat_map(|&(p, h, w)| crate::data::resize_planes(p, c, h, w, s)).collect();
        let t = Tensor::from_slice(&data, &[images.len(), c, s, s])?;
        let ens = self.segment(&t, a, seeds, pb)?;
        Ok(images
            .iter()
            .zip(ens)
            .map(|(&(_, h, w), e)| {
                let up = |plane: &[f32], nearest: bool| crate::data::resize(plane, s, s, h, w, nearest);
                // one uncertainty map: each pixel's largest variance over the classes
                let var: Vec<f32> =
                    (0..s * s).map(|p| (0..n).map(|k| e.variance[k * s * s + p]).fold(0.0, f32::max)).collect();
                AtSize {
                    labels: up(&e.labels, true),
                    soft: e.mean.chunks(s * s).map(|m| up(m, false)).collect(),
                    uncertainty: up(&var, false),
                }
            })
            .collect())
    }

    /// A label map of class indices as the values the training masks stored the classes with.
    pub(super) fn stored(&self, labels: &[f32]) -> Vec<f32> {
        let value = |k: f32| self.label_values.get(k as usize - 1).map_or(k, |&v| v as f32);
        labels.iter().map(|&k| if k == 0.0 { 0.0 } else { value(k) }).collect()
    }

    /// Ensemble masks for a batch of images (B, C, S, S), image i's noise from `seeds[i]` (see
    /// `diffusion::ensemble`): per image its means, fused masks, variances and label map.
    pub(super) fn segment(
        &self,
        images: &Tensor,
        a: &ModelArgs,
        seeds: &[u64],
        pb: &indicatif::ProgressBar,
    ) -> Result<Vec<crate::diffusion::Ensemble>> {
        let n = a.ensemble.max(1);
        let flags = crate::model::memory::Flags { size: None, batch: "rows per pass (--batch-size × --ensemble)" };
        crate::train::check_fits(&self.unet.cfg, images.dim(0) * n, flags)?;
        let sampler = sampler(a)?;
        let progress = |i: usize, k: usize| pb.set_message(format!("step {i}/{k}"));
        let spec = Spec { members: n, sampler, fusion: a.fusion };
        Ok(self.diffusion.ensemble(&self.unet, images, spec, seeds, progress)?)
    }
}

/// One image's outputs at its own height and width.
pub(super) struct AtSize {
    /// The label map: 0 background, k for class k (for one class, the 0/1 mask); [`Loaded::stored`] gives
    /// the values `sample` writes.
    pub labels: Vec<f32>,
    /// Each class's mean soft mask in [0, 1].
    pub soft: Vec<Vec<f32>>,
    /// The ensemble's variance (the largest over classes), at most ¼.
    pub uncertainty: Vec<f32>,
}
