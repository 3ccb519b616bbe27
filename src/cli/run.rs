//! `train`, `sample` and `eval`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::images;
use super::DataArgs;
use crate::data::{folder, nifti, synthetic, Dataset};
use crate::diffusion::{ensemble_stats, Diffusion};
use crate::metrics::{self, Scores};
use crate::model::weights::{load_into, TensorFile};
use crate::model::{Unet, UnetConfig};
use crate::rng::Rng;
use crate::train::{preset, preset_trainer, TrainConfig, Trainer};
use crate::Tensor;

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Model config JSON (the package's Unet kwargs); overrides the preset's model.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// tiny | small | paper
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: Option<u64>,
    #[arg(long, value_parser = super::at_least_one)]
    pub batch_size: Option<usize>,
    /// Peak learning rate (finite, above 0).
    #[arg(long, value_parser = super::positive_f32)]
    pub lr: Option<f32>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// pred_noise | pred_x0 | pred_v
    #[arg(long)]
    pub objective: Option<String>,
    /// cosine | linear | shifted-cosine
    #[arg(long)]
    pub schedule: Option<String>,
    /// Resize data to this size (overrides the model config's image_size).
    #[arg(long, value_parser = super::at_least_one)]
    pub image_size: Option<usize>,
    #[arg(long)]
    pub val_every: Option<u64>,
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Run folder (default runs/<preset>): config.json, loss.csv, last/best.safetensors, samples.png.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from a checkpoint (same data); --steps sets the new total.
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

pub fn load_data(a: &DataArgs, size: usize, channels: usize, seed: u64) -> Result<Dataset> {
    Ok(match (&a.data, &a.nifti) {
        (Some(d), _) => folder::load(d, size, channels, a.skip_bad)?,
        (None, Some(d)) => nifti::load(d, size, channels, a.axis, a.skip_bad)?,
        (None, None) => {
            crate::data::check_host_memory("the synthetic dataset", a.synthetic_count, size, channels)?;
            synthetic::generate(a.synthetic_count, size, channels, seed)
        }
    })
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{pos}}/{{len}} {{msg}} [{{elapsed_precise}} < {{eta_precise}}, {{per_sec}}]"
        ))
        .expect("valid template"),
    );
    pb
}

/// Print above the progress bar, or plainly when the bar is hidden (stdout is not a terminal).
fn say(pb: &ProgressBar, msg: String) {
    if pb.is_hidden() {
        println!("{msg}");
    } else {
        pb.println(msg);
    }
}

