//! Normalisation: GroupNorm (as torch.nn.GroupNorm) and the channel LayerNorm of med-seg-diff.
//!
//! Both normalise each *set* S of elements by its own mean and biased variance, then apply a per-channel affine:
//!   mean = Σ_S x / |S|;  var = Σ_S (x − mean)² / |S|;  rstd = 1/sqrt(var + eps);  x̂ = (x − mean)·rstd
//!   y = x̂·γ\[c\] + β\[c\]
//! GroupNorm: S = one (sample, group), C/G channels × H·W pixels. LayerNorm: S = one (sample, pixel), its C channels.
//! Backward, with ĝ = dy·γ\[c\] (the three terms of llm.c's `layernorm_backward`):
//!   dx = rstd·(ĝ − mean_S(ĝ) − x̂·mean_S(ĝ·x̂))     term 1 direct, term 2 through the mean, term 3 through rstd
//!   dγ\[c\] = Σ_{n,hw} dy·x̂;   dβ\[c\] = Σ_{n,hw} dy
//! Forward saves (mean, rstd) per set ("stats"), so the backward rebuilds x̂ from x without reducing again.
//!
//! Shaders (shaders/norm/): `group_norm_forward` and `group_norm_backward` (one workgroup per (sample, group),
//! tree reduction), and their `_vec4` twins for H·W a multiple of 4 (vec4 loads and stores, 64 threads: on
//! llvmpipe a per-lane-address access is issued lane by lane and a barrier switches through all of the
//! workgroup's SIMD coroutines; measured on (8, 64, 64, 64), 32 groups, forward 9.7–10.4 ms -> 4.2–6.0 ms, and
//! in one small-preset training step forward 148 -> 74 ms, backward 167 -> 109 ms); `layer_norm_forward` and
//! `layer_norm_backward` (one thread per pixel: C is small, see the shader header), and their `_vec4` twins for
//! H·W a multiple of 4 (4 pixels a thread, the same sums in the same order; small's training step, layer_norm
//! rows 160 -> 90 ms); `norm_backward_params` (dγ, dβ for both, one workgroup per channel; an override constant
//! says where an element's stats live).

use bytemuck::{Pod, Zeroable};

use super::{groups_1d, launch};
use crate::gpu::Shader;
use crate::tensor::Tensor;
use crate::{autograd, shader, shape_err, Result};

const GN_FORWARD: Shader = shader!("norm/group_norm_forward.wgsl");
const GN_FORWARD_VEC4: Shader = shader!("norm/group_norm_forward_vec4.wgsl");
const GN_BACKWARD: Shader = shader!("norm/group_norm_backward.wgsl");
const GN_BACKWARD_VEC4: Shader = shader!("norm/group_norm_backward_vec4.wgsl");
const LN_FORWARD: Shader = shader!("norm/layer_norm_forward.wgsl");
const LN_FORWARD_VEC4: Shader = shader!("norm/layer_norm_forward_vec4.wgsl");
const LN_BACKWARD: Shader = shader!("norm/layer_norm_backward.wgsl");
const LN_BACKWARD_VEC4: Shader = shader!("norm/layer_norm_backward_vec4.wgsl");
const BACKWARD_PARAMS: Shader = shader!("norm/norm_backward_params.wgsl");

/// Mirrors `struct Params` in group_norm_forward.wgsl and group_norm_backward.wgsl (which ignores `eps`), and in
/// the fused GroupNorm -> modulation -> SiLU kernels (`super::fused`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct GroupNormParams {
    pub(crate) n_sets: u32, // N·G: one workgroup each
    groups: u32,
    channels: u32,
    cpg: u32,
    hw: u32,
    eps: f32,
    _pad: [u32; 2],
}

/// Mirrors `struct Params` in layer_norm_forward.wgsl and layer_norm_backward.wgsl (which has `_pad` for `eps`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LayerNormParams {
    pixels: u32,
    channels: u32,
    hw: u32,
    eps: f32,
}

/// Mirrors `struct Params` in norm_backward_params.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct BackwardParamsParams {
    batch: u32,
    channels: u32,
    hw: u32,
    groups: u32,
    cpg: u32,
    _pad: [u32; 3],
}

/// Where `norm_backward_params.wgsl` finds an element's (mean, rstd): the `STATS` override.
#[derive(Clone, Copy)]
enum StatsLayout {
    /// one pair per (sample, group)
    PerGroup { groups: usize },
    /// one pair per (sample, pixel)
    PerPixel,
}

