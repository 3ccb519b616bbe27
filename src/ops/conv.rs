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
//!   weight, and dw as Σ_n g\[n\] · x\[n\]ᵀ when Cout ≥ 128 (thinner ones lose, see `GEMM_DW_MIN_COUT`).
//!   Everything else (other kernels, padding, a forward with bias, which v5 adds in its store) runs v5.
//! - `Winograd4` (v8): v6 with F(4×4, 3×3) for the forward and dx (winograd4_transforms.wgsl): 6×6 tiles,
//!   36 planes, 36 multiplies per 4×4 outputs and input channel instead of 144 (4× fewer; v6: 2.25×) and 2.25
//!   transformed values per output instead of 4, so less GEMM work *and* less traffic. The price is accuracy:
//!   the transforms multiply by up to 8 and by 1/6 and 1/24, so the error grows with the magnitude of what is
//!   summed: worst 4.5e-6 of the largest |output| in the unit tests (v6 and the direct rungs: within 1e-5
//!   absolute), and on the `ref_wide_winograd` PyTorch fixture (dim 32) output rel 4.1e-6 and worst gradient
//!   rel 1.0e-5 against v6's 1.3e-6 and 4.1e-6 (SPEC tolerances 1e-4 and 1e-3; cuDNN's fp32 Winograd makes
//!   the same trade). The error grows with Cin: no fixture covers the paper preset's widths (up to 768
//!   channels) yet. dw stays v6's F(3×3, 2×2).
//!   On llvmpipe (`conv2d_with`, batch 8, ms, v6 -> v8): 32->32 at 64² 24.8 -> 15.4; 64->64 at 32² 16.5 ->
//!   9.7; 128->128 at 16² 12.8 -> 7.9; 64->64 at 64² 66.9 -> 42.0 (57 GFLOP/s counted as the direct
//!   convolution); 64->64 at 8² 1.14 -> 0.92.
//!
//! - `Uniform` (v9): v5 with the packed weights read from 64 KiB uniform blocks (conv_v9_uniform.wgsl), because
//!   on llvmpipe a storage read costs ~9× a uniform one (docs/llvmpipe-stores.md) and 24 of v5's 40 storage
//!   components per input row are weights. Batch 8, llvmpipe without AVX-512, ms v5 -> v9: 16->16 at 32²
//!   21.3 -> 13.0; 16->16 at 64² 82.2 -> 49.4; 32->32 at 64² 321 -> 185; 64->64 at 32² 287 -> 193. dw is v5's.
//!
//! The taped [`conv2d`] picks per weight shape ([`ConvKernel::pick`]): v7 for 1×1, v8 for 3×3 kernels with
//! ≥ 32 input and output channels, v9 for everything else (thinner Winograd GEMMs lose to the direct kernels;
//! measured for v6 at `WINOGRAD_MIN_CHANNELS`). These choices were measured on llvmpipe only; on a GPU re-measure before
//! keeping them: the plane GEMMs are small and the transforms memory-bound.
//!
//! Measured on lavapipe (llvmpipe, LLVM 15, 2 cores shared with three other build/test jobs, so the numbers are
//! low and vary by up to 2× between runs), 3×3 conv, N = 8, 64 -> 64 channels, 64×64, GFLOP/s (fwd / dx / dw):
//! v1 1.0–2.0 / 1.0–2.0 / 0.6–1.3,  v2 1.4–2.9 / 1.5–1.8 / 0.7–1.5,  v3 5.4 / 5.3–5.5 / 6.5–9.5.
//! (matmul v3 on the same GEMM shape, 64×576 · 576×32768: 1.2.) v3 wins because llvmpipe performs every
//! buffer and workgroup-memory read one invocation at a time, so reads per FMA decide the speed.
//!
//! v4 vs v3, measured back to back in one run (driver "llvmpipe (LLVM 15.0.6, 256 bits)", 2 cores, machine
//! shared with other processes), per call, fwd / dx / dw (dx includes the weight flip, dw the split-K sum):
//! - the shape above (v4 picks 64×64 there, so it is v3): v3 10.4 / 10.5 / 12.6 GFLOP/s, v4 11.0 / 11.1 / 10.7.
//! - the tiny preset's convs at batch 8, in ms (v3 -> v4):
//!   3×3 16->16 at 32×32: 13.4–14.1 -> 6.2–6.5 / 13.5–13.9 -> 6.2–6.6 / 14.8–15.1 -> 7.9 (noisy: one 14.6);
//!   3×3 32->16 at 32×32: 27.6 -> 12.1–12.8 / 14.2–15.0 -> 9.6–9.7 / 25.7–31.4 -> 15.7–15.8;
//!   3×3 16->16 at 16×16: 3.4–3.6 -> 1.6–1.7 / 3.6 -> 1.7 / 3.8–3.9 -> 2.0–2.2;
//!   3×3 16->32 at 16×16: 3.5 -> 2.3 / 6.8 -> 3.1 / 4.1 -> 3.2;  3×3 32->32 at 16×16: 6.9 -> 4.3 / 7.1 -> 4.5 /
//!   6.7 -> 4.9;  3×3 48->32 at 16×16: 10.2 -> 6.5 / 7.1 -> 9.2 / 9.7 -> 6.6;
//!   7×7 1->16 at 32×32: 6.1–6.5 -> 2.9–3.0 / (dx unused in training) / 5.1 -> 5.6;
//!   1×1 16->96 at 32×32: 6.6 -> 5.5 / 11.0 -> 5.2 / 10.0 -> 10.6;  1×1 32->16 at 32×32: 4.1 -> 1.7 / 2.9 -> 1.7 /
//!   4.8 -> 5.0;  1×1 64->16 at 16×16: 1.7 -> 0.8 / 0.9 -> 1.0 / 1.4 -> 1.5;  1×1 128->32 at 16×16: 3.3 -> 2.2 /
//!   2.4 -> 2.5 / 3.2 -> 3.4.
//! - `medsegdiff profile` (tiny preset, one training step): conv GPU time / matmul GPU time 1.05–1.09 with v3,
//!   0.65–0.66 with v4 (absolute times swing 2× with the machine's load; matmul is unchanged, so the ratio is
//!   the comparable number): about 40% less conv time per step.
//!
//! v5 vs v4, measured back to back in one run (same driver and machine, throwaway program timing
//! `conv2d_with` / `conv2d_backward_input` with `bench::run_case`, two rounds, per call), fwd / dx:
//! - the shape above: v4 10.9–11.0 / 10.9 GFLOP/s, v5 18.9–19.1 / 18.5–18.7.
//! - the tiny preset's convs at batch 8, in ms (v4 -> v5): 3×3 16->16 at 32×32: 6.3–6.4 -> 2.2–2.8 / 6.3–6.9 ->
//!   2.2–2.8; 3×3 32->16 at 32×32: 12.2–19.3 -> 4.8–5.5 / 13.6–17.3 -> 4.3–7.0; 3×3 16->16 at 16×16: 1.6 ->
//!   0.6–0.8 / 1.6–3.0 -> 0.6–1.2; 3×3 16->32 at 16×16: 2.2–2.4 -> 1.1 / 3.0–3.1 -> 1.2; 3×3 32->32 at 16×16:
//!   4.3 -> 2.1–2.2 / 4.4–4.5 -> 2.2; 3×3 48->32 at 16×16: 6.3–6.4 -> 3.1 / 9.1 -> 3.2; 7×7 1->16 at 32×32:
//!   2.8–3.1 -> 0.6–0.7 / 31 -> 3.5–3.6 (Cout = 1 there: 7 of v5's 8 channels are padding); 1×1 16->96 at 32×32:
//!   4.9–5.2 -> 2.0–2.3 / 4.9–5.0 -> 1.6–1.7; 1×1 32->16 at 32×32: 1.7 -> 0.6–0.7 / 1.7–1.8 -> 0.8; 1×1 64->16 at
//!   16×16: 0.8–1.3 -> 0.3 / 0.9–1.0 -> 0.4; 1×1 128->32 at 16×16: 2.1 -> 1.0 / 2.4–2.5 -> 1.2.
//! - `medsegdiff profile`, one training step, GPU time of the conv forward + dx kernels (dw is v4's in both):
//!   tiny 506–513 ms -> 202–208 ms (+ 7–9 ms packing weights; all conv kernels 856–862 -> 566–570; one step
//!   1511–1605 -> 1179–1239 ms wall); small 7525–7650 ms -> 3837–3900 ms (+ 34–39 ms packing; all conv kernels
//!   11214–11494 -> 7593–7645; one step 17.1 -> 13.7 s wall).
//!
//! dw v5 vs v4, back to back in one run (same driver and machine, `conv2d_backward_weight`, `bench::run_case`,
//! two rounds, per call, including the split-K sum; the second round ran under heavier load):
//! - the shape above: v4 211.8–213.3 ms (11.3–11.4 GFLOP/s) -> v5 157.0 ms (15.4).
//! - the tiny preset's convs at batch 8, in ms (v4 -> v5): 3×3 16->16 at 32×32: 8.0 -> 3.2; 3×3 32->16 at
//!   32×32: 15.4 -> 5.8–5.9; 3×3 16->16 at 16×16: 2.1–3.4 -> 1.0–1.4; 3×3 16->32 at 16×16: 3.3–5.6 -> 1.8–3.3;
//!   3×3 32->32 at 16×16: 5.0–10.0 -> 3.2–4.8; 3×3 48->32 at 16×16: 6.8–12.0 -> 4.7–7.1; 7×7 1->16 at 32×32:
//!   5.7 -> 5.7 (v4's dw: KW = 7); 1×1 16->96 at 32×32: 10.8–11.0 -> 6.2–6.5; 1×1 32->16 at 32×32: 5.2 -> 4.2;
//!   1×1 64->16 at 16×16: 1.4–1.5 -> 0.8; 1×1 128->32 at 16×16: 1.8–2.1 -> 2.2–2.4 (the one loss: K = 128 over
//!   only 2,048 pixels, so v5 runs 11 k-groups × 4 channel blocks with long pixel loops).
//! - `medsegdiff profile --preset small`, one training step, two runs: dw kernels 2584 ms (3×3 1794, 1×1 745,
//!   7×7 on v4 45) vs ~3.7 s with v4's dw (an earlier run, not back to back); one step 11.6–11.9 s wall.
//!
//! Later tuning of v5 (`medsegdiff bench --filter "conv2d 3x3"`, the shape above, two runs each):
//! - the window alignment r = (−pad_x) mod 4 became an override constant in both kernels, so each tap's
//!   pick/shift selects fold into fixed swizzles: forward 19.1–19.8 -> 20.9–21.3 GFLOP/s (dx, the same kernel,
//!   20.8).
//! - dw steps its block position (n, oy, ox0) instead of four integer / and % per block (no SIMD integer
//!   division on x86: llvmpipe runs it lane by lane): 151.9–152.4 ms (15.9 GFLOP/s) -> 140.8–144.9 ms; with the
//!   r override as well, 126.9–136.1 ms (17.8–19.0).
//!
//! Why: per (ci, ky) of a 3×3 conv an invocation does 4 vec4 input loads (addresses differ per invocation) and
//! 6 vec4 weight loads for 192 FMAs; v4 needs about 6 loads per 64 FMAs (staging gathers plus workgroup-memory
//! reads). A first v5 that read the 8 weights as scalars from the (Cout, K) tensor reached 14.5–14.8 GFLOP/s on
//! the 64->64 shape: with the weight loads replaced by constants it ran 28.7, so those scalar loads (same address
//! in the whole workgroup, still not free on llvmpipe) were half its time; packing made them 2 vec4.
//!
//! v4 at Cout = 16 reaches ~6 GFLOP/s, not v4's 11 at 64×64: its X tile is gathered for 16 channels, not 64,
//! so each gathered value feeds 4× fewer FMAs. (A direct kernel that reuses each input pixel across the 3×3
//! taps would be the next rung.)
//!
//! dx always uses the forward kernel of the chosen rung. KH and KW are WGSL override constants, so each
//! kernel size compiles its own pipeline (only 1, 3 and 7 occur in MedSegDiff).

