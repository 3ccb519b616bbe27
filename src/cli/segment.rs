//! `sample` and `eval`: ensembles of masks for a folder of scans (or an nnU-Net imagesTs/ folder) at each scan's
//! own size, and scores against ground truth; both in batches, shardable over processes.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::images;
use super::run::{bar, given, load_data, unverified_note};
use super::DataArgs;
use crate::data::{folder, shard_batches, Shard};
use crate::diffusion::{Diffusion, Sampler, Spec};
use crate::metrics::{self, Scores};
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
}

pub fn load_model(a: &ModelArgs) -> Result<Loaded> {
    let weights = a.weights.as_deref().context("--weights FILE is required (a checkpoint or a state_dict)")?;
    let file = TensorFile::read(weights)?;
    unverified_note(&file, weights);
    let is_ckpt = crate::checkpoint::is_checkpoint(&file);
    let (cfg, train) = if is_ckpt {
        let meta = crate::checkpoint::meta(&file, weights)?;
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
        let mut train = TrainConfig::default();
        if let Some(o) = &a.objective {
            train.objective = o.parse()?;
        }
        if let Some(sch) = &a.schedule {
            train.schedule = sch.parse()?;
        }
        if let Some(t) = a.timesteps {
            train.timesteps = t as usize;
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
    Ok(Loaded { unet, diffusion })
}

impl Loaded {
    /// Ensemble masks for a batch of images (B, C, S, S), image i's noise from `seeds[i]` (see
    /// `diffusion::ensemble`): per image (mean, binary, variance).
    fn segment(
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

#[derive(Args, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// An image file or a folder of images (PNG, JPEG, TIFF). For a multi-channel model, a folder in nnU-Net's
    /// form (CASE_0000.png, CASE_0001.png, ...: an imagesTs/) is read one case per image, channels stacked.
    #[arg(long)]
    pub input: PathBuf,
    /// Output folder: <stem>_mask.png, <stem>_soft.png, <stem>_overlay.png, <stem>_uncertainty.png.
    #[arg(long, default_value = "samples")]
    pub out: PathBuf,
    /// Images per sampling pass (× --ensemble rows); refused if over the adapter's limits.
    #[arg(long, default_value_t = 4, value_parser = super::at_least_one)]
    pub batch_size: usize,
    /// Sample only this process's share, i/n (0 ≤ i < n): n processes (a job array, one per GPU) together write
    /// exactly the files one process writes.
    #[arg(long)]
    pub shard: Option<Shard>,
}

pub fn sample(a: SampleArgs) -> Result<()> {
    let m = load_model(&a.model)?;
    let cfg = &m.unet.cfg;
    let (c, s) = (cfg.input_img_channels, cfg.image_size);
    let cases = folder::cases(&a.input, c)?;
    if cases.is_empty() {
        bail!("{}: no PNG/JPEG/TIFF images found", a.input.display());
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let batches = shard_batches(cases.len(), a.batch_size, a.shard);
    let total: usize = batches.iter().map(|r| r.len()).sum();
    let pb = bar(total as u64, "sample");
    for range in batches {
        let part = &cases[range];
        let mut planes = Vec::with_capacity(part.len() * c * s * s);
        let mut originals = Vec::new();
        for (_, files) in part {
            let (img, h, w) = folder::read_channels(files, c)?;
            planes.extend(crate::data::resize_planes(&img, c, h, w, s));
            originals.push((img, h, w));
        }
        let t = Tensor::from_slice(&planes, &[part.len(), c, s, s])?;
        let seeds: Vec<u64> =
            part.iter().map(|(name, _)| crate::diffusion::ensemble::image_seed(a.model.seed, name)).collect();
        let ens = m.segment(&t, &a.model, &seeds, &pb)?;
        for (((name, _), (img, h, w)), e) in part.iter().zip(&originals).zip(&ens) {
            let (h, w) = (*h, *w);
            // back to the scan's own width and height: the mask by nearest neighbour (it stays the ensemble's
            // vote), the soft mask and the variance bilinearly; the overlay tints the original pixels
            let up = |plane: &[f32], nearest: bool| crate::data::resize(plane, s, s, h, w, nearest);
            let (binary, mean, variance) = (up(&e.binary, true), up(&e.mean, false), up(&e.variance, false));
            let save = |img: image::RgbImage, file: String| {
                let p = a.out.join(file);
                img.save(&p).with_context(|| format!("writing {}", p.display()))
            };
            images::save_gray(&a.out.join(format!("{name}_mask.png")), &binary, h, w)?;
            images::save_gray(&a.out.join(format!("{name}_soft.png")), &mean, h, w)?;
            save(images::overlay(&img[..h * w], &binary, h, w), format!("{name}_overlay.png"))?;
            save(images::heat(&variance, h, w), format!("{name}_uncertainty.png"))?;
            pb.inc(1);
        }
    }
    pb.finish();
    let of = a.shard.map_or(String::new(), |sh| format!(" (shard {}/{} of {})", sh.index, sh.count, cases.len()));
    println!("wrote masks, overlays and uncertainty maps for {total} image(s){of} to {}", a.out.display());
    Ok(())
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Images per sampling batch.
    #[arg(long, default_value_t = 8, value_parser = super::at_least_one)]
    pub batch_size: usize,
    /// Evaluate only this process's share, i/n (0 ≤ i < n), in whole batches: the rows n shards write are
    /// exactly one process's rows (merge their CSVs with --merge).
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Combine per-image CSVs written by `eval --csv` (e.g. one per shard) instead of evaluating: prints the
    /// table and the means, and writes --csv / --json for all of them.
    #[arg(long, num_args = 1..)]
    pub merge: Vec<PathBuf>,
    /// Write per-image scores as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write per-image scores and the means as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let rows = if a.merge.is_empty() { evaluate(&a)? } else { metrics::read_score_csvs(&a.merge)? };
    let mean = metrics::mean(&rows.iter().map(|r| r.1).collect::<Vec<_>>());
    println!("{:<32} {:>8} {:>8} {:>8}", "image", "Dice", "IoU", "HD95");
    for (n, sc) in &rows {
        println!("{n:<32} {:>8.4} {:>8.4} {:>8.2}", sc.dice, sc.iou, sc.hd95);
    }
    println!("{:<32} {:>8.4} {:>8.4} {:>8.2}", format!("mean of {}", rows.len()), mean.dice, mean.iou, mean.hd95);
    if let Some(p) = &a.csv {
        let mut f = std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
        writeln!(f, "image,dice,iou,hd95")?;
        for (n, sc) in &rows {
            writeln!(f, "{n},{},{},{}", sc.dice, sc.iou, sc.hd95)?;
        }
    }
    if let Some(p) = &a.json {
        let per: Vec<_> = rows
            .iter()
            .map(|(n, sc)| serde_json::json!({"image": n, "dice": sc.dice, "iou": sc.iou, "hd95": sc.hd95}))
            .collect();
        let j = serde_json::json!({"images": per, "mean": {"dice": mean.dice, "iou": mean.iou, "hd95": mean.hd95}, "weights": a.model.weights});
        std::fs::write(p, serde_json::to_string_pretty(&j)?).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// Sample and score this shard's images: per-image rows (name, scores).
fn evaluate(a: &EvalArgs) -> Result<Vec<(String, Scores)>> {
    let m = load_model(&a.model)?;
    let cfg = m.unet.cfg.clone();
    let data = load_data(&a.data, cfg.image_size, cfg.input_img_channels, 1)?;
    if data.channels != cfg.input_img_channels {
        bail!("{} has {} input channels but the model takes {}", data.source, data.channels, cfg.input_img_channels);
    }
    let s = cfg.image_size;
    let batches = shard_batches(data.len(), a.batch_size, a.shard);
    let pb = bar(batches.iter().map(|r| r.len() as u64).sum(), "eval");
    let mut rows: Vec<(String, Scores)> = Vec::new();
    for range in batches {
        let chunk: Vec<usize> = range.collect();
        let (images, masks) = data.batch(&chunk, None)?;
        let seeds: Vec<u64> = chunk
            .iter()
            .map(|&i| crate::diffusion::ensemble::image_seed(a.model.seed, &data.samples[i].name))
            .collect();
        let ens = m.segment(&images, &a.model, &seeds, &pb)?;
        let truth = masks.to_vec();
        for (k, (&i, e)) in chunk.iter().zip(&ens).enumerate() {
            let sc = metrics::scores(&e.binary, &truth[k * s * s..(k + 1) * s * s], s, s);
            rows.push((data.samples[i].name.clone(), sc));
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish();
    Ok(rows)
}