/// (N, C, HW) of a rank-3 (N, C, L) or rank-4 (N, C, H, W) input.
fn nchw(op: &'static str, x: &Tensor) -> Result<(usize, usize, usize)> {
    match *x.shape() {
        [n, c, l] => Ok((n, c, l)),
        [n, c, h, w] => Ok((n, c, h * w)),
        _ => shape_err!(op, "input {:?} must be (N, C, H, W) or (N, C, L)", x.shape()),
    }
}

fn u32_count(op: &'static str, what: &str, v: usize) -> Result<u32> {
    match u32::try_from(v) {
        Ok(v) => Ok(v),
        Err(_) => shape_err!(op, "{what} = {v} does not fit one dispatch (at most {})", u32::MAX),
    }
}

/// A per-channel parameter: `shapes` lists the accepted shapes (e.g. [C] or [1, C, 1, 1]).
fn check_param(op: &'static str, name: &str, t: &Tensor, x: &Tensor, shapes: &[Vec<usize>]) -> Result<()> {
    if shapes.iter().any(|s| s.as_slice() == t.shape()) {
        return Ok(());
    }
    let want: Vec<String> = shapes.iter().map(|s| format!("{s:?}")).collect();
    shape_err!(op, "{name} has shape {:?} but the input {:?} needs {}", t.shape(), x.shape(), want.join(" or "))
}

// ---------------------------------------------------------------------------------------------------------
// GroupNorm
// ---------------------------------------------------------------------------------------------------------

/// The params of `op` (a GroupNorm kernel) over N images of C channels and H·W pixels in `groups` groups.
pub(crate) fn gn_params(
    op: &'static str,
    n: usize,
    c: usize,
    hw: usize,
    groups: usize,
    eps: f32,
) -> Result<GroupNormParams> {
    Ok(GroupNormParams {
        n_sets: u32_count(op, "N·G", n * groups)?,
        groups: groups as u32,
        channels: c as u32,
        cpg: (c / groups) as u32,
        hw: u32_count(op, "H·W", hw)?,
        eps,
        _pad: [0; 2],
    })
}

/// Forward launch: returns (y, stats) with stats (N, G, 2) = (mean, rstd).
fn group_norm_forward(x: &Tensor, gamma: &Tensor, beta: &Tensor, p: &GroupNormParams) -> (Tensor, Tensor) {
    let y = Tensor::uninit(x.shape());
    let stats = Tensor::uninit(&[p.n_sets as usize, 2]);
    let workgroups = p.n_sets; // one per (sample, group)
                               // vec4 rows when H·W allows (every group then starts on a vec4)
    let shader = if p.hw.is_multiple_of(4) { GN_FORWARD_VEC4 } else { GN_FORWARD };
    launch(shader, "main", &[], p, &[x, gamma, beta], &[&y, &stats], workgroups);
    (y, stats)
}

/// Backward launch for x.
fn group_norm_backward_dx(x: &Tensor, gamma: &Tensor, stats: &Tensor, dy: &Tensor, p: &GroupNormParams) -> Tensor {
    let dx = Tensor::uninit(x.shape());
    let workgroups = p.n_sets; // one per (sample, group)
    let shader = if p.hw.is_multiple_of(4) { GN_BACKWARD_VEC4 } else { GN_BACKWARD };
    launch(shader, "main", &[], p, &[x, gamma, stats, dy], &[&dx], workgroups);
    dx
}

/// Backward launch for the affine parameters of either norm: (dγ, dβ), each (C).
fn backward_params(
    x: &Tensor,
    stats: &Tensor,
    dy: &Tensor,
    dims: (usize, usize, usize),
    layout: StatsLayout,
) -> (Tensor, Tensor) {
    let (n, c, hw) = dims;
    let (code, groups) = match layout {
        StatsLayout::PerGroup { groups } => (0, groups),
        StatsLayout::PerPixel => (1, 1),
    };
    let p = BackwardParamsParams {
        batch: n as u32,
        channels: c as u32,
        hw: hw as u32,
        groups: groups as u32,
        cpg: (c / groups) as u32,
        _pad: [0; 3],
    };
    let (dgamma, dbeta) = (Tensor::uninit(&[c]), Tensor::uninit(&[c]));
    let workgroups = c as u32; // one per channel
    launch(BACKWARD_PARAMS, "main", &[("STATS", code as f64)], &p, &[x, stats, dy], &[&dgamma, &dbeta], workgroups);
    (dgamma, dbeta)
}

