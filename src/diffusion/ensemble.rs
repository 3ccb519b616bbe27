//! Ensembles of sampled masks for a batch of images, with noise that belongs to each image.
//!
//! Every image carries its own seed, and ensemble member j of that image draws all of its noise (x_T and, for
//! DDPM or η > 0, every step's) from a generator seeded by (seed, j): a row's noise does not depend on which
//! other images share its batch. So n processes that each sample a shard of the images produce exactly the
//! masks one process produces, given the same batches ([`crate::diffusion`] is deterministic per row).

use super::fusion::Fusion;
use super::{ensemble_stats, Diffusion, Ensemble};
use crate::model::Unet;
use crate::rng::Rng;
use crate::{Result, Tensor};

/// Where a sampler's Gaussian noise comes from.
pub trait NoiseSource {
    /// Standard normal values of `shape` (batch first).
    fn randn(&mut self, shape: &[usize]) -> Tensor;
}

/// One generator for the whole batch (training's validation, tests).
impl NoiseSource for Rng {
    fn randn(&mut self, shape: &[usize]) -> Tensor {
        Tensor::randn(shape, self)
    }
}

/// One generator per batch row.
pub struct RowNoise(pub Vec<Rng>);

impl NoiseSource for RowNoise {
    fn randn(&mut self, shape: &[usize]) -> Tensor {
        assert_eq!(shape[0], self.0.len(), "one generator per row");
        let row: usize = shape[1..].iter().product();
        let v: Vec<f32> = self.0.iter_mut().flat_map(|r| r.normal_vec(row)).collect();
        Tensor::from_slice(&v, shape).expect("length matches")
    }
}

/// Which sampler, with its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampler {
    /// DDIM with `steps` steps and `eta` (0: deterministic given x_T).
    Ddim { steps: usize, eta: f64 },
    /// Ancestral DDPM over all T steps.
    Ddpm,
    /// DPM-Solver++(2M) with `steps` network evaluations (deterministic given x_T).
    DpmSolver { steps: usize },
}

/// How many masks to sample per image, with which sampler, and how to fuse them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spec {
    pub members: usize,
    pub sampler: Sampler,
    pub fusion: Fusion,
}

/// The seed of an image from the run's seed and the image's name (so it does not depend on its position in a
/// folder listing or a shard).
pub fn image_seed(seed: u64, name: &str) -> u64 {
    name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

impl Diffusion {
    /// `spec.members` masks for each image of `images` (B, C, S, S), image i's noise seeded by `seeds[i]`: per
    /// image the ensemble's mean, fused masks and variance over all mask channels, and its label map. All
    /// B × members rows run as one batch. `progress(i, n)` after each sampler step.
    pub fn ensemble(
        &self,
        unet: &Unet,
        images: &Tensor,
        spec: Spec,
        seeds: &[u64],
        progress: impl FnMut(usize, usize),
    ) -> Result<Vec<Ensemble>> {
        let (b, c, s) = (images.dim(0), images.dim(1), images.dim(2));
        let n = spec.members.max(1);
        assert_eq!(seeds.len(), b, "one seed per image");
        let iv = images.to_vec();
        // repeat each image n times: (b·n, c, s, s); row i·n + j is member j of image i
        let plane = c * s * s;
        let rep: Vec<f32> =
            (0..b).flat_map(|i| (0..n).flat_map(move |_| i * plane..(i + 1) * plane)).map(|k| iv[k]).collect();
        let cond = Tensor::from_slice(&rep, &[b * n, c, s, s])?;
        let mut noise = RowNoise(
            seeds
                .iter()
                .flat_map(|&sd| {
                    (0..n as u64).map(move |j| Rng::new(sd.wrapping_add(j.wrapping_mul(0x9E37_79B9_7F4A_7C15))))
                })
                .collect(),
        );
        let out = match spec.sampler {
            Sampler::Ddpm => self.ddpm_sample(unet, &cond, &mut noise, progress)?,
            Sampler::Ddim { steps, eta } => self.ddim_sample(unet, &cond, steps, eta, &mut noise, progress)?,
            Sampler::DpmSolver { steps } => self.dpmpp_sample(unet, &cond, steps, &mut noise, progress)?,
        };
        let v = out.to_vec();
        let row = unet.cfg.mask_channels * s * s;
        Ok((0..b)
            .map(|i| {
                let samples: Vec<Vec<f32>> =
                    (0..n).map(|j| v[(i * n + j) * row..(i * n + j + 1) * row].to_vec()).collect();
                ensemble_stats(&samples, unet.cfg.mask_channels, spec.fusion)
            })
            .collect())
    }
}
