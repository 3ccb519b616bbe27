//! Softmax along any axis, numerically stable.
//!
//! Forward:  y[r, a] = exp(x[r, a] − m_r) / Σ_b exp(x[r, b] − m_r),  m_r = max_b x[r, b]  (r = one row: a
//!           position of every other axis). Subtracting the row max keeps exp from overflowing.
//! Backward: dx = y ⊙ (g − Σ_axis g⊙y)  (the softmax Jacobian y_b·(δ_ab − y_a) applied to g).
//! Forward saves y.
//!
//! The tensor is viewed as (outer, len, inner) around the axis, so one pair of kernels serves every axis:
//! shaders/softmax/softmax_forward.wgsl and softmax_backward.wgsl, each with two entries, `per_workgroup`
//! (one 256-thread workgroup per row, tree reductions: long rows such as attention over H·W keys) and
//! `per_thread` (one thread per row: short rows such as linear attention's softmax over dim_head features).
//! [`SoftmaxKernel::pick`] chooses by row length and adapter type (barriers are expensive on a CPU adapter).

use bytemuck::{Pod, Zeroable};

use super::index::split3;
use super::{groups_1d, launch};
use crate::gpu::Shader;
use crate::tensor::Tensor;
use crate::{autograd, shader, shape_err, Result};

const FORWARD: Shader = shader!("softmax/softmax_forward.wgsl");
const BACKWARD: Shader = shader!("softmax/softmax_backward.wgsl");

/// The two kernels (both tested on every case; see the module doc for which wins where).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftmaxKernel {
    PerThread,
    PerWorkgroup,
}

impl SoftmaxKernel {
    pub const ALL: [SoftmaxKernel; 2] = [SoftmaxKernel::PerThread, SoftmaxKernel::PerWorkgroup];

    /// One thread per row below a length that depends on the adapter: on a CPU adapter (lavapipe) a workgroup
    /// barrier costs far more than a serial loop, so rows up to 4096 long stay per-thread there (measured:
    /// attention softmax over 256 keys, batch 8: 24 ms per call per-workgroup vs 1.8 ms per-thread; the small
    /// preset's linear-attention softmax over 4096 pixels, 1024 rows: about 28 -> 10 ms forward and 21 -> 13 ms
    /// backward per call); on a GPU, rows of 64+ use a whole workgroup.
    pub fn pick(len: usize) -> SoftmaxKernel {
        let cpu = crate::gpu::gpu().info.device_type == wgpu::DeviceType::Cpu;
        if (cpu && len <= 4096) || (!cpu && len < 64) {
            SoftmaxKernel::PerThread
        } else {
            SoftmaxKernel::PerWorkgroup
        }
    }
}

/// Mirrors `struct Params` in softmax_forward.wgsl and softmax_backward.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SoftmaxParams {
    outer: u32,
    len: u32,
    inner: u32,
    n_rows: u32,
}

impl SoftmaxParams {
    fn new(shape: &[usize], axis: usize) -> SoftmaxParams {
        let (outer, len, inner) = split3(shape, axis);
        SoftmaxParams { outer: outer as u32, len: len as u32, inner: inner as u32, n_rows: (outer * inner) as u32 }
    }

    /// The entry point and its linear workgroup count.
    fn entry_and_groups(&self, kernel: SoftmaxKernel) -> (&'static str, u32) {
        match kernel {
            SoftmaxKernel::PerThread => ("per_thread", groups_1d(self.n_rows as usize)), // one thread per row
            SoftmaxKernel::PerWorkgroup => ("per_workgroup", self.n_rows),               // one workgroup per row
        }
    }
}

/// Encode y = softmax(x) along `axis` with a chosen kernel, not taped.
pub fn softmax_with(kernel: SoftmaxKernel, x: &Tensor, axis: usize) -> Tensor {
    let y = Tensor::uninit(x.shape());
    let p = SoftmaxParams::new(x.shape(), axis);
    let (entry, groups) = p.entry_and_groups(kernel);
    launch(FORWARD, entry, &[], &p, &[x], &[&y], groups);
    y
}

/// Encode dx = y ⊙ (g − Σ_axis g⊙y) with a chosen kernel.
pub fn softmax_backward_with(kernel: SoftmaxKernel, y: &Tensor, g: &Tensor, axis: usize) -> Tensor {
    let dx = Tensor::uninit(y.shape());
    let p = SoftmaxParams::new(y.shape(), axis);
    let (entry, groups) = p.entry_and_groups(kernel);
    launch(BACKWARD, entry, &[], &p, &[y, g], &[&dx], groups);
    dx
}

