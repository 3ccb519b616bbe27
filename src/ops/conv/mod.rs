//! 2-D convolution: NCHW, stride 1, zero padding p on every side, any kernel size, optional bias.
//!
//! Forward:  y[n, co, oy, ox] = b\[co\] + Σ_ci Σ_ky Σ_kx w[co, ci, ky, kx] · x[n, ci, oy + ky − p, ox + kx − p]
//!           x (N, Cin, H, W), w (Cout, Cin, KH, KW), b (Cout) -> y (N, Cout, H + 2p − KH + 1, W + 2p − KW + 1).
//! Backward (g = dL/dy):
//! - dx[n, ci, y, x]     = Σ_co Σ_ky,kx g[n, co, y + p − ky, x + p − kx] · w[co, ci, ky, kx]: a "full" correlation,
//!   run as the forward kernel on g with 180°-rotated, channel-swapped weights and padding K − 1 − p
//!   (shaders/conv/flip_weights.wgsl derives it).
//! - dw[co, ci, ky, kx]  = Σ_n,y,x g[n, co, y, x] · x[n, ci, y + ky − p, x + kx − p]
//! - db\[co\]              = Σ_n,y,x g[n, co, y, x]  (reduce/sum.wgsl through `sum_to_shape`)
//!
//! Forward saves x (when w needs a gradient) and w (when x needs one).
//!
//! Napkin math: the forward costs 2·N·Cout·Hout·Wout·Cin·KH·KW FLOPs (one multiply-add per weight per output
//! pixel), and so do dx and dw; the forward moves at least 4·(N·Cin·H·W + Cout·Cin·KH·KW + N·Cout·Hout·Wout) bytes.
//!
//! The kernel ladder (shaders/conv/), every rung run by the same tests. Each rung has a forward kernel (also used
//! for dx) and a dw kernel:
//! - `Direct`  (v1): one thread per output element, looping over Cin·KH·KW (conv_v1_direct.wgsl);
//!   dw: one thread per weight, looping over N·Hout·Wout (dw_v1_direct.wgsl).
//! - `Tiled`   (v2): implicit GEMM, M = Cout, N = N·Hout·Wout, K = Cin·KH·KW, the im2col operand gathered
//!   straight into workgroup memory; 64×64 tiles, 4×4 per thread as in matmul v3 (conv_v2_implicit_gemm.wgsl);
//!   dw: the same GEMM reducing over pixels, split into chunks ("split-K", dw_v2_implicit_gemm.wgsl).
//! - `Blocked` (v3): like v2, but 8×8 per thread, 64 threads, tiles read as vec4 (conv_v3_blocked.wgsl,
//!   dw_v3_blocked.wgsl).
//! - `Shaped`  (v4): v3 with the tile's aspect picked per GEMM through the override BM: 16×256, 32×128 or 64×64
//!   (channels × pixels for the forward, channels × k's for dw), still 64 threads × 8×8. `TileShape::pick`
//!   takes the least padded work, so a Cout = 16 conv stops computing 48 padding channels of every 64-channel
//!   tile (conv_v4_shaped.wgsl, dw_v4_shaped.wgsl).
//! - `Vec4`    (v5): the forward built like matmul v5: no workgroup memory, no barrier, 8 output channels × 8
//!   pixels of one output row per invocation in 16 vec4 registers, hand-unrolled. Per input row (ci, ky) it
//!   loads its input window once as aligned vec4s (≤ 5) and reuses it for all KW taps; the weights are first
//!   packed k-major with Cout padded to a multiple of 8 (pack_weights_v5.wgsl, one small extra dispatch), so a
//!   tap's 8 weights are 2 vec4 loads. Needs in_w % 4 == 0 and KW ≤ 9, other shapes run v4's kernel
//!   (conv_v5_vec4.wgsl).
//!   dw: the same idea along the pixels: 8 output channels × 3 k's per invocation (KW = 3: the 3 taps of one
//!   input row; KW = 1: 3 input rows), 8 pixels of a row per step: g as 16 vec4 at one address per workgroup,
//!   the input window as ≤ 4 vec4 shifted per tap, 48 vec4 FMAs; split-K over 8-pixel blocks into partials that
//!   are summed in a fixed order (dw_v5_vec4.wgsl). Needs KW ∈ {1, 3} and in_w, out_w % 4 == 0, else v4's dw.
//! - `Winograd` (v6): for 3×3 forward (and so dx), Winograd F(2×2, 3×3) (Lavin & Gray 2015): filters become
//!   4×4 tiles U = G·g·Gᵀ, each 4×4 input patch under a 2×2 output tile becomes V = Bᵀ·d·B, 16
//!   plane-by-plane GEMMs M\[ξ\] = U\[ξ\]·V\[ξ\] run on the matmul (v5), and Y = Aᵀ·M·A + b gives each
//!   tile's outputs (entries `weights`, `input`, `output` of winograd_transforms.wgsl). 16 multiplies per tile
//!   and input channel instead of 36 (2.25× fewer FLOPs), paid for with the transforms' traffic (16 floats per
//!   tile and channel, written and read once). dw: Winograd F(3×3, 2×2) (entries `grad_tiles`, `grad_output`):
//!   the same input patches, each 2×2 tile of g transformed to 4×4, one GEMM per plane summing over all tiles
//!   (K = tiles: long, which the matmul likes), and a 4×4 -> 3×3 output transform per filter. Other kernel
//!   sizes, and problems whose transformed tensors would not fit one storage binding, run v5 (forward, dx and
//!   dw). Errors: the transforms only add, subtract and halve, so the outputs stay within the tests'
//!   1e-5-level tolerances of the f64 reference.
//!   On llvmpipe (`medsegdiff bench --filter "conv2d 3x3"`, (8, 64→64, 64×64), two runs): v5 113–116 ms
//!   (20.8–21.3 GFLOP/s) -> v6 67.1–69.0 ms, i.e. 35.0–36.0 GFLOP/s counted as the direct convolution's
//!   2·N·Cout·H·W·Cin·9 FLOPs (the work v6 actually does is 2.25× less); dw: v5 126.9–132.7 ms (18.2–19.0) ->
//!   v6 77.5–79.5 ms (30.4–31.2 effective), then 64.6–65.8 ms once its transposed input transform wrote
//!   channels fastest (58.6 in the final bench run).
//! - `Gemm`    (v7): a 1×1 convolution without padding is a matmul over channels, so it runs on the matmul
//!   (v5): the bias-free forward as W (Cout × Cin) · x\[n\] (Cin × H·W), dx likewise with the transposed
//!   weight, and dw as Σ_n g\[n\] · x\[n\]ᵀ (untuned, the taped conv takes it from Cout ≥ 128: see
//!   `GEMM_DW_MIN_COUT`; the AVX-512 kind's tuner picks it for every 1×1 dw of tiny but the 1-channel output's).
//!   Everything else (other kernels, padding, a forward with bias, which v5 adds in its store) runs v5.
//! - `Winograd4` (v8): v6 with F(4×4, 3×3) for the forward and dx (winograd4_transforms.wgsl): 6×6 tiles,
//!   36 planes, 36 multiplies per 4×4 outputs and input channel instead of 144 (4× fewer; v6: 2.25×) and 2.25
//!   transformed values per output instead of 4, so less GEMM work *and* less traffic. The price is accuracy:
//!   the transforms multiply by up to 8 and by 1/6 and 1/24, so the error grows with the magnitude of what is
//!   summed: worst 4.5e-6 of the largest |output| in the unit tests (v6 and the direct rungs: within 1e-5
//!   absolute), and on the `ref_wide_winograd` PyTorch fixture (dim 32) output rel 4.1e-6 and worst gradient
//!   rel 1.0e-5 against v6's 1.3e-6 and 4.1e-6 (SPEC tolerances 1e-4 and 1e-3; cuDNN's fp32 Winograd makes
//!   the same trade). The error grows with Cin: no fixture covers the paper preset's widths (up to 768
//!   channels) yet. dw stays v6's F(3×3, 2×2). Where the tile grid's rows are a multiple of 4 tiles (and rows
//!   whole vec4s) the input and output transforms take four tiles an invocation as vec4 lanes
//!   (winograd4_quad.wgsl, same bits): on llvmpipe 2.0–2.4× the one-tile transforms (docs/bench-history.md).
//!   On llvmpipe (`conv2d_with`, batch 8, ms, v6 -> v8): 32->32 at 64² 24.8 -> 15.4; 64->64 at 32² 16.5 ->
//!   9.7; 128->128 at 16² 12.8 -> 7.9; 64->64 at 64² 66.9 -> 42.0 (57 GFLOP/s counted as the direct
//!   convolution); 64->64 at 8² 1.14 -> 0.92.
//!
//! - `Uniform` (v9): v5 with the packed weights read from 64 KiB uniform blocks (conv_v9_uniform.wgsl), because
//!   on llvmpipe a storage read costs ~9× a uniform one (docs/llvmpipe-stores.md) and 24 of v5's 40 storage
//!   components per input row are weights. Batch 8, llvmpipe without AVX-512, ms v5 -> v9: 16->16 at 32²
//!   21.3 -> 13.0; 16->16 at 64² 82.2 -> 49.4; 32->32 at 64² 321 -> 185; 64->64 at 32² 287 -> 193.
//!   dw (dw_v9_uniform.wgsl): v5's dw with g packed into (channel block, 8-pixel block, 8, 8) and read from
//!   uniform windows of 256 blocks (80% of v5's dw storage traffic was g): 16->16 at 32² 35.5 -> 16.2 ms; 16->16
//!   at 64² 126 -> 63; 32->32 at 64² 521 -> 228; 64->64 at 32² 480 -> 226; 128->128 at 16² 453 -> 204. The
//!   split partials' sum is a per-thread reduction (reduce.rs: ≥ 1,024 outputs).
//! - `Reuse` (v10): a dw rung only (its forward and dx are v9's): each invocation owns 8 output channels × one
//!   input channel × all 9 taps of a 3×3 kernel, × 8 input channels of a 1×1, or × one row of taps of a 5×5
//!   or 7×7 (dw_v10_reuse.wgsl), so a g value loaded feeds 9, 8 or 7 FMAs, not v5's 3 (g's loads were most of
//!   v5's dw time: see the shader; the 7×7 stem's dw, 1->32 at 64², 33.0 -> 6.0 ms). Other kernels take v5's. The same idea for the forward (16 channels per invocation, so a window of x feeds
//!   twice the FMAs) ran no faster than v9 at 16 channels and 1.05–1.2× at 64–128 (docs/bench-history.md), so
//!   it is not a rung.
//!
//! The taped [`conv2d`] picks per weight shape ([`ConvKernel::pick`]): v7 for 1×1, v8 for 3×3 kernels with
//! ≥ 32 input and output channels, v9 for everything else (thinner Winograd GEMMs lose to the direct kernels;
//! measured for v6 at `WINOGRAD_MIN_CHANNELS`). These choices were measured on llvmpipe only; on a GPU re-measure before
//! keeping them: the plane GEMMs are small and the transforms memory-bound.
//!
//! The measurements behind each rung (v3 to v5 and their tuning) are in docs/bench-history.md.
//!
//! dx runs a rung's forward kernel on flipped weights. Untuned, the taped conv's dx and dw take the forward's
//! rung (dw: see [`dw_rule`]); `medsegdiff tune` times each direction apart. KH and KW are WGSL override
//! constants, so each kernel size compiles its own pipeline (only 1, 3 and 7 occur in MedSegDiff).

