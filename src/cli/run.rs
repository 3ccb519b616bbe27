//! `train`: flags, the run folder, the loop's printing and files, and the plan of a run on the user's data.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::ProgressBar;

use super::images;
use super::inputs::{bar, load_data, unverified_note};
use super::DataArgs;
use crate::data::{folder, nnunet, Dataset};
use crate::metrics;
use crate::model::UnetConfig;
use crate::train::{preset, Outcome, TrainConfig, Trainer};

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Model config JSON (the package's Unet kwargs); overrides the preset's model.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// tiny | small | paper: a fixed network and training recipe, run as configured. Without it (and without
    /// --config) a run on your own data is planned to fit --time-budget (network, image size, steps, schedule).
    /// With --time-budget or --plan-only a preset is planned too, for its length only. No data: the tiny preset
    /// on the synthetic set.
    #[arg(long)]
    pub preset: Option<String>,
    /// Time for the whole run, planned from the data and this adapter's measured step times (e.g. 20m, 1h30m,
    /// 900s; default 20m). Explicit flags still fix their choices.
    #[arg(long, value_parser = crate::plan::parse_duration)]
    pub time_budget: Option<f64>,
    /// Print the plan and write plan.json to the run folder, then stop.
    #[arg(long)]
    pub plan_only: bool,
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
    /// Continue from a checkpoint (same data); --steps sets the new total. With the same total the run continues
    /// bit for bit; with a larger one the learning rate goes on from its value at the checkpoint down a half
    /// cosine to a tenth of the peak at the new total (recorded in the checkpoint, so later resumes agree).
    #[arg(long)]
    pub resume: Option<PathBuf>,
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
pub(super) fn given(flags: &[(&'static str, bool)]) -> Vec<&'static str> {
    flags.iter().filter_map(|&(f, set)| set.then_some(f)).collect()
}

pub fn train(a: TrainArgs) -> Result<()> {
    if a.resume.is_some() {
        // a resumed run continues exactly as configured: refuse flags it would otherwise silently ignore
        let mut ignored = given(&[
            ("--config", a.config.is_some()),
            ("--batch-size", a.batch_size.is_some()),
            ("--image-size", a.image_size.is_some()),
            ("--preset", a.preset.is_some()),
            ("--time-budget", a.time_budget.is_some()),
            ("--plan-only", a.plan_only),
        ]);
        ignored.extend(given(&setting_flags(&a)));
        if !ignored.is_empty() {
            bail!(
                "--resume continues a run with its saved settings; {} cannot change them (only --steps can). \
                 Start a new run with --out to train with other settings.",
                ignored.join(", ")
            );
        }
    }
    let user_data = a.data.data.is_some() || a.data.nifti.is_some();
    let fixed_model = a.preset.is_some() || a.config.is_some();
    // your own data without a fixed network is planned; a preset or config is planned only when asked
    let planned = a.resume.is_none() && (a.plan_only || a.time_budget.is_some() || (user_data && !fixed_model));
    let preset_name = a.preset.clone().unwrap_or_else(|| "tiny".into());
    let (mut model, mut cfg) = preset(&preset_name)?;
    if let Some(p) = &a.config {
        let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        model = UnetConfig::from_json(&text).with_context(|| format!("in {}", p.display()))?;
    }
    if let Some(s) = a.image_size {
        model.image_size = s;
    }
    // a planned run: the data's fingerprint and this adapter's speed choose what the flags leave open
    let (mut plan, mut planned_data) = (None, None);
    if planned {
        let (p, d) = plan_run(&a, fixed_model.then(|| model.clone()))?;
        cfg = if fixed_model {
            // a chosen preset or config keeps its training recipe (rate, objective, schedule); the plan sets the
            // length and what follows from it
            let t = &p.train;
            TrainConfig {
                steps: t.steps,
                batch_size: t.batch_size,
                warmup: t.warmup,
                val_every: t.val_every,
                checkpoint_every: t.checkpoint_every,
                ..cfg
            }
        } else {
            p.train.clone()
        };
        (model, planned_data) = (p.model.clone(), Some(d));
        plan = Some(p);
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
        (None, None) if planned && !fixed_model => PathBuf::from("runs").join(run_name(&a.data)),
        (None, None) => PathBuf::from("runs").join(&preset_name),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    if let Some(p) = &mut plan {
        // the plan as it will run: with the flags that override its choices
        p.train = cfg.clone();
        p.fixed_by_flags.extend(given(&setting_flags(&a)).into_iter().map(String::from));
        println!("{}", p.summary());
        let path = out.join("plan.json");
        std::fs::write(&path, serde_json::to_string_pretty(p)?)
            .with_context(|| format!("writing {}", path.display()))?;
        if a.plan_only {
            println!("wrote {} (--plan-only: not training)", path.display());
            return Ok(());
        }
        println!("wrote {}", path.display());
    }

    let mut trainer = match &a.resume {
        Some(ckpt) => {
            let (file, meta) = crate::train::checkpoint::load(ckpt)?;
            unverified_note(&file, ckpt);
            let data = load_data(
                &a.data,
                meta.model.image_size,
                meta.model.input_img_channels,
                meta.train.seed,
                false,
                Some(meta.model.mask_channels),
            )?;
            if meta.step >= meta.train.steps && a.steps.is_some_and(|s| s > meta.train.steps) {
                eprintln!(
                    "note: {} had finished its {} steps, so its learning rate is at the floor (a tenth of {:e}); the \
                     extension continues at that rate",
                    ckpt.display(),
                    meta.train.steps,
                    meta.train.lr
                );
            }
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
            let data = match planned_data {
                Some(d) => d,
                None => load_data(&a.data, model.image_size, model.input_img_channels, cfg.seed, false, None)?,
            };
            if data.channels != model.input_img_channels {
                // the dataset fixes its channel count (an nnU-Net dataset's channel_names)
                if a.config.is_some() {
                    bail!(
                        "{} has {} input channels but the --config model takes input_img_channels = {}",
                        data.source,
                        data.channels,
                        model.input_img_channels
                    );
                }
                model.input_img_channels = data.channels;
            }
            if a.config.is_none() {
                model.mask_channels = data.classes; // one mask channel per class (a config's is checked instead)
            }
            cfg.label_values = data.label_values.clone();
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
    let mut show = Show {
        pb: pb.clone(),
        csv: loss_csv,
        csv_path: loss_path,
        stop: &stop,
        t0,
        start: trainer.step,
        total: cfg.steps,
        last_line: Instant::now(),
        avg: None,
    };
    let outcome = trainer.run(&last, &best, &mut show).inspect_err(|_| pb.abandon())?;
    if let Outcome::Stopped { step } = outcome {
        pb.abandon_with_message("interrupted");
        println!(
            "interrupted at step {step}; saved {}. Continue with: medsegdiff train --resume {} --steps {}",
            last.display(),
            last.display(),
            cfg.steps
        );
        std::process::exit(crate::train::INTERRUPTED_EXIT);
    }
    pb.finish();
    let secs = t0.elapsed().as_secs_f64();
    println!("trained to step {} in {:.1} s; checkpoints in {}", trainer.step, secs, out.display());
    if stop.requested() {
        // a signal during the final save: the run is complete, so only the picture is skipped
        println!("signal received: not writing samples.png");
        std::process::exit(crate::train::INTERRUPTED_EXIT);
    }
    stop.exit_on_signal(); // the loop is over: a signal now ends the run at once
    write_sample_grid(&trainer, &out.join("samples.png"))?;
    Ok(())
}

/// How `train` shows the loop ([`crate::train::Observer`]): loss.csv rows, the progress bar, and without a
/// terminal plain progress lines.
struct Show<'a> {
    pb: ProgressBar,
    csv: std::fs::File,
    csv_path: PathBuf,
    stop: &'a crate::train::Interrupt,
    t0: Instant,
    start: u64,
    total: u64,
    last_line: Instant,
    avg: Option<f32>,
}

impl crate::train::Observer for Show<'_> {
    fn step(&mut self, s: u64, loss: f32, lr: f32) -> crate::Result<()> {
        // one write per row, so a killed run leaves whole rows (a cut one belongs to a step past the checkpoint)
        self.csv.write_all(format!("{s},{loss},{lr}\n").as_bytes()).map_err(|e| crate::Error::io(&self.csv_path, e))?;
        let sm = self.avg.map_or(loss, |e| 0.95 * e + 0.05 * loss);
        self.avg = Some(sm);
        self.pb.set_position(s);
        self.pb.set_message(format!("loss {loss:.4} (avg {sm:.4}) lr {lr:.1e}"));
        let due = s.is_multiple_of((self.total / 20).max(1)) || s == self.total || s == self.start + 1;
        if self.pb.is_hidden() && (due || self.last_line.elapsed().as_secs() >= PLAIN_PROGRESS_SECS) {
            // no terminal (a log file, a batch job, CI): a plain progress line after the first step, every 5%
            // and at least every PLAIN_PROGRESS_SECS
            self.last_line = Instant::now();
            let rate = (s - self.start) as f64 / self.t0.elapsed().as_secs_f64().max(1e-9);
            let eta = (self.total - s) as f64 / rate.max(1e-9);
            println!(
                "step {s}/{}: loss {loss:.4} (avg {sm:.4}) lr {lr:.1e}, {rate:.2} steps/s, ETA {eta:.0} s",
                self.total
            );
        }
        Ok(())
    }

    fn validated(&mut self, s: u64, sc: &crate::metrics::Scores, best: bool) {
        let tag = if best { " (best)" } else { "" };
        say(&self.pb, format!("step {s}: validation Dice {:.4} IoU {:.4} HD95 {:.2}{tag}", sc.dice, sc.iou, sc.hd95));
    }

    fn stop_requested(&self) -> bool {
        self.stop.requested()
    }

    fn stopping(&mut self) {
        self.stop.test_delay();
    }
}

/// The training settings' flags (name, whether given): a plan takes them over its choices; a resumed run
/// refuses them.
fn setting_flags(a: &TrainArgs) -> [(&'static str, bool); 6] {
    [
        ("--lr", a.lr.is_some()),
        ("--seed", a.seed.is_some()),
        ("--objective", a.objective.is_some()),
        ("--schedule", a.schedule.is_some()),
        ("--val-every", a.val_every.is_some()),
        ("--checkpoint-every", a.checkpoint_every.is_some()),
    ]
}

/// The budget of a planned run when --time-budget is not given, in seconds.
const DEFAULT_BUDGET_S: f64 = 20.0 * 60.0;
/// The size a planned run's data is first read at, for its fingerprint (foreground shares and object extents
/// barely depend on it; the stored sizes not at all).
const PROBE_SIZE: usize = 64;

/// A planned run's folder: runs/<the dataset folder's name>.
fn run_name(d: &DataArgs) -> String {
    let dir = d.data.as_ref().or(d.nifti.as_ref());
    let name = dir.and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
    name.filter(|n| !n.is_empty()).unwrap_or_else(|| "planned".into())
}

/// Read the data, fingerprint it, time candidate models on this adapter and choose (crate::plan); returns the
/// plan and the data at the chosen size.
fn plan_run(a: &TrainArgs, fixed_model: Option<UnetConfig>) -> Result<(crate::plan::Plan, Dataset)> {
    let t0 = Instant::now();
    let channels = match (&fixed_model, &a.data.data) {
        (Some(m), _) => m.input_img_channels,
        // a folder of colour images keeps its colour; gray scans (RGB files of them too) are one channel
        (None, Some(d)) if !nnunet::is_dataset(d) && folder::has_colour(d)? => 3,
        _ => 1,
    };
    let probe = a.image_size.or(fixed_model.as_ref().map(|m| m.image_size)).unwrap_or(PROBE_SIZE);
    let seed = a.seed.unwrap_or(0);
    let data = load_data(&a.data, probe, channels, seed, false, None)?;
    let fp = crate::plan::Fingerprint::of(&data);
    if let (Some(p), Some(m)) = (&a.config, &fixed_model) {
        // a config's channel count is the user's statement about the network: the data must agree
        if fp.channels != m.input_img_channels {
            bail!(
                "{} has {} input channels but the --config model ({}) takes input_img_channels = {}",
                data.source,
                fp.channels,
                p.display(),
                m.input_img_channels
            );
        }
        if fp.classes != m.mask_channels {
            bail!(
                "{} has {} class(es) but the --config model ({}) has mask_channels = {} (one per class; --classes \
                 sets the count)",
                data.source,
                fp.classes,
                p.display(),
                m.mask_channels
            );
        }
    }
    let fixed =
        crate::plan::Fixed { model: fixed_model, image_size: a.image_size, batch_size: a.batch_size, steps: a.steps };
    let adapter = crate::gpu::gpu().info.name.clone();
    let budget = a.time_budget.unwrap_or(DEFAULT_BUDGET_S);
    let p = crate::plan::plan(&fp, &fixed, budget, t0.elapsed().as_secs_f64(), &adapter, |m, b| {
        let tuning = if crate::ops::tune::enabled() { ", tuning its shapes first" } else { "" };
        println!("planning: timing {} px dim {} {:?} at batch {b}{tuning} ...", m.image_size, m.dim, m.dim_mults);
        let (timing, note) = crate::plan::measure(m, b)?;
        if let Some(n) = note {
            eprintln!("warning: {n}");
        }
        Ok(timing)
    })?;
    let data = if p.model.image_size == data.size && p.model.input_img_channels == data.channels {
        data
    } else {
        load_data(&a.data, p.model.image_size, p.model.input_img_channels, seed, false, Some(data.classes))?
    };
    Ok((p, data))
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
    // label maps 0..=classes shown as gray levels: background black, the last class white
    let gray = |m: &[f32]| m.iter().map(|&v| v / t.data.classes as f32).collect::<Vec<_>>();
    let rows: Vec<_> = examples.iter().map(|e| (e.image.clone(), gray(&e.truth), gray(&e.pred))).collect();
    images::grid(&rows, t.data.size).save(path).with_context(|| format!("writing {}", path.display()))?;
    let dice = metrics::mean(&examples.iter().map(|e| e.scores).collect::<Vec<_>>()).dice;
    println!("wrote {} (image | truth | prediction); mean Dice of these {dice:.4}", path.display());
    Ok(())
}
