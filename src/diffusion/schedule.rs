//! Noise schedules (host side, f64 like the package's float64 buffers) and the quantities derived from them.
//!
//! - cosine (Nichol & Dhariwal 2021, s = 0.008, betas clipped at 0.999) — the default;
//! - linear with the 1000/T rescale (β from 1e-4·1000/T to 0.02·1000/T);
//! - shifted cosine of "simple diffusion" (Hoogeboom et al. 2023): logSNR(t) = −2·log tan(πt/2) + 2·log(64/size),
//!   so a larger image gets more noise at the same t (its pixels are more correlated). logSNR is clipped to ±15.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    Cosine,
    Linear,
    ShiftedCosine,
}

impl std::str::FromStr for ScheduleKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cosine" => Ok(ScheduleKind::Cosine),
            "linear" => Ok(ScheduleKind::Linear),
            "shifted-cosine" => Ok(ScheduleKind::ShiftedCosine),
            _ => Err(Error::Config(format!("unknown schedule {s:?}; use cosine, linear or shifted-cosine"))),
        }
    }
}

/// β_t and the cumulative products used by q_sample, the posterior and DDIM.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub betas: Vec<f64>,
    pub alphas_cumprod: Vec<f64>,
    pub alphas_cumprod_prev: Vec<f64>,
}