/// The flags of `flags` (name, whether it was given) that were given.
fn given(flags: &[(&'static str, bool)]) -> Vec<&'static str> {
    flags.iter().filter_map(|&(f, set)| set.then_some(f)).collect()
}

pub fn train(a: TrainArgs) -> Result<()> {
    if a.resume.is_some() {
        // a resumed run continues exactly as configured: refuse flags it would otherwise silently ignore
        let ignored = given(&[
            ("--config", a.config.is_some()),
            ("--batch-size", a.batch_size.is_some()),
            ("--lr", a.lr.is_some()),
            ("--seed", a.seed.is_some()),
            ("--objective", a.objective.is_some()),
            ("--schedule", a.schedule.is_some()),
            ("--image-size", a.image_size.is_some()),
            ("--val-every", a.val_every.is_some()),
            ("--checkpoint-every", a.checkpoint_every.is_some()),
        ]);
        if !ignored.is_empty() {
            bail!(
                "--resume continues a run with its saved settings; {} cannot change them (only --steps can). \
                 Start a new run with --out to train with other settings.",
                ignored.join(", ")
            );
        }
    }
    let (mut model, mut cfg) = preset(&a.preset)?;
    if let Some(p) = &a.config {
        let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        model = UnetConfig::from_json(&text).with_context(|| format!("in {}", p.display()))?;
    }
    if let Some(s) = a.image_size {
        model.image_size = s;
    }
    cfg.steps = a.steps.unwrap_or(cfg.steps);
    cfg.batch_size = a.batch_size.unwrap_or(cfg.batch_size);
    cfg.lr = a.lr.unwrap_or(cfg.lr);
    cfg.seed = a.seed.unwrap_or(cfg.seed);
    cfg.val_every = a.val_every.unwrap_or(cfg.val_every);
    cfg.checkpoint_every = a.checkpoint_every.unwrap_or(cfg.checkpoint_every);
    if let Some(o) = &a.objective {
        cfg.objective = o.parse()?;
    }
    if let Some(s) = &a.schedule {
        cfg.schedule = s.parse()?;
    }
    if cfg.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    // default run folder: the resumed checkpoint's own folder, else runs/<preset>
    let out = match (&a.out, &a.resume) {
        (Some(o), _) => o.clone(),
        (None, Some(ck)) => ck.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf(),
        (None, None) => PathBuf::from("runs").join(&a.preset),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let mut trainer = match &a.resume {
        Some(ckpt) => {
            let (file, meta) = crate::checkpoint::load(ckpt)?;
            unverified_note(&file, ckpt);
            let data = load_data(&a.data, meta.model.image_size, meta.model.input_img_channels, meta.train.seed)?;
            let t = Trainer::resume_loaded(ckpt, &file, meta, data, a.steps)?;
            println!("resumed {} at step {}", ckpt.display(), t.step);
            t
        }
        None => {
            model.validate()?;
            cfg.validate()?;
            // the adapter's limits before the data is decoded (Trainer::new checks again, for library callers)
            let flags = crate::model::memory::Flags { size: Some("--image-size"), batch: "--batch-size" };
            crate::train::check_fits(&model, cfg.batch_size, flags)?;
            let data = load_data(&a.data, model.image_size, model.input_img_channels, cfg.seed)?;
            Trainer::new(&model, cfg, data)?
        }
    };
    let cfg = trainer.cfg.clone();
    println!(
        "model: {} parameters | data: {} ({} train / {} val) | {} steps of batch {} on {}",
        trainer.unet.num_params(),
        trainer.data.source,
        trainer.train_idx.len(),
        trainer.val_idx.len(),
        cfg.steps,
        cfg.batch_size,
        crate::gpu::gpu().info.name
    );
    let both = serde_json::json!({ "model": trainer.unet.cfg, "train": cfg });
    std::fs::write(out.join("config.json"), serde_json::to_string_pretty(&both)?)?;

    let (last, best) = (out.join("last.safetensors"), out.join("best.safetensors"));
    let stop = {
        let last = last.clone();
        crate::train::Interrupt::install(move || {
            eprintln!("second signal: exiting now; the last complete checkpoint is {}", last.display())
        })?
    };
    let loss_path = out.join("loss.csv");
    if a.resume.is_some() {
        // rows past the checkpoint's step belong to steps that will run again: drop them, so the file has
        // each step once
        cut_loss_csv(&loss_path, trainer.step)?;
    }
    let mut loss_csv = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&loss_path)
        .with_context(|| format!("opening {}", loss_path.display()))?;
    if loss_csv.metadata()?.len() == 0 {
        writeln!(loss_csv, "step,loss,lr")?;
    }
    let pb = bar(cfg.steps, "train");
    pb.set_position(trainer.step);
    let t0 = Instant::now();
    let start_step = trainer.step;
    let mut last_line = Instant::now();
    let mut ema_loss: Option<f32> = None;
    while trainer.step < cfg.steps {
        let lr = trainer.lr_schedule().at(trainer.step);
        let loss = trainer.train_step()?;
        if !loss.is_finite() {
            pb.abandon();
            bail!(
                "loss became {loss} at step {}; stopping. The last good checkpoint is {} (try a lower --lr)",
                trainer.step,
                last.display()
            );
        }
        // one write per row, so a killed run leaves whole rows (a cut one belongs to a step past the checkpoint)
        loss_csv.write_all(format!("{},{loss},{lr}\n", trainer.step).as_bytes())?;
        let sm = ema_loss.map_or(loss, |e| 0.95 * e + 0.05 * loss);
        ema_loss = Some(sm);
        pb.set_position(trainer.step);
        pb.set_message(format!("loss {loss:.4} (avg {sm:.4}) lr {lr:.1e}"));
        let s = trainer.step;
        let due = s % (cfg.steps / 20).max(1) == 0 || s == cfg.steps || s == start_step + 1;
        if pb.is_hidden() && (due || last_line.elapsed().as_secs() >= PLAIN_PROGRESS_SECS) {
            // no terminal (a log file, a batch job, CI): a plain progress line after the first step, every 5%
            // and at least every PLAIN_PROGRESS_SECS
            last_line = Instant::now();
            let rate = (s - start_step) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            let eta = (cfg.steps - s) as f64 / rate.max(1e-9);
            println!(
                "step {s}/{}: loss {loss:.4} (avg {sm:.4}) lr {lr:.1e}, {rate:.2} steps/s, ETA {eta:.0} s",
                cfg.steps
            );
        }
        if s % cfg.checkpoint_every.max(1) == 0 || s == cfg.steps {
            trainer.save(&last)?;
        }
        if cfg.val_every > 0 && (s % cfg.val_every == 0 || s == cfg.steps) {
            if let Some(sc) = trainer.validate()? {
                let better = trainer.best_dice.is_none_or(|b| sc.dice > b);
                say(
                    &pb,
                    format!(
                        "step {s}: validation Dice {:.4} IoU {:.4} HD95 {:.2}{}",
                        sc.dice,
                        sc.iou,
                        sc.hd95,
                        if better { " (best)" } else { "" }
                    ),
                );
                if better {
                    trainer.best_dice = Some(sc.dice);
                    trainer.save(&best)?;
                    trainer.save(&last)?;
                }
            }
        }
        if stop.requested() {
            trainer.save(&last)?;
            pb.abandon_with_message("interrupted");
            println!(
                "interrupted at step {s}; saved {}. Continue with: medsegdiff train --resume {} --steps {}",
                last.display(),
                last.display(),
                cfg.steps
            );
            std::process::exit(crate::train::INTERRUPTED_EXIT);
        }
    }
    pb.finish();
    trainer.save(&last)?;
    let secs = t0.elapsed().as_secs_f64();
    println!("trained to step {} in {:.1} s; checkpoints in {}", trainer.step, secs, out.display());
    write_sample_grid(&trainer, &out.join("samples.png"))?;
    Ok(())
}

/// Weights without per-tensor checksums (an older medsegdiff's, or exported from PyTorch) load, with a note.
fn unverified_note(file: &TensorFile, path: &Path) {
    if !file.verified {
        eprintln!(
            "note: {} carries no tensor checksums (written by an older medsegdiff or another tool): its bytes \
             are loaded unverified",
            path.display()
        );
    }
}

/// Without a terminal, `train` prints a progress line at least this often (seconds).
const PLAIN_PROGRESS_SECS: u64 = 30;

/// Keep the header and the rows of steps ≤ `step` of a loss.csv (a resumed run writes the later ones again).
fn cut_loss_csv(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) }; // no file yet: nothing to cut
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || l.split(',').next().and_then(|v| v.parse::<u64>().ok()).is_some_and(|k| k <= step))
        .map(|(_, l)| l)
        .collect();
    std::fs::write(path, kept.join("\n") + "\n").with_context(|| format!("rewriting {}", path.display()))
}

