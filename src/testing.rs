//! Test helpers shared by the unit tests in `ops/*` and the integration tests in `tests/`:
//! `assert_close` (atol + rtol, with an llm.c-style report of where it failed) and `check_grads`, the
//! finite-difference gradient check.
//!
//! **How `check_grads` works and why its tolerance is what it is.** The op under test runs forward on the
//! GPU and is compared with its f64 CPU reference. Then L = Σ y ⊙ u for a fixed random u is differentiated
//! by the tape (the GPU backward kernels, in f32), and each input's gradient is compared with central
//! differences of the *f64 CPU reference*: (L(x + h·e_j) − L(x − h·e_j)) / 2h with h = 1e-4·max(1, |x_j|).
//! In f64 that estimate has truncation error O(h²·L''') ≈ 1e-8 and rounding error ≈ 1e-16/h ≈ 1e-12, so it is
//! effectively exact, and the comparison measures only the f32 backward: |g − ĝ| ≤ 1e-4·max|ĝ| + 2e-3·|ĝ|
//! (f32 sums of up to a few thousand terms lose about 1e-5 relative; the margin leaves room for that and
//! nothing like a wrong term, which shows up as an O(1) error). At most 48 elements per input are checked,
//! chosen by a seeded draw, so tests stay fast on a software adapter.

use crate::ops::{elementwise, reduce};
use crate::rng::Rng;
use crate::tensor::{numel, Tensor};
use crate::Result;

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Seeded values uniform in [−1, 1) for `shape`, and the same values uploaded as a tensor.
pub fn random(shape: &[usize], seed: u64) -> (Vec<f32>, Tensor) {
    let v = Rng::new(seed).uniform_vec(numel(shape), -1.0, 1.0);
    let t = Tensor::from_slice(&v, shape).expect("length matches");
    (v, t)
}

/// Panic unless every |got − want| ≤ atol + rtol·|want|; the message says how many are wrong, the first bad
/// index with both values, and the worst error.
#[track_caller]
pub fn assert_close(got: &[f32], want: &[f64], atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length {} != expected {}", got.len(), want.len());
    let (mut bad, mut first, mut worst, mut worst_i) = (0usize, None, 0.0f64, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        let ok = err <= atol + rtol * w.abs() && g.is_finite() == w.is_finite();
        if !ok {
            bad += 1;
            first.get_or_insert(i);
        }
        if err > worst || err.is_nan() {
            worst = err;
            worst_i = i;
        }
    }
    if let Some(i) = first {
        panic!(
            "{what}: {bad} of {} elements differ (atol {atol:e}, rtol {rtol:e}); first at [{i}]: got {} want {}; \
             worst |err| {worst:e} at [{worst_i}] (got {} want {})",
            got.len(),
            got[i],
            want[i],
            got[worst_i],
            want[worst_i]
        );
    }
}

/// One input of a gradient check: its shape and values.
#[derive(Clone, Debug)]
pub struct Input {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Input {
    pub fn uniform(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Input {
        Input { shape: shape.to_vec(), data: Rng::new(seed).uniform_vec(numel(shape), lo, hi) }
    }

    pub fn new(shape: &[usize], data: Vec<f32>) -> Input {
        assert_eq!(numel(shape), data.len());
        Input { shape: shape.to_vec(), data }
    }

    /// Move values within `margin` of a kink (where the derivative jumps) to `margin` away from it.
    pub fn avoid(mut self, kinks: &[f32], margin: f32) -> Input {
        for v in &mut self.data {
            for &k in kinks {
                if (*v - k).abs() < margin {
                    *v = k + margin.copysign(*v - k);
                }
            }
        }
        self
    }
}

/// Compare an op's GPU forward with its CPU reference, then its taped GPU gradients with f64 finite
/// differences of the CPU reference (see the module doc for the tolerance).
#[track_caller]
pub fn check_grads(
    name: &str,
    inputs: &[Input],
    gpu_f: impl Fn(&[Tensor]) -> Result<Tensor>,
    cpu_f: impl Fn(&[Vec<f64>]) -> Vec<f64>,
) {
    let xs: Vec<Tensor> = inputs.iter().map(|i| Tensor::from_slice(&i.data, &i.shape).unwrap().with_grad()).collect();
    let x64: Vec<Vec<f64>> = inputs.iter().map(|i| to_f64(&i.data)).collect();
    let y = gpu_f(&xs).unwrap_or_else(|e| panic!("{name}: forward failed: {e}"));
    let want_y = cpu_f(&x64);
    let ymax = want_y.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert_close(&y.to_vec(), &want_y, 1e-5 * ymax.max(1.0), 1e-4, &format!("{name}: forward"));

    let mut rng = Rng::new(0x5eed);
    let u: Vec<f32> = rng.uniform_vec(y.numel(), -1.0, 1.0);
    let ut = Tensor::from_slice(&u, y.shape()).unwrap();
    let loss = reduce::sum_all(&elementwise::mul(&y, &ut).unwrap()).unwrap();
    let grads = crate::autograd::backward(&loss).unwrap_or_else(|e| panic!("{name}: backward failed: {e}"));
    let u64v = to_f64(&u);
    let l = |x: &[Vec<f64>]| cpu_f(x).iter().zip(&u64v).map(|(a, b)| a * b).sum::<f64>();

    for (i, inp) in inputs.iter().enumerate() {
        let g = grads.get(&xs[i]).unwrap_or_else(|| panic!("{name}: no gradient reached input {i}")).to_vec();
        assert_eq!(g.len(), inp.data.len(), "{name}: gradient of input {i} has the wrong length");
        let n = inp.data.len();
        let mut idx: Vec<usize> = (0..n).collect();
        if n > 48 {
            rng.shuffle(&mut idx);
            idx.truncate(48);
            idx.sort();
        }
        let mut num = Vec::with_capacity(idx.len());
        let mut x = x64.clone();
        for &j in &idx {
            let orig = x[i][j];
            let h = 1e-4 * orig.abs().max(1.0);
            x[i][j] = orig + h;
            let lp = l(&x);
            x[i][j] = orig - h;
            let lm = l(&x);
            x[i][j] = orig;
            num.push((lp - lm) / (2.0 * h));
        }
        let gmax = num.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let got: Vec<f32> = idx.iter().map(|&j| g[j]).collect();
        assert_close(
            &got,
            &num,
            1e-4 * gmax + 1e-6,
            2e-3,
            &format!("{name}: d/d input {i} (checked elements {idx:?})"),
        );
    }
}
