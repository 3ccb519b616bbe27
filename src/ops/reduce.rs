//! Reductions: sum and mean over any set of axes (shaders/reduce/sum.wgsl), and `sum_to_shape`, which
//! undoes broadcasting in backward passes.
//!
//! Forward: out\[o\] = scale · Σ_r x\[o, r\], scale = 1 (sum) or 1/count (mean).
//! Backward: dx\[o, r\] = scale · g\[o\], a broadcast of g back over the reduced axes (no saved tensors).
//! Two kernels: one workgroup per output with a tree reduction (long sums, few outputs) and one thread per
//! output (short sums, many outputs); the host picks by the sum's length. Long sums whose reduced axes end in
//! a contiguous run of whole vec4s (bias gradients) take two passes instead: sum_rows_vec4.wgsl sums chunks
//! of `ROWS_CHUNK` vec4s of every run, one invocation each and no barrier, and a short sum of the partials
//! follows (bias gradients of (8, 16, 32, 32) to (8, 64, 64, 64): see `medsegdiff bench --filter sum`).
//! Short sums whose kept axes end in a contiguous run of whole vec4s (the dw rungs' split partials) take
//! sum_kept_vec4.wgsl, four outputs an invocation (same sums). Every kernel gets the index spaces' shapes as
//! pipeline constants, so its unravelling divides by constants (by runtime values llvmpipe pays a scalar
//! division per SIMD lane): tiny's train step, sum kernels 40.2 -> 20.9 ms (docs/bench-history.md).

use bytemuck::{Pod, Zeroable};

use super::index::{pack4, strides_of};
use super::{groups_1d, launch};
use crate::gpu::Shader;
use crate::tensor::Tensor;
use crate::{autograd, shader, shape_err, Result};

const SUM: Shader = shader!("reduce/sum.wgsl", "reduce/sum_common.wgsl");
const SUM_KEPT_VEC4: Shader = shader!("reduce/sum_kept_vec4.wgsl", "reduce/sum_common.wgsl");
const SUM_ROWS_VEC4: Shader = shader!("reduce/sum_rows_vec4.wgsl");

/// Sums shorter than this use one thread per output.
const PER_THREAD_MAX: usize = 64;
/// With this many outputs a thread per output fills any adapter, however long the sums: one workgroup per output
/// would pay 8 barrier rounds each (the dw rungs' split partials, (splits, Cout, K) -> (Cout, K): 44 -> ~1 ms).
const PER_THREAD_MIN_OUTPUTS: usize = 1024;
/// Whether this thread runs sum.wgsl's `per_thread` where sum_kept_vec4.wgsl applies (tests compare the two).
fn per_thread_scalar() -> bool {
    #[cfg(test)]
    return SCALAR_SUMS.with(|s| s.get());
    #[cfg(not(test))]
    false
}

#[cfg(test)]
thread_local! {
    static SCALAR_SUMS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// vec4s per invocation of sum_rows_vec4.wgsl (its CHUNK).
const ROWS_CHUNK: usize = 64;

/// Mirrors `struct Params` in sum.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SumParams {
    kshape: [u32; 4],
    kst: [u32; 4],
    rshape: [u32; 4],
    rst: [u32; 4],
    n_out: u32,
    n_red: u32,
    scale: f32,
    /// sum_rows_vec4.wgsl: chunks per run (sum.wgsl: unused).
    nchunk: u32,
}

fn reduce_raw(op: &'static str, x: &Tensor, axes: &[usize], mean: bool) -> Result<Tensor> {
    let n_red: usize = axes.iter().filter_map(|&a| x.shape().get(a)).product();
    reduce_scaled(op, x, axes, if mean { 1.0 / n_red.max(1) as f32 } else { 1.0 })
}