/// [image | truth | prediction] rows for up to 8 validation images, with the EMA weights.
fn write_sample_grid(t: &Trainer, path: &Path) -> Result<()> {
    let idx: Vec<usize> = t.val_idx.iter().chain(t.train_idx.iter()).take(8).copied().collect();
    let examples = t.sample_examples(&idx, t.cfg.seed ^ 0xabc)?;
    let rows: Vec<_> = examples.iter().map(|e| (e.image.clone(), e.truth.clone(), e.pred.clone())).collect();
    images::grid(&rows, t.data.size).save(path).with_context(|| format!("writing {}", path.display()))?;
    let dice = metrics::mean(&examples.iter().map(|e| e.scores).collect::<Vec<_>>()).dice;
    println!("wrote {} (image | truth | prediction); mean Dice of these {dice:.4}", path.display());
    Ok(())
}

/// Weights and the diffusion settings that go with them.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A medsegdiff checkpoint, or a PyTorch state_dict saved as safetensors (then --config is needed).
    #[arg(long)]
    pub weights: PathBuf,
    /// Model config JSON for a plain state_dict.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Use the raw weights of a checkpoint instead of its EMA weights.
    #[arg(long)]
    pub no_ema: bool,
    /// DDIM steps (ignored with --ddpm).
    #[arg(long, default_value_t = 50, value_parser = super::at_least_one)]
    pub sampling_steps: usize,
    /// DDIM eta in [0, 1]: 0 is deterministic given the starting noise.
    #[arg(long, default_value_t = 0.0, value_parser = super::unit_f64)]
    pub eta: f64,
    /// Ancestral DDPM over all timesteps instead of DDIM.
    #[arg(long)]
    pub ddpm: bool,
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