use bytemuck::{Pod, Zeroable};

use super::{launch, launch_with_uniforms, UNIFORM_BLOCK_F32};
use crate::gpu::Shader;
use crate::ops::reduce::sum_to_shape;
use crate::tensor::{numel, Tensor};
use crate::{autograd, shader, shape_err, Result};

const V1: Shader = shader!("conv/conv_v1_direct.wgsl");
const V2: Shader = shader!("conv/conv_v2_implicit_gemm.wgsl");
const V3: Shader = shader!("conv/conv_v3_blocked.wgsl");
const FLIP: Shader = shader!("conv/flip_weights.wgsl");
const DW_V1: Shader = shader!("conv/dw_v1_direct.wgsl");
const DW_V2: Shader = shader!("conv/dw_v2_implicit_gemm.wgsl");
const DW_V3: Shader = shader!("conv/dw_v3_blocked.wgsl");
const V4: Shader = shader!("conv/conv_v4_shaped.wgsl");
const DW_V4: Shader = shader!("conv/dw_v4_shaped.wgsl");
const V5: Shader = shader!("conv/conv_v5_vec4.wgsl");
const PACK_V5: Shader = shader!("conv/pack_weights_v5.wgsl");
const V9: Shader = shader!("conv/conv_v9_uniform.wgsl");
const DW_V9: Shader = shader!("conv/dw_v9_uniform.wgsl");
/// dw v9: pixel blocks of 8 per uniform window of g (256 blocks × 8 channels × 8 pixels = 64 KiB) and per split.
const DW_V9_WINDOW: usize = 256;
const DW_V9_CHUNK: usize = 16;
const DW_V5: Shader = shader!("conv/dw_v5_vec4.wgsl");
const WINO2: Shader = shader!("conv/winograd_transforms.wgsl");
const WINO4: Shader = shader!("conv/winograd4_transforms.wgsl");
/// dw v5: output channels × k's per invocation, pixels per block, invocations per workgroup; each split sums
/// at least `DW_V5_MIN_BLOCKS` blocks, and splits are added until the launch has about `DW_TARGET_GROUPS`.
const DW_V5_TM: usize = 8;
const DW_V5_TK: usize = 3;
const DW_V5_TN: usize = 8;
const DW_V5_WG: usize = 16;
const DW_V5_MIN_BLOCKS: usize = 16;
/// v5: output channels and pixel blocks (8 pixels of a row) per invocation, invocations per workgroup, and the
/// widest kernel its 5-vec4 input window covers (r + 8 + KW − 1 ≤ 20 values for every r ≤ 3).
const V5_TM: usize = 8;
const V5_TN: usize = 8;
const V5_WG: usize = 16;
const V5_MAX_KW: usize = 9;

/// Threads per workgroup of the one-thread-per-element kernels (v1, dw v1, flip).
const WG_DIRECT: usize = 64;
/// Tile of the implicit-GEMM kernels (BM = BN in the shaders) and their reduction step (BK).
const TILE: usize = 64;
const STEP: usize = 16;
/// dw v2 split-K: each split sums at least this many pixels, and splits are added until the launch has
/// about `DW_TARGET_GROUPS` workgroups (few output tiles, e.g. 64×576 for a 64→64 3×3 conv, are otherwise 9).
const DW_MIN_CHUNK: usize = 256;
const DW_TARGET_GROUPS: usize = 256;

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
}

impl ConvKernel {
    pub const ALL: [ConvKernel; 9] = [
        ConvKernel::Direct,
        ConvKernel::Tiled,
        ConvKernel::Blocked,
        ConvKernel::Shaped,
        ConvKernel::Vec4,
        ConvKernel::Winograd,
        ConvKernel::Gemm,
        ConvKernel::Winograd4,
        ConvKernel::Uniform,
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
            // v9 (v5 with uniform-block weights): 1.6-1.7× v5 on every 3×3 shape measured (docs/bench-history.md)
            ConvKernel::Uniform
        }
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TileShape {
    bm: usize,
    bn: usize,
}

impl TileShape {
    const ALL: [TileShape; 3] =
        [TileShape { bm: 64, bn: 64 }, TileShape { bm: 32, bn: 128 }, TileShape { bm: 16, bn: 256 }];