impl Schedule {
    pub fn new(kind: ScheduleKind, timesteps: usize, image_size: usize) -> Schedule {
        let t = timesteps;
        let betas: Vec<f64> = match kind {
            ScheduleKind::Linear => {
                let scale = 1000.0 / t as f64;
                let (b0, b1) = (scale * 1e-4, scale * 0.02);
                (0..t).map(|i| b0 + (b1 - b0) * i as f64 / (t as f64 - 1.0).max(1.0)).collect()
            }
            ScheduleKind::Cosine => {
                let s = 0.008;
                let f = |x: f64| (((x / t as f64) + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2).cos().powi(2);
                let ac: Vec<f64> = (0..=t).map(|i| f(i as f64) / f(0.0)).collect();
                (0..t).map(|i| (1.0 - ac[i + 1] / ac[i]).clamp(0.0, 0.999)).collect()
            }
            ScheduleKind::ShiftedCosine => {
                let (lmin, lmax) = (-15.0f64, 15.0f64);
                let (tmin, tmax) = ((-0.5 * lmax).exp().atan(), (-0.5 * lmin).exp().atan());
                let shift = 2.0 * (64.0 / image_size as f64).ln();
                let alpha_bar = |u: f64| {
                    let logsnr = -2.0 * (tmin + u * (tmax - tmin)).tan().ln() + shift;
                    1.0 / (1.0 + (-logsnr).exp()) // sigmoid(logsnr) = ᾱ
                };
                let ac: Vec<f64> = (0..=t).map(|i| alpha_bar(i as f64 / t as f64)).collect();
                (0..t).map(|i| (1.0 - ac[i + 1] / ac[i]).clamp(0.0, 0.999)).collect()
            }
        };
        let mut alphas_cumprod = Vec::with_capacity(t);
        let mut acc = 1.0;
        for b in &betas {
            acc *= 1.0 - b;
            alphas_cumprod.push(acc);
        }
        let alphas_cumprod_prev = std::iter::once(1.0).chain(alphas_cumprod[..t - 1].iter().copied()).collect();
        Schedule { betas, alphas_cumprod, alphas_cumprod_prev }
    }

    pub fn len(&self) -> usize {
        self.betas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    /// Posterior q(x_{t−1} | x_t, x_0) = N(c1·x_0 + c2·x_t, σ²): returns (c1, c2, log σ² clipped at 1e-20).
    pub fn posterior(&self, t: usize) -> (f64, f64, f64) {
        let (b, ac, acp) = (self.betas[t], self.alphas_cumprod[t], self.alphas_cumprod_prev[t]);
        let var = b * (1.0 - acp) / (1.0 - ac);
        (b * acp.sqrt() / (1.0 - ac), (1.0 - acp) * (1.0 - b).sqrt() / (1.0 - ac), var.max(1e-20).ln())
    }

    /// DDIM time pairs like the package: linspace(−1, T−1, K+1) truncated to ints, reversed. torch's f32
    /// linspace computes the first half of the points from the start and the second half from the end
    /// (`end − step·(K − i)`); doing the same keeps every K identical after truncation.
    pub fn ddim_pairs(&self, sampling_steps: usize) -> Vec<(i64, i64)> {
        let t = self.len() as f32;
        let k = sampling_steps.max(1);
        let step = t / k as f32;
        let half = k.div_ceil(2); // torch: the first (K + 1) / 2 points from the start
        let point = |i: usize| if i < half { -1.0f32 + step * i as f32 } else { (t - 1.0) - step * (k - i) as f32 };
        let mut times: Vec<i64> = (0..=k).map(|i| point(i) as i64).collect();
        times.reverse();
        times.windows(2).map(|w| (w[0], w[1])).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn cosine_and_linear_match_the_package() {
        // values printed by med_seg_diff_pytorch's cosine_beta_schedule / linear_beta_schedule (float64)
        let c = Schedule::new(ScheduleKind::Cosine, 1000, 64);
        for (i, want) in [
            (0, 4.128422482196914e-05),
            (1, 4.614175273665033e-05),
            (499, 0.0031458862304780677),
            (998, 0.7499993929011166),
            (999, 0.999),
        ] {
            assert!(close(c.betas[i], want, 1e-9), "cosine beta[{i}] = {} != {want}", c.betas[i]);
        }
        for (i, want) in [(0, 0.999958715775178), (499, 0.49384359044063775), (999, 2.4287669070348542e-09)] {
            assert!(close(c.alphas_cumprod[i], want, 1e-9), "cosine ᾱ[{i}] = {} != {want}", c.alphas_cumprod[i]);
        }
        let l = Schedule::new(ScheduleKind::Linear, 1000, 64);
        for (i, want) in [(0, 0.0001), (1, 0.00011991991991991993), (499, 0.01004004004004004), (999, 0.02)] {
            assert!(close(l.betas[i], want, 1e-12), "linear beta[{i}] = {} != {want}", l.betas[i]);
        }
        for (i, want) in [(0, 0.9999), (499, 0.07858724288177824), (999, 4.0358297653756754e-05)] {
            assert!(close(l.alphas_cumprod[i], want, 1e-9), "linear ᾱ[{i}]");
        }
    }

    #[test]
    fn shifted_cosine_adds_noise_for_larger_images_and_equals_cosine_shape_at_64() {
        let s64 = Schedule::new(ScheduleKind::ShiftedCosine, 1000, 64);
        let s256 = Schedule::new(ScheduleKind::ShiftedCosine, 1000, 256);
        assert!(s256.alphas_cumprod[500] < s64.alphas_cumprod[500]);
        // at size 64 there is no shift: logSNR(0.5) = −2·log tan(π/4) = 0 (up to the clipping), so ᾱ ≈ 0.5 mid-way
        assert!((s64.alphas_cumprod[499] - 0.5).abs() < 0.01, "{}", s64.alphas_cumprod[499]);
        assert!(s64.alphas_cumprod.windows(2).all(|w| w[1] < w[0]));
    }

    #[test]
    fn ddim_pairs_match_the_package() {
        let c = Schedule::new(ScheduleKind::Cosine, 1000, 64);
        let p = c.ddim_pairs(10);
        let times: Vec<i64> = std::iter::once(p[0].0).chain(p.iter().map(|x| x.1)).collect();
        assert_eq!(times, vec![999, 899, 799, 699, 599, 499, 399, 299, 199, 99, -1]);
        assert_eq!(&c.ddim_pairs(50)[..2], &[(999, 979), (979, 959)]);
        // K = 15 and 30: values printed by list(reversed(torch.linspace(-1, 999, K + 1).int().tolist()))
        let firsts = |k| c.ddim_pairs(k).iter().take(3).map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(firsts(15), vec![999, 932, 865]);
        assert_eq!(firsts(30), vec![999, 965, 932]);
    }

    #[test]
    fn posterior_at_zero_has_clipped_log_variance() {
        let c = Schedule::new(ScheduleKind::Cosine, 1000, 64);
        let (_, _, lv) = c.posterior(0);
        assert!((lv - (1e-20f64).ln()).abs() < 1e-9);
    }
}
