//! Fused linear attention: MedSegDiff's `LinearAttention` core in eight dispatches (three forward, five
//! backward) instead of the composed path's chunk copies, two softmaxes, a scale and two batched GEMMs with their
//! transposes (and their tape), with no (B·heads, d, n) intermediate but the output.
//!
//! **Shape of the work.** The context k̂·vᵀ (and, backward, its gradient q̂·doutᵀ) is a d×d product summed over
//! all n pixels: a GEMM with a tiny output and a long K, which a GEMM leaves mostly idle. Here it is split over
//! K ("split-K"): one workgroup per (head, chunk of up to 4,096 pixels, block of value channels), each of its
//! 64 invocations walking every 64th pixel of the chunk (every 64th quad of pixels, read as vec4, where
//! n % 4 == 0) with a d × 4·eb4 tile in registers and k's softmax over the pixels folded in as an online
//! softmax (`linear_context.wgsl`); a short merge rescales and sums the
//! 64·nchunk partials of a head (`linear_merge.wgsl`). The backward's dC partials are one such pass over q and
//! dout (`linear_dcontext.wgsl`). The per-pixel kernels, four pixels an invocation, are the output
//! (`linear_out.wgsl`), dq (`linear_dq.wgsl`) and dk / dv (`linear_dkv.wgsl`); each reads the head's context
//! (or its gradient) from a 64 KiB uniform window of head blocks (on llvmpipe ~9× cheaper than a storage read,
//! docs/llvmpipe-stores.md; on a GPU the constant cache's broadcast), every row read serving four pixels.
//!
//! Dispatches: forward context + merge + out; backward dC + merge + rows + dk/dv + dq; out, dq and dk/dv once
//! per window of heads (one window holds 51 heads of dim_head 16, 15 of 32). No invocation loops more than
//! [`LOOP_BUDGET`] times (llvmpipe's limit). Applies to dim_head 1 ..= 64 and up to 1,048,576 pixels a head
//! ([`applies`]); the composed path (`linear_attention_composed`) covers the rest and stays as the teaching
//! version and second reference.
//!
//! Measured: docs/bench-history.md ("Linear attention").

use super::super::{launch, launch_with_uniforms, UNIFORM_BLOCK_F32};
use crate::gpu::Shader;
use crate::tensor::Tensor;
use crate::{autograd, shader, Result};

const CONTEXT: Shader = shader!("attention/linear_context.wgsl", "attention/linear_common.wgsl");
const MERGE: Shader = shader!("attention/linear_merge.wgsl", "attention/linear_common.wgsl");
/// The per-pixel kernels that read context rows from a window, with their window pieces
/// ([`crate::ops::window_piece`]).
const OUT: crate::ops::WindowKernel = [
    shader!(
        "attention/linear_out.wgsl",
        "attention/linear_common.wgsl",
        "attention/linear_pixels.wgsl",
        "attention/linear_qexp.wgsl",
        "window/plain.wgsl"
    ),
    shader!(
        "attention/linear_out.wgsl",
        "attention/linear_common.wgsl",
        "attention/linear_pixels.wgsl",
        "attention/linear_qexp.wgsl",
        "window/subgroup.wgsl"
    ),
];
const DCONTEXT: Shader =
    shader!("attention/linear_dcontext.wgsl", "attention/linear_common.wgsl", "attention/linear_qexp.wgsl");
const DQ: crate::ops::WindowKernel = [
    shader!(
        "attention/linear_dq.wgsl",
        "attention/linear_common.wgsl",
        "attention/linear_pixels.wgsl",
        "attention/linear_qexp.wgsl",
        "window/plain.wgsl"
    ),
    shader!(
        "attention/linear_dq.wgsl",
        "attention/linear_common.wgsl",
        "attention/linear_pixels.wgsl",
        "attention/linear_qexp.wgsl",
        "window/subgroup.wgsl"
    ),
];
const DKV: crate::ops::WindowKernel = [
    shader!(
        "attention/linear_dkv.wgsl",
        "attention/linear_common.wgsl",
        "attention/linear_pixels.wgsl",
        "window/plain.wgsl"
    ),
    shader!(
        "attention/linear_dkv.wgsl",
        "attention/linear_common.wgsl",
        "attention/linear_pixels.wgsl",
        "window/subgroup.wgsl"
    ),
];

