//! Layout ops: move elements without arithmetic. concat, chunk / narrow, permute, pixel (un)shuffle and
//! nearest 2× upsampling.
//!
//! Forward / backward:
//! - concat along `axis`: out = [x₀ | x₁ | …];  dxₖ = the slab of g that xₖ filled (a narrow of g).
//! - narrow (and chunk, n equal narrows): out = x[.., start..start+len, ..];  dx = zeros with g scattered back.
//! - permute: out[i₀..] = x[i_perm⁻¹..];  dx = permute(g, perm⁻¹).
//! - pixel_unshuffle 'b c (h r1) (w r2) -> b (c r1 r2) h w' and pixel_shuffle its inverse: each is the
//!   other's backward.
//! - upsample_nearest2x: y[.., Y, X] = x[.., Y/2, X/2];  dx = Σ of each 2×2 block of g.
//!
//! Shaders: layout/strided_copy.wgsl (one general ≤ 4-D strided copy for concat, narrow, permute and their
//! backwards), layout/pixel_shuffle.wgsl (entries `unshuffle`, `shuffle`), layout/upsample_nearest.wgsl
//! (entries `forward`, `backward`). Nothing is saved for backward except shapes.
//!
//! Every op views the tensor as (outer, axis, inner): outer = Π dims before `axis`, inner = Π dims after it,
//! so one code path serves any axis.

use bytemuck::{Pod, Zeroable};

use super::index::{split3, strides_of};
use super::{groups_1d, launch};
use crate::gpu::Shader;
use crate::tensor::{numel, Tensor};
use crate::{autograd, shader, shape_err, Result};

const STRIDED_COPY: Shader = shader!("layout/strided_copy.wgsl");
const STRIDED_COPY_VEC4: Shader = shader!("layout/strided_copy_vec4.wgsl");
const TRANSPOSE_VEC4: Shader = shader!("layout/transpose_vec4.wgsl");
const PIXEL_SHUFFLE: Shader = shader!("layout/pixel_shuffle.wgsl");
const UPSAMPLE_NEAREST: Shader = shader!("layout/upsample_nearest.wgsl");

/// Mirrors `struct Params` in strided_copy.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CopyParams {
    shape: [u32; 4],
    src_st: [u32; 4],
    dst_st: [u32; 4],
    src_off: u32,
    dst_off: u32,
    n: u32,
    _pad: u32,
}

/// Mirrors `struct Params` in pixel_shuffle.wgsl: the *small* side's channels c and size h × w.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ShuffleParams {
    b: u32,
    c: u32,
    h: u32,
    w: u32,
    r: u32,
    n: u32,
    _pad: [u32; 2],
}

/// Mirrors `struct Params` in upsample_nearest.wgsl: nc = N·C, (h, w) = input size, n = elements written.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct UpsampleParams {
    nc: u32,
    h: u32,
    w: u32,
    n: u32,
}

/// One strided copy, described in the caller's own index space: `dims[k] = (size, src stride, dst stride)`.
/// `acc` adds into dst instead of overwriting it.
struct CopySpec<'a> {
    dims: &'a [(usize, usize, usize)],
    src_off: usize,
    dst_off: usize,
    acc: bool,
}