    /// The shape for an M×N output (M = Cout), see above. `ALL` lists the squarest first, so `min_by_key`'s
    /// first minimum is the tie-break.
    fn pick(m: usize, n: usize) -> TileShape {
        let padded = |t: &TileShape| m.div_ceil(t.bm) * t.bm * n.div_ceil(t.bn) * t.bn;
        *TileShape::ALL.iter().min_by_key(|t| padded(t)).expect("ALL is not empty")
    }
    fn tiles(&self, m: usize, n: usize) -> usize {
        m.div_ceil(self.bm) * n.div_ceil(self.bn)
    }
    fn overrides(&self, geo: &Geometry) -> [(&'static str, f64); 3] {
        let [kh, kw] = geo.overrides();
        [kh, kw, ("BM", self.bm as f64)]
    }
}

/// Workgroups for `n` threads at `per` threads per workgroup (sizes were bounded by `check`).
fn groups(n: usize, per: usize) -> u32 {
    u32::try_from(n.div_ceil(per)).expect("conv2d: sizes were checked to fit u32")
}

/// Forward launch for any geometry (also dx's): y = x ⋆ w (+ b), not taped.
fn forward_raw(kernel: ConvKernel, geo: &Geometry, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    let _work = super::work::scope("conv2d", || geo.describe(), geo.flops());
    let winograd3x3 = geo.kh == 3 && geo.kw == 3;
    let kernel = match kernel {
        // v7: a 1×1 convolution without padding or bias is the matmul W (Cout × Cin) · x[n] (Cin × H·W)
        ConvKernel::Gemm if geo.is_pointwise() && b.is_none() => {
            let (hw, cin, cout) = (geo.in_h * geo.in_w, geo.cin, geo.cout);
            let x3 = x.detach().reshape(&[geo.batch, cin, hw]).expect("same element count");
            let w2 = w.detach().reshape(&[cout, cin]).expect("same element count");
            let y3 = crate::ops::matmul::matmul_with(crate::ops::matmul::MatmulKernel::DEFAULT, &w2, false, &x3, false)
                .expect("the shapes agree by construction");
            return y3.reshape(&geo.out_shape()).expect("same element count");
        }
        // v6 and v8 are for 3×3 whose transformed tensors fit a binding, v7 for 1×1 without bias: the rest runs v9
        // where its weights fit, else v5
        ConvKernel::Winograd if !(winograd3x3 && WinogradTile::F2.fits(geo)) => ConvKernel::Vec4,
        ConvKernel::Winograd4 if !(winograd3x3 && WinogradTile::F4.fits(geo)) => ConvKernel::Vec4,
        ConvKernel::Gemm => ConvKernel::Uniform,
        k => k,
    };
    // v9 reads x like v5 and needs one 8-channel block of packed weights to fit a uniform block
    let kernel = match kernel {
        ConvKernel::Uniform if !(v5_window_fits(geo) && geo.kdim().div_ceil(8) * 8 * V5_TM <= UNIFORM_BLOCK_F32) => {
            ConvKernel::Vec4
        }
        k => k,
    };
    let y = Tensor::uninit(&geo.out_shape());
    let p = geo.params(b.is_some());
    // The bias binding must hold some buffer; without a bias, has_bias = 0 and the kernel never reads it.
    let bias = b.unwrap_or(w);
    match kernel {
        ConvKernel::Direct => {
            let groups = groups(numel(&geo.out_shape()), WG_DIRECT);
            launch(V1, "main", &geo.overrides(), &p, &[x, w, bias], &[&y], groups);
        }
        ConvKernel::Tiled => {
            let groups = groups(geo.cout, TILE) * groups(geo.npix(), TILE);
            launch(V2, "main", &geo.overrides(), &p, &[x, w, bias], &[&y], groups);
        }
        ConvKernel::Blocked => {
            let groups = groups(geo.cout, TILE) * groups(geo.npix(), TILE);
            launch(V3, "main", &geo.overrides(), &p, &[x, w, bias], &[&y], groups);
        }
        ConvKernel::Uniform => forward_v9(geo, x, w, bias, p, &y),
        ConvKernel::Vec4 if v5_window_fits(geo) => {
            let blocks = geo.batch * geo.out_h * geo.out_w.div_ceil(V5_TN);
            let groups = groups(geo.cout, V5_TM) * groups(blocks, V5_WG);
            let [kh, kw] = geo.overrides();
            // weights k-major with Cout padded to a multiple of 8, so a tap's 8 channels are 2 vec4 loads
            let wp = Tensor::uninit(&[geo.kdim(), geo.cout.div_ceil(V5_TM) * V5_TM]);
            launch(PACK_V5, "main", &[], &p, &[w], &[&wp], self::groups(wp.numel(), WG_DIRECT));
            let r = (-geo.pad_x).rem_euclid(4);
            let overrides = [kh, kw, ("WG", V5_WG as f64), ("R", r as f64)];
            launch(V5, "main", &overrides, &p, &[x, &wp, bias], &[&y], groups);
        }
        ConvKernel::Winograd => winograd(WinogradTile::F2, geo, x, w, bias, p, &y),
        ConvKernel::Winograd4 => winograd(WinogradTile::F4, geo, x, w, bias, p, &y),
        // v5 reads x as vec4 rows: other widths (and very wide kernels) take v4 (v7 was mapped away above)
        ConvKernel::Shaped | ConvKernel::Vec4 | ConvKernel::Gemm => {
            let shape = TileShape::pick(geo.cout, geo.npix());
            let groups = groups(shape.tiles(geo.cout, geo.npix()), 1);
            launch(V4, "main", &shape.overrides(geo), &p, &[x, w, bias], &[&y], groups);
        }
    }
    y
}

/// v5's and v9's vec4 input window applies: rows of whole vec4s, kernels at most `V5_MAX_KW` wide.
fn v5_window_fits(geo: &Geometry) -> bool {
    geo.in_w.is_multiple_of(4) && geo.kw <= V5_MAX_KW
}

/// v9: v5 with the packed weights in uniform blocks. Weights go to (Cout/8 blocks, kp, 8), kp = K rounded up to
/// 8 so every block starts on a 256-byte boundary; each dispatch binds the 64 KiB window of as many whole blocks
/// as fit (all of them for the model's thin layers: 16→16 3×3 is 9 KiB) and covers those channels.
fn forward_v9(geo: &Geometry, x: &Tensor, w: &Tensor, bias: &Tensor, mut p: ConvParams, y: &Tensor) {
    let kp = geo.kdim().div_ceil(8) * 8;
    let nblk = geo.cout.div_ceil(V5_TM);
    let per = UNIFORM_BLOCK_F32 / (kp * V5_TM); // ≥ 1: forward_raw sends larger K to v5
    let last = (nblk - 1) / per * per * kp * V5_TM; // where the last window starts
    let wp = Tensor::uninit(&[(nblk * kp * V5_TM).max(last + UNIFORM_BLOCK_F32)]);
    p.kp = kp as u32;
    launch(PACK_V5, "blocked", &[], &p, &[w], &[&wp], groups(nblk * kp * V5_TM, WG_DIRECT));
    let blocks = geo.batch * geo.out_h * geo.out_w.div_ceil(V5_TN);
    let [kh, kw] = geo.overrides();
    let overrides = [kh, kw, ("WG", V5_WG as f64), ("R", (-geo.pad_x).rem_euclid(4) as f64)];
    for cb0 in (0..nblk).step_by(per) {
        let nb = per.min(nblk - cb0);
        p.chunk = cb0 as u32;
        p.n_split = nb as u32;
        let window = [(&wp, cb0 * kp * V5_TM)];
        launch_with_uniforms(V9, "main", &overrides, &p, &[x, bias], &[y], &window, groups(nb, 1) * groups(blocks, V5_WG));
    }
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

/// The Winograd tile sizes: F(2×2, 3×3) for v6, F(4×4, 3×3) for v8. Each has one shader with the entries
/// `weights`, `input` and `output` and the same bindings.
#[derive(Clone, Copy)]
enum WinogradTile {
    F2,
    F4,
}

impl WinogradTile {
    /// Outputs per tile side (m), and the shader.
    fn m(self) -> usize {
        match self {
            WinogradTile::F2 => 2,
            WinogradTile::F4 => 4,
        }
    }
    fn shader(self) -> Shader {
        match self {
            WinogradTile::F2 => WINO2,
            WinogradTile::F4 => WINO4,
        }
    }
    /// Transformed planes, (m + 2)²: 16 or 36.
    fn planes(self) -> usize {
        (self.m() + 2) * (self.m() + 2)
    }
    fn tiles(self, geo: &Geometry) -> usize {
        geo.batch * geo.out_h.div_ceil(self.m()) * geo.out_w.div_ceil(self.m())
    }
    /// Whether every transformed tensor fits one binding: V and M (planes of Cin or Cout × tiles) and U (planes
    /// of Cout × Cin; dw's Ŵ is F(2×2)'s U shape).
    fn fits(self, geo: &Geometry) -> bool {
        self.fits_within(geo, crate::gpu::gpu().limits.max_storage_buffer_binding_size)
    }
    fn fits_within(self, geo: &Geometry, limit: u64) -> bool {
        let per_plane = (self.tiles(geo) * geo.cin.max(geo.cout)).max(geo.cout * geo.cin);
        (self.planes() * 4 * per_plane) as u64 <= limit
    }
}

/// v6 / v8, Winograd F(m×m, 3×3): transform the filters (U = G·g·Gᵀ) and the input patches (V = Bᵀ·d·B) into
/// (m + 2)² planes, multiply plane by plane with the matmul (M[ξ] = U[ξ]·V[ξ], Cout × Cin times Cin × tiles),
/// and transform each tile's products back into its m×m outputs (Y = Aᵀ·M·A + b). F(2×2): 16 multiplies per
/// 4 outputs and input channel instead of 36; F(4×4): 36 per 16 instead of 144.
fn winograd(tile: WinogradTile, geo: &Geometry, x: &Tensor, w: &Tensor, bias: &Tensor, p: ConvParams, y: &Tensor) {
    let (planes, tiles, sh) = (tile.planes(), tile.tiles(geo), tile.shader());
    let u = Tensor::uninit(&[planes, geo.cout, geo.cin]);
    launch(sh, "weights", &[], &p, &[w, w], &[&u], groups(geo.cout * geo.cin, WG_DIRECT));
    let v = Tensor::uninit(&[planes, geo.cin, tiles]);
    launch(sh, "input", &[], &p, &[x, x], &[&v], groups(geo.cin * tiles, WG_DIRECT));
    let m = crate::ops::matmul::matmul_with(crate::ops::matmul::MatmulKernel::DEFAULT, &u, false, &v, false)
        .expect("the planes' shapes agree by construction");
    launch(sh, "output", &[], &p, &[&m, bias], &[y], groups(geo.cout * tiles, WG_DIRECT));
}

/// v6's weight gradient, Winograd F(3×3, 2×2) (entries `grad_tiles`, `grad_output` of
/// winograd_transforms.wgsl): the input patches as in the forward (V, here (16, P, Cin)), each 2×2 tile of g as
/// Ĝ = G·g·Gᵀ (16, Cout, P), one GEMM per plane over all tiles (Ŵ\[ξ\] = Ĝ\[ξ\]·V\[ξ\], K = P), and
/// dW = Aᵀ·Ŵ·A per filter.
fn winograd_dw(geo: &Geometry, g: &Tensor, x: &Tensor, w_shape: &[usize]) -> Result<Tensor> {
    let tiles = WinogradTile::F2.tiles(geo);
    let p = geo.params(false);
    let v = Tensor::uninit(&[16, tiles, geo.cin]);
    let ov = [("TRANSPOSED", 1.0)];
    launch(WINO2, "input", &ov, &p, &[x, x], &[&v], groups(geo.cin * tiles, WG_DIRECT));
    let gh = Tensor::uninit(&[16, geo.cout, tiles]);
    launch(WINO2, "grad_tiles", &[], &p, &[g, g], &[&gh], groups(geo.cout * tiles, WG_DIRECT));
    let wh = crate::ops::matmul::matmul_with(crate::ops::matmul::MatmulKernel::DEFAULT, &gh, false, &v, false)?;
    let dw = Tensor::uninit(w_shape);
    launch(WINO2, "grad_output", &[], &p, &[&wh, &wh], &[&dw], groups(geo.cout * geo.cin, WG_DIRECT));
    Ok(dw)
}

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
    let _work = super::work::scope("conv2d.dx", || geo.describe(), geo.flops());
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

/// dw of conv2d for a weight of shape `w_shape`, with the dw rung that matches `kernel`.
pub fn conv2d_backward_weight(
    kernel: ConvKernel,
    g: &Tensor,
    x: &Tensor,
    padding: usize,
    w_shape: &[usize],
) -> Result<Tensor> {
    let geo = check(x.shape(), w_shape, None, padding)?;
    check_grad_shape("conv2d_backward_weight", &geo, g)?;
    let _work = super::work::scope("conv2d.dw", || geo.describe(), geo.flops());
    let (cout, kdim, npix) = (geo.cout, geo.kdim(), geo.npix());
    let kernel = match kernel {
        // v8 has no F(4×4) dw: it uses v6's F(3×3, 2×2)
        ConvKernel::Winograd | ConvKernel::Winograd4 if geo.kh == 3 && geo.kw == 3 && WinogradTile::F2.fits(&geo) => {
            return winograd_dw(&geo, g, x, w_shape);
        }
        // v7: dW = Σ_n g[n] (Cout × H·W) · x[n]ᵀ (H·W × Cin), where the GEMM is tall enough to win
        ConvKernel::Gemm if geo.is_pointwise() && geo.cout >= GEMM_DW_MIN_COUT => {
            let hw = geo.in_h * geo.in_w;
            let g3 = g.detach().reshape(&[geo.batch, cout, hw])?;
            let x3 = x.detach().reshape(&[geo.batch, geo.cin, hw])?;
            let per =
                crate::ops::matmul::matmul_with(crate::ops::matmul::MatmulKernel::DEFAULT, &g3, false, &x3, true)?;
            return sum_to_shape(&per, &[1, cout, geo.cin])?.detach().reshape(w_shape);
        }
        // v9's dw reads x like v5's and g from uniform windows; v6 and v8 on other kernel sizes and v7 on other
        // shapes take it too, and every shape it cannot read takes v5's (then v4's)
        ConvKernel::Winograd | ConvKernel::Winograd4 | ConvKernel::Gemm | ConvKernel::Uniform => {
            if dw_v5_reads(&geo) {
                return dw_v9(&geo, g, x, w_shape);
            }
            ConvKernel::Vec4
        }
        k => k,
    };
    match kernel {
        ConvKernel::Direct => {
            let dw = Tensor::uninit(w_shape);
            let groups = groups(cout * kdim, WG_DIRECT);
            launch(DW_V1, "main", &geo.overrides(), &geo.params(false), &[g, x], &[&dw], groups);
            Ok(dw)
        }
        ConvKernel::Vec4 if dw_v5_reads(&geo) => {
            // split the 8-pixel blocks: enough splits to reach ~DW_TARGET_GROUPS workgroups, none shorter than
            // DW_V5_MIN_BLOCKS blocks
            let nblk = geo.batch * geo.out_h * geo.out_w.div_ceil(DW_V5_TN);
            let tiles = cout.div_ceil(DW_V5_TM) * kdim.div_ceil(DW_V5_TK).div_ceil(DW_V5_WG);
            let want = DW_TARGET_GROUPS.div_ceil(tiles).clamp(1, nblk.div_ceil(DW_V5_MIN_BLOCKS).max(1));
            let chunk = nblk.div_ceil(want);
            let n_split = nblk.div_ceil(chunk);
            let mut p = geo.params(false);
            p.chunk = chunk as u32;
            p.n_split = n_split as u32;
            let part = Tensor::uninit(&[n_split, cout, kdim]);
            let [kh, kw] = geo.overrides();
            let overrides = [kh, kw, ("WG", DW_V5_WG as f64), ("R", (-geo.pad_x).rem_euclid(4) as f64)];
            launch(DW_V5, "main", &overrides, &p, &[g, x], &[&part], groups(tiles * n_split, 1));
            // dw = Σ_s part[s]
            let dw = if n_split == 1 { part } else { sum_to_shape(&part, &[1, cout, kdim])? };
            dw.detach().reshape(w_shape)
        }
        // v5's dw reads rows as vec4 and handles KW ∈ {1, 3}: other shapes take v4's
        // (v6–v8 were mapped to v5 above)
        _ => {
            // v2 and v3 use 64×64 tiles of dW, v4 (and v5 falling back) the shape with the least padding
            let shape = match kernel {
                ConvKernel::Tiled | ConvKernel::Blocked => TileShape { bm: TILE, bn: TILE },
                _ => TileShape::pick(cout, kdim),
            };
            // split the pixel reduction: enough splits to reach ~DW_TARGET_GROUPS workgroups, none shorter than
            // DW_MIN_CHUNK pixels; the chunk is a whole number of the kernel's STEP-pixel steps
            let tiles = shape.tiles(cout, kdim);
            let want = DW_TARGET_GROUPS.div_ceil(tiles).clamp(1, npix.div_ceil(DW_MIN_CHUNK).max(1));
            let chunk = npix.div_ceil(want).div_ceil(STEP) * STEP;
            let n_split = npix.div_ceil(chunk);
            let mut p = geo.params(false);
            p.chunk = chunk as u32;
            p.n_split = n_split as u32;
            let part = Tensor::uninit(&[n_split, cout, kdim]);
            let groups = groups(tiles * n_split, 1);
            match kernel {
                ConvKernel::Tiled => launch(DW_V2, "main", &geo.overrides(), &p, &[g, x], &[&part], groups),
                ConvKernel::Blocked => launch(DW_V3, "main", &geo.overrides(), &p, &[g, x], &[&part], groups),
                _ => launch(DW_V4, "main", &shape.overrides(&geo), &p, &[g, x], &[&part], groups),
            }
            // dw = Σ_s part[s]
            let dw = if n_split == 1 { part } else { sum_to_shape(&part, &[1, cout, kdim])? };
            dw.detach().reshape(w_shape)
        }
    }
}

/// dw v5's and v9's vec4 reads apply: KW ∈ {1, 3}, rows of whole vec4s in x and g.
fn dw_v5_reads(geo: &Geometry) -> bool {
    (geo.kw == 1 || geo.kw == 3) && geo.in_w.is_multiple_of(4) && geo.out_w.is_multiple_of(4)
}

/// Mirrors `struct Params` of dw_v9_uniform.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct DwV9Params {
    geo: [u32; 12],
    chunk: u32,
    win0: u32,
    nb_win: u32,
    cb: u32,
    part0: u32,
    _p: [u32; 3],
}

/// dw v9: g packed into pixel blocks per 8-channel block (pack_weights_v5.wgsl:grad_blocks), one dispatch per
/// (channel block, window of 256 blocks), each split of 16 blocks a partial sum; dw = Σ of the partials.
fn dw_v9(geo: &Geometry, g: &Tensor, x: &Tensor, w_shape: &[usize]) -> Result<Tensor> {
    let (cout, kdim) = (geo.cout, geo.kdim());
    let nb = geo.batch * geo.out_h * geo.out_w.div_ceil(DW_V5_TN);
    let ncb = cout.div_ceil(DW_V5_TM);
    let nwin = nb.div_ceil(DW_V9_WINDOW);
    let block = DW_V5_TM * DW_V5_TN; // floats per pixel block
    let last = ((ncb - 1) * nb + (nwin - 1) * DW_V9_WINDOW) * block;
    let gp = Tensor::uninit(&[(ncb * nb * block).max(last + UNIFORM_BLOCK_F32)]);
    let p = geo.params(false);
    launch(PACK_V5, "grad_blocks", &[], &p, &[g], &[&gp], groups(ncb * nb * block, WG_DIRECT));
    // splits: every window's, in window order (the same for every channel block)
    let splits: Vec<usize> = (0..nwin).map(|w| (nb - w * DW_V9_WINDOW).min(DW_V9_WINDOW).div_ceil(DW_V9_CHUNK)).collect();
    let part = Tensor::uninit(&[splits.iter().sum(), cout, kdim]);
    let tiles_k = kdim.div_ceil(DW_V5_TK).div_ceil(DW_V5_WG);
    let [kh, kw] = geo.overrides();
    let overrides = [kh, kw, ("WG", DW_V5_WG as f64), ("R", (-geo.pad_x).rem_euclid(4) as f64)];
    let geo_words: [u32; 12] = bytemuck::cast_slice(bytemuck::bytes_of(&p))[..12].try_into().expect("12 words");
    for cb in 0..ncb {
        let mut part0 = 0;
        for (w, &ns) in splits.iter().enumerate() {
            let win0 = w * DW_V9_WINDOW;
            let dp = DwV9Params {
                geo: geo_words,
                chunk: DW_V9_CHUNK as u32,
                win0: win0 as u32,
                nb_win: (nb - win0).min(DW_V9_WINDOW) as u32,
                cb: cb as u32,
                part0: part0 as u32,
                _p: [0; 3],
            };
            let window = [(&gp, (cb * nb + win0) * block)];
            launch_with_uniforms(DW_V9, "main", &overrides, &dp, &[x], &[&part], &window, groups(tiles_k * ns, 1));
            part0 += ns;
        }
    }
    let dw = if part.dim(0) == 1 { part } else { sum_to_shape(&part, &[1, cout, kdim])? };
    dw.detach().reshape(w_shape)
}

/// y = conv2d(x, w) + b: x (N, Cin, H, W), w (Cout, Cin, KH, KW), b (Cout), stride 1, zero padding `padding`.
/// Taped.
pub fn conv2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, padding: usize) -> Result<Tensor> {
    let k = ConvKernel::pick(w.shape());
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
            (true, Some(w)) => Some(conv2d_backward_input(k, g, w, padding, &x_shape)?),
            _ => None,
        };
        // term 2: dw = Σ_pixels g ⊗ shifted x
        let dw = match (needs[1], &x_saved) {
            (true, Some(x)) => Some(conv2d_backward_weight(k, g, x, padding, &w_shape)?),
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

pub mod cpu {
    //! The f64 reference: the formulas of the module doc as plain loops. Shapes are [N, Cin, H, W] for x,
    //! [Cout, Cin, KH, KW] for w; x reads as 0 outside the image (`at`).

    /// x[n, c, iy, ix] with zero padding outside the image.
    fn at(x: &[f64], xs: [usize; 4], n: usize, c: usize, iy: isize, ix: isize) -> f64 {
        if iy < 0 || ix < 0 || iy >= xs[2] as isize || ix >= xs[3] as isize {
            return 0.0;
        }
        x[((n * xs[1] + c) * xs[2] + iy as usize) * xs[3] + ix as usize]
    }

    fn out_hw(xs: [usize; 4], ws: [usize; 4], padding: usize) -> (usize, usize) {
        (xs[2] + 2 * padding + 1 - ws[2], xs[3] + 2 * padding + 1 - ws[3])
    }

    /// y[n, co, oy, ox] = b\[co\] + Σ_ci,ky,kx w[co, ci, ky, kx] · x[n, ci, oy + ky − p, ox + kx − p]
    pub fn conv2d(x: &[f64], xs: [usize; 4], w: &[f64], ws: [usize; 4], b: Option<&[f64]>, padding: usize) -> Vec<f64> {
        let [n_, cin, _, _] = xs;
        let [cout, _, kh, kw] = ws;
        let (ho, wo) = out_hw(xs, ws, padding);
        let p = padding as isize;
        let mut y = vec![0.0; n_ * cout * ho * wo];
        for n in 0..n_ {
            for co in 0..cout {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut acc = b.map_or(0.0, |b| b[co]);
                        for ci in 0..cin {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let xv = at(x, xs, n, ci, (oy + ky) as isize - p, (ox + kx) as isize - p);
                                    acc += w[((co * cin + ci) * kh + ky) * kw + kx] * xv;
                                }
                            }
                        }
                        y[((n * cout + co) * ho + oy) * wo + ox] = acc;
                    }
                }
            }
        }
        y
    }

    /// dx[n, ci, y, x] = Σ_co Σ_ky,kx g[n, co, y + p − ky, x + p − kx] · w[co, ci, ky, kx] (g = 0 outside)
    pub fn conv2d_backward_input(g: &[f64], w: &[f64], xs: [usize; 4], ws: [usize; 4], padding: usize) -> Vec<f64> {
        let [n_, cin, h, wd] = xs;
        let [cout, _, kh, kw] = ws;
        let (ho, wo) = out_hw(xs, ws, padding);
        let gs = [n_, cout, ho, wo];
        let p = padding as isize;
        let mut dx = vec![0.0; n_ * cin * h * wd];
        for n in 0..n_ {
            for ci in 0..cin {
                for y in 0..h {
                    for x in 0..wd {
                        let mut acc = 0.0;
                        for co in 0..cout {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let (gy, gx) = (y as isize + p - ky as isize, x as isize + p - kx as isize);
                                    let gv = at(g, gs, n, co, gy, gx);
                                    acc += gv * w[((co * cin + ci) * kh + ky) * kw + kx];
                                }
                            }
                        }
                        dx[((n * cin + ci) * h + y) * wd + x] = acc;
                    }
                }
            }
        }
        dx
    }

    /// dw[co, ci, ky, kx] = Σ_n,y,x g[n, co, y, x] · x[n, ci, y + ky − p, x + kx − p]
    pub fn conv2d_backward_weight(g: &[f64], x: &[f64], xs: [usize; 4], ws: [usize; 4], padding: usize) -> Vec<f64> {
        let [n_, cin, _, _] = xs;
        let [cout, _, kh, kw] = ws;
        let (ho, wo) = out_hw(xs, ws, padding);
        let p = padding as isize;
        let mut dw = vec![0.0; cout * cin * kh * kw];
        for co in 0..cout {
            for ci in 0..cin {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let mut acc = 0.0;
                        for n in 0..n_ {
                            for y in 0..ho {
                                for xx in 0..wo {
                                    let xv = at(x, xs, n, ci, (y + ky) as isize - p, (xx + kx) as isize - p);
                                    acc += g[((n * cout + co) * ho + y) * wo + xx] * xv;
                                }
                            }
                        }
                        dw[((co * cin + ci) * kh + ky) * kw + kx] = acc;
                    }
                }
            }
        }
        dw
    }

    /// db\[co\] = Σ_n,y,x g[n, co, y, x]
    pub fn conv2d_backward_bias(g: &[f64], gs: [usize; 4]) -> Vec<f64> {
        let [n_, cout, ho, wo] = gs;
        let hw = ho * wo;
        (0..cout).map(|co| (0..n_).map(|n| g[(n * cout + co) * hw..][..hw].iter().sum::<f64>()).sum()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, check_grads, to_f64, Input};

    /// A conv2d problem: input and weight shapes, padding, and whether it has a bias.
    struct Problem {
        x: [usize; 4],
        w: [usize; 4],
        pad: usize,
        bias: bool,
    }

    const PROBLEMS: &[Problem] = &[
        Problem { x: [1, 1, 1, 1], w: [1, 1, 1, 1], pad: 0, bias: true }, // all size 1, k = 1
        Problem { x: [3, 5, 5, 7], w: [6, 5, 3, 3], pad: 1, bias: true }, // 5×7 "same", N = 3
        Problem { x: [1, 3, 9, 6], w: [7, 3, 7, 7], pad: 3, bias: true }, // 9×6, k = 7 (init_conv)
        Problem { x: [2, 4, 5, 7], w: [3, 4, 1, 1], pad: 0, bias: false }, // 1×1 conv, no bias: v7 forward
        Problem { x: [2, 4, 4, 4], w: [130, 4, 1, 1], pad: 0, bias: false }, // v7 dw as a GEMM (Cout ≥ 128)
        Problem { x: [1, 2, 4, 3], w: [3, 2, 1, 1], pad: 1, bias: true }, // k = 1 with padding: dx pad < 0
        Problem { x: [3, 2, 6, 5], w: [5, 2, 3, 3], pad: 0, bias: true }, // valid conv: output shrinks
        Problem { x: [2, 3, 8, 6], w: [2, 3, 3, 5], pad: 2, bias: false }, // KH ≠ KW
        Problem { x: [1, 13, 9, 11], w: [70, 13, 3, 3], pad: 1, bias: true }, // Cout > 64, K = 117, 99 pixels
        Problem { x: [2, 17, 10, 9], w: [9, 17, 7, 7], pad: 3, bias: true }, // K = 833: many K steps
        Problem { x: [1, 1, 3, 3], w: [1, 1, 7, 7], pad: 3, bias: false }, // kernel larger than the image
        Problem { x: [2, 6, 9, 10], w: [60, 6, 3, 3], pad: 1, bias: true }, // v4 picks 64×64 tiles (Cout 60)
        // widths that are multiples of 4 take v5's own kernel (others fall back to v4) for the forward, dx or both
        Problem { x: [2, 3, 5, 8], w: [11, 3, 3, 3], pad: 1, bias: true }, // v5 fwd + dx, Cout not a multiple of 8
        Problem { x: [1, 2, 4, 12], w: [3, 2, 7, 7], pad: 3, bias: true }, // v5 k = 7, a partial 8-pixel block
        Problem { x: [2, 5, 3, 4], w: [9, 5, 1, 1], pad: 2, bias: false }, // v5 fwd pad 2, dx pad −2
        Problem { x: [1, 3, 6, 10], w: [4, 3, 3, 3], pad: 0, bias: true }, // v5 dx only, at pad 2
        Problem { x: [2, 3, 5, 8], w: [2, 3, 3, 5], pad: 2, bias: false }, // v5 KH ≠ KW
        Problem { x: [2, 7, 3, 12], w: [10, 7, 1, 1], pad: 0, bias: true }, // dw v5 1×1: K = 7, half block
        Problem { x: [3, 4, 6, 12], w: [9, 4, 3, 3], pad: 1, bias: false }, // dw v5 3×3, Cout = 9
        Problem { x: [1, 2, 3, 4], w: [3, 2, 3, 1], pad: 2, bias: false }, // dw v5 KW = 1, KH = 3, pad 2
        // v9: K = 900 fits 2 of its 3 weight blocks per uniform window (2 dispatches; dx: 13 blocks, 11 a window)
        Problem { x: [1, 100, 4, 8], w: [20, 100, 3, 3], pad: 1, bias: true },
        // v9: one block of K = 2,070 is more than a uniform window: the forward falls back to v5
        Problem { x: [1, 230, 2, 4], w: [3, 230, 3, 3], pad: 1, bias: true },
        // dw v9: 320 pixel blocks = 2 windows of g (one partial), 2 channel blocks (Cout = 10)
        Problem { x: [2, 3, 20, 64], w: [10, 3, 3, 3], pad: 1, bias: false },
    ];

    fn data(pr: &Problem, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut rng = crate::rng::Rng::new(seed);
        let x = rng.uniform_vec(numel(&pr.x), -1.0, 1.0);
        let w = rng.uniform_vec(numel(&pr.w), -1.0, 1.0);
        let b = rng.uniform_vec(pr.w[0], -1.0, 1.0);
        (x, w, b)
    }

    fn out_shape(pr: &Problem) -> [usize; 4] {
        [pr.x[0], pr.w[0], pr.x[2] + 2 * pr.pad + 1 - pr.w[2], pr.x[3] + 2 * pr.pad + 1 - pr.w[3]]
    }

    #[test]
    fn debug_conv2d_3x3_ones_prints_values() {
        // 3×3 ones kernel on 1..9 with padding 1: each output is the sum of its 3×3 neighbourhood, plus 0.5
        let x = Tensor::from_slice(&[1., 2., 3., 4., 5., 6., 7., 8., 9.], &[1, 1, 3, 3]).unwrap();
        let w = Tensor::full(&[1, 1, 3, 3], 1.0);
        let b = Tensor::full(&[1], 0.5);
        let want = [12.5, 21.5, 16.5, 27.5, 45.5, 33.5, 24.5, 39.5, 28.5];
        for kernel in ConvKernel::ALL {
            let y = conv2d_with(kernel, &x, &w, Some(&b), 1).unwrap().to_vec();
            println!("{}: {y:?}", kernel.name());
            if kernel == ConvKernel::Winograd4 {
                // v8's transform constants (1/6, 1/24) are not exact in binary: close, not equal
                let (atol, rtol) = forward_tolerance(kernel, &want.map(f64::from));
                assert_close(&y, &want.map(f64::from), atol, rtol, "v8 on 1..9");
            } else {
                assert_eq!(y, want);
            }
        }
    }

    /// (atol, rtol) for a rung's forward and dx against the f64 reference. Every rung but v8 sums exactly what
    /// the direct convolution sums, in another order: 1e-5. v8's F(4×4, 3×3) transforms multiply by up to 8
    /// and by 1/6 and 1/24, so its error grows with the magnitude of what it sums rather than with each output:
    /// 3e-5 of the largest |output|. Worst seen over PROBLEMS: 4.5e-6 of it (dx of x [1, 13, 9, 11], w [70, 13,
    /// 3, 3]: |err| 1.3e-4 where max |dx| is 28.7), forward 3.0e-6.
    fn forward_tolerance(kernel: ConvKernel, want: &[f64]) -> (f64, f64) {
        if kernel == ConvKernel::Winograd4 {
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            (3e-5 * scale.max(1.0), 1e-5)
        } else {
            (1e-5, 1e-5)
        }
    }

    #[test]
    fn v9_splits_weights_over_uniform_windows_and_falls_back_past_one_block() {
        // which kernels a v9 forward runs: the packing, then one dispatch per 64 KiB window of weight blocks
        let kernels = |x: [usize; 4], w: [usize; 4]| {
            let (x, w) = (Tensor::zeros(&x), Tensor::zeros(&w));
            crate::ops::work::start();
            conv2d_with(ConvKernel::Uniform, &x, &w, None, 1).unwrap();
            let calls = crate::ops::work::stop();
            (calls[0].kernels.clone(), calls[0].launches)
        };
        let (k, n) = kernels([1, 100, 4, 8], [20, 100, 3, 3]); // 3 blocks of 904·8 values, 2 to a window
        assert!(k[0].contains("pack_weights_v5.wgsl:blocked") && k[1].starts_with("conv/conv_v9_uniform"), "{k:?}");
        assert_eq!(n, 3, "pack + 2 windows");
        let (k, n) = kernels([1, 16, 8, 8], [16, 16, 3, 3]); // the model's thin layer: one window
        assert_eq!((k.len(), n), (2, 2), "{k:?}");
        let (k, _) = kernels([1, 230, 2, 4], [3, 230, 3, 3]); // one block is more than a window
        assert!(k.iter().all(|k| !k.contains("v9")) && k.iter().any(|k| k.contains("conv_v5_vec4")), "{k:?}");
        // dw: g packed once, then one dispatch per (channel block, window), then the sum of the splits
        let (g, x) = (Tensor::zeros(&[2, 10, 20, 64]), Tensor::zeros(&[2, 3, 20, 64]));
        crate::ops::work::start();
        conv2d_backward_weight(ConvKernel::Uniform, &g, &x, 1, &[10, 3, 3, 3]).unwrap();
        let calls = crate::ops::work::stop();
        let (k, n) = (&calls[0].kernels, calls[0].launches);
        assert!(k[0].contains("grad_blocks") && k[1].starts_with("conv/dw_v9_uniform"), "{k:?}");
        assert!(k[2].starts_with("reduce/"), "{k:?}");
        assert_eq!(n, 1 + 2 * 2 + 1, "pack + 2 channel blocks × 2 windows + sum");
    }

    #[test]
    fn every_rung_forward_matches_cpu_on_odd_shapes() {
        for (i, pr) in PROBLEMS.iter().enumerate() {
            let (xv, wv, bv) = data(pr, 10 + i as u64);
            let x = Tensor::from_slice(&xv, &pr.x).unwrap();
            let w = Tensor::from_slice(&wv, &pr.w).unwrap();
            let b = Tensor::from_slice(&bv, &[pr.w[0]]).unwrap();
            let b64 = to_f64(&bv);
            let want = cpu::conv2d(&to_f64(&xv), pr.x, &to_f64(&wv), pr.w, pr.bias.then_some(&b64[..]), pr.pad);
            for kernel in ConvKernel::ALL {
                let y = conv2d_with(kernel, &x, &w, pr.bias.then_some(&b), pr.pad).unwrap();
                assert_eq!(y.shape(), out_shape(pr));
                let what = format!("{} forward x {:?} w {:?} pad {}", kernel.name(), pr.x, pr.w, pr.pad);
                let (atol, rtol) = forward_tolerance(kernel, &want);
                assert_close(&y.to_vec(), &want, atol, rtol, &what);
            }
        }
    }

    #[test]
    fn every_rung_backward_matches_cpu_on_odd_shapes() {
        for (i, pr) in PROBLEMS.iter().enumerate() {
            let (xv, wv, _) = data(pr, 30 + i as u64);
            let gv = crate::rng::Rng::new(50 + i as u64).uniform_vec(numel(&out_shape(pr)), -1.0, 1.0);
            let x = Tensor::from_slice(&xv, &pr.x).unwrap();
            let w = Tensor::from_slice(&wv, &pr.w).unwrap();
            let g = Tensor::from_slice(&gv, &out_shape(pr)).unwrap();
            let (x64, w64, g64) = (to_f64(&xv), to_f64(&wv), to_f64(&gv));
            let want_dx = cpu::conv2d_backward_input(&g64, &w64, pr.x, pr.w, pr.pad);
            let want_dw = cpu::conv2d_backward_weight(&g64, &x64, pr.x, pr.w, pr.pad);
            for kernel in ConvKernel::ALL {
                let what = format!("{} x {:?} w {:?} pad {}", kernel.name(), pr.x, pr.w, pr.pad);
                let dx = conv2d_backward_input(kernel, &g, &w, pr.pad, &pr.x).unwrap();
                assert_eq!(dx.shape(), pr.x);
                let (atol, rtol) = forward_tolerance(kernel, &want_dx); // dx runs the forward kernel
                assert_close(&dx.to_vec(), &want_dx, atol, rtol, &format!("{what}: dx"));
                let dw = conv2d_backward_weight(kernel, &g, &x, pr.pad, &pr.w).unwrap();
                assert_eq!(dw.shape(), pr.w);
                // f32 sums over N·H·W pixels: the absolute error grows with the largest gradient
                let big = want_dw.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                assert_close(&dw.to_vec(), &want_dw, 1e-5 * big, 1e-5, &format!("{what}: dw"));
            }
        }
    }

    #[test]
    fn dw_split_k_sums_partial_chunks() {
        // 3 images of 23×21 = 1,449 pixels: 4,347 pixels in several 256+ pixel chunks, the last one partial;
        // 23×24 reaches dw v5: 207 8-pixel blocks in 13 splits of 16, the last one partial
        for (i, xs) in [[3, 2, 23, 21], [3, 2, 23, 24]].into_iter().enumerate() {
            let pr = Problem { x: xs, w: [3, 2, 3, 3], pad: 1, bias: false };
            let (xv, _, _) = data(&pr, 70 + i as u64);
            let gv = crate::rng::Rng::new(71).uniform_vec(numel(&out_shape(&pr)), -1.0, 1.0);
            let x = Tensor::from_slice(&xv, &pr.x).unwrap();
            let g = Tensor::from_slice(&gv, &out_shape(&pr)).unwrap();
            let want = cpu::conv2d_backward_weight(&to_f64(&gv), &to_f64(&xv), pr.x, pr.w, pr.pad);
            for kernel in ConvKernel::ALL {
                let dw = conv2d_backward_weight(kernel, &g, &x, pr.pad, &pr.w).unwrap();
                assert_close(&dw.to_vec(), &want, 1e-4, 1e-5, &format!("{} dw over {xs:?}", kernel.name()));
            }
        }
    }

    #[test]
    fn conv2d_gradients_match_finite_differences_for_k_1_3_7() {
        let cases = [
            Problem { x: [2, 3, 4, 5], w: [2, 3, 1, 1], pad: 0, bias: true },
            Problem { x: [2, 3, 5, 4], w: [4, 3, 3, 3], pad: 1, bias: true },
            Problem { x: [1, 2, 6, 5], w: [3, 2, 7, 7], pad: 3, bias: true },
            Problem { x: [1, 2, 5, 6], w: [2, 2, 3, 3], pad: 0, bias: false },
        ];
        for (i, pr) in cases.iter().enumerate() {
            let name = format!("conv2d x {:?} w {:?} pad {} bias {}", pr.x, pr.w, pr.pad, pr.bias);
            let seed = 80 + 3 * i as u64;
            let mut ins = vec![Input::uniform(&pr.x, -1.0, 1.0, seed), Input::uniform(&pr.w, -1.0, 1.0, seed + 1)];
            if pr.bias {
                ins.push(Input::uniform(&[pr.w[0]], -1.0, 1.0, seed + 2));
            }
            check_grads(
                &name,
                &ins,
                |t| conv2d(&t[0], &t[1], t.get(2), pr.pad),
                |v| cpu::conv2d(&v[0], pr.x, &v[1], pr.w, v.get(2).map(|b| &b[..]), pr.pad),
            );
        }
    }

    #[test]
    fn conv2d_bias_gradient_is_the_sum_of_g() {
        let pr = Problem { x: [3, 2, 5, 7], w: [5, 2, 3, 3], pad: 1, bias: true };
        let x = Tensor::from_slice(&data(&pr, 5).0, &pr.x).unwrap();
        let w = Tensor::from_slice(&data(&pr, 5).1, &pr.w).unwrap();
        let b = Tensor::zeros(&[5]).with_grad();
        let gv = crate::rng::Rng::new(6).uniform_vec(numel(&out_shape(&pr)), -1.0, 1.0);
        let g = Tensor::from_slice(&gv, &out_shape(&pr)).unwrap();
        let y = conv2d(&x, &w, Some(&b), 1).unwrap();
        let loss = crate::ops::reduce::sum_all(&crate::ops::elementwise::mul(&y, &g).unwrap()).unwrap();
        let grads = autograd::backward(&loss).unwrap();
        let want = cpu::conv2d_backward_bias(&to_f64(&gv), out_shape(&pr));
        assert_close(&grads.get(&b).unwrap().to_vec(), &want, 1e-5, 1e-5, "db");
    }

    #[test]
    fn conv2d_over_65535_workgroups() {
        // one pixel, 4,259,840 output channels, 1×1 kernel: 66,560 workgroups for every rung: v1 has 64 threads
        // each, v2/v3 64 channels per tile, and v4 picks 64×64 tiles (its 16×256 tiles would need 4× the
        // pixels for the same count on a many-pixel problem). dx runs the same forward kernels.
        let (xs, ws) = ([1, 1, 1, 1], [4_259_840, 1, 1, 1]);
        let x = Tensor::full(&xs, 2.0);
        let w = Tensor::full(&ws, 3.0);
        let b = Tensor::full(&[ws[0]], 1.0);
        assert_eq!(TileShape::pick(ws[0], 1).tiles(ws[0], 1), 66_560);
        for kernel in ConvKernel::ALL {
            let y = conv2d_with(kernel, &x, &w, Some(&b), 0).unwrap().to_vec();
            assert_eq!(y.len(), ws[0]);
            let bad = y.iter().position(|&v| v != 7.0);
            assert!(bad.is_none(), "{}: first bad at {bad:?}", kernel.name());
        }
    }

    #[test]
    fn conv2d_v5_over_65535_workgroups() {
        // v5 needs an input width that is a multiple of 4 (the test above falls back to v4): 4 pixels in one
        // row, 524,296 channels = 65,537 blocks of 8, one workgroup each
        let (xs, ws) = ([1, 1, 1, 4], [524_296, 1, 1, 1]);
        let x = Tensor::full(&xs, 2.0);
        let w = Tensor::full(&ws, 3.0);
        let b = Tensor::full(&[ws[0]], 1.0);
        let y = conv2d_with(ConvKernel::Vec4, &x, &w, Some(&b), 0).unwrap().to_vec();
        assert_eq!(y.len(), ws[0] * 4);
        let bad = y.iter().position(|&v| v != 7.0);
        assert!(bad.is_none(), "first bad at {bad:?}");
    }

    #[test]
    fn winograd_falls_back_when_a_transformed_tensor_exceeds_a_binding() {
        // The arithmetic, at an explicit 128 MiB limit: F(2×2) takes 64 bytes per tile and channel (V and M), F(4×4)
        // 144 per 4×4 tile, and U takes planes·4 bytes per (Cout, Cin) pair, whichever is larger.
        let limit: u64 = 128 << 20;
        let ws = [1, 1, 3, 3];
        let at = |xs: [usize; 4], w: [usize; 4]| check(&xs, &w, None, 1).unwrap();
        let t2 = (limit / 64) as usize; // tiles that exactly fill the limit at one channel
        assert!(WinogradTile::F2.fits_within(&at([1, 1, 2, 2 * t2], ws), limit));
        assert!(!WinogradTile::F2.fits_within(&at([1, 1, 2, 2 * t2 + 4], ws), limit));
        let t4 = (limit / 144) as usize;
        assert!(WinogradTile::F4.fits_within(&at([1, 1, 4, 4 * t4], ws), limit));
        assert!(!WinogradTile::F4.fits_within(&at([1, 1, 4, 4 * t4 + 4], ws), limit));
        // a wide filter on a small image: V and M are small, U (36 × 1024 × 1024 floats, 151 MB) is not
        let wide = at([8, 1024, 8, 8], [1024, 1024, 3, 3]);
        assert!(!WinogradTile::F4.fits_within(&wide, limit) && WinogradTile::F2.fits_within(&wide, limit));

        // On this adapter: an input just over its own limit must run v5 (in_w a multiple of 4, so v5's own
        // kernel and not v4's) and still be right. (Each Winograd invocation owns ≥ 36 bytes of a bound buffer,
        // so under llvmpipe's 128 MiB limit its launches also stay below 65,536 workgroups.) The run needs an
        // input of limit / 4 bytes, so it is made where that is at most 64 MiB (llvmpipe: 32 MiB); adapters
        // with GiB-sized limits get only the arithmetic above.
        let limit = crate::gpu::gpu().limits.max_storage_buffer_binding_size;
        let tiles = ((limit / 64) as usize + 2) & !1; // even, so in_w = 2·tiles is a multiple of 4
        let (xs, ws) = ([1, 1, 2, 2 * tiles], [1, 1, 3, 3]);
        let geo = check(&xs, &ws, None, 1).unwrap();
        assert!(!WinogradTile::F2.fits(&geo));
        if limit / 4 > 64 << 20 {
            return;
        }
        let mut rng = crate::rng::Rng::new(9);
        let (xv, wv) = (rng.uniform_vec(numel(&xs), -1.0, 1.0), rng.uniform_vec(9, -1.0, 1.0));
        let x = Tensor::from_slice(&xv, &xs).unwrap();
        let w = Tensor::from_slice(&wv, &ws).unwrap();
        let got = conv2d_with(ConvKernel::Winograd, &x, &w, None, 1).unwrap().to_vec();
        let want = cpu::conv2d(&to_f64(&xv), xs, &to_f64(&wv), ws, None, 1);
        assert_close(&got, &want, 1e-5, 1e-5, "v6 fallback 1×1×2×(2·tiles)");
        crate::gpu::gpu().check().expect("nothing was over the limit");
    }

    #[test]
    fn conv2d_with_a_rank_3_weight_is_an_error_not_a_panic() {
        let err = conv2d(&Tensor::zeros(&[1, 3, 5, 5]), &Tensor::zeros(&[4, 3, 3]), None, 1).unwrap_err();
        assert!(err.to_string().contains("[4, 3, 3]"), "{err}");
    }

    #[test]
    fn v4_tile_shape_follows_cout() {
        // forward: M = Cout, N = pixels (8 images of 32×32 here)
        assert_eq!(TileShape::pick(16, 8192), TileShape { bm: 16, bn: 256 });
        assert_eq!(TileShape::pick(32, 8192), TileShape { bm: 32, bn: 128 });
        assert_eq!(TileShape::pick(96, 8192), TileShape { bm: 32, bn: 128 });
        assert_eq!(TileShape::pick(64, 8192), TileShape { bm: 64, bn: 64 });
        // dw: M = Cout, N = Cin·KH·KW (16 -> 16 3×3: 144 k's fit one 256-wide tile)
        assert_eq!(TileShape::pick(16, 144), TileShape { bm: 16, bn: 256 });
    }

    #[test]
    fn conv2d_rejects_channel_mismatch_naming_shapes() {
        let (x, w) = (Tensor::zeros(&[1, 3, 5, 5]), Tensor::zeros(&[8, 4, 3, 3]));
        let err = conv2d(&x, &w, None, 1).unwrap_err().to_string();
        assert_eq!(err, "conv2d: input has 3 channels but weight [8, 4, 3, 3] expects 4");
    }

    #[test]
    fn conv2d_rejects_bias_length_mismatch() {
        let (x, w) = (Tensor::zeros(&[1, 4, 5, 5]), Tensor::zeros(&[8, 4, 3, 3]));
        let err = conv2d(&x, &w, Some(&Tensor::zeros(&[7])), 1).unwrap_err().to_string();
        assert!(err.contains("bias [7]") && err.contains("[8]") && err.contains("[8, 4, 3, 3]"), "{err}");
    }

    #[test]
    fn conv2d_rejects_output_smaller_than_one_pixel() {
        let (x, w) = (Tensor::zeros(&[1, 2, 2, 9]), Tensor::zeros(&[3, 2, 7, 7]));
        let err = conv2d(&x, &w, None, 2).unwrap_err().to_string();
        assert!(err.contains("output would be 0×7"), "{err}");
        assert!(err.contains("7×7 kernel") && err.contains("[1, 2, 2, 9]"), "{err}");
    }

    #[test]
    fn conv2d_rejects_wrong_rank_and_bad_gradient_shape() {
        let err = conv2d(&Tensor::zeros(&[2, 5, 5]), &Tensor::zeros(&[1, 2, 3, 3]), None, 1).unwrap_err().to_string();
        assert!(err.contains("(N, Cin, H, W)") && err.contains("[2, 5, 5]"), "{err}");
        let (g, w) = (Tensor::zeros(&[1, 1, 4, 4]), Tensor::zeros(&[1, 2, 3, 3]));
        let err = conv2d_backward_input(ConvKernel::Vec4, &g, &w, 1, &[1, 2, 5, 5]).unwrap_err().to_string();
        assert!(err.contains("[1, 1, 4, 4]") && err.contains("[1, 1, 5, 5]"), "{err}");
    }
}