mod dw;
mod forward;
mod packed;
mod winograd;

pub mod cpu;
#[cfg(test)]
mod tests;

use bytemuck::{Pod, Zeroable};

use super::launch;
use crate::gpu::Shader;
use crate::ops::reduce::sum_to_shape;
use crate::tensor::{numel, Tensor};
use crate::{autograd, shader, shape_err, Result};

pub use dw::conv2d_backward_weight;
use forward::forward_raw;
pub use packed::{keep_packed_weights, KeepPacked};

const FLIP: Shader = shader!("conv/flip_weights.wgsl");
/// Threads per workgroup of the one-thread-per-element kernels (v1, dw v1, flip, packing).
const WG_DIRECT: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKernel {
    Direct,
    Tiled,
    Blocked,
    Shaped,
    Vec4,
    Winograd,
    Gemm,
    Winograd4,
    Uniform,
    Reuse,
}

impl ConvKernel {
    pub const ALL: [ConvKernel; 10] = [
        ConvKernel::Direct,
        ConvKernel::Tiled,
        ConvKernel::Blocked,
        ConvKernel::Shaped,
        ConvKernel::Vec4,
        ConvKernel::Winograd,
        ConvKernel::Gemm,
        ConvKernel::Winograd4,
        ConvKernel::Uniform,
        ConvKernel::Reuse,
    ];

