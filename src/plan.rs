//! A planned recipe for a user's data (nnU-Net's idea, for diffusion): fingerprint the dataset, time candidate
//! models on this adapter, and choose the image size, the network, the batch, the length of the schedule, the
//! EMA, the validation cadence and the sampling steps so that the run fits a time budget.
//!
//! The rules, in order:
//! 1. **Resolution from the data.** The median foreground object should span at least [`MIN_OBJECT_PX`] pixels
//!    (its extent is √(foreground share) of the image side, from the masks); the image size is the smallest of
//!    [`SIZES`] that gives that, never above the scans' own median short side.
//! 2. **Architecture from the resolution.** Enough levels that the bottleneck is at most 16 px; full attention
//!    only where a level has at most 256 tokens, linear attention elsewhere; widths [`DIMS`].
//! 3. **Capacity from the measured speed.** Every candidate at the chosen size (and the cheaper sizes below it)
//!    is timed on this adapter: a training step and a validation forward pass. The widest network that still
//!    gets [`ENOUGH_STEPS`] optimiser steps in the budget wins; else the fastest at the needed size if it gets
//!    [`MIN_STEPS`]; else the fastest of all, at a lower resolution, with a warning.
//! 4. **The rest from the step count.** The cosine schedule spans exactly the steps that fit; EMA decay
//!    1 − 10/steps; about five validations costing at most a tenth of the budget; validation Dice picks the
//!    best checkpoint (`best.safetensors`).
//!
//! Flags the user gives fix their choice ([`Fixed`]); [`plan`] chooses the rest. The measuring is injected, so
//! the rules are tested with made-up timings.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::diffusion::{Objective, ScheduleKind};
use crate::model::UnetConfig;
use crate::ops::tune;
use crate::train::{TrainConfig, Trainer};
use crate::{autograd, Error, Result};

/// Image sizes the planner considers.
pub const SIZES: [usize; 4] = [32, 64, 128, 256];
/// Base widths (`dim`) it considers.
pub const DIMS: [usize; 2] = [16, 32];
/// The median object should span this many pixels at the chosen size.
pub const MIN_OBJECT_PX: f64 = 16.0;
/// Optimiser steps that make a wider network worth its cost (the tiny preset's 500 reach Dice 0.84 on the
/// synthetic set; twice that leaves room for real data).
pub const ENOUGH_STEPS: u64 = 1000;
/// Fewer steps than this are a warning: the budget is too short for this adapter.
pub const MIN_STEPS: u64 = 300;
/// The batch when the user gives none (fewer when the dataset has fewer training images).
pub const BATCH: usize = 8;
/// Validation samples per validation, and the DDIM steps each takes.
const VAL_COUNT: usize = 16;
const VAL_SAMPLING_STEPS: usize = 10;

/// What the planner reads from a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub count: usize,
    pub channels: usize,
    /// Foreground classes (mask channels).
    pub classes: usize,
    /// Median height and width as stored (before resizing).
    pub median_height: usize,
    pub median_width: usize,
    pub smallest_side: usize,
    pub largest_side: usize,
    /// Mean share of foreground pixels over all masks.
    pub foreground_fraction: f64,
    /// Share of masks with no foreground pixel.
    pub empty_fraction: f64,
    /// Median over non-empty masks of √(foreground share): an object's extent relative to the image side.
    pub object_extent: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

impl Fingerprint {
    pub fn of(data: &Dataset) -> Fingerprint {
        let n = data.samples.len();
        let shares: Vec<f64> = data
            .samples
            .iter()
            .map(|s| s.mask.iter().filter(|&&v| v != 0.0).count() as f64 / s.mask.len().max(1) as f64)
            .collect();
        let sides = |i: usize| median(data.samples.iter().map(|s| s.stored[i] as f64).collect()) as usize;
        let all_sides = data.samples.iter().flat_map(|s| s.stored);
        Fingerprint {
            count: n,
            channels: data.channels,
            classes: data.classes,
            median_height: sides(0),
            median_width: sides(1),
            smallest_side: all_sides.clone().min().unwrap_or(0),
            largest_side: all_sides.max().unwrap_or(0),
            foreground_fraction: shares.iter().sum::<f64>() / n.max(1) as f64,
            empty_fraction: shares.iter().filter(|&&f| f == 0.0).count() as f64 / n.max(1) as f64,
            object_extent: median(shares.iter().filter(|&&f| f > 0.0).map(|f| f.sqrt()).collect()),
        }
    }