/// Invocations per workgroup of every linear-attention kernel.
const WG: usize = 64;
/// Pixels per invocation of the per-pixel kernels (their PIX, 1 ..= 4): each context entry read from the
/// uniform window serves that many.
const PIXELS: usize = 4;
/// Most pixels per workgroup of the split-K kernels (64 per invocation): fewer leave more partials to write
/// and merge, more leave fewer workgroups to spread over the adapter.
const MAX_CHUNK: usize = 4096;
/// Loop iterations one invocation may spend. llvmpipe ends every loop of an invocation once all its loops
/// together have run 65,535 iterations (gallivm's `LP_MAX_TGSI_LOOP_ITERATIONS`, shared by every loop of a
/// shader) and goes on with wrong sums; half of it leaves room for the kernels' set-up and store loops.
const LOOP_BUDGET: usize = 32_768;
/// vec4 accumulators of one value block in linear_context / linear_dcontext (their `acc` arrays of 2·DMAX): at 64,
/// small's 4 heads of 32 took 4 value blocks, each recomputing q's softmax per pixel; at 128 they take 2
/// (measured: docs/bench-history.md).
const ACC_VEC4: usize = 128;

/// Mirrors `struct Params` of `shaders/attention/linear_common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    d: u32,
    heads: u32,
    nbh: u32,
    chunk: u32,
    nchunk: u32,
    neb: u32,
    eb4: u32,
    hs: u32,
    bh0: u32,
    nbw: u32,
    dp: u32,
    ps: u32,
    scale: f32,
    hsf: u32,
    npart: u32,
}

/// Whether the fused kernels take a head size (their register arrays hold 64 features) and n pixels (the
/// merge loops over the chunks within [`LOOP_BUDGET`]).
pub fn applies(dim_head: usize, n: usize) -> bool {
    let g = Geo { b: 1, heads: 1, d: dim_head, n, h: 1, w: n };
    (1..=64).contains(&dim_head) && 2 * g.npart() <= LOOP_BUDGET
}

#[derive(Clone, Copy)]
struct Geo {
    b: usize,
    heads: usize,
    d: usize,
    n: usize,
    h: usize,
    w: usize,
}