/// GroupNorm over `x` (N, C, H, W) or (N, C, L) with `groups` groups, as torch.nn.GroupNorm: biased variance,
/// `eps` inside the square root, optional per-channel `gamma` and `beta` of shape (C) (ones / zeros when absent).
pub fn group_norm(
    x: &Tensor,
    groups: usize,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    let (n, c, hw) = nchw("group_norm", x)?;
    if groups == 0 {
        return shape_err!("group_norm", "groups must be at least 1 (input {:?})", x.shape());
    }
    if c % groups != 0 {
        return shape_err!("group_norm", "{c} channels are not divisible by {groups} groups");
    }
    let ones;
    let gamma = match gamma {
        Some(t) => t,
        None => {
            ones = Tensor::ones(&[c]);
            &ones
        }
    };
    let zeros;
    let beta = match beta {
        Some(t) => t,
        None => {
            zeros = Tensor::zeros(&[c]);
            &zeros
        }
    };
    check_param("group_norm", "gamma", gamma, x, &[vec![c]])?;
    check_param("group_norm", "beta", beta, x, &[vec![c]])?;
    let p = gn_params("group_norm", n, c, hw, groups, eps)?;
    let (y, stats) = group_norm_forward(x, gamma, beta, &p);

    let (x2, gamma2) = (x.clone(), gamma.clone());
    autograd::record("group_norm", &[x, gamma, beta], &y, move |g, needs| {
        let dx = needs[0].then(|| group_norm_backward_dx(&x2, &gamma2, &stats, g, &p));
        let (dgamma, dbeta) = if needs[1] || needs[2] {
            let (dg, db) = backward_params(&x2, &stats, g, (n, c, hw), StatsLayout::PerGroup { groups });
            (needs[1].then_some(dg), needs[2].then_some(db))
        } else {
            (None, None)
        };
        Ok(vec![dx, dgamma, dbeta])
    });
    Ok(y)
}

// ---------------------------------------------------------------------------------------------------------
// Channel LayerNorm
// ---------------------------------------------------------------------------------------------------------

/// A LayerNorm kernel and its workgroups: one thread per pixel (`scalar`), or per 4 pixels when H·W allows
/// (`quad`, the vec4 twin: same results).
fn layer_norm_kernel(p: &LayerNormParams, scalar: Shader, quad: Shader) -> (Shader, u32) {
    let (sh, threads) = if p.hw.is_multiple_of(4) { (quad, p.pixels / 4) } else { (scalar, p.pixels) };
    (sh, groups_1d(threads as usize))
}

/// Forward launch: returns (y, stats) with stats (N·HW, 2) = (mean, rstd).
fn layer_norm_forward(x: &Tensor, g: &Tensor, b: &Tensor, p: &LayerNormParams) -> (Tensor, Tensor) {
    let y = Tensor::uninit(x.shape());
    let stats = Tensor::uninit(&[p.pixels as usize, 2]);
    let (sh, workgroups) = layer_norm_kernel(p, LN_FORWARD, LN_FORWARD_VEC4);
    launch(sh, "main", &[], p, &[x, g, b], &[&y, &stats], workgroups);
    (y, stats)
}

/// Backward launch for x.
fn layer_norm_backward_dx(x: &Tensor, g: &Tensor, stats: &Tensor, dy: &Tensor, p: &LayerNormParams) -> Tensor {
    let dx = Tensor::uninit(x.shape());
    let (sh, workgroups) = layer_norm_kernel(p, LN_BACKWARD, LN_BACKWARD_VEC4);
    launch(sh, "main", &[], p, &[x, g, stats, dy], &[&dx], workgroups);
    dx
}

/// The channel LayerNorm of med-seg-diff: for every (n, pixel), normalise over the C channels,
/// `(x − mean) · (var + eps).rsqrt() · g + b` (biased variance). `x` is (N, C, H, W) or (N, C, L); `g` and
/// `b` are (1, C, 1, 1) as the package stores them, or (C); their gradients come back in their own shapes.
pub fn layer_norm_channels(x: &Tensor, g: &Tensor, b: Option<&Tensor>, eps: f32) -> Result<Tensor> {
    let (n, c, hw) = nchw("layer_norm_channels", x)?;
    let shapes = [vec![1, c, 1, 1], vec![c]];
    check_param("layer_norm_channels", "gain g", g, x, &shapes)?;
    let zeros;
    let b = match b {
        Some(t) => t,
        None => {
            zeros = Tensor::zeros(&[c]);
            &zeros
        }
    };
    check_param("layer_norm_channels", "bias b", b, x, &shapes)?;
    let p = LayerNormParams {
        pixels: u32_count("layer_norm_channels", "N·H·W", n * hw)?,
        channels: c as u32,
        hw: hw as u32,
        eps,
    };
    let (y, stats) = layer_norm_forward(x, g, b, &p);

    let (x2, g2) = (x.clone(), g.clone());
    let (g_shape, b_shape) = (g.shape().to_vec(), b.shape().to_vec());
    autograd::record("layer_norm_channels", &[x, g, b], &y, move |dy, needs| {
        let dx = needs[0].then(|| layer_norm_backward_dx(&x2, &g2, &stats, dy, &p));
        let (dg, db) = if needs[1] || needs[2] {
            let (dg, db) = backward_params(&x2, &stats, dy, (n, c, hw), StatsLayout::PerPixel);
            // dγ, dβ come out as (C): view them in the parameters' own shapes
            (needs[1].then(|| dg.reshape(&g_shape)).transpose()?, needs[2].then(|| db.reshape(&b_shape)).transpose()?)
        } else {
            (None, None)
        };
        Ok(vec![dx, dg, db])
    });
    Ok(y)
}