/// softmax(x) along `axis` (torch `x.softmax(dim=axis)`), taped.
pub fn softmax(x: &Tensor, axis: usize) -> Result<Tensor> {
    if axis >= x.rank() {
        return shape_err!("softmax", "axis {axis} out of range for shape {:?}", x.shape());
    }
    let kernel = SoftmaxKernel::pick(x.shape()[axis]);
    let y = softmax_with(kernel, x, axis);
    let y_saved = y.detach();
    autograd::record("softmax", &[x], &y, move |g, _| Ok(vec![Some(softmax_backward_with(kernel, &y_saved, g, axis))]));
    Ok(y)
}

/// The f64 reference: the spec the kernels are tested against.
pub mod cpu {
    /// y = softmax(x) along `axis` of `shape`.
    pub fn softmax(x: &[f64], shape: &[usize], axis: usize) -> Vec<f64> {
        let (outer, len, inner) = super::split3(shape, axis);
        let mut y = vec![0.0; x.len()];
        for o in 0..outer {
            for i in 0..inner {
                // the row: elements (o, a, i) for a < len
                let at = |a: usize| (o * len + a) * inner + i;
                // m = max_a x[a]
                let m = (0..len).map(|a| x[at(a)]).fold(f64::NEG_INFINITY, f64::max);
                // s = Σ_a exp(x[a] − m)
                let s: f64 = (0..len).map(|a| (x[at(a)] - m).exp()).sum();
                // y[a] = exp(x[a] − m) / s
                for a in 0..len {
                    y[at(a)] = (x[at(a)] - m).exp() / s;
                }
            }
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::numel;
    use crate::testing::{assert_close, check_grads, to_f64, Input};

    /// A softmax problem: shape and axis.
    struct Problem {
        shape: &'static [usize],
        axis: usize,
    }

    const PROBLEMS: &[Problem] = &[
        Problem { shape: &[2, 3, 4, 5], axis: 0 },
        Problem { shape: &[2, 3, 4, 5], axis: 1 },
        Problem { shape: &[2, 3, 4, 5], axis: 2 },
        Problem { shape: &[2, 3, 4, 5], axis: 3 },
        Problem { shape: &[3, 1, 4], axis: 1 },    // len 1: y = 1, dx = 0
        Problem { shape: &[1, 1, 1, 1], axis: 2 }, // a single element
        Problem { shape: &[5, 63], axis: 1 },      // the longest per-thread row
        Problem { shape: &[3, 70, 2], axis: 1 },   // per-workgroup, len not a multiple of 256, inner 2
        Problem { shape: &[2, 300], axis: 1 },     // per-workgroup, some threads take two elements
        Problem { shape: &[2, 257, 1, 3], axis: 1 },
    ];

    #[test]
    fn softmax_matches_cpu_on_every_axis_and_odd_lengths() {
        let mut rng = crate::rng::Rng::new(17);
        for pr in PROBLEMS {
            let v = rng.uniform_vec(numel(pr.shape), -3.0, 3.0);
            let x = Tensor::from_slice(&v, pr.shape).unwrap();
            let want = cpu::softmax(&to_f64(&v), pr.shape, pr.axis);
            for k in SoftmaxKernel::ALL {
                let got = softmax_with(k, &x, pr.axis).to_vec();
                assert_close(&got, &want, 1e-6, 1e-5, &format!("softmax {k:?} {:?} axis {}", pr.shape, pr.axis));
            }
        }
    }

    #[test]
    fn softmax_gradients_match_finite_differences() {
        for pr in PROBLEMS.iter().filter(|p| numel(p.shape) <= 600) {
            check_grads(
                &format!("softmax {:?} axis {}", pr.shape, pr.axis),
                &[Input::uniform(pr.shape, -2.0, 2.0, 18)],
                |x| softmax(&x[0], pr.axis),
                |x| cpu::softmax(&x[0], pr.shape, pr.axis),
            );
        }
    }

    #[test]
    fn both_backward_kernels_match_the_jacobian_product() {
        // dx = y ⊙ (g − Σ_axis g⊙y), checked for each kernel on every problem (the taped op uses only one).
        let mut rng = crate::rng::Rng::new(23);
        for pr in PROBLEMS {
            let v = rng.uniform_vec(numel(pr.shape), -2.0, 2.0);
            let gv = rng.uniform_vec(numel(pr.shape), -1.0, 1.0);
            let y64 = cpu::softmax(&to_f64(&v), pr.shape, pr.axis);
            let (outer, len, inner) = split3(pr.shape, pr.axis);
            let mut want = vec![0.0f64; v.len()];
            for o in 0..outer {
                for i in 0..inner {
                    let at = |a: usize| (o * len + a) * inner + i;
                    let dot: f64 = (0..len).map(|a| gv[at(a)] as f64 * y64[at(a)]).sum();
                    (0..len).for_each(|a| want[at(a)] = y64[at(a)] * (gv[at(a)] as f64 - dot));
                }
            }
            let y = Tensor::from_slice(&y64.iter().map(|&x| x as f32).collect::<Vec<_>>(), pr.shape).unwrap();
            let g = Tensor::from_slice(&gv, pr.shape).unwrap();
            for k in SoftmaxKernel::ALL {
                let got = softmax_backward_with(k, &y, &g, pr.axis).to_vec();
                assert_close(&got, &want, 1e-6, 1e-5, &format!("backward {k:?} {:?} axis {}", pr.shape, pr.axis));
            }
        }
    }

    #[test]
    fn softmax_is_stable_for_large_magnitudes() {
        // ±80 (exp(80) ≈ 5.5e34; a sum of a few such terms overflows f32 without the max shift) and ±1000
        // (exp overflows outright), through both kernels.
        let mut rng = crate::rng::Rng::new(19);
        for (shape, lo, hi) in
            [([4, 10], -80.0, 80.0), ([4, 300], -80.0, 80.0), ([2, 7], -1000.0, 1000.0), ([2, 90], -1000.0, 1000.0)]
        {
            let mut v = rng.uniform_vec(numel(&shape), lo, hi);
            v[0] = hi; // two equal maxima in row 0
            v[1] = hi;
            let x = Tensor::from_slice(&v, &shape).unwrap();
            for k in SoftmaxKernel::ALL {
                let got = softmax_with(k, &x, 1).to_vec();
                assert!(got.iter().all(|y| y.is_finite()), "{k:?} {shape:?} ±{hi}: non-finite output");
                assert_close(
                    &got,
                    &cpu::softmax(&to_f64(&v), &shape, 1),
                    1e-6,
                    1e-5,
                    &format!("{k:?} {shape:?} ±{hi}"),
                );
            }
        }
    }

    #[test]
    fn softmax_over_65535_workgroups() {
        // 70,000 rows of 65 (per-workgroup kernel): 70,000 workgroups forward and backward.
        let shape = [70_000, 65];
        let x = Tensor::full(&shape, 1.0);
        let y = softmax_with(SoftmaxKernel::PerWorkgroup, &x, 1);
        let yv = y.to_vec();
        assert!(
            yv.iter().all(|&v| (v - 1.0 / 65.0).abs() < 1e-7),
            "first bad at {:?}",
            yv.iter().position(|&v| (v - 1.0 / 65.0).abs() >= 1e-7)
        );
        // g = [1, 0, 0, …] in every row: dx = y ⊙ (g − y₀) = (y₀(1 − y₀), −y₀², …)
        let mut g = vec![0.0f32; numel(&shape)];
        g.iter_mut().step_by(65).for_each(|v| *v = 1.0);
        let gt = Tensor::from_slice(&g, &shape).unwrap();
        let dx = softmax_backward_with(SoftmaxKernel::PerWorkgroup, &y, &gt, 1).to_vec();
        let y0 = 1.0 / 65.0f64;
        let bad = dx.iter().enumerate().position(|(i, &d)| {
            let want = if i % 65 == 0 { y0 * (1.0 - y0) } else { -y0 * y0 };
            (d as f64 - want).abs() > 1e-7
        });
        assert!(bad.is_none(), "backward: first bad at {bad:?}");
        crate::autograd::clear();
    }

    #[test]
    fn softmax_rejects_bad_axis() {
        let err = softmax(&Tensor::zeros(&[2, 3]), 2).unwrap_err().to_string();
        assert!(err.contains("axis 2") && err.contains("[2, 3]"), "{err}");
    }

    #[test]
    fn debug_softmax() {
        let x = Tensor::from_slice(&[1.0, 2.0, 3.0, 0.0, 0.0, 0.0], &[2, 3]).unwrap();
        let y = softmax(&x, 1).unwrap().to_vec();
        println!("softmax([[1, 2, 3], [0, 0, 0]], axis 1) = {y:?}");
        assert_close(&y, &[0.09003057, 0.24472847, 0.66524096, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0], 1e-7, 1e-6, "debug");
    }
}
