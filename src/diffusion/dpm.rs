//! DPM-Solver++(2M) (Lu et al., 2022): a second-order multistep solver of the diffusion ODE in its
//! data-prediction form, for good masks in 10–20 network evaluations.
//!
//! With α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t) and λ_t = log(α_t / σ_t), a step from s to t (h = λ_t − λ_s) is
//!
//!   x_t = (σ_t / σ_s)·x_s − α_t·(e^{−h} − 1)·D,
//!
//! with D = x̂_0(x_s) for the first step (first order: exactly DDIM with η = 0), and for later steps the
//! second-order extrapolation from the previous data prediction, r = h_prev / h:
//!
//!   D = (1 + 1/(2r))·x̂_0(x_s) − (1/(2r))·x̂_0(x_prev).
//!
//! The time grid is DDIM's ([`super::Schedule::ddim_pairs`]); the last step, to t = 0, returns x̂_0 (σ = 0 makes
//! the update exactly D, and the solver is first order there, as the paper's "lower order final").

use super::{lincomb, sampling, Diffusion, NoiseSource};
use crate::model::Unet;
use crate::{Result, Tensor};

/// Which ODE solver [`Diffusion::ode_sample`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// DPM-Solver++ 1 (= DDIM, η = 0).
    First,
    /// DPM-Solver++(2M).
    Second,
}

impl Diffusion {
    /// Solve the diffusion ODE from `x` (pure noise at t = T − 1) in `steps` steps; `denoise(x, t)` gives x̂_0 at
    /// timestep t. Returns x at t = 0 (in the model's [−1, 1] range). `progress(i, n)` after each step.
    pub fn ode_sample(
        &self,
        x: Tensor,
        steps: usize,
        order: Order,
        mut denoise: impl FnMut(&Tensor, usize) -> Result<Tensor>,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Tensor> {
        let ac = &self.schedule.alphas_cumprod;
        let (alpha, sigma) = (|t: usize| ac[t].sqrt(), |t: usize| (1.0 - ac[t]).sqrt());
        let lambda = |t: usize| (alpha(t) / sigma(t)).ln();
        let pairs = self.schedule.ddim_pairs(steps.min(self.timesteps()));
        let n = pairs.len();
        let mut x = x;
        // the previous step's data prediction and its h
        let mut prev: Option<(Tensor, f64)> = None;
        for (i, &(time, next)) in pairs.iter().enumerate() {
            let (s, x0) = (time as usize, denoise(&x, time as usize)?);
            if next < 0 {
                x = x0;
            } else {
                let t = next as usize;
                let h = lambda(t) - lambda(s);
                let d = match (&prev, order) {
                    (Some((x0_prev, h_prev)), Order::Second) => {
                        let r = h_prev / h;
                        lincomb(1.0 + 0.5 / r, &x0, -0.5 / r, x0_prev)?
                    }
                    _ => x0.clone(),
                };
                x = lincomb(sigma(t) / sigma(s), &x, -alpha(t) * ((-h).exp() - 1.0), &d)?;
                prev = Some((x0, h));
            }
            progress(i + 1, n);
        }
        Ok(x)
    }

    /// DPM-Solver++(2M) sampling with `steps` network evaluations; masks in [0, 1]. The only noise is x_T.
    pub fn dpmpp_sample(
        &self,
        unet: &Unet,
        cond: &Tensor,
        steps: usize,
        rng: &mut impl NoiseSource,
        progress: impl FnMut(usize, usize),
    ) -> Result<Tensor> {
        let _scope = sampling();
        let (_, x) = Self::start_noise(unet, cond, rng);
        let denoise = |x: &Tensor, t: usize| Ok(self.predict(unet, x, t, cond, true)?.1);
        let out = self.ode_sample(x, steps, Order::Second, denoise, progress)?;
        Ok(crate::ops::elementwise::affine(&out, 0.5, 0.5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::{Objective, ScheduleKind};
    use crate::ops::elementwise as ew;
    use crate::rng::Rng;

    /// Data x_0 ~ N(μ, s²) per value: the exact denoiser is D_t(x) = E[x_0 | x_t] = μ + k_t·(x − α_t μ) with
    /// k_t = α_t s² / (α_t² s² + σ_t²), and the ODE carries x_T to x_t = α_t μ + v_t/v_T·(x_T − α_T μ), v_t =
    /// √(α_t² s² + σ_t²). The sampler's exact answer is D at the grid's last time of the exact x there. Second
    /// order must beat first order (DDIM), be small, and improve with more steps.
    #[test]
    fn dpm_solver_pp_follows_the_exact_ode_of_gaussian_data() {
        let d = Diffusion::new(ScheduleKind::Cosine, 1000, 32, Objective::PredX0);
        let (mu, s) = (0.3f64, 0.2f64);
        let ac = d.schedule.alphas_cumprod.clone();
        let k = |t: usize| ac[t].sqrt() * s * s / (ac[t] * s * s + 1.0 - ac[t]);
        let v = |t: usize| (ac[t] * s * s + 1.0 - ac[t]).sqrt();
        let denoise = |x: &Tensor, t: usize| -> Result<Tensor> {
            Ok(ew::affine(x, k(t) as f32, (mu - k(t) * ac[t].sqrt() * mu) as f32))
        };
        let xt = Tensor::randn(&[1, 1, 16, 16], &mut Rng::new(7));
        let x_big_t = xt.to_vec();
        let err = |order: Order, steps: usize| {
            let last = d.schedule.ddim_pairs(steps).last().unwrap().0 as usize;
            let out = d.ode_sample(xt.clone(), steps, order, denoise, |_, _| {}).unwrap().to_vec();
            let (a_t, a_l) = (ac[999].sqrt(), ac[last].sqrt());
            out.iter()
                .zip(&x_big_t)
                .map(|(&o, &x)| {
                    let x_last = a_l * mu + v(last) / v(999) * (x as f64 - a_t * mu);
                    let exact = mu + k(last) * (x_last - a_l * mu);
                    (o as f64 - exact).abs()
                })
                .fold(0.0, f64::max)
        };
        let (first, second) = (err(Order::First, 10), err(Order::Second, 10));
        eprintln!("max error at 10 steps: DDIM {first:.2e}, DPM-Solver++(2M) {second:.2e}");
        assert!(second < 0.5 * first, "2M error {second} should be well below DDIM's {first} at 10 steps");
        assert!(second < 0.01, "2M error {second} at 10 steps (s = {s})");
        let twenty = err(Order::Second, 20);
        assert!(twenty < second, "20 steps ({twenty}) should beat 10 ({second})");
    }
}