pub struct Loaded {
    pub unet: Unet,
    pub diffusion: Diffusion,
}

pub fn load_model(a: &ModelArgs) -> Result<Loaded> {
    let file = TensorFile::read(&a.weights)?;
    unverified_note(&file, &a.weights);
    let is_ckpt = crate::checkpoint::is_checkpoint(&file);
    let (cfg, train) = if is_ckpt {
        let meta = crate::checkpoint::meta(&file, &a.weights)?;
        (meta.model, meta.train)
    } else {
        let cfg_text = match (&a.config, file.metadata.get("config")) {
            (Some(p), _) => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            (None, Some(c)) => c.clone(),
            (None, None) => {
                bail!("{} is a plain state_dict: give its model config with --config cfg.json", a.weights.display())
            }
        };
        let what = a
            .config
            .as_ref()
            .map_or_else(|| format!("the config in {}'s metadata", a.weights.display()), |p| p.display().to_string());
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
                a.weights.display(),
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
    load_into(&unet.vars, &file, prefix, &a.weights)?;
    let diffusion = Diffusion::new(train.schedule, train.timesteps, cfg.image_size, train.objective);
    Ok(Loaded { unet, diffusion })
}

impl Loaded {
    /// Ensemble-sample masks for a batch of images (B, C, S, S): per image (mean, binary, variance).
    fn segment(
        &self,
        images: &Tensor,
        a: &ModelArgs,
        rng: &mut Rng,
        pb: &ProgressBar,
    ) -> Result<Vec<crate::diffusion::Ensemble>> {
        let (b, c, s) = (images.dim(0), images.dim(1), images.dim(2));
        let n = a.ensemble.max(1);
        let flags = crate::model::memory::Flags { size: None, batch: "--ensemble" };
        crate::train::check_fits(&self.unet.cfg, b * n, flags)?;
        let iv = images.to_vec();
        // repeat each image n times: (b·n, c, s, s)
        let rep: Vec<f32> =
            (0..b).flat_map(|i| (0..n).flat_map(move |_| i * c * s * s..(i + 1) * c * s * s)).map(|k| iv[k]).collect();
        let cond = Tensor::from_slice(&rep, &[b * n, c, s, s])?;
        let progress = |i: usize, k: usize| {
            pb.set_message(format!("step {i}/{k}"));
        };
        let out = if a.ddpm {
            self.diffusion.ddpm_sample(&self.unet, &cond, rng, progress)?
        } else {
            self.diffusion.ddim_sample(&self.unet, &cond, a.sampling_steps, a.eta, rng, progress)?
        };
        let v = out.to_vec();
        let mc = self.unet.cfg.mask_channels;
        Ok((0..b)
            .map(|i| {
                let samples: Vec<Vec<f32>> =
                    (0..n).map(|j| v[(i * n + j) * mc * s * s..(i * n + j) * mc * s * s + s * s].to_vec()).collect();
                ensemble_stats(&samples)
            })
            .collect())
    }
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// An image file or a folder of images (PNG, JPEG, TIFF).
    #[arg(long)]
    pub input: PathBuf,
    /// Output folder: <stem>_mask.png, <stem>_soft.png, <stem>_overlay.png, <stem>_uncertainty.png.
    #[arg(long, default_value = "samples")]
    pub out: PathBuf,
}

pub fn sample(a: SampleArgs) -> Result<()> {
    let m = load_model(&a.model)?;
    let cfg = &m.unet.cfg;
    let files: Vec<PathBuf> = if a.input.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&a.input)
            .with_context(|| format!("reading {}", a.input.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| folder::EXTENSIONS.contains(&e.to_lowercase().as_str()))
            })
            .collect();
        v.sort();
        v
    } else {
        vec![a.input.clone()]
    };
    if files.is_empty() {
        bail!("{}: no PNG/JPEG/TIFF images found", a.input.display());
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let s = cfg.image_size;
    let pb = bar(files.len() as u64, "sample");
    let mut rng = Rng::new(a.model.seed);
    for f in &files {
        let (img, h, w) = folder::read_image(f, cfg.input_img_channels)?;
        let c = cfg.input_img_channels;
        let planes: Vec<f32> =
            (0..c).flat_map(|k| crate::data::resize_plane(&img[k * h * w..(k + 1) * h * w], h, w, s, false)).collect();
        let t = Tensor::from_slice(&planes, &[1, c, s, s])?;
        let e = m.segment(&t, &a.model, &mut rng, &pb)?.remove(0);
        let stem = f.file_stem().and_then(|x| x.to_str()).unwrap_or("image");
        // back to the scan's own width and height: the mask by nearest neighbour (it stays the ensemble's
        // vote), the soft mask and the variance bilinearly; the overlay tints the original pixels
        let up = |plane: &[f32], nearest: bool| crate::data::resize(plane, s, s, h, w, nearest);
        let (binary, mean, variance) = (up(&e.binary, true), up(&e.mean, false), up(&e.variance, false));
        let save = |img: image::RgbImage, name: String| {
            let p = a.out.join(name);
            img.save(&p).with_context(|| format!("writing {}", p.display()))
        };
        images::save_gray(&a.out.join(format!("{stem}_mask.png")), &binary, h, w)?;
        images::save_gray(&a.out.join(format!("{stem}_soft.png")), &mean, h, w)?;
        save(images::overlay(&img[..h * w], &binary, h, w), format!("{stem}_overlay.png"))?;
        save(images::heat(&variance, h, w), format!("{stem}_uncertainty.png"))?;
        pb.inc(1);
    }
    pb.finish();
    println!("wrote masks, overlays and uncertainty maps for {} image(s) to {}", files.len(), a.out.display());
    Ok(())
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Images per sampling batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Write per-image scores as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write per-image scores and the means as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let m = load_model(&a.model)?;
    let cfg = m.unet.cfg.clone();
    let data = load_data(&a.data, cfg.image_size, cfg.input_img_channels, 1)?;
    let s = cfg.image_size;
    let pb = bar(data.len() as u64, "eval");
    let mut rng = Rng::new(a.model.seed);
    let mut rows: Vec<(String, Scores)> = Vec::new();
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(a.batch_size.max(1)) {
        let (images, masks) = data.batch(chunk, None)?;
        let ens = m.segment(&images, &a.model, &mut rng, &pb)?;
        let truth = masks.to_vec();
        for (k, (&i, e)) in chunk.iter().zip(&ens).enumerate() {
            rows.push((
                data.samples[i].name.clone(),
                metrics::scores(&e.binary, &truth[k * s * s..(k + 1) * s * s], s, s),
            ));
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish();
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

/// The model and trainer a workload bench or profile runs: a preset's or a config file's, resized and re-batched
/// as the flags say; the name says which (e.g. "tiny@64px").
fn workload_trainer(preset_name: &str, m: &super::WorkloadArgs) -> Result<(String, crate::train::Trainer)> {
    let (mut model, base, mut name) = match &m.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading --config {}", p.display()))?;
            let cfg = crate::model::UnetConfig::from_json(&text).with_context(|| format!("in {}", p.display()))?;
            let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or("config").to_string();
            (cfg, crate::train::TrainConfig { batch_size: 8, ..Default::default() }, name)
        }
        None => {
            let (model, cfg) = preset(preset_name)?;
            (model, cfg, preset_name.to_string())
        }
    };
    if let Some(s) = m.image_size {
        model.image_size = s;
        name = format!("{name}@{s}px");
    }
    let batch = m.batch_size.unwrap_or(base.batch_size); // --batch-size ≥ 1 is checked when parsing
    Ok((name, crate::bench::workload::trainer_for(&model, batch, base)?))
}

/// `medsegdiff bench --workload / --config`: the workload tables of one training and one sampling step.
pub fn workload(preset_name: &str, m: &super::WorkloadArgs, json: Option<&Path>) -> Result<()> {
    let (name, mut t) = workload_trainer(preset_name, m)?;
    let g = crate::gpu::gpu();
    println!("adapter: {}", g.describe());
    println!("measuring peak (FMA throughput, copy bandwidth) ...");
    let peak = crate::bench::peak();
    println!("measuring {name}: warm-up, a wall-clock step and a profiled step, for training and sampling ...");
    let w = crate::bench::workload::run(&name, &mut t)?;
    print!("{}", crate::bench::workload::table(&w, &peak, m.top));
    if let Some(p) = json {
        let text = serde_json::to_string_pretty(&crate::bench::workload::to_json(&w, &peak))?;
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

/// `medsegdiff profile`: one training step with per-kernel timestamps.
pub fn profile(preset_name: &str, m: &super::WorkloadArgs, warmup: usize) -> Result<()> {
    let (name, mut t) = workload_trainer(preset_name, m)?;
    let (model, cfg) = (t.unet.cfg.clone(), t.cfg.clone());
    let g = crate::gpu::gpu();
    for _ in 0..warmup {
        t.train_step()?;
    }
    let pool_before = g.pool_stats();
    let (d0, s0) = g.counters();
    let t0 = Instant::now();
    t.train_step()?;
    g.sync();
    let wall = t0.elapsed().as_secs_f64();
    let (d1, s1) = g.counters();
    let pool_after = g.pool_stats();
    println!(
        "{}\n{name}: {} parameters, batch {}; one step: {:.1} ms wall, {} dispatches, {} submits, {} new buffers",
        g.describe(),
        t.unet.num_params(),
        cfg.batch_size,
        wall * 1e3,
        d1 - d0,
        s1 - s0,
        pool_after.created - pool_before.created
    );
    // one sampling step: a forward pass under no_grad and the DDIM update, read back
    let (images, _) = t.data.batch(&(0..cfg.batch_size).collect::<Vec<_>>(), None)?;
    let x = Tensor::randn(&[cfg.batch_size, model.mask_channels, model.image_size, model.image_size], &mut Rng::new(1));
    let sample_step = || -> Result<f64> {
        let _ng = crate::autograd::no_grad();
        let t0 = Instant::now();
        let (eps, _) = t.diffusion.predict(&t.unet, &x, 500, &images, true)?;
        eps.to_vec();
        Ok(t0.elapsed().as_secs_f64())
    };
    sample_step()?;
    println!(
        "one sampling step (forward under no_grad, batch {}): {:.1} ms wall",
        cfg.batch_size,
        sample_step()? * 1e3
    );
    if !g.set_profiling(true) {
        println!("this adapter has no timestamp queries: only the wall time above is available");
        return Ok(());
    }
    t.train_step()?;
    let prof = g.take_profile();
    g.set_profiling(false);
    print!("{}", prof.table());
    Ok(())
}

/// `medsegdiff trace`: the taped ops of one training loss and its backward, with shapes and GPU time.
pub fn trace(name: &str, batch_size: usize) -> Result<()> {
    let t = preset_trainer(name, batch_size)?;
    let g = crate::gpu::gpu();
    let idx: Vec<usize> = (0..batch_size.max(1)).collect();
    let (images, masks) = t.data.batch(&idx, None)?;
    let step = |rng_seed: u64| -> Result<()> {
        crate::autograd::clear();
        let loss = t.diffusion.training_loss(&t.unet, &masks, &images, &mut Rng::new(rng_seed))?;
        crate::autograd::backward(&loss)?;
        Ok(())
    };
    step(1)?; // warm-up: compile every pipeline, fill the pool
    g.sync();
    let timed = g.set_profiling(true);
    g.take_timeline();
    let d0 = g.counters().0;
    crate::autograd::set_trace(true);
    step(1)?;
    g.flush();
    let entries = crate::autograd::set_trace(false);
    let timeline = if timed { g.take_timeline() } else { Vec::new() };
    g.set_profiling(false);
    let fmt = |s: &[usize]| format!("{s:?}").replace(' ', "");
    println!(
        "{:>4}  {:<22} {:<44} {:<18} {:>4} {:>10}",
        "#",
        "op",
        "inputs",
        "output",
        "disp",
        if timed { "GPU us" } else { "" }
    );
    let (mut prev, mut total) = (d0, 0.0);
    for (i, e) in entries.iter().enumerate() {
        let (a, b) = ((prev - d0) as usize, (e.dispatch_end - d0) as usize);
        let us: f64 = timeline.get(a..b.min(timeline.len())).map_or(0.0, |v| v.iter().sum::<f64>() / 1e3);
        total += us;
        let ins = e.inputs.iter().map(|s| fmt(s)).collect::<Vec<_>>().join(" ");
        let t = if timed { format!("{us:>10.1}") } else { String::new() };
        println!("{i:>4}  {:<22} {:<44} {:<18} {:>4} {t}", e.op, ins, fmt(&e.output), b - a);
        prev = e.dispatch_end;
    }
    println!(
        "{} taped ops, {} dispatches{}",
        entries.len(),
        prev - d0,
        if timed {
            format!(", {:.1} ms of GPU time", total / 1e3)
        } else {
            " (no timestamp queries on this adapter)".into()
        }
    );
    Ok(())
}
