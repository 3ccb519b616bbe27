//! Gaussian diffusion over segmentation masks (SPEC §5), the math of the package's `MedSegDiff` class.
//!
//! Masks are in [0, 1] on disk and in [−1, 1] in the model. Forward noising: x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε.
//! The network predicts ε (`pred_noise`, default), x_0 (`pred_x0`) or v = √ᾱ_t·ε − √(1 − ᾱ_t)·x_0 (`pred_v`);
//! the loss is the MSE to that target with t uniform per sample. Sampling: DDPM (the posterior
//! q(x_{t−1} | x_t, x̂_0), with x̂_0 clipped to [−1, 1]) or DDIM with K < T steps and η (η = 0 is deterministic).
//! DPM-Solver++(2M) solves the ODE in 10–20 steps ([`dpm`]). An ensemble samples N masks per image and reports
//! their mean, one fused mask (mean, vote or STAPLE: [`fusion`]) and the per-pixel variance.
//!
//! Per-sample scalars (√ᾱ_t for each t in the batch) are (B, 1, 1, 1) tensors uploaded from the host; everything
//! else runs on the GPU.

pub mod dpm;
pub mod ensemble;
pub mod fusion;
pub mod schedule;

use serde::{Deserialize, Serialize};

pub use ensemble::{NoiseSource, RowNoise, Sampler, Spec};
pub use fusion::Fusion;
pub use schedule::{Schedule, ScheduleKind};

use crate::model::Unet;
use crate::ops::{elementwise as ew, loss};
use crate::rng::Rng;
use crate::{autograd, Error, Result, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    PredNoise,
    PredX0,
    PredV,
}

impl std::str::FromStr for Objective {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pred_noise" => Ok(Objective::PredNoise),
            "pred_x0" => Ok(Objective::PredX0),
            "pred_v" => Ok(Objective::PredV),
            _ => Err(Error::Config(format!("unknown objective {s:?}; use pred_noise, pred_x0 or pred_v"))),
        }
    }
}

pub struct Diffusion {
    pub schedule: Schedule,
    pub objective: Objective,
}

/// A (B, 1, 1, 1) tensor of per-sample scalars.
fn per_sample(v: impl IntoIterator<Item = f64>) -> Result<Tensor> {
    let v: Vec<f32> = v.into_iter().map(|x| x as f32).collect();
    let b = v.len();
    Tensor::from_slice(&v, &[b, 1, 1, 1])
}

/// What a sampler holds while it runs: no tape, and (the weights cannot change meanwhile) each conv's packed
/// weights made once for the whole call, not once per step.
fn sampling() -> (autograd::NoGrad, crate::ops::conv::KeepPacked) {
    (autograd::no_grad(), crate::ops::conv::keep_packed_weights())
}

/// a·x + b·y with scalars a, b.
fn lincomb(a: f64, x: &Tensor, b: f64, y: &Tensor) -> Result<Tensor> {
    ew::add(&ew::scale(x, a as f32), &ew::scale(y, b as f32))
}

impl Diffusion {
    pub fn new(kind: ScheduleKind, timesteps: usize, image_size: usize, objective: Objective) -> Diffusion {
        Diffusion { schedule: Schedule::new(kind, timesteps, image_size), objective }
    }

    pub fn timesteps(&self) -> usize {
        self.schedule.len()
    }

    /// (√ᾱ_t, √(1 − ᾱ_t)) per sample, as (B, 1, 1, 1) tensors.
    fn signal_noise(&self, t: &[usize]) -> Result<(Tensor, Tensor)> {
        let ac = &self.schedule.alphas_cumprod;
        Ok((per_sample(t.iter().map(|&i| ac[i].sqrt()))?, per_sample(t.iter().map(|&i| (1.0 - ac[i]).sqrt()))?))
    }

    /// x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε, with one t per sample.
    pub fn q_sample(&self, x0: &Tensor, t: &[usize], noise: &Tensor) -> Result<Tensor> {
        let (a, s) = self.signal_noise(t)?;
        ew::add(&ew::mul(x0, &a)?, &ew::mul(noise, &s)?)
    }