    /// The rung the taped [`conv2d`] uses for forward, dx and dw: v7 (GEMM) for 1×1 kernels (v9 where a bias
    /// or padding rules the GEMM out), v8 (Winograd F(4×4, 3×3); its dw is v6's) for 3×3 kernels with at least
    /// `WINOGRAD_MIN_CHANNELS` input and output channels, v9 otherwise (v5's dw); measured: see those rungs.
    pub fn pick(w_shape: &[usize]) -> ConvKernel {
        // a malformed weight takes v5, whose shape check then reports it
        let &[cout, cin, kh, kw] = w_shape else { return ConvKernel::Vec4 };
        if kh == 1 && kw == 1 {
            ConvKernel::Gemm
        } else if kh == 3 && kw == 3 && cin.min(cout) >= WINOGRAD_MIN_CHANNELS {
            ConvKernel::Winograd4
        } else {
            // v9 (v5 with uniform-block weights): 1.6-1.7× v5 on every 3×3 shape measured (see the module doc)
            ConvKernel::Uniform
        }
    }

    /// The rung called `name` (a tune table's entry), if any.
    pub fn named(name: &str) -> Option<ConvKernel> {
        ConvKernel::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            ConvKernel::Direct => "v1_direct",
            ConvKernel::Tiled => "v2_implicit_gemm",
            ConvKernel::Blocked => "v3_blocked",
            ConvKernel::Shaped => "v4_shaped",
            ConvKernel::Vec4 => "v5_vec4",
            ConvKernel::Winograd => "v6_winograd",
            ConvKernel::Gemm => "v7_gemm",
            ConvKernel::Winograd4 => "v8_winograd4",
            ConvKernel::Uniform => "v9_uniform",
            ConvKernel::Reuse => "v10_reuse",
        }
    }
}

