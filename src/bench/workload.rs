//! The workload bench: every distinct (op, rung, shape) of one training step and one sampling step of a real
//! model config, with count, GPU time, FLOPs, bytes and % of this adapter's measured peak, and the step's
//! achieved GFLOP/s (`medsegdiff bench --workload tiny|small|paper|--config cfg.json`, `medsegdiff profile`).
//!
//! **How.** The step runs at least three times: a warm-up (pipelines compile, the pool fills), a wall-clock step
//! with nothing switched on (the time a user sees; `--reps N`: the fastest of N), and a profiled step: every
//! dispatch in its own timed pass ([`Gpu::set_profiling`](crate::gpu::Gpu::set_profiling)) while
//! [`ops::work`](crate::ops::work) logs which op call each dispatch belongs to. The two are joined by dispatch
//! index and summed per (op, rung, shape).
//!
//! **FLOPs** are counted for matmuls and convolutions (the direct convolution's count, also for Winograd):
//! what PyTorch's `FlopCounterMode` counts (`tools/compare_torch.py --flops` checks the two agree). Every other
//! op is a memory-bound row with no FLOPs, judged by bytes against the copy probe. A row is compute-bound when
//! it does more than 4 FLOPs per byte (the same rule as the kernel bench).

use std::collections::HashMap;
use std::time::Instant;

use super::Peak;
use crate::model::UnetConfig;
use crate::ops::work::{self, OpCall};
use crate::rng::Rng;
use crate::tensor::Tensor;
use crate::train::{TrainConfig, Trainer};
use crate::Result;

/// One (op, rung, shape) of a step: `count` calls with these totals.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    pub op: String,
    pub rung: String,
    pub shape: String,
    pub count: u64,
    pub ms: f64,
    pub flop: f64,
    pub bytes: f64,
    pub dispatches: u64,
}

impl Row {
    /// The row as a bench case, for the rate and peak arithmetic the kernel bench uses.
    fn case(&self) -> super::BenchResult {
        super::BenchResult {
            kernel: self.op.clone(),
            shape: self.shape.clone(),
            ms: self.ms.max(1e-9),
            flop: self.flop,
            bytes: self.bytes,
        }
    }
    pub fn gflops(&self) -> f64 {
        self.case().gflops()
    }
    pub fn gbps(&self) -> f64 {
        self.case().gbps()
    }
    pub fn compute_bound(&self) -> bool {
        self.case().compute_bound()
    }
    /// % of the ceiling that applies: the FMA probe for compute-bound rows, the copy probe for the others.
    pub fn pct_of_peak(&self, peak: &Peak) -> f64 {
        self.case().pct_of_peak(peak)
    }
}

/// One phase (a training step or a sampling step) of a workload.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Phase {
    pub name: String,
    /// Wall clock of the unprofiled step, seconds.
    pub wall_s: f64,
    pub dispatches: u64,
    /// Sum of the per-dispatch GPU times of the profiled step (0 without timestamp queries).
    pub gpu_ms: f64,
    /// matmul + conv FLOPs of the step (PyTorch's count).
    pub flop: f64,
    /// Sorted by time, largest first.
    pub rows: Vec<Row>,
}

impl Phase {
    /// FLOPs over the wall clock of the unprofiled step.
    pub fn achieved_gflops(&self) -> f64 {
        self.flop / (self.wall_s.max(1e-12) * 1e9)
    }
}

/// A measured workload: the model, the batch and its two phases.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Workload {
    pub name: String,
    pub params: usize,
    pub batch: usize,
    pub image_size: usize,
    pub timestamps: bool,
    pub phases: Vec<Phase>,
}

/// A trainer for `model` on synthetic data of its size and channel count (two batches), no validation.
pub fn trainer_for(model: &UnetConfig, batch: usize, base: TrainConfig) -> Result<Trainer> {
    let data = crate::data::synthetic::generate(2 * batch.max(1), model.image_size, model.input_img_channels, 0);
    Trainer::new(model, TrainConfig { batch_size: batch, val_every: 0, ..base }, data)
}

