//! Reductions: sum and mean over any set of axes (shaders/reduce/sum.wgsl), and `sum_to_shape`, which
//! undoes broadcasting in backward passes.
//!
//! Forward: out\[o\] = scale · Σ_r x\[o, r\], scale = 1 (sum) or 1/count (mean).
//! Backward: dx\[o, r\] = scale · g\[o\], a broadcast of g back over the reduced axes (no saved tensors).
//! Two kernels: one workgroup per output with a tree reduction (long sums, few outputs: bias gradients)
//! and one thread per output (short sums, many outputs); the host picks by the sum's length. Long sums whose
//! reduced axes end in a contiguous run of whole vec4s take sum_rows_vec4.wgsl, which walks rows as vec4s
//! instead of unravelling every element (bias gradient of (8, 64, 64, 64): see `medsegdiff bench`).

use bytemuck::{Pod, Zeroable};

use super::index::{pack4, strides_of};
use super::{groups_1d, launch};
use crate::gpu::Shader;
use crate::tensor::Tensor;
use crate::{autograd, shader, shape_err, Result};

const SUM: Shader = shader!("reduce/sum.wgsl");
const SUM_ROWS_VEC4: Shader = shader!("reduce/sum_rows_vec4.wgsl");

/// Sums shorter than this use one thread per output.
const PER_THREAD_MAX: usize = 64;
/// With this many outputs a thread per output fills any adapter, however long the sums: one workgroup per output
/// would pay 8 barrier rounds each (the dw rungs' split partials, (splits, Cout, K) -> (Cout, K): 44 -> ~1 ms).
const PER_THREAD_MIN_OUTPUTS: usize = 1024;

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
    _pad: u32,
}

fn reduce_raw(op: &'static str, x: &Tensor, axes: &[usize], mean: bool) -> Result<Tensor> {
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
    let out = Tensor::uninit(&out_shape);
    let scale = if mean { 1.0 / n_red.max(1) as f32 } else { 1.0 };
    let p = SumParams { kshape, kst, rshape, rst, n_out: n_out as u32, n_red: n_red as u32, scale, _pad: 0 };
    // long sums whose reduced axes end in a contiguous run of whole vec4s (bias gradients) read rows as vec4
    let rows_vec4 = rst[3] == 1 && rshape[3] % 4 == 0 && kst.iter().chain(&rst[..3]).all(|s| s % 4 == 0);
    if n_red < PER_THREAD_MAX || n_out >= PER_THREAD_MIN_OUTPUTS {
        launch(SUM, "per_thread", &[], &p, &[x], &[&out], groups_1d(n_out));
    } else if rows_vec4 {
        launch(SUM_ROWS_VEC4, "main", &[], &p, &[x], &[&out], n_out as u32);
    } else {
        launch(SUM, "per_workgroup", &[], &p, &[x], &[&out], n_out as u32);
    }
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
        (&[2, 6, 4, 36], &[0, 2, 3]), // the same with 36 vec4 per row (fewer than the workgroup's 64 lanes)
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
        // 70,000 outputs with a long sum each => 70,000 workgroups of the per-workgroup kernel.
        // Rows of 65 take sum.wgsl, rows of 64 sum_rows_vec4.wgsl; values vary with the output index.
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
    fn sum_rejects_bad_axis() {
        let err = sum(&Tensor::zeros(&[2, 3]), &[2], false).unwrap_err().to_string();
        assert!(err.contains("axis 2") && err.contains("[2, 3]"), "{err}");
        let err = mean(&Tensor::zeros(&[2, 3]), &[1, 1], false).unwrap_err().to_string();
        assert!(err.contains("listed twice"), "{err}");
    }
}