/// scale · Σ over `axes`, reduced axes kept as size 1.
fn reduce_scaled(op: &'static str, x: &Tensor, axes: &[usize], scale: f32) -> Result<Tensor> {
    let shape = x.shape();
    for (i, &a) in axes.iter().enumerate() {
        if a >= shape.len() {
            return shape_err!(op, "axis {a} out of range for shape {shape:?}");
        }
        if axes[..i].contains(&a) {
            return shape_err!(op, "axis {a} is listed twice in {axes:?}");
        }
    }
    let strides = strides_of(shape);
    let kept: Vec<(usize, [usize; 1])> =
        (0..shape.len()).filter(|i| !axes.contains(i)).map(|i| (shape[i], [strides[i]])).collect();
    let red: Vec<(usize, [usize; 1])> =
        (0..shape.len()).filter(|i| axes.contains(i)).map(|i| (shape[i], [strides[i]])).collect();
    let n_out: usize = kept.iter().map(|d| d.0).product();
    let n_red: usize = red.iter().map(|d| d.0).product();
    let (k, r) = (pack4(op, &kept)?, pack4(op, &red)?);
    let (kshape, kst, rshape, rst) = (k.shape, k.strides[0], r.shape, r.strides[0]);
    let out_shape: Vec<usize> = (0..shape.len()).map(|i| if axes.contains(&i) { 1 } else { shape[i] }).collect();
    let mut p = SumParams { kshape, kst, rshape, rst, n_out: n_out as u32, n_red: n_red as u32, scale, nchunk: 0 };
    // long sums whose reduced axes end in a contiguous run of whole vec4s (bias gradients) read rows as vec4
    let rows_vec4 = rst[3] == 1 && rshape[3] % 4 == 0 && kst.iter().chain(&rst[..3]).all(|s| s % 4 == 0);
    // sum.wgsl's shapes as pipeline constants (its unravelling then divides by constants)
    let ov = [
        ("K1", kshape[1] as f64),
        ("K2", kshape[2] as f64),
        ("K3", kshape[3] as f64),
        ("R1", rshape[1] as f64),
        ("R2", rshape[2] as f64),
        ("R3", rshape[3] as f64),
    ];
    if n_red < PER_THREAD_MAX || n_out >= PER_THREAD_MIN_OUTPUTS {
        let out = Tensor::uninit(&out_shape);
        // kept axes ending in a contiguous run of whole vec4s: four outputs an invocation, as vec4 (same sums)
        let kept_vec4 = kst[3] == 1 && kshape[3] % 4 == 0 && kst[..3].iter().chain(&rst).all(|s| s % 4 == 0);
        if kept_vec4 && !per_thread_scalar() {
            launch(SUM_KEPT_VEC4, "main", &ov, &p, &[x], &[&out], groups_1d(n_out / 4));
        } else {
            launch(SUM, "per_thread", &ov, &p, &[x], &[&out], groups_1d(n_out));
        }
        return Ok(out);
    }
    if rows_vec4 {
        // pass 1: a partial per (output, row, chunk of the run); pass 2: scale · Σ of each output's partials
        // (n_red / (4·ROWS_CHUNK) of them, about: per_thread, or these two passes again for huge sums)
        let len = rshape[3] as usize;
        let nchunk = (len / 4).div_ceil(ROWS_CHUNK);
        let m = n_red / len * nchunk;
        p.nchunk = nchunk as u32;
        let part = Tensor::scratch(&[n_out, m]);
        launch(SUM_ROWS_VEC4, "main", &[], &p, &[x], &[&part], groups_1d(n_out * m));
        return reduce_scaled(op, &part, &[1], scale)?.detach().reshape(&out_shape);
    }
    let out = Tensor::uninit(&out_shape);
    launch(SUM, "per_workgroup", &ov, &p, &[x], &[&out], n_out as u32);
    Ok(out)
}

fn reduce(op: &'static str, x: &Tensor, axes: &[usize], keepdim: bool, mean: bool) -> Result<Tensor> {
    let out = reduce_raw(op, x, axes, mean)?;
    let scale = if mean { 1.0 / axes.iter().map(|&a| x.shape()[a]).product::<usize>().max(1) as f32 } else { 1.0 };
    let in_shape = x.shape().to_vec();
    autograd::record(op, &[x], &out, move |g, _| {
        // dx = scale · g broadcast over the reduced axes
        let ones = Tensor::full(&in_shape, scale);
        Ok(vec![Some(super::elementwise::mul_untaped(&ones, g)?)])
    });
    if keepdim {
        Ok(out)
    } else {
        let squeezed: Vec<usize> = (0..x.rank()).filter(|i| !axes.contains(i)).map(|i| x.shape()[i]).collect();
        out.reshape(if squeezed.is_empty() { &[1] } else { &squeezed })
    }
}

/// Σ over `axes`. With `keepdim`, reduced axes stay as size 1.
pub fn sum(x: &Tensor, axes: &[usize], keepdim: bool) -> Result<Tensor> {
    reduce("sum", x, axes, keepdim, false)
}