    /// The training loss for a batch: masks in [0, 1] (B, mask_ch, S, S), images (B, img_ch, S, S).
    /// Draws t and ε from `rng` (so a resumed run with the same RNG state draws the same ones).
    pub fn training_loss(&self, unet: &Unet, masks01: &Tensor, images: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let b = masks01.dim(0);
        let t: Vec<usize> = (0..b).map(|_| rng.below(self.timesteps() as u64) as usize).collect();
        let noise = Tensor::randn(masks01.shape(), rng);
        let x0 = ew::affine(masks01, 2.0, -1.0);
        let xt = self.q_sample(&x0, &t, &noise)?;
        let times: Vec<f32> = t.iter().map(|&i| i as f32).collect();
        let out = unet.forward(&xt, &times, images)?;
        let target = match self.objective {
            Objective::PredNoise => noise,
            Objective::PredX0 => x0,
            Objective::PredV => {
                // v = √ᾱ_t·ε − √(1 − ᾱ_t)·x_0
                let (a, s) = self.signal_noise(&t)?;
                ew::sub(&ew::mul(&noise, &a)?, &ew::mul(&x0, &s)?)?
            }
        };
        loss::mse_loss(&out, &target)
    }

    /// (ε̂, x̂_0) at step t (the same for the whole batch), x̂_0 clipped to [−1, 1] when `clip`.
    pub fn predict(&self, unet: &Unet, x: &Tensor, t: usize, cond: &Tensor, clip: bool) -> Result<(Tensor, Tensor)> {
        let b = x.dim(0);
        let out = unet.forward(x, &vec![t as f32; b], cond)?;
        let ac = self.schedule.alphas_cumprod[t];
        let (sr, srm1) = ((1.0 / ac).sqrt(), (1.0 / ac - 1.0).sqrt());
        let maybe_clip = |v: Tensor| if clip { ew::clamp(&v, -1.0, 1.0) } else { v };
        let noise_from_start =
            |x0: &Tensor| -> Result<Tensor> { Ok(ew::scale(&lincomb(sr, x, -1.0, x0)?, (1.0 / srm1) as f32)) };
        Ok(match self.objective {
            Objective::PredNoise => {
                let x0 = maybe_clip(lincomb(sr, x, -srm1, &out)?);
                (out, x0)
            }
            Objective::PredX0 => {
                let x0 = maybe_clip(out);
                (noise_from_start(&x0)?, x0)
            }
            Objective::PredV => {
                let x0 = maybe_clip(lincomb(ac.sqrt(), x, -(1.0 - ac).sqrt(), &out)?);
                (noise_from_start(&x0)?, x0)
            }
        })
    }

    /// The sampler's starting point: pure noise x_T of the mask's shape, one per conditioning image.
    fn start_noise(unet: &Unet, cond: &Tensor, rng: &mut impl NoiseSource) -> ([usize; 4], Tensor) {
        let cfg = &unet.cfg;
        let shape = [cond.dim(0), cfg.mask_channels, cfg.image_size, cfg.image_size];
        (shape, rng.randn(&shape))
    }