/// Mirrors `struct Params` in every conv shader (each reads the fields it needs).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
struct ConvParams {
    batch: u32,
    cin: u32,
    cout: u32,
    kdim: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    pad_y: i32,
    pad_x: i32,
    has_bias: u32,
    npix: u32,
    chunk: u32,
    n_split: u32,
    /// v9: K rounded up to 8 (the packed weight block's length)
    kp: u32,
    _p1: u32,
}

/// One convolution as the kernels see it: input (batch, cin, in_h, in_w) ⋆ weight (cout, cin, kh, kw) ->
/// output (batch, cout, out_h, out_w), where output row oy reads input rows oy + ky − pad_y. The pads are
/// signed because dx is a convolution at padding K − 1 − p.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    cin: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    pad_y: i32,
    pad_x: i32,
}

impl Geometry {
    fn kdim(&self) -> usize {
        self.cin * self.kh * self.kw
    }
    /// A 1×1 kernel without padding: the convolution is a matmul over channels.
    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.pad_y == 0 && self.pad_x == 0
    }
    /// The direct convolution's FLOPs (2 per multiply-add), whatever algorithm runs: PyTorch's count.
    fn flops(&self) -> f64 {
        2.0 * (self.npix() * self.cout * self.kdim()) as f64
    }
    /// "N×Cin→Cout×H×W kKHxKW" of the forward convolution this geometry describes.
    fn describe(&self) -> String {
        format!("{}x{}->{}x{}x{} k{}x{}", self.batch, self.cin, self.cout, self.out_h, self.out_w, self.kh, self.kw)
    }
    fn npix(&self) -> usize {
        self.batch * self.out_h * self.out_w
    }
    fn out_shape(&self) -> [usize; 4] {
        [self.batch, self.cout, self.out_h, self.out_w]
    }
    fn overrides(&self) -> [(&'static str, f64); 2] {
        [("KH", self.kh as f64), ("KW", self.kw as f64)]
    }
    fn params(&self, has_bias: bool) -> ConvParams {
        ConvParams {
            batch: self.batch as u32,
            cin: self.cin as u32,
            cout: self.cout as u32,
            kdim: self.kdim() as u32,
            in_h: self.in_h as u32,
            in_w: self.in_w as u32,
            out_h: self.out_h as u32,
            out_w: self.out_w as u32,
            pad_y: self.pad_y,
            pad_x: self.pad_x,
            has_bias: has_bias as u32,
            npix: self.npix() as u32,
            chunk: 0,
            n_split: 0,
            kp: 0,
            _p1: 0,
        }
    }
}