    /// A fixed network at `size` with the data's input channels and classes.
    fn adapt(&self, m: &UnetConfig, size: usize) -> UnetConfig {
        UnetConfig { image_size: size, input_img_channels: self.channels, mask_channels: self.classes, ..m.clone() }
    }

    /// The smallest image size at which the median object spans [`MIN_OBJECT_PX`].
    pub fn needed_size(&self) -> usize {
        (MIN_OBJECT_PX / self.object_extent.max(1e-3)).ceil() as usize
    }
}

/// What the user fixed with flags.
#[derive(Clone, Debug, Default)]
pub struct Fixed {
    /// `--preset` or `--config`: the network (its `image_size` too, unless `image_size` is given).
    pub model: Option<UnetConfig>,
    pub image_size: Option<usize>,
    pub batch_size: Option<usize>,
    pub steps: Option<u64>,
}

/// Seconds of one training step and of one validation forward pass (no gradients) at the same batch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub step_s: f64,
    pub forward_s: f64,
}

/// One timed candidate and what it would get.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Candidate {
    pub image_size: usize,
    pub dim: usize,
    pub dim_mults: Vec<usize>,
    pub full_self_attn: Vec<bool>,
    pub batch_size: usize,
    pub timing: Timing,
    /// Optimiser steps that fit the budget after validation and the final samples.
    pub steps_in_budget: u64,
    pub validations: u64,
    pub validation_s: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    pub budget_s: f64,
    pub adapter: String,
    pub fingerprint: Fingerprint,
    /// The size the data asks for (before capping at the scans' resolution).
    pub needed_size: usize,
    pub candidates: Vec<Candidate>,
    /// Index into `candidates`.
    pub chosen: usize,
    pub model: UnetConfig,
    pub train: TrainConfig,
    /// Seconds: data loading and timing so far, training, validation, final samples.
    pub spent_s: f64,
    pub estimated_total_s: f64,
    /// Why each choice was made, and warnings.
    pub reasons: Vec<String>,
    /// Flags that fixed a choice.
    pub fixed_by_flags: Vec<String>,
}

/// The network the planner builds for `size` and base width `dim` (rule 2).
pub fn architecture(size: usize, dim: usize, channels: usize, classes: usize) -> UnetConfig {
    let mut levels = 2;
    while size >> (levels - 1) > 16 && size.is_multiple_of(1 << levels) && levels < 5 {
        levels += 1;
    }
    let tokens = (size >> (levels - 1)).pow(2);
    let mut full = vec![false; levels];
    full[levels - 1] = tokens <= 256;
    let (heads, head_dim) = if dim <= 16 { (2, 16) } else { (4, 32) };
    UnetConfig {
        dim,
        image_size: size,
        input_img_channels: channels,
        mask_channels: classes,
        dim_mults: [1, 2, 4, 8, 8][..levels].to_vec(),
        full_self_attn: full,
        attn_heads: heads,
        attn_dim_head: head_dim,
        ..UnetConfig::default()
    }
}

/// Time one training step (the fastest of two, after a warm-up step that compiles the pipelines) and one
/// validation forward pass of `model` at `batch` on this adapter, on synthetic data of its shape. With
/// tuning on ([`tune::enabled`]), the step's shapes the cache lacks (matmul, conv, FFT, attention) are tuned first
/// (and saved, so a resumed run picks the same rungs); the timing is then of the tuned rungs.
/// Returns a note when the choices could not be saved (no writable cache directory): they still apply to this
/// run.
pub fn measure(model: &UnetConfig, batch: usize) -> Result<(Timing, Option<String>)> {
    let mut data = crate::data::synthetic::generate(2 * batch, model.image_size, model.input_img_channels, 0);
    data.classes = model.mask_channels; // the step's cost does not depend on which class channels are set
    let cfg = TrainConfig { batch_size: batch, val_every: 0, steps: 8, ..TrainConfig::default() };
    let mut t = Trainer::new(model, cfg, data)?;
    let mut note = None;
    if tune::enabled() && !tune::tune_step(|| t.train_step().map(drop), 3, true)?.is_empty() {
        if let Err(e) = tune::save() {
            note = Some(format!("the tuned rungs apply to this run but were not saved: {e}"));
        }
    }
    t.train_step()?;
    let mut step_s = f64::INFINITY;
    for _ in 0..2 {
        let s = Instant::now();
        t.train_step()?;
        step_s = step_s.min(s.elapsed().as_secs_f64());
    }
    let _ng = autograd::no_grad();
    let idx: Vec<usize> = (0..batch).collect();
    let (images, masks) = t.data.batch(&idx, None)?;
    let mut forward_s = f64::INFINITY;
    for _ in 0..2 {
        let s = Instant::now();
        let out = t.unet.forward(&masks, &vec![500.0; batch], &images)?;
        out.to_vec(); // waits for the GPU
        forward_s = forward_s.min(s.elapsed().as_secs_f64());
    }
    autograd::clear();
    Ok((Timing { step_s, forward_s }, note))
}