    /// DDIM sampling with `steps` steps and `eta`; returns masks in [0, 1]. `progress(i, n)` after each step.
    pub fn ddim_sample(
        &self,
        unet: &Unet,
        cond: &Tensor,
        steps: usize,
        eta: f64,
        rng: &mut impl NoiseSource,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Tensor> {
        let _scope = sampling();
        let (shape, mut img) = Self::start_noise(unet, cond, rng);
        let pairs = self.schedule.ddim_pairs(steps.min(self.timesteps()));
        let n = pairs.len();
        for (i, &(time, next)) in pairs.iter().enumerate() {
            let (eps, x0) = self.predict(unet, &img, time as usize, cond, true)?;
            if next < 0 {
                img = x0;
            } else {
                let (a, an) =
                    (self.schedule.alphas_cumprod[time as usize], self.schedule.alphas_cumprod[next as usize]);
                let sigma = eta * ((1.0 - a / an) * (1.0 - an) / (1.0 - a)).sqrt();
                let c = (1.0 - an - sigma * sigma).max(0.0).sqrt();
                let noise = rng.randn(&shape);
                img = ew::add(&lincomb(an.sqrt(), &x0, c, &eps)?, &ew::scale(&noise, sigma as f32))?;
            }
            progress(i + 1, n);
        }
        Ok(ew::affine(&img, 0.5, 0.5))
    }

    /// Ancestral DDPM sampling over all T steps; returns masks in [0, 1].
    pub fn ddpm_sample(
        &self,
        unet: &Unet,
        cond: &Tensor,
        rng: &mut impl NoiseSource,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Tensor> {
        let _scope = sampling();
        let (shape, mut img) = Self::start_noise(unet, cond, rng);
        let n = self.timesteps();
        for (i, t) in (0..n).rev().enumerate() {
            let (_, x0) = self.predict(unet, &img, t, cond, true)?;
            let (c1, c2, logvar) = self.schedule.posterior(t);
            let mean = lincomb(c1, &x0, c2, &img)?;
            img =
                if t > 0 { ew::add(&mean, &ew::scale(&rng.randn(&shape), (0.5 * logvar).exp() as f32))? } else { mean };
            progress(i + 1, n);
        }
        Ok(ew::affine(&img, 0.5, 0.5))
    }
}

/// The result of sampling N masks for one image.
#[derive(Clone, Debug)]
pub struct Ensemble {
    /// Mean soft mask in [0, 1], (S·S) per mask channel (class).
    pub mean: Vec<f32>,
    /// The fused mask of each channel ([`Fusion`]: the mean ≥ ½ by default).
    pub binary: Vec<f32>,
    /// Per-pixel variance across the N samples (the uncertainty map), per channel.
    pub variance: Vec<f32>,
    /// (S·S) label map: 0 background, else the class whose fused mask is set with the highest mean
    /// ([`fusion::label_map`]); for one channel, `binary` itself.
    pub labels: Vec<f32>,
}

/// Mean, variance and per-channel fusion of an ensemble's samples (each `channels` planes in [0, 1]), and the
/// label map they give.
pub fn ensemble_stats(samples: &[Vec<f32>], channels: usize, fusion: Fusion) -> Ensemble {
    let n = samples.len().max(1) as f64;
    let len = samples.first().map_or(0, Vec::len);
    let mut mean = vec![0.0f32; len];
    let mut variance = vec![0.0f32; len];
    for i in 0..len {
        let m = samples.iter().map(|s| s[i].clamp(0.0, 1.0) as f64).sum::<f64>() / n;
        let v = samples.iter().map(|s| (s[i].clamp(0.0, 1.0) as f64 - m).powi(2)).sum::<f64>() / n;
        mean[i] = m as f32;
        variance[i] = v as f32;
    }
    let plane = len / channels.max(1);
    let binary: Vec<f32> = (0..channels.max(1))
        .flat_map(|k| {
            let part: Vec<Vec<f32>> = samples.iter().map(|s| s[k * plane..(k + 1) * plane].to_vec()).collect();
            fusion::fuse(&part, &mean[k * plane..(k + 1) * plane], fusion)
        })
        .collect();
    let labels = fusion::label_map(&binary, &mean, channels.max(1));
    Ensemble { mean, binary, variance, labels }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensemble_of_identical_samples_has_zero_variance() {
        let e = ensemble_stats(&[vec![0.2, 0.9], vec![0.2, 0.9]], 1, Fusion::Mean);
        assert_eq!(e.binary, vec![0.0, 1.0]);
        assert!(e.variance.iter().all(|&v| v.abs() < 1e-7));
        let e = ensemble_stats(&[vec![0.0], vec![1.0]], 1, Fusion::Mean);
        assert_eq!((e.mean[0], e.variance[0], e.binary[0]), (0.5, 0.25, 1.0));
    }
}
