//! The two attention cores of MedSegDiff (`Attention` and `LinearAttention` of med-seg-diff-pytorch 0.3.3):
//! everything between the `to_qkv` 1×1 conv and `to_out`.
//!
//! Input qkv: (B, 3·heads·dim_head, H, W); q, k, v = chunk(qkv, 3, axis 1), each viewed (for free) as
//! (B·heads, d, n) with d = dim_head, n = H·W (channel head·d + c, pixel y·W + x); scale = dim_head^−½.
//! - full:   sim[i, j] = Σ_d (scale·q)[d, i]·k[d, j];  attn = softmax_j(sim);  out[d, i] = Σ_j attn[i, j]·v[d, j]
//! - linear: q̂ = softmax over d, k̂ = softmax over n;  context[d, e] = Σ_n k̂[d, n]·v[e, n];
//!   out[e, n] = Σ_d context[d, e]·(scale·q̂)[d, n]
//!
//! Output: (B, heads·dim_head, H, W), channel head·d + e.
//!
//! Full attention runs fused ([`flash`]: online softmax, no n×n matrix, FlashAttention-2's backward) when
//! dim_head is a multiple of 4 up to 64; otherwise, and always in [`full_attention_composed`] (the teaching
//! version and the fused kernels' second reference), it is a composition of taped ops (chunk, reshape, scale,
//! softmax, matmul_t) whose backward comes from the tape. Linear attention likewise: fused ([`linear`]: split-K
//! context, per-pixel softmax and output) for dim_head up to 64, composed in [`linear_attention_composed`].

pub mod flash;
mod linear;

use crate::ops::elementwise::scale;
use crate::ops::layout::chunk;
use crate::ops::matmul::matmul_t;
use crate::ops::softmax::softmax;
use crate::tensor::Tensor;
use crate::{shape_err, Result};

/// Check qkv's shape and split it into q, k, v, each (B·heads, dim_head, H·W).
fn split_qkv(op: &'static str, qkv: &Tensor, heads: usize, dim_head: usize) -> Result<[Tensor; 3]> {
    check_qkv(op, qkv, heads, dim_head)?;
    let s = qkv.shape();
    let view = [s[0] * heads, dim_head, s[2] * s[3]];
    let parts = chunk(qkv, 3, 1)?;
    Ok([parts[0].reshape(&view)?, parts[1].reshape(&view)?, parts[2].reshape(&view)?])
}

/// qkv must be (B, 3·heads·dim_head, H, W).
fn check_qkv(op: &'static str, qkv: &Tensor, heads: usize, dim_head: usize) -> Result<()> {
    let s = qkv.shape();
    if s.len() != 4 {
        return shape_err!(op, "qkv must be (B, 3·heads·dim_head, H, W), got {s:?}");
    }
    if heads == 0 || dim_head == 0 || s[1] != 3 * heads * dim_head {
        return shape_err!(
            op,
            "qkv {s:?} has {} channels but heads {heads} × dim_head {dim_head} needs 3·{heads}·{dim_head} = {}",
            s[1],
            3 * heads * dim_head
        );
    }
    Ok(())
}

/// Softmax attention over all H·W positions (MedSegDiff's `Attention`, between to_qkv and to_out): fused where
/// [`flash`] applies, composed otherwise.
pub fn full_attention(qkv: &Tensor, heads: usize, dim_head: usize) -> Result<Tensor> {
    check_qkv("full_attention", qkv, heads, dim_head)?;
    if flash::applies(dim_head) {
        return flash::full_attention(qkv, heads, dim_head);
    }
    full_attention_composed(qkv, heads, dim_head)
}

/// Whether [`full_attention`] takes the fused path for this head size (no n×n score matrix in memory).
pub fn fused_applies(dim_head: usize) -> bool {
    flash::applies(dim_head)
}