/// Check the shapes of a conv2d and return its geometry; every error names the shapes involved.
fn check(x: &[usize], w: &[usize], b: Option<&[usize]>, padding: usize) -> Result<Geometry> {
    if x.len() != 4 {
        return shape_err!("conv2d", "input must be (N, Cin, H, W), got {x:?}");
    }
    if w.len() != 4 {
        return shape_err!("conv2d", "weight must be (Cout, Cin, KH, KW), got {w:?}");
    }
    if x.contains(&0) || w.contains(&0) {
        return shape_err!("conv2d", "input {x:?} and weight {w:?} must not have a dimension of size 0");
    }
    if x[1] != w[1] {
        return shape_err!("conv2d", "input has {} channels but weight {w:?} expects {}", x[1], w[1]);
    }
    if let Some(b) = b {
        if b != [w[0]] {
            return shape_err!("conv2d", "bias {b:?} must be [{}], one value per output channel of weight {w:?}", w[0]);
        }
    }
    // computed wide so that no padding can overflow
    let out = |n: usize, k: usize| n as i128 + 2 * padding as i128 - k as i128 + 1;
    let (out_h, out_w) = (out(x[2], w[2]), out(x[3], w[3]));
    if out_h < 1 || out_w < 1 {
        return shape_err!(
            "conv2d",
            "output would be {out_h}×{out_w}: a {}×{} kernel with padding {padding} does not fit input {x:?}",
            w[2],
            w[3]
        );
    }
    // The kernels index with u32 and pad with i32: keep every tensor (and the padding) well inside that.
    let limit = i32::MAX as i128;
    let out_numel = x[0] as i128 * w[0] as i128 * out_h * out_w;
    if out_numel > limit || numel(x) as i128 > limit || numel(w) as i128 > limit || padding as i128 > limit / 4 {
        return shape_err!("conv2d", "input {x:?}, weight {w:?} with padding {padding} is too large for one dispatch");
    }
    let pad = padding as i32;
    Ok(Geometry {
        batch: x[0],
        cin: x[1],
        cout: w[0],
        kh: w[2],
        kw: w[3],
        in_h: x[2],
        in_w: x[3],
        out_h: out_h as usize,
        out_w: out_w as usize,
        pad_y: pad,
        pad_x: pad,
    })
}

/// v4's tile: `bm` rows (output channels) × `bn` columns (pixels for the forward, k's for dw), always
/// bm·bn = 4096 = 64 threads × 8×8. Picked per GEMM as the shape with the least padded work
/// (⌈M/bm⌉·bm · ⌈N/bn⌉·bn); on a tie the squarer tile wins, since a tile stages bm + bn values per step.
/// Workgroups for `n` threads at `per` threads per workgroup (sizes were bounded by `check`).
fn groups(n: usize, per: usize) -> u32 {
    u32::try_from(n.div_ceil(per)).expect("conv2d: sizes were checked to fit u32")
}

/// Untaped forward with a chosen rung: y = conv2d(x, w) + b.
pub fn conv2d_with(kernel: ConvKernel, x: &Tensor, w: &Tensor, b: Option<&Tensor>, padding: usize) -> Result<Tensor> {
    let geo = check(x.shape(), w.shape(), b.map(|b| b.shape()), padding)?;
    Ok(forward_raw(kernel, &geo, x, w, b))
}

/// `g` must have the output shape of `geo`.
fn check_grad_shape(op: &'static str, geo: &Geometry, g: &Tensor) -> Result<()> {
    if g.shape() != geo.out_shape() {
        return shape_err!(op, "gradient {:?} must have the output shape {:?}", g.shape(), geo.out_shape());
    }
    Ok(())
}