/// Mean over `axes`.
pub fn mean(x: &Tensor, axes: &[usize], keepdim: bool) -> Result<Tensor> {
    reduce("mean", x, axes, keepdim, true)
}

/// Sum of every element, as a `[1]` tensor.
pub fn sum_all(x: &Tensor) -> Result<Tensor> {
    let axes: Vec<usize> = (0..x.rank()).collect();
    sum(x, &axes, false)
}

/// Mean of every element, as a `[1]` tensor.
pub fn mean_all(x: &Tensor) -> Result<Tensor> {
    let axes: Vec<usize> = (0..x.rank()).collect();
    mean(x, &axes, false)
}

/// Sum `g` down to `shape` (undo NumPy broadcasting): used by backward passes, not taped.
pub fn sum_to_shape(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let r = g.rank();
    if shape.len() > r {
        return shape_err!("sum_to_shape", "cannot reduce {:?} to the larger rank {:?}", g.shape(), shape);
    }
    let lead = r - shape.len();
    let axes: Vec<usize> = (0..r).filter(|&i| i < lead || (shape[i - lead] == 1 && g.shape()[i] != 1)).collect();
    let out = reduce_raw("sum_to_shape", g, &axes, false)?;
    out.detach().reshape(shape)
}

pub mod cpu {
    /// Σ over `axes` (f64), output shape with reduced axes kept as 1.
    pub fn sum(x: &[f64], shape: &[usize], axes: &[usize], mean: bool) -> Vec<f64> {
        let out_shape: Vec<usize> = (0..shape.len()).map(|i| if axes.contains(&i) { 1 } else { shape[i] }).collect();
        let n_out: usize = out_shape.iter().product();
        let mut out = vec![0.0; n_out];
        for (i, &v) in x.iter().enumerate() {
            // unravel i, then ravel into the output with reduced coordinates set to 0
            let (mut rem, mut o, mut stride) = (i, 0, 1);
            for d in (0..shape.len()).rev() {
                let c = rem % shape[d];
                rem /= shape[d];
                if !axes.contains(&d) {
                    o += c * stride;
                }
                stride *= out_shape[d];
            }
            out[o] += v;
        }
        if mean {
            let cnt: usize = axes.iter().map(|&a| shape[a]).product();
            out.iter_mut().for_each(|v| *v /= cnt as f64);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, check_grads, to_f64, Input};

    /// (shape, axes) cases: inner, outer, middle, non-adjacent, all, long sums, size-1 axes.
    const CASES: &[(&[usize], &[usize])] = &[
        (&[3, 5], &[1]),
        (&[3, 5], &[0]),
        (&[2, 3, 4, 5], &[1]),
        (&[2, 3, 4, 5], &[0, 2, 3]),
        (&[2, 3, 4, 5], &[0, 1, 2, 3]),
        (&[7, 1, 300], &[2]),
        (&[1, 1, 1], &[0, 2]),
        (&[5, 129], &[0, 1]),
        (&[3, 4, 5, 8], &[0, 2, 3]), // a bias gradient: rows of 40 contiguous floats, sum_rows_vec4.wgsl
        (&[2, 6, 4, 36], &[0, 2, 3]), // the same with 36 vec4 per row (fewer than a chunk's 64)
        (&[3, 5, 7, 1028], &[0, 2, 3]), // 257 vec4 per row: four whole chunks and a 1-vec4 tail
        (&[2, 3, 40, 1024], &[0, 2, 3]), // 320 partials per output: the two passes run again on them
    ];

    #[test]
    fn sum_and_mean_match_cpu() {
        let mut rng = crate::rng::Rng::new(5);
        for &(shape, axes) in CASES {
            let v = rng.uniform_vec(shape.iter().product(), -1.0, 1.0);
            let x = Tensor::from_slice(&v, shape).unwrap();
            for m in [false, true] {
                let got = if m { mean(&x, axes, true) } else { sum(&x, axes, true) }.unwrap();
                assert_close(
                    &got.to_vec(),
                    &cpu::sum(&to_f64(&v), shape, axes, m),
                    1e-5,
                    1e-5,
                    &format!("{shape:?} {axes:?} mean={m}"),
                );
            }
        }
    }

    #[test]
    fn sum_gradients_match_finite_differences() {
        for &(shape, axes) in CASES.iter().take(6) {
            check_grads(
                &format!("sum {shape:?} {axes:?}"),
                &[Input::uniform(shape, -1.0, 1.0, 9)],
                |x| sum(&x[0], axes, false),
                |x| cpu::sum(&x[0], shape, axes, false),
            );
            check_grads(
                &format!("mean {shape:?} {axes:?}"),
                &[Input::uniform(shape, -1.0, 1.0, 9)],
                |x| mean(&x[0], axes, true),
                |x| cpu::sum(&x[0], shape, axes, true),
            );
        }
    }

    #[test]
    fn sum_over_65535_workgroups() {
        // 16,777,219 outputs of a 1-long sum: per_thread over 65,537 workgroups of 256. (The other kernels
        // cannot get there: per_workgroup and the two-pass rows path run for fewer than 1,024 outputs, and 65,536
        // workgroups of sum_rows_vec4 would read 2^32 values.) Values vary with the output index.
        let n = 65_536 * 256 + 3;
        let v: Vec<f32> = (0..n).map(|i| (i % 5) as f32).collect();
        let x = Tensor::from_slice(&v, &[n, 1]).unwrap();
        let s = sum(&x, &[1], false).unwrap().to_vec();
        assert_eq!(s.len(), n);
        let bad = s.iter().zip(&v).position(|(a, b)| a != b);
        assert!(bad.is_none(), "first bad at {bad:?}");
        // 70,000 outputs of 64- and 65-long sums (per_thread: at least 1,024 outputs)
        for len in [65, 64] {
            let v: Vec<f32> = (0..70_000 * len).map(|i| ((i / len) % 5) as f32).collect();
            let x = Tensor::from_slice(&v, &[70_000, len]).unwrap();
            let s = sum(&x, &[1], false).unwrap().to_vec();
            assert_eq!(s.len(), 70_000);
            let want = |o: usize| ((o % 5) * len) as f32;
            let bad = s.iter().enumerate().position(|(o, &v)| v != want(o));
            assert!(bad.is_none(), "rows of {len}: first bad at {bad:?}");
        }
    }

    #[test]
    fn kept_vec4_sums_give_per_threads_bits() {
        // sum_kept_vec4.wgsl must equal per_thread bit for bit and run where its condition holds: a dw split's
        // partials (64, 2304) -> (2304), kept (3, 8, 12) over the first axis, (2, 3, 4, 5) over axis 1 (kept
        // (2, 20)); a kept run of 10 (not whole vec4s) stays per_thread. (It cannot reach 65,535 workgroups:
        // that is 2^26 outputs, twice llvmpipe's 128 MiB binding.)
        let mut rng = crate::rng::Rng::new(8);
        for (shape, axes, vec4) in [
            (&[64, 2304][..], &[0][..], true),
            (&[3, 8, 12], &[0], true),
            (&[2, 3, 4, 5], &[1], true),
            (&[7, 2, 5], &[0], false),
        ] {
            let x = Tensor::from_slice(&rng.uniform_vec(shape.iter().product(), -1.0, 1.0), shape).unwrap();
            let run = |scalar: bool| {
                SCALAR_SUMS.with(|s| s.set(scalar));
                crate::ops::work::start();
                let y = sum(&x, axes, false).unwrap().to_vec();
                let calls = crate::ops::work::stop();
                SCALAR_SUMS.with(|s| s.set(false));
                (y, calls.iter().flat_map(|c| c.kernels.clone()).collect::<Vec<_>>())
            };
            let ((y0, k0), (y1, k1)) = (run(true), run(false));
            let ran = |k: &[String]| k.iter().any(|k| k.starts_with("reduce/sum_kept_vec4"));
            assert!(!ran(&k0), "{shape:?} {axes:?}: {k0:?}");
            assert_eq!(ran(&k1), vec4, "{shape:?} {axes:?}: {k1:?}");
            assert!(y0 == y1, "{shape:?} {axes:?}: the vec4 sums differ from per_thread's");
        }
    }

    #[test]
    fn sum_rejects_bad_axis() {
        let err = sum(&Tensor::zeros(&[2, 3]), &[2], false).unwrap_err().to_string();
        assert!(err.contains("axis 2") && err.contains("[2, 3]"), "{err}");
        let err = mean(&Tensor::zeros(&[2, 3]), &[1, 1], false).unwrap_err().to_string();
        assert!(err.contains("listed twice"), "{err}");
    }
}
