//! The optimizer side of training: AdamW over every parameter (GPU kernels in `ops::optim`), global
//! gradient-norm clipping without a host round trip, a warmup + cosine learning-rate schedule, and an
//! exponential moving average (EMA) of the weights, used for sampling by default.

use crate::ops::optim as kern;
use crate::{Result, Tensor};

pub use kern::AdamWConfig;

/// Linear warmup to `base` over `warmup` steps, then cosine decay to `base · min_ratio` at `total`.
#[derive(Clone, Copy, Debug)]
pub struct LrSchedule {
    pub base: f32,
    pub warmup: u64,
    pub total: u64,
    pub min_ratio: f32,
}

impl LrSchedule {
    pub fn at(&self, step: u64) -> f32 {
        if step < self.warmup {
            return self.base * (step + 1) as f32 / self.warmup as f32;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let p = ((step - self.warmup) as f64 / span).min(1.0);
        let cos = 0.5 * (1.0 + (std::f64::consts::PI * p).cos());
        (self.base as f64 * (self.min_ratio as f64 + (1.0 - self.min_ratio as f64) * cos)) as f32
    }
}

/// AdamW state: first and second moments per parameter, and the step count (for bias correction).
pub struct AdamW {
    pub cfg: AdamWConfig,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
    pub step: u32,
}

impl AdamW {
    pub fn new(params: &[&Tensor], cfg: AdamWConfig) -> AdamW {
        AdamW {
            cfg,
            m: params.iter().map(|p| Tensor::zeros(p.shape())).collect(),
            v: params.iter().map(|p| Tensor::zeros(p.shape())).collect(),
            step: 0,
        }
    }

    /// One update with learning rate `lr`; gradients are scaled so their global norm is at most `clip` (when
    /// given). Parameters without a gradient are left alone. Returns the global gradient norm (a `[1]` tensor, on the GPU).
    pub fn update(
        &mut self,
        params: &[&Tensor],
        grads: &[Option<&Tensor>],
        lr: f32,
        clip: Option<f32>,
    ) -> Result<Tensor> {
        self.step += 1;
        let present: Vec<&Tensor> = grads.iter().flatten().copied().collect();
        let norm = kern::global_grad_norm(&present)?;
        let scale = clip.map(|c| kern::clip_coefficient(&norm, c));
        let cfg = AdamWConfig { lr, ..self.cfg };
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            if let Some(g) = g {
                kern::adamw_step(p, g, &self.m[i], &self.v[i], self.step, &cfg, scale.as_ref())?;
            }
        }
        Ok(norm)
    }
}

/// Exponential moving average of the weights: shadow ← decay·shadow + (1 − decay)·param.
pub struct Ema {
    pub decay: f32,
    pub shadow: Vec<Tensor>,
}

impl Ema {
    pub fn new(params: &[&Tensor], decay: f32) -> Result<Ema> {
        let shadow = params.iter().map(|p| Tensor::from_slice(&p.to_vec(), p.shape())).collect::<Result<_>>()?;
        Ok(Ema { decay, shadow })
    }

    pub fn update(&mut self, params: &[&Tensor]) -> Result<()> {
        for (s, p) in self.shadow.iter().zip(params) {
            kern::ema_update(s, p, self.decay)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_warms_up_then_decays_to_the_floor() {
        let s = LrSchedule { base: 1e-3, warmup: 10, total: 110, min_ratio: 0.1 };
        assert!((s.at(0) - 1e-4).abs() < 1e-9);
        assert!((s.at(9) - 1e-3).abs() < 1e-9);
        assert!((s.at(10) - 1e-3).abs() < 1e-9);
        assert!((s.at(60) - 0.55e-3).abs() < 1e-7);
        assert!((s.at(110) - 1e-4).abs() < 1e-9);
        assert!((s.at(500) - 1e-4).abs() < 1e-9);
    }
}