/// Fewest input and output channels for which [`ConvKernel::pick`] takes Winograd (v8 now; the threshold was
/// measured with v6, whose dw v8 still uses); below, the plane GEMMs (K = Cin for the forward, N = Cin and
/// M = Cout for dw) are too thin to pay for the transforms. Measured on llvmpipe (`conv2d_with` /
/// `conv2d_backward_weight`, batch 8, ms, v5 -> v6, forward / dw): 16->16 at 32²
/// 2.0 -> 2.9 / 2.8 -> 9.5; 16->32 at 16² 1.1 -> 1.3 / 1.5 -> 3.9; 32->32 at 32² 7.7 -> 6.8 / 9.0 -> 9.6;
/// 32->32 at 64² 30.1 -> 25.5 / 32.4 -> 24.3; 64->64 at 32² 28.6 -> 16.0 / 32.0 -> 14.7; 128->128 at 16²
/// 28.5 -> 12.1 / 37.6 -> 11.8.
const WINOGRAD_MIN_CHANNELS: usize = 32;

/// v7 computes a 1×1 dw as a GEMM only from this many output channels (the GEMM's rows): measured on llvmpipe
/// (batch 8, ms, v5's dw -> GEMM): 32->384 at 64² 80.8 -> 36.4; 128->384 at 16² 16.8 -> 10.4; 512->128 at 16²
/// 20.6 -> 18.2; but 64->32 at 64² 13.6 -> 17.0 and 96->64 at 32² 7.6 -> 8.9. dx and the bias-free forward
/// always gain (dx: 52.7 -> 47.7, 9.2 -> 7.5, 14.1 -> 11.1, 10.7 -> 8.3, 5.8 -> 4.5 on the same shapes).
const GEMM_DW_MIN_COUT: usize = 128;

/// dx of conv2d for an input of shape `x_shape`: the forward rung `kernel` run on g with flipped weights.
pub fn conv2d_backward_input(
    kernel: ConvKernel,
    g: &Tensor,
    w: &Tensor,
    padding: usize,
    x_shape: &[usize],
) -> Result<Tensor> {
    let geo = check(x_shape, w.shape(), None, padding)?;
    check_grad_shape("conv2d_backward_input", &geo, g)?;
    let _work = crate::ops::work::scope("conv2d.dx", || geo.describe(), geo.flops());
    // wt[ci, co, ky, kx] = w[co, ci, KH − 1 − ky, KW − 1 − kx]
    let wt = Tensor::uninit(&[geo.cin, geo.cout, geo.kh, geo.kw]);
    let groups = groups(w.numel(), WG_DIRECT);
    launch(FLIP, "main", &geo.overrides(), &geo.params(false), &[w], &[&wt], groups);
    // dx = g ⋆ wt at padding K − 1 − p: g is the input (Cout channels), dx the output (Cin channels)
    let back = Geometry {
        batch: geo.batch,
        cin: geo.cout,
        cout: geo.cin,
        kh: geo.kh,
        kw: geo.kw,
        in_h: geo.out_h,
        in_w: geo.out_w,
        out_h: geo.in_h,
        out_w: geo.in_w,
        pad_y: geo.kh as i32 - 1 - geo.pad_y,
        pad_x: geo.kw as i32 - 1 - geo.pad_x,
    };
    Ok(forward_raw(kernel, &back, g, &wt, None))
}

/// The rung the taped [`conv2d`]'s forward runs: the tuned table's ([`crate::ops::tune`]) if it holds the
/// shape, else [`ConvKernel::pick`]'s rule.
pub fn pick_tuned(x: &Tensor, w: &Tensor, b: Option<&Tensor>, padding: usize) -> ConvKernel {
    let key = crate::ops::tune::Key::Conv { x: x.shape().to_vec(), w: w.shape().to_vec(), padding, bias: b.is_some() };
    crate::ops::tune::lookup(key).and_then(|n| ConvKernel::named(&n)).unwrap_or_else(|| ConvKernel::pick(w.shape()))
}

/// The rung the taped [`conv2d`]'s dx runs: the table's, else the forward's (`forward`).
pub fn pick_dx(x_shape: &[usize], w_shape: &[usize], padding: usize, forward: ConvKernel) -> ConvKernel {
    let key = crate::ops::tune::Key::ConvDx { x: x_shape.to_vec(), w: w_shape.to_vec(), padding };
    crate::ops::tune::lookup(key).and_then(|n| ConvKernel::named(&n)).unwrap_or(forward)
}