/// [`full_attention`] as taped matmul, softmax and matmul (the n×n score matrix in memory).
pub fn full_attention_composed(qkv: &Tensor, heads: usize, dim_head: usize) -> Result<Tensor> {
    let [q, k, v] = split_qkv("full_attention", qkv, heads, dim_head)?;
    let s = qkv.shape();
    let q = scale(&q, (dim_head as f32).powf(-0.5));
    // sim = qᵀ·k: (B·h, n, n), sim[i, j] = Σ_d q[d, i]·k[d, j]
    let sim = matmul_t(&q, true, &k, false)?;
    // attn[i, ·] = softmax over the keys j
    let attn = softmax(&sim, 2)?;
    // out = v·attnᵀ: (B·h, d, n), out[d, i] = Σ_j v[d, j]·attn[i, j]
    let out = matmul_t(&v, false, &attn, true)?;
    out.reshape(&[s[0], heads * dim_head, s[2], s[3]])
}

/// Linear attention (MedSegDiff's `LinearAttention`, between to_qkv and to_out): cost linear in H·W; fused
/// where [`linear`] applies, composed otherwise.
pub fn linear_attention(qkv: &Tensor, heads: usize, dim_head: usize) -> Result<Tensor> {
    check_qkv("linear_attention", qkv, heads, dim_head)?;
    if linear::applies(dim_head, qkv.shape()[2] * qkv.shape()[3]) {
        return linear::linear_attention(qkv, heads, dim_head);
    }
    linear_attention_composed(qkv, heads, dim_head)
}

/// [`linear_attention`] as a composition of taped ops (the teaching version and the fused kernels' reference).
pub fn linear_attention_composed(qkv: &Tensor, heads: usize, dim_head: usize) -> Result<Tensor> {
    let [q, k, v] = split_qkv("linear_attention", qkv, heads, dim_head)?;
    let s = qkv.shape();
    // q̂ = softmax over the feature axis d (dim −2), k̂ = softmax over the pixel axis n (dim −1)
    let q = softmax(&q, 1)?;
    let k = softmax(&k, 2)?;
    let q = scale(&q, (dim_head as f32).powf(-0.5));
    // context = k̂·vᵀ: (B·h, d, e), context[d, e] = Σ_n k̂[d, n]·v[e, n]
    let context = matmul_t(&k, false, &v, true)?;
    // out = contextᵀ·q̂: (B·h, e, n), out[e, n] = Σ_d context[d, e]·q̂[d, n]
    let out = matmul_t(&context, true, &q, false)?;
    out.reshape(&[s[0], heads * dim_head, s[2], s[3]])
}

