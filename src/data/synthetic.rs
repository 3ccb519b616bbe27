//! The embedded synthetic dataset: textured "scans" with elliptical "lesions" and their masks, generated
//! deterministically from a seed, so `medsegdiff train` works with no data at all.
//!
//! Each image: a smooth background (a few random low-frequency sinusoids), 1–3 ellipses of random size,
//! orientation and contrast (brighter or darker than their surroundings, with soft edges), plus Gaussian
//! noise. The mask is the union of the ellipses. Contrast is kept ≥ 0.25 so the task is learnable by a tiny model.
//! With two classes ([`generate_classes`]) the bright lesions are class 1 and the dark ones class 2.

use super::{Dataset, Sample};
use crate::rng::Rng;

pub fn generate(n: usize, size: usize, channels: usize, seed: u64) -> Dataset {
    generate_classes(n, size, channels, seed, 1)
}

/// [`generate`] with `classes` 1 (every lesion) or 2 (bright lesions 1, dark ones 2); the images are the same.
pub fn generate_classes(n: usize, size: usize, channels: usize, seed: u64, classes: usize) -> Dataset {
    assert!(classes == 1 || classes == 2, "the synthetic set has 1 or 2 classes");
    let mut rng = Rng::new(seed);
    let samples = (0..n).map(|i| one(&mut rng.fork(), size, channels, i, classes)).collect();
    let of = if classes == 2 { ", 2 classes: bright, dark" } else { "" };
    Dataset {
        samples,
        channels,
        size,
        classes,
        label_values: Vec::new(),
        source: format!("synthetic(n={n}, size={size}, seed={seed}{of})"),
    }
}

fn one(rng: &mut Rng, s: usize, channels: usize, i: usize, classes: usize) -> Sample {
    let sf = s as f64;
    // background: 3 random sinusoids in [0.3, 0.6]
    let waves: Vec<(f64, f64, f64, f64)> = (0..3)
        .map(|_| {
            (
                rng.uniform() * 3.0 + 0.5,
                rng.uniform() * std::f64::consts::TAU,
                rng.uniform() * std::f64::consts::TAU,
                rng.uniform() * 0.05,
            )
        })
        .collect();
    let n_lesions = 1 + rng.below(3) as usize;
    let lesions: Vec<[f64; 6]> = (0..n_lesions)
        .map(|_| {
            let (ry, rx) = (sf * (0.08 + 0.14 * rng.uniform()), sf * (0.08 + 0.14 * rng.uniform()));
            let (cy, cx) = (sf * (0.2 + 0.6 * rng.uniform()), sf * (0.2 + 0.6 * rng.uniform()));
            let contrast = (0.25 + 0.3 * rng.uniform()) * if rng.uniform() < 0.7 { 1.0 } else { -1.0 };
            [cy, cx, ry, rx, rng.uniform() * std::f64::consts::PI, contrast]
        })
        .collect();
    let noise_sd = 0.03 + 0.05 * rng.uniform();
    let mut mask = vec![0.0f32; s * s];
    let mut base = vec![0.0f64; s * s];
    for y in 0..s {
        for x in 0..s {
            let (fy, fx) = (y as f64 / sf, x as f64 / sf);
            let mut v = 0.45;
            for &(f, py, px, a) in &waves {
                v += a * ((f * std::f64::consts::TAU * fy + py).sin() + (f * std::f64::consts::TAU * fx + px).cos());
            }
            for l in &lesions {
                let (dy, dx) = (y as f64 + 0.5 - l[0], x as f64 + 0.5 - l[1]);
                let (c, sn) = (l[4].cos(), l[4].sin());
                let (u, w) = ((dy * c + dx * sn) / l[2], (-dy * sn + dx * c) / l[3]);
                let r = (u * u + w * w).sqrt();
                if r <= 1.0 {
                    mask[y * s + x] = if classes == 2 && l[5] < 0.0 { 2.0 } else { 1.0 };
                }
                // soft edge over ~1.5 pixels
                let edge = 1.0 / (1.0 + ((r - 1.0) * l[2].min(l[3]) / 0.75).exp());
                v += l[5] * edge;
            }
            base[y * s + x] = v;
        }
    }
    let mut image = Vec::with_capacity(channels * s * s);
    for ch in 0..channels {
        let tint = 1.0 - 0.1 * ch as f64;
        image.extend(base.iter().map(|&v| ((v * tint + noise_sd * rng.normal()).clamp(0.0, 1.0)) as f32));
    }
    Sample { name: format!("synthetic_{i:05}"), image, mask, stored: [s, s], slice: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_masks_are_binary_and_nonempty() {
        let a = generate(4, 32, 1, 3);
        let b = generate(4, 32, 1, 3);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), generate(4, 32, 1, 4).fingerprint());
        for s in &a.samples {
            assert!(s.mask.iter().all(|&v| v == 0.0 || v == 1.0));
            assert!(s.mask.contains(&1.0), "{} has an empty mask", s.name);
            assert!(s.image.iter().all(|&v| (0.0..=1.0).contains(&v)));
        }
        // two classes: the same images, the dark lesions relabelled 2
        let c = generate_classes(4, 32, 1, 3, 2);
        assert_eq!(c.classes, 2);
        let mut seen = [false; 3];
        for (x, y) in a.samples.iter().zip(&c.samples) {
            assert_eq!(x.image, y.image);
            for (&m1, &m2) in x.mask.iter().zip(&y.mask) {
                assert_eq!(m1 != 0.0, m2 != 0.0);
                seen[m2 as usize] = true;
            }
        }
        let big = generate_classes(64, 32, 1, 3, 2);
        assert!(big.samples.iter().any(|s| s.mask.contains(&2.0)) && seen[1], "both classes occur");
    }
}