/// Encode `dst[dst_off + Σ i·dst_st] (+)= src[src_off + Σ i·src_st]` (strided_copy.wgsl, or its vec4 twin when
/// the innermost axis is contiguous and everything is a multiple of 4), not taped.
/// Size-1 axes are dropped and neighbours contiguous in both src and dst merged, so any rank ≤ 4 fits.
fn copy_raw(op: &'static str, src: &Tensor, dst: &Tensor, c: CopySpec) -> Result<()> {
    let dims: Vec<(usize, [usize; 2])> = c.dims.iter().map(|&(n, s, d)| (n, [s, d])).collect();
    let sp = super::index::pack4(op, &dims)?;
    let (mut shape, mut src_st, mut dst_st) = (sp.shape, sp.strides[0], sp.strides[1]);
    let (mut src_off, mut dst_off) = (c.src_off as u32, c.dst_off as u32);
    // vec4 when axis 3 is contiguous in both and every offset, stride and the row length are multiples of 4
    let vec4 = src_st[3] == 1
        && dst_st[3] == 1
        && shape[3] % 4 == 0
        && [src_off, dst_off].iter().chain(&src_st[..3]).chain(&dst_st[..3]).all(|v| v % 4 == 0);
    let shader = if vec4 {
        shape[3] /= 4;
        for st in [&mut src_st, &mut dst_st] {
            for v in &mut st[..3] {
                *v /= 4;
            }
        }
        (src_off, dst_off) = (src_off / 4, dst_off / 4);
        STRIDED_COPY_VEC4
    } else {
        STRIDED_COPY
    };
    let n = shape.iter().map(|&v| v as usize).product::<usize>();
    let overrides = [
        ("ACC", f64::from(u8::from(c.acc))),
        ("S1", shape[1] as f64),
        ("S2", shape[2] as f64),
        ("S3", shape[3] as f64),
    ];
    let p = CopyParams { shape, src_st, dst_st, src_off, dst_off, n: n as u32, _pad: 0 };
    launch(shader, "main", &overrides, &p, &[src], &[dst], groups_1d(n));
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// concat / narrow / chunk

/// `x[.., start..start+len, ..]` along `axis` into a new tensor, not taped.
pub(crate) fn narrow_raw(x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
    let (outer, n, inner) = split3(x.shape(), axis);
    let mut shape = x.shape().to_vec();
    shape[axis] = len;
    let out = Tensor::uninit(&shape);
    // index space (outer, len, inner): source rows are n long, destination rows len long
    let dims = [(outer, n * inner, len * inner), (len, inner, inner), (inner, 1, 1)];
    copy_raw("narrow", x, &out, CopySpec { dims: &dims, src_off: start * inner, dst_off: 0, acc: false })?;
    Ok(out)
}

/// Copy `part` into `out` at `start` along `axis` (the inverse of `narrow_raw`), or with `acc` add it there in
/// place (how the autograd tape adds narrow's gradient, g for one slab and zero elsewhere, into the input's
/// gradient without a zero-padded copy). Not taped.
pub(crate) fn place_raw(part: &Tensor, out: &Tensor, axis: usize, start: usize, acc: bool) -> Result<()> {
    let (outer, len, inner) = split3(part.shape(), axis);
    let n = out.shape()[axis];
    let dims = [(outer, len * inner, n * inner), (len, inner, inner), (inner, 1, 1)];
    let op = if acc { "narrow backward" } else { "concat" };
    copy_raw(op, part, out, CopySpec { dims: &dims, src_off: 0, dst_off: start * inner, acc })
}

/// Join tensors along `axis`; every other dimension must agree. Backward hands each input its slab of g.
pub fn concat(xs: &[&Tensor], axis: usize) -> Result<Tensor> {
    let Some(first) = xs.first() else { return shape_err!("concat", "needs at least one tensor") };
    let shape0 = first.shape();
    if axis >= shape0.len() {
        return shape_err!("concat", "axis {axis} out of range for shape {shape0:?}");
    }
    for x in &xs[1..] {
        let s = x.shape();
        let same_rest = s.len() == shape0.len() && (0..s.len()).all(|d| d == axis || s[d] == shape0[d]);
        if !same_rest {
            return shape_err!("concat", "shapes {shape0:?} and {s:?} differ outside axis {axis}");
        }
    }
    let mut shape = shape0.to_vec();
    shape[axis] = xs.iter().map(|x| x.shape()[axis]).sum();
    let out = Tensor::uninit(&shape);
    // each input writes its own slab; together they cover every output element
    let mut starts = Vec::with_capacity(xs.len());
    let mut start = 0;
    for x in xs {
        place_raw(x, &out, axis, start, false)?;
        starts.push((start, x.shape()[axis]));
        start += x.shape()[axis];
    }
    autograd::record("concat", xs, &out, move |g, needs| {
        // dxₖ = g[.., startₖ..startₖ+lenₖ, ..]
        starts
            .iter()
            .zip(needs)
            .map(|(&(s, l), &need)| if need { narrow_raw(g, axis, s, l).map(Some) } else { Ok(None) })
            .collect()
    });
    Ok(out)
}

/// `x[.., start..start+len, ..]` along `axis`, as a new tensor. Backward adds g into that slab of x's gradient
/// (the tape's `record_slab` and `place_raw`).
pub fn narrow(x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
    let shape = x.shape();
    if axis >= shape.len() {
        return shape_err!("narrow", "axis {axis} out of range for shape {shape:?}");
    }
    if len == 0 || start + len > shape[axis] {
        return shape_err!(
            "narrow",
            "range {start}..{} is empty or past the end of axis {axis} of {shape:?}",
            start + len
        );
    }
    let out = narrow_raw(x, axis, start, len)?;
    // dx = zeros with g in the narrowed slab: the tape adds g into that slab of x's gradient in place
    // (`place_raw` with `acc`), so chunk's n parts fill one gradient buffer instead of n zero-padded ones
    autograd::record_slab("narrow", x, &out, axis, start);
    Ok(out)
}

/// Split `x` into `n` equal parts along `axis` (as torch.chunk when the size divides evenly).
pub fn chunk(x: &Tensor, n: usize, axis: usize) -> Result<Vec<Tensor>> {
    let shape = x.shape();
    if axis >= shape.len() {
        return shape_err!("chunk", "axis {axis} out of range for shape {shape:?}");
    }
    if n == 0 || !shape[axis].is_multiple_of(n) {
        return shape_err!(
            "chunk",
            "axis {axis} of {shape:?} (size {}) is not divisible into {n} equal parts",
            shape[axis]
        );
    }
    let len = shape[axis] / n;
    (0..n).map(|k| narrow(x, axis, k * len, len)).collect()
}

// ---------------------------------------------------------------------------------------------------------
// permute

fn permute_raw(x: &Tensor, perm: &[usize]) -> Result<Tensor> {
    let st = strides_of(x.shape());
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    let out = Tensor::uninit(&shape);
    // a batch of matrix transposes (leading axes in place, the last two swapped) with both sides multiples of
    // 4: 4×4 blocks as vec4s (transpose_vec4.wgsl) instead of one strided float per invocation
    let k = perm.len();
    let (r, c) = (x.shape()[k.max(2) - 2], x.shape()[k - 1]);
    let last2 = k >= 2 && perm[k - 2] == k - 1 && perm[k - 1] == k - 2 && (0..k - 2).all(|i| perm[i] == i);
    if last2 && r.is_multiple_of(4) && c.is_multiple_of(4) {
        let batch = numel(&x.shape()[..k - 2]);
        let n = batch * (r / 4) * (c / 4);
        let p = [batch as u32, (r / 4) as u32, (c / 4) as u32, n as u32];
        launch(TRANSPOSE_VEC4, "main", &[], &p, &[x], &[&out], n.div_ceil(64) as u32);
        return Ok(out);
    }
    // walk the output contiguously; output axis i reads input axis perm[i]
    let out_st = strides_of(&shape);
    let dims: Vec<(usize, usize, usize)> = (0..perm.len()).map(|i| (shape[i], st[perm[i]], out_st[i])).collect();
    copy_raw("permute", x, &out, CopySpec { dims: &dims, src_off: 0, dst_off: 0, acc: false })?;
    Ok(out)
}

/// The transpose of the last two axes, materialised (any rank ≥ 2), not taped: matmul uses it to feed its vec4
/// rung, which reads untransposed rows.
pub(crate) fn transpose_last2_raw(x: &Tensor) -> Result<Tensor> {
    let s = x.shape();
    let (r, c) = (s[s.len() - 2], s[s.len() - 1]);
    let batch = numel(&s[..s.len() - 2]);
    let mut shape = s.to_vec();
    let k = shape.len();
    shape.swap(k - 2, k - 1);
    permute_raw(&x.detach().reshape(&[batch, r, c])?, &[0, 2, 1])?.reshape(&shape)
}

/// Reorder axes: output axis i is input axis `perm[i]` (torch.permute), rank ≤ 4. Backward permutes back.
pub fn permute(x: &Tensor, perm: &[usize]) -> Result<Tensor> {
    let r = x.rank();
    let mut seen = vec![false; r];
    let valid = perm.len() == r && perm.iter().all(|&p| p < r && !std::mem::replace(&mut seen[p], true));
    if !valid {
        return shape_err!("permute", "{perm:?} is not a permutation of the {r} axes of {:?}", x.shape());
    }
    if r > 4 {
        return shape_err!("permute", "rank {r} of {:?} is above the supported 4", x.shape());
    }
    let out = permute_raw(x, perm)?;
    let mut inv = vec![0; r];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    autograd::record("permute", &[x], &out, move |g, _| Ok(vec![Some(permute_raw(g, &inv)?)]));
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------
// pixel shuffle

/// Launch one direction of pixel_shuffle.wgsl; (b, c, h, w) name the small side (see the shader header).
fn shuffle_raw(entry: &'static str, x: &Tensor, out_shape: [usize; 4], small: [usize; 4], r: usize) -> Tensor {
    let out = Tensor::uninit(&out_shape);
    let n = numel(&out_shape);
    let [b, c, h, w] = small.map(|v| v as u32);
    let p = ShuffleParams { b, c, h, w, r: r as u32, n: n as u32, _pad: [0; 2] };
    let ov = [("C", c as f64), ("H", h as f64), ("W", w as f64), ("R", r as f64)];
    launch(PIXEL_SHUFFLE, entry, &ov, &p, &[x], &[&out], groups_1d(n));
    out
}

/// (B, C, H·r, W·r) -> (B, C·r², H, W), channel c·r² + r1·r + r2 (torch.nn.PixelUnshuffle). Backward: shuffle.
pub fn pixel_unshuffle(x: &Tensor, r: usize) -> Result<Tensor> {
    let s = x.shape();
    if s.len() != 4 || r == 0 || !s[2].is_multiple_of(r) || !s[3].is_multiple_of(r) {
        return shape_err!("pixel_unshuffle", "needs (N, C, H, W) with H and W divisible by r = {r}, got {s:?}");
    }
    let small = [s[0], s[1], s[2] / r, s[3] / r];
    let out = shuffle_raw("unshuffle", x, [s[0], s[1] * r * r, s[2] / r, s[3] / r], small, r);
    let in_shape = [s[0], s[1], s[2], s[3]];
    autograd::record("pixel_unshuffle", &[x], &out, move |g, _| {
        Ok(vec![Some(shuffle_raw("shuffle", g, in_shape, small, r))])
    });
    Ok(out)
}

/// (B, C·r², H, W) -> (B, C, H·r, W·r), the inverse of [`pixel_unshuffle`] (torch.nn.PixelShuffle).
pub fn pixel_shuffle(x: &Tensor, r: usize) -> Result<Tensor> {
    let s = x.shape();
    if s.len() != 4 || r == 0 || !s[1].is_multiple_of(r * r) {
        return shape_err!(
            "pixel_shuffle",
            "needs (N, C·r², H, W) with channels divisible by r² = {}, got {s:?}",
            r * r
        );
    }
    let small = [s[0], s[1] / (r * r), s[2], s[3]];
    let out = shuffle_raw("shuffle", x, [s[0], s[1] / (r * r), s[2] * r, s[3] * r], small, r);
    let in_shape = [s[0], s[1], s[2], s[3]];
    autograd::record("pixel_shuffle", &[x], &out, move |g, _| {
        Ok(vec![Some(shuffle_raw("unshuffle", g, in_shape, small, r))])
    });
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------
// nearest upsampling

/// (N, C, H, W) -> (N, C, 2H, 2W), each pixel repeated over a 2×2 block. Backward sums each block of g.
pub fn upsample_nearest2x(x: &Tensor) -> Result<Tensor> {
    let s = x.shape();
    if s.len() != 4 {
        return shape_err!("upsample_nearest2x", "needs (N, C, H, W), got {s:?}");
    }
    let (nc, h, w) = (s[0] * s[1], s[2], s[3]);
    let out = Tensor::uninit(&[s[0], s[1], 2 * h, 2 * w]);
    let n_out = nc * 4 * h * w;
    let p = UpsampleParams { nc: nc as u32, h: h as u32, w: w as u32, n: n_out as u32 };
    let ov = [("H", h as f64), ("W", w as f64)];
    launch(UPSAMPLE_NEAREST, "forward", &ov, &p, &[x], &[&out], groups_1d(n_out));
    let in_shape = s.to_vec();
    autograd::record("upsample_nearest2x", &[x], &out, move |g, _| {
        let dx = Tensor::uninit(&in_shape);
        let p = UpsampleParams { n: (nc * h * w) as u32, ..p };
        launch(UPSAMPLE_NEAREST, "backward", &ov, &p, &[g], &[&dx], groups_1d(nc * h * w));
        Ok(vec![Some(dx)])
    });
    Ok(out)
}

/// The f64 reference: plain index loops, written from the math in the module doc.
pub mod cpu {
    use super::split3;
    /// out[o, Σ_{k'<k} len_k' + a, i] = x_k[o, a, i]
    pub fn concat(xs: &[(&[f64], &[usize])], axis: usize) -> Vec<f64> {
        let (outer, _, inner) = split3(xs[0].1, axis);
        let mut out = Vec::new();
        for o in 0..outer {
            for (x, shape) in xs {
                let len = shape[axis];
                out.extend_from_slice(&x[o * len * inner..(o + 1) * len * inner]);
            }
        }
        out
    }

    /// out[o, a, i] = x[o, start + a, i] for a < len
    pub fn narrow(x: &[f64], shape: &[usize], axis: usize, start: usize, len: usize) -> Vec<f64> {
        let (outer, n, inner) = split3(shape, axis);
        let mut out = Vec::with_capacity(outer * len * inner);
        for o in 0..outer {
            out.extend_from_slice(&x[(o * n + start) * inner..(o * n + start + len) * inner]);
        }
        out
    }

    /// `out[j₀, j₁, ..] = x[i]` with `i_{perm[k]} = j_k`
    pub fn permute(x: &[f64], shape: &[usize], perm: &[usize]) -> Vec<f64> {
        let r = shape.len();
        let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        let mut out = vec![0.0; x.len()];
        for (o, v) in out.iter_mut().enumerate() {
            // unravel o over the output shape, then place each coordinate on its input axis
            let (mut rem, mut idx) = (o, vec![0; r]);
            for k in (0..r).rev() {
                idx[perm[k]] = rem % out_shape[k];
                rem /= out_shape[k];
            }
            let i = (0..r).fold(0, |acc, d| acc * shape[d] + idx[d]);
            *v = x[i];
        }
        out
    }

    /// y[b, c·r² + r1·r + r2, h, w] = x[b, c, h·r + r1, w·r + r2];  shape = x's (B, C, H·r, W·r)
    pub fn pixel_unshuffle(x: &[f64], shape: &[usize], r: usize) -> Vec<f64> {
        let (bn, c, hh, ww) = (shape[0], shape[1], shape[2] / r, shape[3] / r);
        let mut y = vec![0.0; x.len()];
        for b in 0..bn {
            for ci in 0..c {
                for r1 in 0..r {
                    for r2 in 0..r {
                        for h in 0..hh {
                            for w in 0..ww {
                                let cc = ci * r * r + r1 * r + r2;
                                y[((b * c * r * r + cc) * hh + h) * ww + w] =
                                    x[((b * c + ci) * hh * r + h * r + r1) * ww * r + w * r + r2];
                            }
                        }
                    }
                }
            }
        }
        y
    }

    /// y[b, c, h·r + r1, w·r + r2] = x[b, c·r² + r1·r + r2, h, w];  shape = x's (B, C·r², H, W)
    pub fn pixel_shuffle(x: &[f64], shape: &[usize], r: usize) -> Vec<f64> {
        let (bn, c, hh, ww) = (shape[0], shape[1] / (r * r), shape[2], shape[3]);
        let mut y = vec![0.0; x.len()];
        for b in 0..bn {
            for ci in 0..c {
                for r1 in 0..r {
                    for r2 in 0..r {
                        for h in 0..hh {
                            for w in 0..ww {
                                let cc = ci * r * r + r1 * r + r2;
                                y[((b * c + ci) * hh * r + h * r + r1) * ww * r + w * r + r2] =
                                    x[((b * c * r * r + cc) * hh + h) * ww + w];
                            }
                        }
                    }
                }
            }
        }
        y
    }

    /// y[n, c, Y, X] = x[n, c, Y/2, X/2]
    pub fn upsample_nearest2x(x: &[f64], shape: &[usize]) -> Vec<f64> {
        let (nc, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
        let mut y = vec![0.0; 4 * x.len()];
        for p in 0..nc {
            for yy in 0..2 * h {
                for xx in 0..2 * w {
                    y[(p * 2 * h + yy) * 2 * w + xx] = x[(p * h + yy / 2) * w + xx / 2];
                }
            }
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, check_grads, random, to_f64, Input};

    /// (shape of each part, axis) concat cases: channels of NCHW, first, last, size-1 parts, three parts.
    const CONCAT_CASES: &[(&[&[usize]], usize)] = &[
        (&[&[2, 3, 4, 5], &[2, 5, 4, 5]], 1),
        (&[&[1, 3, 2, 2], &[2, 3, 2, 2]], 0),
        (&[&[2, 3, 7], &[2, 3, 1], &[2, 3, 4]], 2),
        (&[&[3, 1, 1, 1], &[3, 1, 1, 1]], 1),
        (&[&[5], &[300]], 0),
    ];

    #[test]
    fn concat_matches_cpu_on_every_axis() {
        for (ci, &(parts, axis)) in CONCAT_CASES.iter().enumerate() {
            let ups: Vec<(Vec<f32>, Tensor)> =
                parts.iter().enumerate().map(|(k, s)| random(s, 10 * ci as u64 + k as u64)).collect();
            let ts: Vec<&Tensor> = ups.iter().map(|u| &u.1).collect();
            let got = concat(&ts, axis).unwrap();
            let x64: Vec<Vec<f64>> = ups.iter().map(|u| to_f64(&u.0)).collect();
            let refs: Vec<(&[f64], &[usize])> = x64.iter().zip(parts.iter()).map(|(x, s)| (&x[..], *s)).collect();
            assert_close(&got.to_vec(), &cpu::concat(&refs, axis), 0.0, 0.0, &format!("concat {parts:?} axis {axis}"));
        }
    }

    #[test]
    fn concat_gradients_match_finite_differences() {
        for &(parts, axis) in CONCAT_CASES.iter().take(4) {
            let ins: Vec<Input> =
                parts.iter().enumerate().map(|(k, s)| Input::uniform(s, -1.0, 1.0, 30 + k as u64)).collect();
            check_grads(
                &format!("concat {parts:?} axis {axis}"),
                &ins,
                |x| concat(&x.iter().collect::<Vec<_>>(), axis),
                |x| cpu::concat(&x.iter().zip(parts.iter()).map(|(v, s)| (&v[..], *s)).collect::<Vec<_>>(), axis),
            );
        }
    }

    #[test]
    fn transpose_last2_matches_cpu_in_blocks_and_elementwise() {
        // multiples of 4 take transpose_vec4.wgsl (one 4×4 block, several, a batch, rank 4); others the strided copy.
        // (transpose_vec4 moves 16 floats per invocation, so 65,536 workgroups of 64 would need 268 MB operands,
        // above llvmpipe's 128 MiB binding limit.)
        for shape in
            [[1usize, 4, 4], [3, 8, 12], [2, 5, 8], [1, 7, 3]].iter().map(|s| s.to_vec()).chain([vec![2, 3, 16, 20]])
        {
            let (v, x) = random(&shape, 17);
            let k = shape.len();
            let mut perm: Vec<usize> = (0..k).collect();
            perm.swap(k - 2, k - 1);
            let got = transpose_last2_raw(&x).unwrap();
            let want_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
            assert_eq!(got.shape(), &want_shape[..]);
            assert_close(&got.to_vec(), &cpu::permute(&to_f64(&v), &shape, &perm), 0.0, 0.0, &format!("{shape:?}"));
        }
    }

    #[test]
    fn narrow_matches_cpu_and_its_gradient_scatters() {
        // (shape, axis, start, len): middle slab, first element, the whole axis, an inner axis
        let cases: &[(&[usize], usize, usize, usize)] =
            &[(&[2, 9, 3, 2], 1, 3, 4), (&[4, 5], 0, 0, 1), (&[3, 7], 1, 0, 7), (&[2, 3, 5, 6], 3, 5, 1)];
        for &(shape, axis, start, len) in cases {
            let (v, x) = random(shape, 7);
            let got = narrow(&x, axis, start, len).unwrap().to_vec();
            assert_close(
                &got,
                &cpu::narrow(&to_f64(&v), shape, axis, start, len),
                0.0,
                0.0,
                &format!("narrow {shape:?}"),
            );
            check_grads(
                &format!("narrow {shape:?} axis {axis} {start}+{len}"),
                &[Input::uniform(shape, -1.0, 1.0, 8)],
                |x| narrow(&x[0], axis, start, len),
                |x| cpu::narrow(&x[0], shape, axis, start, len),
            );
        }
    }

    #[test]
    fn narrow_gradient_accumulates_into_a_shared_slot_without_writing_through_it() {
        // n = narrow(x) is taped before s = x + c, so backward meets s first: add hands one gradient buffer
        // to both x and c. narrow's slab must then not be added into that buffer in place (c's gradient would
        // change too); a second narrow of an overlapping range adds into the same slab. Chunk widths of 4 take
        // the vec4 copy, widths of 3 the scalar one.
        for (shape, (s1, l1), (s2, l2)) in [([2, 8, 3], (4, 4), (2, 4)), ([3, 5, 2], (1, 3), (2, 3))] {
            let sh: &[usize] = &shape;
            let f = |x: &[Tensor]| -> Result<Tensor> {
                let n1 = narrow(&x[0], 1, s1, l1)?;
                let n2 = narrow(&x[0], 1, s2, l2)?;
                let s = crate::ops::elementwise::add(&x[0], &x[1])?;
                concat(&[&s, &n1, &n2], 1)
            };
            let cpu_f = |x: &[Vec<f64>]| {
                let s: Vec<f64> = x[0].iter().zip(&x[1]).map(|(a, b)| a + b).collect();
                let n1 = cpu::narrow(&x[0], sh, 1, s1, l1);
                let n2 = cpu::narrow(&x[0], sh, 1, s2, l2);
                let (m1, m2) = ([shape[0], l1, shape[2]], [shape[0], l2, shape[2]]);
                cpu::concat(&[(&s, sh), (&n1, &m1), (&n2, &m2)], 1)
            };
            check_grads(
                &format!("narrow + add {shape:?}"),
                &[Input::uniform(sh, -1.0, 1.0, 5), Input::uniform(sh, -1.0, 1.0, 6)],
                f,
                cpu_f,
            );
        }
    }

    #[test]
    fn chunk_splits_evenly_and_gradients_reach_every_part() {
        let shape = [2, 6, 3, 5];
        let (v, x) = random(&shape, 3);
        let parts = chunk(&x, 3, 1).unwrap();
        for (k, part) in parts.iter().enumerate() {
            assert_eq!(part.shape(), &[2, 2, 3, 5]);
            assert_close(
                &part.to_vec(),
                &cpu::narrow(&to_f64(&v), &shape, 1, 2 * k, 2),
                0.0,
                0.0,
                &format!("chunk {k}"),
            );
        }
        // rotate the chunks and join them again: every chunk's backward contributes to dx
        let rotated = |x: &[f64]| {
            let p: Vec<Vec<f64>> = (0..3).map(|k| cpu::narrow(x, &shape, 1, 2 * k, 2)).collect();
            let s: &[usize] = &[2, 2, 3, 5];
            cpu::concat(&[(&p[2], s), (&p[0], s), (&p[1], s)], 1)
        };
        check_grads(
            "chunk 3 + concat",
            &[Input::uniform(&shape, -1.0, 1.0, 4)],
            |x| {
                let c = chunk(&x[0], 3, 1)?;
                concat(&[&c[2], &c[0], &c[1]], 1)
            },
            |x| rotated(&x[0]),
        );
    }

    #[test]
    fn permute_matches_cpu_for_every_rank() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[7], &[0]),
            (&[3, 5], &[1, 0]),
            (&[2, 3, 4], &[2, 0, 1]),
            (&[2, 3, 4, 5], &[0, 2, 3, 1]),
            (&[2, 3, 4, 5], &[3, 2, 1, 0]),
            (&[1, 3, 1, 5], &[2, 3, 0, 1]),
        ];
        for &(shape, perm) in cases {
            let (v, x) = random(shape, 5);
            let got = permute(&x, perm).unwrap();
            let want_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
            assert_eq!(got.shape(), &want_shape[..]);
            assert_close(
                &got.to_vec(),
                &cpu::permute(&to_f64(&v), shape, perm),
                0.0,
                0.0,
                &format!("permute {shape:?} {perm:?}"),
            );
            check_grads(
                &format!("permute {shape:?} {perm:?}"),
                &[Input::uniform(shape, -1.0, 1.0, 6)],
                |x| permute(&x[0], perm),
                |x| cpu::permute(&x[0], shape, perm),
            );
        }
    }

    #[test]
    fn pixel_unshuffle_and_shuffle_match_cpu_up_to_r16() {
        // (input shape of unshuffle, r): the model's 2, odd r, r = 16 (the dynamic FF-Parser's patches)
        let cases: &[(&[usize], usize)] =
            &[(&[2, 3, 4, 6], 2), (&[1, 2, 9, 6], 3), (&[1, 1, 1, 1], 1), (&[2, 2, 32, 16], 16)];
        for &(shape, r) in cases {
            let (v, x) = random(shape, 11);
            let y = pixel_unshuffle(&x, r).unwrap();
            assert_eq!(y.shape(), &[shape[0], shape[1] * r * r, shape[2] / r, shape[3] / r]);
            let want = cpu::pixel_unshuffle(&to_f64(&v), shape, r);
            assert_close(&y.to_vec(), &want, 0.0, 0.0, &format!("pixel_unshuffle {shape:?} r {r}"));
            // shuffle inverts unshuffle exactly
            let back = pixel_shuffle(&y, r).unwrap();
            assert_eq!(back.shape(), shape);
            assert_close(&back.to_vec(), &to_f64(&v), 0.0, 0.0, &format!("pixel_shuffle ∘ unshuffle {shape:?} r {r}"));
            assert_close(&back.to_vec(), &cpu::pixel_shuffle(&want, y.shape(), r), 0.0, 0.0, "pixel_shuffle vs cpu");
        }
    }

    #[test]
    fn pixel_shuffle_gradients_match_finite_differences() {
        for &(shape, r) in &[(&[2, 3, 4, 6][..], 2), (&[1, 2, 6, 3][..], 3)] {
            check_grads(
                &format!("pixel_unshuffle {shape:?} r {r}"),
                &[Input::uniform(shape, -1.0, 1.0, 12)],
                |x| pixel_unshuffle(&x[0], r),
                |x| cpu::pixel_unshuffle(&x[0], shape, r),
            );
            let sh = [shape[0], shape[1] * r * r, shape[2] / r, shape[3] / r];
            check_grads(
                &format!("pixel_shuffle {sh:?} r {r}"),
                &[Input::uniform(&sh, -1.0, 1.0, 13)],
                |x| pixel_shuffle(&x[0], r),
                |x| cpu::pixel_shuffle(&x[0], &sh, r),
            );
        }
    }

    #[test]
    fn upsample_nearest2x_matches_cpu_and_sums_blocks_in_backward() {
        for shape in [&[2, 3, 4, 5][..], &[1, 1, 1, 1], &[1, 2, 7, 3]] {
            let (v, x) = random(shape, 14);
            let y = upsample_nearest2x(&x).unwrap();
            assert_eq!(y.shape(), &[shape[0], shape[1], 2 * shape[2], 2 * shape[3]]);
            assert_close(
                &y.to_vec(),
                &cpu::upsample_nearest2x(&to_f64(&v), shape),
                0.0,
                0.0,
                &format!("upsample {shape:?}"),
            );
            check_grads(
                &format!("upsample_nearest2x {shape:?}"),
                &[Input::uniform(shape, -1.0, 1.0, 15)],
                |x| upsample_nearest2x(&x[0]),
                |x| cpu::upsample_nearest2x(&x[0], shape),
            );
        }
    }

    #[test]
    fn strided_copy_over_65535_workgroups() {
        // narrow of 256·65,536 + 1 elements: 65,537 workgroups, folded into y by the launcher.
        let n = 256 * 65_536 + 1;
        let x = Tensor::full(&[1, n + 2], 2.5);
        let y = narrow(&x, 1, 1, n).unwrap().to_vec();
        assert_eq!(y.len(), n);
        assert!(y.iter().all(|&v| v == 2.5), "first bad at {:?}", y.iter().position(|&v| v != 2.5));
    }

    #[test]
    fn layout_ops_reject_bad_shapes() {
        let a = Tensor::zeros(&[2, 3, 4, 4]);
        let err = concat(&[&a, &Tensor::zeros(&[2, 3, 5, 4])], 1).unwrap_err().to_string();
        assert!(err.contains("[2, 3, 4, 4]") && err.contains("[2, 3, 5, 4]"), "{err}");
        let err = chunk(&a, 2, 1).unwrap_err().to_string();
        assert!(err.contains("size 3") && err.contains("2 equal parts"), "{err}");
        let err = narrow(&a, 2, 3, 2).unwrap_err().to_string();
        assert!(err.contains("3..5") && err.contains("[2, 3, 4, 4]"), "{err}");
        let err = pixel_unshuffle(&Tensor::zeros(&[1, 2, 6, 5]), 2).unwrap_err().to_string();
        assert!(err.contains("[1, 2, 6, 5]") && err.contains("r = 2"), "{err}");
        let err = pixel_shuffle(&Tensor::zeros(&[1, 6, 2, 2]), 2).unwrap_err().to_string();
        assert!(err.contains("[1, 6, 2, 2]") && err.contains("r² = 4"), "{err}");
        let err = permute(&a, &[0, 1, 1, 2]).unwrap_err().to_string();
        assert!(err.contains("[0, 1, 1, 2]"), "{err}");
        let err = upsample_nearest2x(&Tensor::zeros(&[3, 4])).unwrap_err().to_string();
        assert!(err.contains("[3, 4]"), "{err}");
    }

    #[test]
    fn debug_pixel_unshuffle_2x2() {
        // one 4×4 channel holding 0..16: each output channel is one of the four 2×2 phases
        let x = Tensor::from_slice(&(0..16).map(|v| v as f32).collect::<Vec<_>>(), &[1, 1, 4, 4]).unwrap();
        let y = pixel_unshuffle(&x, 2).unwrap().to_vec();
        println!("pixel_unshuffle r=2 of 0..16 (1,1,4,4) -> (1,4,2,2): {y:?}");
        assert_eq!(y, [0., 2., 8., 10., 1., 3., 9., 11., 4., 6., 12., 14., 5., 7., 13., 15.]);
    }
}