/// What a candidate gets in `left_s` seconds: (steps, validations, seconds per validation).
fn fit(timing: Timing, batch: usize, val_images: usize, left_s: f64) -> (u64, u64, f64) {
    let passes = |images: usize| images.div_ceil(batch) as f64 * VAL_SAMPLING_STEPS as f64 * timing.forward_s;
    let (val_s, grid_s) = (passes(val_images), passes(8));
    let room = (left_s * 0.98 - grid_s).max(0.0);
    let mut validations = 5u64;
    while validations > 1 && validations as f64 * val_s > 0.1 * room {
        validations -= 1;
    }
    let steps = ((room - validations as f64 * val_s) / timing.step_s.max(1e-9)).floor().max(0.0) as u64;
    (steps, validations, val_s)
}

/// Plan a run on data with fingerprint `fp` within `budget_s` seconds, `spent_s` of them already used (loading
/// the data). `time(model, batch)` measures a candidate ([`measure`] in a real run).
pub fn plan(
    fp: &Fingerprint,
    fixed: &Fixed,
    budget_s: f64,
    spent_s: f64,
    adapter: &str,
    mut time: impl FnMut(&UnetConfig, usize) -> Result<Timing>,
) -> Result<Plan> {
    if fp.count == 0 {
        return Err(Error::Config("the dataset has no samples to plan for".into()));
    }
    let started = Instant::now();
    let mut reasons = Vec::new();
    let needed = fp.needed_size();
    let cap = fp.median_height.min(fp.median_width).max(SIZES[0]);
    // rule 1: the candidate sizes, cheapest first, up to the first that reaches the needed size
    let sizes: Vec<usize> = match (fixed.image_size, &fixed.model) {
        (Some(s), _) => vec![s],
        (None, Some(m)) => vec![m.image_size],
        (None, None) => {
            let fits: Vec<usize> = SIZES.iter().copied().filter(|&s| s <= cap).collect();
            let upto = fits.iter().position(|&s| s >= needed).unwrap_or(fits.len().max(1) - 1);
            fits[..=upto].to_vec()
        }
    };
    reasons.push(format!(
        "image size: the median object spans {:.0}% of the side, so {needed} px gives it {MIN_OBJECT_PX:.0} px; \
         the scans' median is {}x{} px",
        100.0 * fp.object_extent,
        fp.median_width,
        fp.median_height
    ));
    // the split Dataset::split makes with the default validation share
    let val_count = if fp.count < 2 { 0 } else { ((fp.count as f64 * 0.1).round() as usize).clamp(1, fp.count - 1) };
    let train_count = fp.count - val_count;
    let val_images = val_count.min(VAL_COUNT);
    let batch = fixed.batch_size.unwrap_or(BATCH.min(train_count));
    let models: Vec<UnetConfig> = sizes
        .iter()
        .flat_map(|&s| match &fixed.model {
            Some(m) => vec![fp.adapt(m, s)],
            None => DIMS.iter().map(|&d| architecture(s, d, fp.channels, fp.classes)).collect(),
        })
        .collect();
    let (enough, least) = fixed.steps.map_or((ENOUGH_STEPS, MIN_STEPS), |s| (s, s));
    let mut candidates: Vec<Candidate> = Vec::new();
    for m in models {
        let flags = crate::model::memory::Flags { size: Some("--image-size"), batch: "--batch-size" };
        if let Err(e) = crate::train::check_fits(&m, batch, flags) {
            reasons.push(format!("skipped {}-px dim {}: {e}", m.image_size, m.dim));
            continue;
        }
        // a wider network at a size whose narrow one already gets too few steps would only get fewer
        if candidates.last().is_some_and(|c| c.image_size == m.image_size && c.steps_in_budget < enough) {
            continue;
        }
        let timing = time(&m, batch)?;
        let left = budget_s - spent_s - started.elapsed().as_secs_f64();
        let (steps, validations, validation_s) = fit(timing, batch, val_images, left);
        candidates.push(Candidate {
            image_size: m.image_size,
            dim: m.dim,
            dim_mults: m.dim_mults.clone(),
            full_self_attn: m.full_self_attn.clone(),
            batch_size: batch,
            timing,
            steps_in_budget: steps,
            validations,
            validation_s,
        });
        // larger sizes are slower still
        if steps < least && m.dim == candidates[0].dim {
            break;
        }
    }
    if candidates.is_empty() {
        return Err(Error::Config(format!(
            "no candidate model fits this adapter at batch {batch}: {}",
            reasons.join("; ")
        )));
    }
    // rule 3: re-fit every candidate to the time left now that timing is over
    let left = budget_s - spent_s - started.elapsed().as_secs_f64();
    for c in &mut candidates {
        (c.steps_in_budget, c.validations, c.validation_s) = fit(c.timing, batch, val_images, left);
    }
    // resolution first: the largest timed size with a candidate that gets enough steps (the widest such), else
    // its fastest if that gets the least; then the next size down
    let mut sizes_desc: Vec<usize> = candidates.iter().map(|c| c.image_size).collect();
    sizes_desc.dedup();
    sizes_desc.reverse();
    let fastest = |size: Option<usize>| {
        (0..candidates.len())
            .filter(|&i| size.is_none_or(|s| candidates[i].image_size == s))
            .min_by(|&a, &b| candidates[a].timing.step_s.total_cmp(&candidates[b].timing.step_s))
    };
    let pick = sizes_desc.iter().find_map(|&size| {
        let widest = (0..candidates.len())
            .filter(|&i| candidates[i].image_size == size && candidates[i].steps_in_budget >= enough)
            .max_by_key(|&i| candidates[i].dim);
        widest.or(fastest(Some(size)).filter(|&i| candidates[i].steps_in_budget >= least))
    });
    let chosen = match pick {
        Some(i) => i,
        None => {
            let i = fastest(None).expect("not empty");
            reasons.push(format!(
                "warning: no candidate gets {least} steps in the budget on this adapter; the fastest ({} px, dim \
                 {}) gets {}. Give a longer --time-budget for a better model",
                candidates[i].image_size, candidates[i].dim, candidates[i].steps_in_budget
            ));
            i
        }
    };
    let c = candidates[chosen].clone();
    if c.image_size < needed {
        let largest = sizes.last().copied().unwrap_or(c.image_size);
        reasons.push(if fixed.image_size.is_some() || fixed.model.is_some() {
            format!("note: the objects would need {needed} px; the flags fix {} px", c.image_size)
        } else if c.image_size == largest {
            format!(
                "note: the objects would need {needed} px, but {} px is the largest planned size within the scans' \
                 {cap} px",
                c.image_size
            )
        } else {
            format!("warning: {} px is below the {needed} px the objects need, for speed on this adapter", c.image_size)
        });
    }
    let model = match &fixed.model {
        Some(m) => fp.adapt(m, c.image_size),
        None => architecture(c.image_size, c.dim, fp.channels, fp.classes),
    };
    reasons.push(format!(
        "network: dim {} with dim_mults {:?}, full attention {:?}: {:.2} s per training step here, so {} steps \
         fit (wider networks are chosen when they still get {enough})",
        c.dim, c.dim_mults, c.full_self_attn, c.timing.step_s, c.steps_in_budget
    ));
    let steps = fixed.steps.unwrap_or(c.steps_in_budget.max(1));
    let val_every = steps.div_ceil(c.validations.max(1)).max(1);
    let schedule = if c.image_size >= 128 { ScheduleKind::ShiftedCosine } else { ScheduleKind::Cosine };
    let train = TrainConfig {
        steps,
        batch_size: batch,
        lr: if c.dim <= 16 { 2e-3 } else { 1e-3 },
        warmup: (steps / 10).clamp(1, 50),
        ema_decay: (1.0 - 10.0 / steps as f32).clamp(0.95, 0.999),
        objective: Objective::PredX0,
        schedule,
        val_every,
        val_count: VAL_COUNT,
        sampling_steps: VAL_SAMPLING_STEPS,
        checkpoint_every: val_every,
        ..TrainConfig::default()
    };
    reasons.push(format!(
        "schedule: {schedule:?} noise, pred_x0 (a clean-mask target learns in hundreds of steps), cosine learning \
         rate over all {steps} steps with {} warm-up, EMA decay {:.3}; validation every {val_every} steps ({:.0} s \
         each) picks best.safetensors",
        train.warmup, train.ema_decay, c.validation_s
    ));
    if fp.count < 20 {
        reasons.push(format!("warning: {} samples is very few; expect the model to memorise them", fp.count));
    }
    let spent = spent_s + started.elapsed().as_secs_f64();
    let estimated_total_s = spent
        + steps as f64 * c.timing.step_s
        + c.validations as f64 * c.validation_s
        + 8usize.div_ceil(batch) as f64 * VAL_SAMPLING_STEPS as f64 * c.timing.forward_s;
    let fixed_by_flags = [
        ("--preset/--config", fixed.model.is_some()),
        ("--image-size", fixed.image_size.is_some()),
        ("--batch-size", fixed.batch_size.is_some()),
        ("--steps", fixed.steps.is_some()),
    ]
    .iter()
    .filter(|f| f.1)
    .map(|f| f.0.to_string())
    .collect();
    Ok(Plan {
        budget_s,
        adapter: adapter.to_string(),
        fingerprint: fp.clone(),
        needed_size: needed,
        candidates,
        chosen,
        model,
        train,
        spent_s: spent,
        estimated_total_s,
        reasons,
        fixed_by_flags,
    })
}

