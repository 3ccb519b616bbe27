//! `bench --workload`, `profile` and `trace`: one training step of a preset or config, measured.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::rng::Rng;
use crate::train::{preset, preset_trainer};
use crate::Tensor;

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
pub fn workload(preset_name: &str, m: &super::WorkloadArgs, json: Option<&Path>, reps: usize) -> Result<()> {
    let (name, mut t) = workload_trainer(preset_name, m)?;
    let g = crate::gpu::gpu();
    println!("adapter: {}", g.describe());
    println!("measuring peak (FMA throughput, copy bandwidth) ...");
    let peak = crate::bench::peak();
    let walls =
        if reps == 1 { "a wall-clock step".to_string() } else { format!("the best of {reps} wall-clock steps") };
    println!("measuring {name}: warm-up, {walls} and a profiled step, for training and sampling ...");
    let w = crate::bench::workload::run(&name, &mut t, reps)?;
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

/// `medsegdiff tune`: the shapes of one training step, each candidate rung timed, the fastest kept.
pub fn tune(preset_name: &str, m: &super::WorkloadArgs, reps: usize) -> Result<()> {
    use crate::ops::tune;
    let (name, mut t) = workload_trainer(preset_name, m)?;
    let g = crate::gpu::gpu();
    println!("adapter: {}", g.describe());
    println!(
        "{name}: timing every rung of each matmul, conv (forward, dx, dw), FFT and fused-attention (forward, \
         backward) shape of one training step ({reps} interleaved rounds, median)"
    );
    let t0 = Instant::now();
    let choices = tune::tune_step(|| t.train_step().map(drop), reps, false)?;
    for c in &choices {
        let row: Vec<String> = c.times.iter().map(|(r, ms)| format!("{r} {ms:.2}")).collect();
        println!("  {:<60} -> {} (rule {}) | {}", c.key.id(), c.best, c.rule, row.join(", "));
    }
    let changed = choices.iter().filter(|c| c.best != c.rule).count();
    let path = tune::save()?;
    println!(
        "chose {} rungs ({changed} differ from the rules) in {:.1} s; wrote {}",
        choices.len(),
        t0.elapsed().as_secs_f64(),
        path.display()
    );
    Ok(())
}