/// Sum op calls into rows, with each call's GPU time from `timeline` (dispatch `d` at `timeline[d - d0]`).
/// Dispatches no call claims (runtime fills) become one "other" row.
pub fn rows_from(calls: &[OpCall], timeline: &[f64], d0: u64, d1: u64) -> Vec<Row> {
    let mut map: HashMap<(String, String, String), Row> = HashMap::new();
    let mut claimed = 0u64;
    let time = |r: &std::ops::Range<u64>| -> f64 {
        (r.start..r.end).filter_map(|d| d.checked_sub(d0).and_then(|i| timeline.get(i as usize))).sum::<f64>() / 1e6
    };
    for c in calls {
        let rung = c.kernels.iter().map(|k| k.replace(".wgsl", "")).collect::<Vec<_>>().join(" + ");
        let n = c.dispatches.end - c.dispatches.start;
        claimed += n;
        let row = map.entry((c.op.clone(), rung.clone(), c.shape.clone())).or_insert_with(|| Row {
            op: c.op.clone(),
            rung,
            shape: c.shape.clone(),
            count: 0,
            ms: 0.0,
            flop: 0.0,
            bytes: 0.0,
            dispatches: 0,
        });
        row.count += 1;
        row.ms += time(&c.dispatches);
        row.flop += c.flops;
        row.bytes += c.bytes;
        row.dispatches += n;
    }
    let total = d1.saturating_sub(d0);
    let mut rows: Vec<Row> = map.into_values().collect();
    if total > claimed {
        let claimed_ms: f64 = rows.iter().map(|r| r.ms).sum();
        let all_ms: f64 = timeline.iter().sum::<f64>() / 1e6;
        rows.push(Row {
            op: "other (runtime fills)".into(),
            rung: String::new(),
            shape: String::new(),
            count: total - claimed,
            ms: (all_ms - claimed_ms).max(0.0),
            flop: 0.0,
            bytes: 0.0,
            dispatches: total - claimed,
        });
    }
    rows.sort_by(|a, b| b.ms.total_cmp(&a.ms).then_with(|| a.op.cmp(&b.op)));
    rows
}

/// Run `step` `reps` times for the wall clock (the fastest kept) and once profiled + logged; return the phase.
fn measure(name: &str, reps: usize, mut step: impl FnMut() -> Result<()>) -> Result<Phase> {
    let g = crate::gpu::gpu();
    step()?; // warm-up
    g.sync();
    let (mut wall_s, mut dispatches) = (f64::INFINITY, 0);
    for _ in 0..reps.max(1) {
        let (d0, _) = g.counters();
        let t0 = Instant::now();
        step()?;
        g.sync();
        wall_s = wall_s.min(t0.elapsed().as_secs_f64());
        dispatches = g.counters().0 - d0;
    }
    let timestamps = g.set_profiling(true);
    g.take_timeline();
    let d0 = g.counters().0;
    work::start();
    let run = step();
    g.flush();
    let calls = work::stop();
    let d1 = g.counters().0;
    let timeline = if timestamps { g.take_timeline() } else { Vec::new() };
    g.set_profiling(false);
    run?;
    g.check()?;
    let rows = rows_from(&calls, &timeline, d0, d1);
    let flop = calls.iter().map(|c| c.flops).sum();
    Ok(Phase { name: name.into(), wall_s, dispatches, gpu_ms: timeline.iter().sum::<f64>() / 1e6, flop, rows })
}