impl Plan {
    /// The plan as the lines `train` prints.
    pub fn summary(&self) -> String {
        let f = &self.fingerprint;
        let mut s = format!(
            "plan for a {:.0}-minute budget on {}:\n  data: {} samples, {} channel(s), median {}x{} px (sides \
             {}..{}), foreground {:.1}% of pixels, {:.0}% empty masks\n  timed:",
            self.budget_s / 60.0,
            self.adapter,
            f.count,
            f.channels,
            f.median_width,
            f.median_height,
            f.smallest_side,
            f.largest_side,
            100.0 * f.foreground_fraction,
            100.0 * f.empty_fraction
        );
        for (i, c) in self.candidates.iter().enumerate() {
            s += &format!(
                "\n    {} {:>3} px dim {:>2} {:?}: {:.2} s/step, {} steps fit",
                if i == self.chosen { "->" } else { "  " },
                c.image_size,
                c.dim,
                c.dim_mults,
                c.timing.step_s,
                c.steps_in_budget
            );
        }
        for r in &self.reasons {
            s += &format!("\n  {r}");
        }
        s += &format!(
            "\n  estimated {:.1} min in all ({:.0} s of it loading and timing)",
            self.estimated_total_s / 60.0,
            self.spent_s
        );
        s
    }
}

/// A duration such as `20m`, `90s`, `1h30m` or `45` (minutes), in seconds.
pub fn parse_duration(text: &str) -> std::result::Result<f64, String> {
    let bad = || format!("{text:?} is not a duration; use e.g. 20m, 90s, 1h30m or 45 (minutes)");
    let t = text.trim();
    if let Ok(m) = t.parse::<f64>() {
        return if m.is_finite() && m > 0.0 { Ok(m * 60.0) } else { Err(bad()) };
    }
    let (mut total, mut num) = (0.0, String::new());
    for ch in t.chars() {
        if ch.is_ascii_digit() || ch == '.' {
            num.push(ch);
            continue;
        }
        let unit = match ch {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => return Err(bad()),
        };
        total += num.parse::<f64>().map_err(|_| bad())? * unit;
        num.clear();
    }
    if !(num.is_empty() && total.is_finite() && total > 0.0) {
        return Err(bad());
    }
    Ok(total)
}