/// The f64 reference: naive loops straight from the package's einsums.
pub mod cpu {
    /// q, k, v of qkv (B, 3·heads·d, H, W) as closures (b·heads + head, c, pixel) -> value.
    struct Qkv<'a> {
        x: &'a [f64],
        heads: usize,
        d: usize,
        n: usize,
    }

    impl Qkv<'_> {
        /// part 0 = q, 1 = k, 2 = v; bh = b·heads + head; channel part·heads·d + head·d + c.
        fn at(&self, part: usize, bh: usize, c: usize, pix: usize) -> f64 {
            let (b, h) = (bh / self.heads, bh % self.heads);
            let ch = part * self.heads * self.d + h * self.d + c;
            self.x[(b * 3 * self.heads * self.d + ch) * self.n + pix]
        }
    }

    /// Row-wise softmax of a slice.
    fn softmax(row: &mut [f64]) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
        row.iter_mut().for_each(|v| *v = (*v - m).exp() / s);
    }

    /// `Attention`: out[b, head·d + c, pix i] = Σ_j softmax_j(scale·Σ_e q[e, i]·k[e, j])·v[c, j].
    pub fn full_attention(qkv: &[f64], shape: &[usize], heads: usize, d: usize) -> Vec<f64> {
        let (bn, n) = (shape[0], shape[2] * shape[3]);
        let x = Qkv { x: qkv, heads, d, n };
        let scale = (d as f64).powf(-0.5);
        let mut out = vec![0.0; bn * heads * d * n];
        for bh in 0..bn * heads {
            for i in 0..n {
                // sim[i, j] = Σ_e (scale·q[e, i])·k[e, j], then softmax over j
                let mut attn: Vec<f64> =
                    (0..n).map(|j| (0..d).map(|e| scale * x.at(0, bh, e, i) * x.at(1, bh, e, j)).sum()).collect();
                softmax(&mut attn);
                // out[c, i] = Σ_j attn[i, j]·v[c, j]
                for c in 0..d {
                    out[(bh * d + c) * n + i] = (0..n).map(|j| attn[j] * x.at(2, bh, c, j)).sum();
                }
            }
        }
        out
    }

    /// `LinearAttention`: q̂ = softmax_d(q)·scale, k̂ = softmax_n(k), context = k̂·vᵀ, out = contextᵀ·q̂.
    pub fn linear_attention(qkv: &[f64], shape: &[usize], heads: usize, d: usize) -> Vec<f64> {
        let (bn, n) = (shape[0], shape[2] * shape[3]);
        let x = Qkv { x: qkv, heads, d, n };
        let scale = (d as f64).powf(-0.5);
        let mut out = vec![0.0; bn * heads * d * n];
        for bh in 0..bn * heads {
            // q̂[c, p] = scale · softmax over c of q[·, p]
            let mut qh = vec![0.0; d * n];
            for p in 0..n {
                let mut col: Vec<f64> = (0..d).map(|c| x.at(0, bh, c, p)).collect();
                softmax(&mut col);
                (0..d).for_each(|c| qh[c * n + p] = scale * col[c]);
            }
            // k̂[c, ·] = softmax over the pixels of k[c, ·]
            let mut kh = vec![0.0; d * n];
            for c in 0..d {
                let mut row: Vec<f64> = (0..n).map(|p| x.at(1, bh, c, p)).collect();
                softmax(&mut row);
                kh[c * n..(c + 1) * n].copy_from_slice(&row);
            }
            // context[c, e] = Σ_p k̂[c, p]·v[e, p]
            let mut context = vec![0.0; d * d];
            for c in 0..d {
                for e in 0..d {
                    context[c * d + e] = (0..n).map(|p| kh[c * n + p] * x.at(2, bh, e, p)).sum();
                }
            }
            // out[e, p] = Σ_c context[c, e]·q̂[c, p]
            for e in 0..d {
                for p in 0..n {
                    out[(bh * d + e) * n + p] = (0..d).map(|c| context[c * d + e] * qh[c * n + p]).sum();
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::numel;
    use crate::testing::{assert_close, check_grads, to_f64, Input};

    /// An attention problem: batch, heads, dim_head, H, W.
    struct Problem {
        b: usize,
        heads: usize,
        dim_head: usize,
        h: usize,
        w: usize,
    }

    impl Problem {
        fn shape(&self) -> [usize; 4] {
            [self.b, 3 * self.heads * self.dim_head, self.h, self.w]
        }
    }

    const PROBLEMS: &[Problem] = &[
        Problem { b: 2, heads: 2, dim_head: 3, h: 3, w: 5 },
        Problem { b: 2, heads: 2, dim_head: 4, h: 4, w: 4 },
        Problem { b: 1, heads: 1, dim_head: 1, h: 1, w: 1 }, // everything size 1: attn = 1, softmax over d = 1
        Problem { b: 1, heads: 4, dim_head: 32, h: 8, w: 9 }, // the model's heads and dim_head; n = 72 > 64
        // fused: 300 keys of dim_head 64 need 3 uniform windows of 128 (k, v) rows; 300 queries 3 windows of 112
        Problem { b: 1, heads: 1, dim_head: 64, h: 15, w: 20 },
        Problem { b: 2, heads: 1, dim_head: 8, h: 1, w: 3 }, // fused, n = 3: one partial workgroup
    ];

    #[test]
    fn attention_matches_cpu() {
        let mut rng = crate::rng::Rng::new(23);
        for pr in PROBLEMS {
            let shape = pr.shape();
            let v = rng.uniform_vec(numel(&shape), -2.0, 2.0);
            let x = Tensor::from_slice(&v, &shape).unwrap();
            let what = format!("B {} heads {} dim_head {} {}×{}", pr.b, pr.heads, pr.dim_head, pr.h, pr.w);
            let full = full_attention(&x, pr.heads, pr.dim_head).unwrap();
            assert_eq!(full.shape(), &[pr.b, pr.heads * pr.dim_head, pr.h, pr.w]);
            let want = cpu::full_attention(&to_f64(&v), &shape, pr.heads, pr.dim_head);
            assert_close(&full.to_vec(), &want, 1e-5, 1e-4, &format!("full_attention {what}"));
            let composed = full_attention_composed(&x, pr.heads, pr.dim_head).unwrap();
            assert_close(&composed.to_vec(), &want, 1e-5, 1e-4, &format!("full_attention_composed {what}"));
            let lin = linear_attention(&x, pr.heads, pr.dim_head).unwrap();
            let want = cpu::linear_attention(&to_f64(&v), &shape, pr.heads, pr.dim_head);
            assert_close(&lin.to_vec(), &want, 1e-5, 1e-4, &format!("linear_attention {what}"));
            let composed = linear_attention_composed(&x, pr.heads, pr.dim_head).unwrap();
            assert_close(&composed.to_vec(), &want, 1e-5, 1e-4, &format!("linear_attention_composed {what}"));
        }
    }

    #[test]
    fn attention_gradients_match_finite_differences() {
        // the fused path on the 4th and 6th problems; the 5th (3 × 2 windows) is checked against the composed
        // path's gradient below, finite differences over 57,600 inputs being too slow
        for pr in PROBLEMS.iter().filter(|p| p.h * p.w <= 72 && p.dim_head <= 8) {
            let shape = pr.shape();
            let what = format!("B {} heads {} dim_head {} {}×{}", pr.b, pr.heads, pr.dim_head, pr.h, pr.w);
            let (heads, dh) = (pr.heads, pr.dim_head);
            check_grads(
                &format!("full_attention {what}"),
                &[Input::uniform(&shape, -1.5, 1.5, 24)],
                |x| full_attention(&x[0], heads, dh),
                |x| cpu::full_attention(&x[0], &shape, heads, dh),
            );
            check_grads(
                &format!("linear_attention {what}"),
                &[Input::uniform(&shape, -1.5, 1.5, 25)],
                |x| linear_attention(&x[0], heads, dh),
                |x| cpu::linear_attention(&x[0], &shape, heads, dh),
            );
        }
    }

    /// d(qkv) of Σ f(qkv)·gout, with gout drawn uniformly in [-1, 1).
    fn gradient(x: &Tensor, seed: u64, f: &dyn Fn(&Tensor) -> Tensor) -> Vec<f32> {
        let xg = x.detach().with_grad();
        let y = f(&xg);
        let gout = crate::rng::Rng::new(seed).uniform_vec(numel(y.shape()), -1.0, 1.0);
        let g = Tensor::from_slice(&gout, y.shape()).unwrap();
        let loss =
            crate::ops::reduce::sum(&crate::ops::elementwise::mul(&y, &g).unwrap(), &[0, 1, 2, 3], false).unwrap();
        crate::autograd::backward(&loss).unwrap().get(&xg).unwrap().to_vec()
    }

    /// The fused op's output and gradient against the composed path's on one problem.
    fn fused_equals_composed(
        pr: &Problem,
        fused: fn(&Tensor, usize, usize) -> Result<Tensor>,
        composed: fn(&Tensor, usize, usize) -> Result<Tensor>,
        what: &str,
    ) {
        let shape = pr.shape();
        let x = Tensor::from_slice(&crate::rng::Rng::new(41).uniform_vec(numel(&shape), -2.0, 2.0), &shape).unwrap();
        let (h, d) = (pr.heads, pr.dim_head);
        let what = format!("{what}, B {} heads {h} dim_head {d} {}×{}", pr.b, pr.h, pr.w);
        let want = |v: Vec<f32>| v.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        let out = want(composed(&x, h, d).unwrap().to_vec());
        assert_close(&fused(&x, h, d).unwrap().to_vec(), &out, 1e-5, 1e-4, &format!("out, fused vs composed, {what}"));
        let g_fused = gradient(&x, 42, &|t| fused(t, h, d).unwrap());
        let g_composed = want(gradient(&x, 42, &|t| composed(t, h, d).unwrap()));
        assert_close(&g_fused, &g_composed, 1e-5, 1e-4, &format!("d qkv, fused vs composed, {what}"));
    }

    #[test]
    fn fused_attention_gradient_equals_the_composed_one_over_several_windows() {
        for pr in &PROBLEMS[3..5] {
            fused_equals_composed(pr, full_attention, full_attention_composed, "full attention");
        }
    }

    #[test]
    fn linear_attentions_subgroup_pieces_give_the_plain_pieces_bits() {
        // linear_out, linear_dq and linear_dkv with each context row read once a subgroup must equal the plain
        // pieces bit for bit (output and d qkv): dim_head 32 over 300 pixels (partial pixel blocks), dim_head 7
        // (a context row padded past d), several heads a window
        for pr in [
            Problem { b: 2, heads: 3, dim_head: 32, h: 15, w: 20 },
            Problem { b: 1, heads: 2, dim_head: 7, h: 5, w: 9 },
        ] {
            let shape = pr.shape();
            let x =
                Tensor::from_slice(&crate::rng::Rng::new(43).uniform_vec(numel(&shape), -2.0, 2.0), &shape).unwrap();
            let run = |plain: bool| {
                crate::ops::PLAIN_WINDOWS.with(|p| p.set(plain));
                crate::ops::work::start();
                let out = linear_attention(&x, pr.heads, pr.dim_head).unwrap().to_vec();
                let g = gradient(&x, 44, &|t| linear_attention(t, pr.heads, pr.dim_head).unwrap());
                let kernels: Vec<String> = crate::ops::work::stop().into_iter().flat_map(|c| c.kernels).collect();
                crate::ops::PLAIN_WINDOWS.with(|p| p.set(false));
                (out, g, kernels)
            };
            let what = format!("heads {} dim_head {} n {}", pr.heads, pr.dim_head, pr.h * pr.w);
            let ((o0, g0, k0), (o1, g1, k1)) = (run(true), run(false));
            let pieces = |k: &[String]| {
                k.iter()
                    .filter(|k| ["linear_out", "linear_dq", "linear_dkv"].iter().any(|n| k.contains(n)))
                    .cloned()
                    .collect::<Vec<_>>()
            };
            assert!(pieces(&k0).len() >= 3 && pieces(&k0).iter().all(|k| !k.contains("SG=")), "{what}: {k0:?}");
            if crate::ops::window_subgroup_lanes(64).is_some() {
                assert!(pieces(&k1).iter().all(|k| k.contains("SG=")), "{what}: {k1:?}");
            }
            assert!(o0 == o1, "{what}: output, subgroup pieces differ from the plain ones");
            assert!(g0 == g1, "{what}: d qkv, subgroup pieces differ from the plain ones");
        }
    }

    #[test]
    fn fused_linear_attention_equals_the_composed_one() {
        let problems = [
            // dim_head 64: 16 value blocks of one vec4; 300 pixels, some invocations with 5, some with 4
            Problem { b: 1, heads: 1, dim_head: 64, h: 15, w: 20 },
            // 16 heads of dim_head 32 take two windows of 15 head blocks; 4 value blocks of two vec4
            Problem { b: 2, heads: 8, dim_head: 32, h: 3, w: 3 },
            // dim_head 7 (rows padded to 8), 4,161 pixels: two chunks, the second of 65 pixels (one invocation
            // with two, 63 with one)
            Problem { b: 1, heads: 2, dim_head: 7, h: 19, w: 219 },
            // dim_head 64 over 11,200 pixels: three chunks, the last of 3,008
            Problem { b: 1, heads: 1, dim_head: 64, h: 112, w: 100 },
            // the tiny preset's shape
            Problem { b: 2, heads: 2, dim_head: 16, h: 32, w: 32 },
            // dim_head 7 over 300 pixels: the context's quad path (n % 4 == 0) with a value block past d
            Problem { b: 1, heads: 2, dim_head: 7, h: 12, w: 25 },
        ];
        // (n % 4 == 0 takes the context kernel's quad path: 300, 11,200 and 1,024 pixels; the others one pixel a
        // step)
        for pr in &problems {
            fused_equals_composed(pr, linear_attention, linear_attention_composed, "linear attention");
        }
    }

    #[test]
    fn fused_linear_attention_over_65535_workgroups() {
        // 8 heads of dim_head 1 over 524,289 pixels: the per-pixel kernels launch 65,537 workgroups of 64, and
        // each head's 129 chunks leave the merge 8,256 partials
        let (heads, n) = (8, 524_289);
        let shape = [1, 3 * heads, 1, n];
        let v = crate::rng::Rng::new(5).uniform_vec(numel(&shape), -2.0, 2.0);
        let x = Tensor::from_slice(&v, &shape).unwrap();
        let want = cpu::linear_attention(&to_f64(&v), &shape, heads, 1);
        let what = "linear attention, 8 heads of 524,289 pixels";
        assert_close(&linear_attention(&x, heads, 1).unwrap().to_vec(), &want, 1e-5, 1e-4, what);
        // dim_head 1 in closed form: q̂ = 1, k̂ = softmax_j(k), C = Σ_j k̂_j·v_j, out_i = C; so dC = Σ_i dout_i,
        // dq = 0, dv_j = k̂_j·dC, dk_j = k̂_j·dC·(v_j − C). (The composed path cannot serve as the reference here:
        // its softmax and GEMM loop over all the pixels in one invocation, past llvmpipe's loop limit.)
        let gout = crate::rng::Rng::new(42).uniform_vec(heads * n, -1.0, 1.0);
        let mut want = vec![0.0; 3 * heads * n];
        for h in 0..heads {
            let (k, vv) = (&to_f64(&v[(heads + h) * n..][..n]), &to_f64(&v[(2 * heads + h) * n..][..n]));
            let m = k.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = k.iter().map(|k| (k - m).exp()).sum();
            let kh: Vec<f64> = k.iter().map(|k| (k - m).exp() / z).collect();
            let c: f64 = kh.iter().zip(vv).map(|(a, b)| a * b).sum();
            let dc: f64 = gout[h * n..][..n].iter().map(|&g| g as f64).sum();
            for j in 0..n {
                want[(heads + h) * n + j] = kh[j] * dc * (vv[j] - c);
                want[(2 * heads + h) * n + j] = kh[j] * dc;
            }
        }
        let got = gradient(&x, 42, &|t| linear_attention(t, heads, 1).unwrap());
        assert_close(&got, &want, 1e-6, 1e-3, &format!("d qkv of {what}"));
    }

    #[test]
    fn attention_rejects_bad_qkv_channels() {
        let x = Tensor::zeros(&[1, 20, 2, 2]);
        let err = full_attention(&x, 2, 4).unwrap_err().to_string();
        assert!(err.contains("[1, 20, 2, 2]") && err.contains("3·2·4 = 24"), "{err}");
        let err = linear_attention(&Tensor::zeros(&[20, 2, 2]), 2, 4).unwrap_err().to_string();
        assert!(err.contains("[20, 2, 2]"), "{err}");
    }

    #[test]
    fn debug_attention_uniform_keys() {
        // k = 0: every key scores the same, so full attention averages v over the pixels;
        // q = k = 0 in linear attention: q̂ = 1/d, k̂ = 1/n, out[e, p] = scale · mean_p v[e, ·].
        let (heads, d, h, w) = (1, 2, 1, 3);
        let mut v = vec![0.0f32; 3 * heads * d * h * w];
        v[12..].copy_from_slice(&[1.0, 2.0, 6.0, -3.0, 0.0, 3.0]);
        let x = Tensor::from_slice(&v, &[1, 6, 1, 3]).unwrap();
        let full = full_attention(&x, heads, d).unwrap().to_vec();
        let lin = linear_attention(&x, heads, d).unwrap().to_vec();
        println!("full_attention = {full:?}\nlinear_attention = {lin:?}");
        assert_close(&full, &[3.0, 3.0, 3.0, 0.0, 0.0, 0.0], 1e-6, 1e-6, "full: mean of v");
        let s = 0.5f64.sqrt();
        assert_close(&lin, &[3.0 * s, 3.0 * s, 3.0 * s, 0.0, 0.0, 0.0], 1e-6, 1e-6, "linear: scale · mean of v");
    }
}