impl Geo {
    fn nbh(&self) -> usize {
        self.b * self.heads
    }
    /// d rounded up to whole vec4: the row length of a context block.
    fn dp(&self) -> usize {
        self.d.div_ceil(4) * 4
    }
    /// (pixels per chunk, chunks): a chunk is one split-K workgroup's, at most MAX_CHUNK pixels and within
    /// the loop budget of each of its 64 invocations (per pixel [`Geo::loops_per_pixel`] iterations).
    fn chunks(&self) -> (usize, usize) {
        let chunk = MAX_CHUNK.min(64 * (LOOP_BUDGET / self.loops_per_pixel()));
        (chunk, self.n.div_ceil(chunk))
    }
    /// Loop passes per pixel of the split-K kernels: one, their pixel loop's; every feature loop is marked
    /// `// unroll` and within [`crate::gpu::specialize::MAX_COPIES`] trips (D·EB4 ≤ ACC_VEC4, tested), so
    /// it is expanded and costs no pass. (Counting them as loops, 559 a pixel at d 32, cut n = 4,096 into two
    /// chunks and doubled the partials written and merged.)
    fn loops_per_pixel(&self) -> usize {
        1
    }
    /// Partials per head: one per invocation of a chunk's workgroup.
    fn npart(&self) -> usize {
        64 * self.chunks().1
    }
    /// vec4 columns per value block: the d × 4·eb4 accumulator tile stays within [`ACC_VEC4`].
    fn eb4(&self) -> usize {
        (self.dp() / 4).min(ACC_VEC4 / self.d).max(1)
    }
    fn neb(&self) -> usize {
        (self.dp() / 4).div_ceil(self.eb4())
    }
    /// Floats per partial: m (dp), s (dp), acc (d rows of dp): whole vec4 rows, which the merge reads.
    fn ps(&self) -> usize {
        (2 + self.d) * self.dp()
    }
    /// Floats per head block holding d rows of dp and `extra` rows of d, rounded to 64 (256-byte windows).
    fn head_block(&self, extra: usize) -> usize {
        (self.d * self.dp() + extra * self.d).div_ceil(64) * 64
    }
    fn params(&self) -> Params {
        let (chunk, nchunk) = self.chunks();
        Params {
            n: self.n as u32,
            d: self.d as u32,
            heads: self.heads as u32,
            nbh: self.nbh() as u32,
            chunk: chunk as u32,
            nchunk: nchunk as u32,
            neb: self.neb() as u32,
            eb4: self.eb4() as u32,
            hs: 0,
            bh0: 0,
            nbw: 0,
            dp: self.dp() as u32,
            ps: self.ps() as u32,
            scale: (self.d as f32).powf(-0.5),
            hsf: self.head_block(1) as u32,
            npart: self.npart() as u32,
        }
    }
    /// Launch `shader` once per uniform window of the head blocks in `blocks` (`hs` floats a head), one
    /// invocation per PIXELS pixels of the window's heads.
    /// Launch a per-pixel kernel (`PIXELS` a thread) over every uniform window of `blocks`, its context rows (DP4
    /// vec4) read through its window piece ([`crate::ops::window_piece`]: on llvmpipe the subgroup piece ran
    /// linear_out 1.2–1.4× and linear_dq + linear_dkv 1.1–2.3× faster, docs/bench-history.md).
    fn per_pixel(
        &self,
        kernel: crate::ops::WindowKernel,
        base: Params,
        inputs: &[&Tensor],
        outputs: &[&Tensor],
        blocks: &Tensor,
    ) {
        let dp4 = self.dp() / 4;
        let mut ov = vec![("D", self.d as f64), ("DP4", dp4 as f64), ("PIX", PIXELS as f64)];
        let shader = crate::ops::window_piece(kernel, dp4, WG as u32, true, &mut ov);
        self.per_window(shader, base, &ov, self.n.div_ceil(WG * PIXELS), inputs, outputs, blocks);
    }
    /// Launch `shader` once per uniform window of the head blocks in `blocks` (`hs` floats a head) with
    /// `per_head` workgroups for each head of the window.
    #[allow(clippy::too_many_arguments)]
    fn per_window(
        &self,
        shader: Shader,
        base: Params,
        ov: &[(&'static str, f64)],
        per_head: usize,
        inputs: &[&Tensor],
        outputs: &[&Tensor],
        blocks: &Tensor,
    ) {
        let hs = base.hs as usize;
        let per_window = UNIFORM_BLOCK_F32 / hs;
        for bh0 in (0..self.nbh()).step_by(per_window) {
            let nbw = per_window.min(self.nbh() - bh0);
            let p = Params { bh0: bh0 as u32, nbw: nbw as u32, ..base };
            let groups = (nbw * per_head) as u32;
            launch_with_uniforms(shader, "main", ov, &p, inputs, outputs, &[(blocks, bh0 * hs)], groups);
        }
    }
    /// A head-block buffer of `hs` floats a head that every window of [`Geo::per_pixel`] fits in.
    fn blocks(&self, hs: usize) -> Tensor {
        let per_window = UNIFORM_BLOCK_F32 / hs;
        let last = (self.nbh() - 1) / per_window * per_window;
        Tensor::uninit(&[last * hs + UNIFORM_BLOCK_F32])
    }
    /// The split-K kernels' pipeline constants: D, EB4 and DP4 (their feature loops unroll) and QUAD (four
    /// pixels a step, read as vec4, where the rows allow: n % 4 == 0; a chunk is a multiple of 4 pixels, so no
    /// quad straddles two).
    fn split_ov(&self) -> [(&'static str, f64); 4] {
        [
            ("D", self.d as f64),
            ("EB4", self.eb4() as f64),
            ("DP4", (self.dp() / 4) as f64),
            ("QUAD", self.quad() as u32 as f64),
        ]
    }
    /// Whether the split-K kernels run QUAD: the one condition their pipeline constant and their vec4 bindings
    /// ([`Geo::quad_binding`]) both follow.
    fn quad(&self) -> bool {
        self.n.is_multiple_of(4)
    }
    /// What the split-K kernels' vec4 view of `t` binds: `t` itself with QUAD, else an unread 4-float stand-in
    /// (a tensor of fewer than 4 floats cannot be bound as vec4s).
    fn quad_binding(&self, t: &Tensor) -> Tensor {
        if self.quad() {
            t.clone()
        } else {
            Tensor::uninit(&[4])
        }
    }
    /// Workgroups of a split-K kernel for one head: one per (chunk, value block).
    fn split_per_head(&self) -> usize {
        self.chunks().1 * self.neb()
    }
    /// Workgroups of the merge: one invocation per (head, row) and, with `cols`, per column quad of dp.
    fn merge_groups(&self, cols: bool) -> u32 {
        (self.nbh() * self.d * if cols { self.dp() / 4 } else { 1 }).div_ceil(WG) as u32
    }
}

/// Forward: (out (B, heads·d, H, W), the context blocks (C rows, lse) the backward reads).
fn forward(g: &Geo, qkv: &Tensor) -> (Tensor, Tensor) {
    let mut p = g.params();
    let part = Tensor::uninit(&[g.nbh() * g.npart() * g.ps()]);
    let q4 = g.quad_binding(qkv);
    launch(CONTEXT, "main", &g.split_ov(), &p, &[qkv, &q4], &[&part], (g.nbh() * g.split_per_head()) as u32);
    p.hs = p.hsf;
    let cblock = g.blocks(p.hs as usize);
    launch(MERGE, "forward", &[], &p, &[&part, &part], &[&cblock], g.merge_groups(true));
    let out = Tensor::uninit(&[g.b, g.heads * g.d, g.h, g.w]);
    g.per_pixel(OUT, p, &[qkv], &[&out], &cblock);
    (out, cblock)
}

/// Backward: d(qkv) from the output gradient `dout` and the forward's context blocks.
fn backward(g: &Geo, qkv: &Tensor, cblock: &Tensor, dout: &Tensor) -> Tensor {
    let dqkv = Tensor::uninit(qkv.shape());
    let mut p = g.params();
    p.hs = p.hsf;
    let part = Tensor::uninit(&[g.nbh() * g.npart() * g.ps()]);
    let groups = (g.nbh() * g.split_per_head()) as u32;
    let (q4, d4) = (g.quad_binding(qkv), g.quad_binding(dout));
    launch(DCONTEXT, "main", &g.split_ov(), &p, &[qkv, dout, &q4, &d4], &[&part], groups);
    g.per_pixel(DQ, p, &[qkv, dout], &[&dqkv], cblock);
    p.hs = g.head_block(2) as u32;
    let dblock = g.blocks(p.hs as usize);
    launch(MERGE, "backward", &[], &p, &[&part, cblock], &[&dblock], g.merge_groups(true));
    launch(MERGE, "rows", &[], &p, &[&part, cblock], &[&dblock], g.merge_groups(false));
    g.per_pixel(DKV, p, &[qkv], &[&dqkv], &dblock);
    dqkv
}

/// Linear attention of qkv (B, 3·heads·dim_head, H, W) -> (B, heads·dim_head, H, W), fused and taped; the
/// caller has checked the shape and [`applies`].
pub(super) fn linear_attention(qkv: &Tensor, heads: usize, dim_head: usize) -> Result<Tensor> {
    let s = qkv.shape();
    let g = Geo { b: s[0], heads, d: dim_head, n: s[2] * s[3], h: s[2], w: s[3] };
    // the package's two einsums, as PyTorch's flop counter counts them: k̂·vᵀ and Cᵀ·q̂, 2·d·d·n each
    let flops = 4.0 * (g.nbh() * g.d * g.d * g.n) as f64;
    let shape = move || format!("bh{} n{} d{}", g.nbh(), g.n, g.d);
    let (out, cblock) = {
        let _work = crate::ops::work::scope("attention.linear", shape, flops);
        forward(&g, qkv)
    };
    let qkv_saved = qkv.clone();
    autograd::record("linear_attention", &[qkv], &out, move |dout, _| {
        // each product's backward is two products of its size
        let _work = crate::ops::work::scope("attention.linear.bwd", shape, 2.0 * flops);
        Ok(vec![Some(backward(&g, &qkv_saved, &cblock, dout))])
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_fit_the_registers_and_windows_start_on_256_byte_boundaries() {
        for d in 1..=64 {
            for n in [1, 63, 64, 65, 1024, 4096, 64 * 65 + 1, 65_536, 4_194_401] {
                let g = Geo { b: 2, heads: 3, d, n, h: 1, w: n };
                let (chunk, nchunk) = g.chunks();
                assert!(chunk * nchunk >= n && chunk * (nchunk - 1) < n, "d {d} n {n}");
                assert!(chunk / 64 * g.loops_per_pixel() <= LOOP_BUDGET, "d {d} n {n}: {chunk} pixels a chunk");
                assert!(n > 1 << 20 || applies(d, n), "d {d} n {n}: {nchunk} chunks");
                assert!(g.d * g.eb4() <= ACC_VEC4 && g.eb4() <= 16, "d {d}: eb4 {}", g.eb4());
                // the split-K kernels' feature loops are expanded (loops_per_pixel counts none of them)
                assert!(ACC_VEC4 as i64 <= crate::gpu::specialize::MAX_COPIES);
                assert!(g.neb() * g.eb4() * 4 >= g.d && (g.neb() - 1) * g.eb4() * 4 < g.d, "d {d}");
                for extra in [1, 2] {
                    let hs = g.head_block(extra);
                    assert!(hs.is_multiple_of(64) && hs >= d * g.dp() + extra * d && hs <= UNIFORM_BLOCK_F32);
                }
            }
        }
    }
}