/// Measure one training step and one sampling step (a forward under no_grad at t = 500) of `t`, the latter as
/// a sampler's steady-state step: with the weights packed by an earlier step of the same sampling call.
/// `reps` wall-clock steps per phase, the fastest kept.
pub fn run(name: &str, t: &mut Trainer, reps: usize) -> Result<Workload> {
    let model = t.unet.cfg.clone();
    let batch = t.cfg.batch_size;
    let train = measure("train_step", reps, || t.train_step().map(|_| ()))?;
    let (images, _) = t.data.batch(&(0..batch).collect::<Vec<_>>(), None)?;
    let x = Tensor::randn(&[batch, model.mask_channels, model.image_size, model.image_size], &mut Rng::new(1));
    let _kp = crate::ops::conv::keep_packed_weights();
    {
        let _ng = crate::autograd::no_grad();
        t.diffusion.predict(&t.unet, &x, 500, &images, true)?; // the sampler's first step packs the weights
    }
    let sample = measure("sample_step", reps, || {
        let _ng = crate::autograd::no_grad();
        let (eps, _) = t.diffusion.predict(&t.unet, &x, 500, &images, true)?;
        crate::gpu::gpu().flush();
        drop(eps);
        Ok(())
    })?;
    Ok(Workload {
        name: name.into(),
        params: t.unet.num_params(),
        batch,
        image_size: model.image_size,
        timestamps: crate::gpu::gpu().has_timestamps(),
        phases: vec![train, sample],
    })
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// The tables `medsegdiff bench --workload` prints: per phase a summary line, then the `top` rows by time.
pub fn table(w: &Workload, peak: &Peak, top: usize) -> String {
    let mut s = format!(
        "workload {}: {} parameters, batch {}, {}px; peak {:.1} GFLOP/s fma, {:.2} GB/s copy\n",
        w.name, w.params, w.batch, w.image_size, peak.fma_gflops, peak.copy_gbps
    );
    for ph in &w.phases {
        s.push_str(&format!(
            "\n{}: {:.1} ms wall, {} dispatches, {:.1} ms GPU (profiled), {:.2} GFLOP (matmul + conv) = {:.2} GFLOP/s \
             achieved ({:.1}% of the FMA probe)\n",
            ph.name,
            ph.wall_s * 1e3,
            ph.dispatches,
            ph.gpu_ms,
            ph.flop / 1e9,
            ph.achieved_gflops(),
            100.0 * ph.achieved_gflops() / peak.fma_gflops
        ));
        if !w.timestamps {
            s.push_str("  (this adapter has no timestamp queries: no per-op times)\n");
            continue;
        }
        s.push_str(&format!(
            "{:<28} {:<40} {:<34} {:>5} {:>9} {:>6} {:>8} {:>7} {:>8}\n",
            "op", "rung", "shape", "count", "ms", "share", "GFLOP/s", "GB/s", "% peak"
        ));
        let total = ph.gpu_ms.max(1e-9);
        for r in ph.rows.iter().take(top) {
            s.push_str(&format!(
                "{:<28} {:<40} {:<34} {:>5} {:>9.2} {:>5.1}% {:>8.2} {:>7.2} {:>6.1}%{}\n",
                clip(&r.op, 28),
                clip(&r.rung, 40),
                clip(&r.shape, 34),
                r.count,
                r.ms,
                100.0 * r.ms / total,
                r.gflops(),
                r.gbps(),
                r.pct_of_peak(peak),
                if r.compute_bound() { "F" } else { "B" }
            ));
        }
        if ph.rows.len() > top {
            let rest = &ph.rows[top..];
            let ms: f64 = rest.iter().map(|r| r.ms).sum();
            s.push_str(&format!(
                "{:<28} {:<40} {:<34} {:>5} {:>9.2} {:>5.1}%\n",
                format!("({} more rows)", rest.len()),
                "",
                "",
                rest.iter().map(|r| r.count).sum::<u64>(),
                ms,
                100.0 * ms / total
            ));
        }
    }
    s
}

/// JSON of a workload: the model, the peak and every row of both phases.
pub fn to_json(w: &Workload, peak: &Peak) -> serde_json::Value {
    serde_json::json!({
        "workload": w,
        "peak": { "fma_gflops": peak.fma_gflops, "copy_gbps": peak.copy_gbps },
        "achieved_gflops": w.phases.iter().map(|p| (p.name.clone(), p.achieved_gflops())).collect::<HashMap<_, _>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(op: &str, shape: &str, flops: f64, d: std::ops::Range<u64>) -> OpCall {
        OpCall {
            op: op.into(),
            shape: shape.into(),
            flops,
            bytes: 100.0,
            kernels: vec!["k.wgsl:main".into()],
            dispatches: d,
            launches: 1,
        }
    }

    #[test]
    fn rows_sum_calls_by_op_rung_and_shape_and_keep_unclaimed_dispatches() {
        // dispatches 10..16: two matmul calls of one shape (2 dispatches each), one of another, one unclaimed
        let calls =
            [call("matmul", "a", 1e6, 10..12), call("matmul", "b", 5e5, 12..13), call("matmul", "a", 1e6, 13..15)];
        let timeline = [1e6, 2e6, 4e6, 1e6, 1e6, 3e6]; // ns
        let rows = rows_from(&calls, &timeline, 10, 16);
        assert_eq!(rows.len(), 3);
        let a = rows.iter().find(|r| r.shape == "a").unwrap();
        assert_eq!((a.count, a.dispatches, a.rung.as_str()), (2, 4, "k:main"));
        assert!((a.ms - 5.0).abs() < 1e-9 && a.flop == 2e6 && a.bytes == 200.0);
        let other = rows.iter().find(|r| r.op.starts_with("other")).unwrap();
        assert_eq!(other.count, 1);
        assert!((other.ms - 3.0).abs() < 1e-9);
        assert!(rows.windows(2).all(|p| p[0].ms >= p[1].ms), "sorted by time");
        let peak = Peak { fma_gflops: 10.0, copy_gbps: 1.0 };
        assert!(a.compute_bound() && (a.pct_of_peak(&peak) - 100.0 * (2e6 / 5e6) / 10.0).abs() < 1e-9);
    }
}