/// The rung the taped [`conv2d`]'s dw runs: the table's, else [`dw_rule`].
pub fn pick_dw(x_shape: &[usize], w_shape: &[usize], padding: usize, forward: ConvKernel) -> ConvKernel {
    let key = crate::ops::tune::Key::ConvDw { x: x_shape.to_vec(), w: w_shape.to_vec(), padding };
    crate::ops::tune::lookup(key)
        .and_then(|n| ConvKernel::named(&n))
        .unwrap_or_else(|| dw_rule(w_shape, padding, forward))
}

/// Whether v7's GEMM dw can take this weight: a 1×1 kernel without padding (`Geometry::is_pointwise`, from
/// the shapes alone).
pub fn gemm_dw_applies(w_shape: &[usize], padding: usize) -> bool {
    w_shape.len() == 4 && w_shape[2] == 1 && w_shape[3] == 1 && padding == 0
}

/// Whether v10's dw has a kernel for this weight: square, 1×1, 3×3, 5×5 or 7×7 (whether it reads the rows is
/// checked where it runs).
pub fn reuse_dw_applies(w_shape: &[usize]) -> bool {
    w_shape.len() == 4 && w_shape[2] == w_shape[3] && [1, 3, 5, 7].contains(&w_shape[2])
}

/// The untuned dw rung: the forward's, except that v10's dw (1.5–4× v5's and v9's on llvmpipe with AVX-512,
/// docs/bench-history.md) replaces v9's for square kernels up to 7×7, and an unpadded 1×1 conv on v7 computes its
/// dw as a GEMM only from [`GEMM_DW_MIN_COUT`] output channels (else v10's).
pub fn dw_rule(w_shape: &[usize], padding: usize, forward: ConvKernel) -> ConvKernel {
    let small_gemm = forward == ConvKernel::Gemm && gemm_dw_applies(w_shape, padding) && w_shape[0] < GEMM_DW_MIN_COUT;
    if small_gemm || (forward == ConvKernel::Uniform && reuse_dw_applies(w_shape)) {
        ConvKernel::Reuse
    } else {
        forward
    }
}

/// y = conv2d(x, w) + b: x (N, Cin, H, W), w (Cout, Cin, KH, KW), b (Cout), stride 1, zero padding `padding`.
/// Taped; forward, dx and dw each run the rung the table holds for them ([`pick_tuned`], [`pick_dx`],
/// [`pick_dw`]).
pub fn conv2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, padding: usize) -> Result<Tensor> {
    let k = pick_tuned(x, w, b, padding);
    let y = conv2d_with(k, x, w, b, padding)?;
    // save only what the backward will read
    let x_saved = w.requires_grad().then(|| x.clone());
    let w_saved = x.requires_grad().then(|| w.clone());
    let (x_shape, w_shape) = (x.shape().to_vec(), w.shape().to_vec());
    let cout = w_shape[0];
    let inputs: Vec<&Tensor> = [Some(x), Some(w), b].into_iter().flatten().collect();
    autograd::record("conv2d", &inputs, &y, move |g, needs| {
        // term 1: dx = g ⋆ flip(w) ("full" correlation)
        let dx = match (needs[0], &w_saved) {
            (true, Some(w)) => {
                Some(conv2d_backward_input(pick_dx(&x_shape, &w_shape, padding, k), g, w, padding, &x_shape)?)
            }
            _ => None,
        };
        // term 2: dw = Σ_pixels g ⊗ shifted x
        let dw = match (needs[1], &x_saved) {
            (true, Some(x)) => {
                Some(conv2d_backward_weight(pick_dw(&x_shape, &w_shape, padding, k), g, x, padding, &w_shape)?)
            }
            _ => None,
        };
        let mut grads = vec![dx, dw];
        // term 3: db = Σ_n,y,x g
        if needs.len() == 3 {
            let db = if needs[2] { Some(sum_to_shape(g, &[1, cout, 1, 1])?.detach().reshape(&[cout])?) } else { None };
            grads.push(db);
        }
        Ok(grads)
    });
    Ok(y)
}