/// The f64 reference: the spec the kernels are tested against. Inputs are (N, C, HW) flattened.
pub mod cpu {
    /// GroupNorm forward: `gamma`, `beta` of length C.
    #[allow(clippy::too_many_arguments)]
    pub fn group_norm(
        x: &[f64],
        n: usize,
        c: usize,
        hw: usize,
        groups: usize,
        gamma: &[f64],
        beta: &[f64],
        eps: f64,
    ) -> Vec<f64> {
        let cpg = c / groups;
        let m = cpg * hw;
        let mut y = vec![0.0; x.len()];
        for s in 0..n * groups {
            // the group (n, g) is the contiguous run x[s·m .. (s+1)·m]
            let set = &x[s * m..(s + 1) * m];
            let mean = set.iter().sum::<f64>() / m as f64; // mean = Σx/m
            let var = set.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / m as f64; // biased
            let rstd = 1.0 / (var + eps).sqrt();
            for (i, &v) in set.iter().enumerate() {
                let ch = (s % groups) * cpg + i / hw;
                y[s * m + i] = (v - mean) * rstd * gamma[ch] + beta[ch]; // y = x̂·γ + β
            }
        }
        y
    }

    /// GroupNorm backward: (dx, dγ, dβ) for upstream `dy`, written out term by term.
    #[allow(clippy::too_many_arguments)]
    pub fn group_norm_backward(
        x: &[f64],
        dy: &[f64],
        n: usize,
        c: usize,
        hw: usize,
        groups: usize,
        gamma: &[f64],
        eps: f64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let cpg = c / groups;
        let m = cpg * hw;
        let (mut dx, mut dgamma, mut dbeta) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
        for s in 0..n * groups {
            let r = s * m..(s + 1) * m;
            let mean = x[r.clone()].iter().sum::<f64>() / m as f64;
            let var = x[r.clone()].iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / m as f64;
            let rstd = 1.0 / (var + eps).sqrt();
            let ch = |i: usize| (s % groups) * cpg + i / hw;
            let xh = |i: usize| (x[s * m + i] - mean) * rstd;
            let gh = |i: usize| dy[s * m + i] * gamma[ch(i)]; // ĝ = dy·γ
            let mean_gh = (0..m).map(gh).sum::<f64>() / m as f64;
            let mean_gh_xh = (0..m).map(|i| gh(i) * xh(i)).sum::<f64>() / m as f64;
            for i in 0..m {
                let term1 = gh(i);
                let term2 = mean_gh;
                let term3 = xh(i) * mean_gh_xh;
                dx[s * m + i] = rstd * (term1 - term2 - term3);
                dgamma[ch(i)] += dy[s * m + i] * xh(i); // dγ[c] = Σ dy·x̂
                dbeta[ch(i)] += dy[s * m + i]; // dβ[c] = Σ dy
            }
        }
        (dx, dgamma, dbeta)
    }

    /// Channel LayerNorm forward: `g`, `b` of length C.
    pub fn layer_norm_channels(x: &[f64], n: usize, c: usize, hw: usize, g: &[f64], b: &[f64], eps: f64) -> Vec<f64> {
        let mut y = vec![0.0; x.len()];
        for ni in 0..n {
            for s in 0..hw {
                // the set is the pixel (ni, s): its channels sit HW apart
                let at = |ch: usize| (ni * c + ch) * hw + s;
                let mean = (0..c).map(|ch| x[at(ch)]).sum::<f64>() / c as f64;
                let var = (0..c).map(|ch| (x[at(ch)] - mean).powi(2)).sum::<f64>() / c as f64;
                let rstd = 1.0 / (var + eps).sqrt(); // (var + eps).rsqrt()
                for ch in 0..c {
                    y[at(ch)] = (x[at(ch)] - mean) * rstd * g[ch] + b[ch];
                }
            }
        }
        y
    }
}

#[cfg(test)]
mod tests;
