//! `sample` and `eval`: ensembles of masks for a folder of scans (or an nnU-Net imagesTs/ folder) at each scan's
//! own size, and scores against ground truth; both in batches, shardable over processes.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::images;
use super::run::{bar, given, load_data, unverified_note};
use super::DataArgs;
use crate::data::volume::{self, Kind};
use crate::data::{folder, shard_batches, Shard};
use crate::diffusion::{Diffusion, Sampler, Spec};
use crate::metrics;
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
    Ok(Loaded { unet, diffusion })
}

impl Loaded {
    /// Masks for images at their own sizes: each (channel planes, h, w) resized to the model's size, all sampled
    /// as one batch (image i's noise from `seeds[i]`), and each ensemble's fused mask brought back to (h, w) by
    /// nearest neighbour (it stays the fused decision), its mean and variance bilinearly.
    fn segment_at(
        &self,
        images: &[(&[f32], usize, usize)],
        a: &ModelArgs,
        seeds: &[u64],
        pb: &indicatif::ProgressBar,
    ) -> Result<Vec<AtSize>> {
        let (c, s) = (self.unet.cfg.input_img_channels, self.unet.cfg.image_size);
        let data: Vec<f32> = images.iter().flat_map(|&(p, h, w)| crate::data::resize_planes(p, c, h, w, s)).collect();
        let t = Tensor::from_slice(&data, &[images.len(), c, s, s])?;
        let ens = self.segment(&t, a, seeds, pb)?;
        Ok(images
            .iter()
            .zip(ens)
            .map(|(&(_, h, w), e)| {
                let up = |plane: &[f32], nearest: bool| crate::data::resize(plane, s, s, h, w, nearest);
                AtSize { binary: up(&e.binary, true), mean: up(&e.mean, false), variance: up(&e.variance, false) }
            })
            .collect())
    }

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
    /// A NIfTI volume (.nii, .nii.gz) or a folder of them is sampled slice by slice along --axis and written
    /// as volumes with the scan's own header (shape, voxel size, affine).
    #[arg(long)]
    pub input: PathBuf,
    /// For NIfTI input: the slicing axis (0, 1 or 2; 2 = axial for RAS volumes), as in training.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub axis: u8,
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
    let c = cfg.input_img_channels;
    if let Some(cases) = volume::cases(&a.input, c)? {
        return sample_volumes(&a, &m, &cases);
    }
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
        let originals =
            part.iter().map(|(_, files)| folder::read_channels(files, c)).collect::<crate::Result<Vec<_>>>()?;
        let seeds: Vec<u64> =
            part.iter().map(|(name, _)| crate::diffusion::ensemble::image_seed(a.model.seed, name)).collect();
        let views: Vec<_> = originals.iter().map(|(img, h, w)| (img.as_slice(), *h, *w)).collect();
        let outs = m.segment_at(&views, &a.model, &seeds, &pb)?;
        for (((name, _), (img, h, w)), o) in part.iter().zip(&originals).zip(outs) {
            let (h, w) = (*h, *w);
            let AtSize { binary, mean, variance } = o;
            // the overlay tints the original pixels
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
    let of = shard_note(a.shard, cases.len());
    println!("wrote masks, overlays and uncertainty maps for {total} image(s){of} to {}", a.out.display());
    Ok(())
}

/// " (shard i/n of total)" when sampling a shard.
fn shard_note(shard: Option<Shard>, total: usize) -> String {
    shard.map_or(String::new(), |sh| format!(" (shard {}/{} of {total})", sh.index, sh.count))
}

/// One image's outputs at its own height and width.
struct AtSize {
    binary: Vec<f32>,
    mean: Vec<f32>,
    variance: Vec<f32>,
}

/// NIfTI in, NIfTI out: every slice of each volume along --axis (empty ones too) sampled in batches, each mask
/// brought back to its slice's size, and <case>_mask.nii.gz (0/1 labels), <case>_soft.nii.gz (ensemble mean) and
/// <case>_uncertainty.nii.gz (variance) written with the scan's header. Slice k of a case is seeded by the name
/// <case>_s<k> (as `eval` names it); --shard splits whole volumes.
fn sample_volumes(a: &SampleArgs, m: &Loaded, cases: &[(String, Vec<PathBuf>)]) -> Result<()> {
    let (c, axis) = (m.unet.cfg.input_img_channels, a.axis as usize);
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mine: Vec<usize> = shard_batches(cases.len(), 1, a.shard).into_iter().flatten().collect();
    let pb = bar(mine.len() as u64, "volumes");
    for &i in &mine {
        let (name, files) = &cases[i];
        let vols = volume::read_case(files)?;
        if vols.len() != 1 && vols.len() != c {
            bail!("{}: case {name} has {} channel volumes but the model takes {c}", files[0].display(), vols.len());
        }
        let (planes, h, w) = volume::planes(&vols, axis, c);
        let (mut masks, mut softs, mut vars) = (Vec::new(), Vec::new(), Vec::new());
        for start in (0..planes.len()).step_by(a.batch_size) {
            let part = &planes[start..(start + a.batch_size).min(planes.len())];
            let views: Vec<_> = part.iter().map(|p| (p.as_slice(), h, w)).collect();
            let seeds: Vec<u64> = (start..start + part.len())
                .map(|k| crate::diffusion::ensemble::image_seed(a.model.seed, &format!("{name}_s{k:03}")))
                .collect();
            pb.set_message(format!("{name}: slices {}-{} of {}", start + 1, start + part.len(), planes.len()));
            for o in m.segment_at(&views, &a.model, &seeds, &pb)? {
                masks.push(o.binary);
                softs.push(o.mean);
                vars.push(o.variance);
            }
        }
        let dims = vols[0].dims;
        for (suffix, slices, kind) in
            [("mask", &masks, Kind::Labels), ("soft", &softs, Kind::Float), ("uncertainty", &vars, Kind::Float)]
        {
            let path = a.out.join(format!("{name}_{suffix}.nii.gz"));
            volume::write_like(&path, &vols[0], &volume::assemble(dims, axis, slices), kind)?;
        }
        pb.inc(1);
    }
    pb.finish();
    let of = shard_note(a.shard, cases.len());
    println!(
        "wrote label, soft and uncertainty volumes for {} case(s){of} to {} (each with its scan's header)",
        mine.len(),
        a.out.display()
    );
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
    // the headline mean is over what it always was: every 2-D image, and the slices whose truth has foreground
    // (as training's validation); slices with empty truth are scored in the rows, the all-slice mean and the
    // volumes below, where their false positives count
    let counted: Vec<_> = rows.iter().filter(|r| !r.empty_truth_slice()).map(|r| r.scores).collect();
    let mean = metrics::mean(&counted);
    let all = metrics::mean(&rows.iter().map(|r| r.scores).collect::<Vec<_>>());
    let mm: Vec<f64> = rows.iter().filter(|r| !r.empty_truth_slice()).filter_map(|r| r.hd95_mm).collect();
    let mean_mm = (!mm.is_empty()).then(|| mm.iter().sum::<f64>() / mm.len() as f64);
    let mm_col = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:>9.2}"));
    println!(
        "{:<32} {:>8} {:>8} {:>8}{}",
        "image",
        "Dice",
        "IoU",
        "HD95",
        if mean_mm.is_some() { "  HD95 mm" } else { "" }
    );
    for r in &rows {
        let sc = r.scores;
        println!("{:<32} {:>8.4} {:>8.4} {:>8.2}{}", r.image, sc.dice, sc.iou, sc.hd95, mm_col(r.hd95_mm));
    }
    let label = format!("mean of {}", counted.len());
    println!("{label:<32} {:>8.4} {:>8.4} {:>8.2}{}", mean.dice, mean.iou, mean.hd95, mm_col(mean_mm));
    if counted.len() < rows.len() {
        let label = format!("mean of all {} (empty truth too)", rows.len());
        println!("{label:<32} {:>8.4} {:>8.4} {:>8.2}", all.dice, all.iou, all.hd95);
    }
    // volumes: 3-D overlap summed over every slice, empty ones included
    let vols = metrics::per_volume(&rows);
    if !vols.is_empty() {
        println!(
            "\n{:<32} {:>8} {:>8} {:>7} {:>22}",
            "volume (3-D)", "Dice", "IoU", "slices", "empty-truth slices w/ FP"
        );
        for v in &vols {
            let (o, part) = (v.overlap, if v.complete { "" } else { "  (partial: slices missing)" });
            println!(
                "{:<32} {:>8.4} {:>8.4} {:>7} {:>22}{part}",
                v.volume,
                o.dice(),
                o.iou(),
                v.slices,
                v.false_positive_slices
            );
        }
        let m = vols.iter().map(|v| v.overlap.dice()).sum::<f64>() / vols.len() as f64;
        println!("{:<32} {m:>8.4}", format!("mean of {} volumes", vols.len()));
    }
    if let Some(p) = &a.csv {
        let text: Vec<String> =
            std::iter::once(metrics::CSV_HEADER.to_string()).chain(rows.iter().map(|r| r.csv())).collect();
        std::fs::write(p, text.join("\n") + "\n").with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &a.json {
        let per: Vec<_> = rows
            .iter()
            .map(|r| {
                let sc = r.scores;
                serde_json::json!({"image": r.image, "dice": sc.dice, "iou": sc.iou, "hd95": sc.hd95, "hd95_mm": r.hd95_mm})
            })
            .collect();
        let volumes: Vec<_> = vols
            .iter()
            .map(|v| serde_json::json!({"volume": v.volume, "dice": v.overlap.dice(), "iou": v.overlap.iou(), "slices": v.slices, "complete": v.complete, "empty_truth_slices_with_false_positives": v.false_positive_slices}))
            .collect();
        let j = serde_json::json!({
            "images": per,
            "volumes": volumes,
            "mean": {"dice": mean.dice, "iou": mean.iou, "hd95": mean.hd95, "hd95_mm": mean_mm, "images": counted.len()},
            "mean_all_slices": {"dice": all.dice, "iou": all.iou, "hd95": all.hd95, "images": rows.len()},
            "weights": a.model.weights,
        });
        std::fs::write(p, serde_json::to_string_pretty(&j)?).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// Sample and score this shard's images: a row per image (per slice for volumes, empty slices included).
fn evaluate(a: &EvalArgs) -> Result<Vec<metrics::Row>> {
    let m = load_model(&a.model)?;
    let cfg = m.unet.cfg.clone();
    let data = load_data(&a.data, cfg.image_size, cfg.input_img_channels, 1, true)?;
    if data.channels != cfg.input_img_channels {
        bail!("{} has {} input channels but the model takes {}", data.source, data.channels, cfg.input_img_channels);
    }
    let s = cfg.image_size;
    let batches = shard_batches(data.len(), a.batch_size, a.shard);
    let pb = bar(batches.iter().map(|r| r.len() as u64).sum(), "eval");
    let mut rows = Vec::new();
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
            let (smp, truth) = (&data.samples[i], &truth[k * s * s..(k + 1) * s * s]);
            // a slice's pixels at the model's size are (stored / size) times its stored spacing apart
            let hd95_mm = smp.slice.as_ref().map(|sl| {
                let [h, w] = smp.stored;
                let spacing = [sl.spacing[0] as f64 * h as f64 / s as f64, sl.spacing[1] as f64 * w as f64 / s as f64];
                metrics::hd95_spaced(&e.binary, truth, s, s, spacing)
            });
            rows.push(metrics::Row {
                image: smp.name.clone(),
                scores: metrics::scores(&e.binary, truth, s, s),
                hd95_mm,
                overlap: Some(metrics::Overlap::of(&e.binary, truth)),
                slice: smp.slice.as_ref().map(|sl| sl.index),
            });
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish();
    Ok(rows)
}
