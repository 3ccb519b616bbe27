//! The weight-gradient rungs: dw v1–v5, v9 and v10 (v6's Winograd dw is in [`super::winograd`], v7's GEMM dw here).

use bytemuck::{Pod, Zeroable};

use super::forward::{TileShape, PACK_V5, STEP, TILE};
use super::winograd::{winograd_dw, WinogradTile};
use super::{check, check_grad_shape, groups, ConvKernel, Geometry, WG_DIRECT};
use crate::gpu::Shader;
use crate::ops::reduce::sum_to_shape;
use crate::ops::{launch, launch_with_uniforms, UNIFORM_BLOCK_F32};
use crate::tensor::Tensor;
use crate::{shader, Result};

const DW_V1: Shader = shader!("conv/dw_v1_direct.wgsl");
const DW_V2: Shader = shader!("conv/dw_v2_implicit_gemm.wgsl");
const DW_V3: Shader = shader!("conv/dw_v3_blocked.wgsl");
const DW_V4: Shader = shader!("conv/dw_v4_shaped.wgsl");
const DW_V5: Shader = shader!("conv/dw_v5_vec4.wgsl");
const DW_V9: Shader = shader!("conv/dw_v9_uniform.wgsl");
/// dw v10 with its g pieces: [plain, subgroup] ([`crate::ops::window_piece`] chooses, see [`dw_v10`]).
const DW_V10: crate::ops::WindowKernel = [
    shader!("conv/dw_v10_reuse.wgsl", "conv/dw_v10_g_plain.wgsl"),
    shader!("conv/dw_v10_reuse.wgsl", "conv/dw_v10_g_subgroup.wgsl"),
];
/// dw v10: output channels per invocation, input channels per invocation for 1×1 kernels, invocations per
/// workgroup.
const DW_V10_TM: usize = 8;
const DW_V10_TC: usize = 8;
const DW_V10_WG: usize = 8;
/// dw v5: output channels × k's per invocation, pixels per block, invocations per workgroup; each split sums
/// at least `DW_V5_MIN_BLOCKS` blocks, and splits are added until the launch has about `DW_TARGET_GROUPS`.
const DW_V5_TM: usize = 8;
const DW_V5_TK: usize = 3;
const DW_V5_TN: usize = 8;
const DW_V5_WG: usize = 16;
const DW_V5_MIN_BLOCKS: usize = 16;
/// dw v9: pixel blocks of 8 per uniform window of g (256 blocks × 8 channels × 8 pixels = 64 KiB), and the
/// shortest split (the most splits a window gets).
const DW_V9_WINDOW: usize = 256;
const DW_V9_CHUNK: usize = 16;
/// dw v2 split-K: each split sums at least this many pixels, and splits are added until the launch has
/// about `DW_TARGET_GROUPS` workgroups (few output tiles, e.g. 64×576 for a 64→64 3×3 conv, are otherwise 9).
const DW_MIN_CHUNK: usize = 256;
/// The most 8-pixel blocks one dw v5 / v10 invocation walks (half llvmpipe's per-invocation loop limit).
pub(super) const DW_LOOP_BUDGET: usize = 32_768;
const DW_TARGET_GROUPS: usize = 256;

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
    let _work = crate::ops::work::scope("conv2d.dw", || geo.describe(), geo.flops());
    let (cout, kdim, npix) = (geo.cout, geo.kdim(), geo.npix());
    let kernel = match kernel {
        // v8 has no F(4×4) dw: it uses v6's F(3×3, 2×2)
        ConvKernel::Winograd | ConvKernel::Winograd4 if geo.kh == 3 && geo.kw == 3 && WinogradTile::F2.fits(&geo) => {
            return winograd_dw(&geo, g, x, w_shape);
        }
        // v7: an unpadded 1×1 dw is a GEMM (the taped conv takes v10's for few output channels: `dw_rule`)
        ConvKernel::Gemm if geo.is_pointwise() => return dw_gemm(&geo, g, x, w_shape),
        // v10: square kernels up to 7×7 with rows of whole vec4s (v5's reads); others take v5's (then v4's)
        ConvKernel::Reuse if super::reuse_dw_applies(w_shape) && rows_of_vec4(&geo) => {
            return dw_v10(&geo, g, x, w_shape);
        }
        ConvKernel::Reuse => ConvKernel::Vec4,
        // v9's dw reads x like v5's and g from uniform windows; v6 and v8 on other kernel sizes and v7 on other
        // shapes take it too, and every shape it cannot read takes v5's (then v4's)
        ConvKernel::Winograd | ConvKernel::Winograd4 | ConvKernel::Gemm | ConvKernel::Uniform => {
            if dw_v9_reads(&geo) {
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
            let tiles = cout.div_ceil(DW_V5_TM) * kdim.div_ceil(DW_V5_TK).div_ceil(DW_V5_WG);
            let [kh, kw] = geo.overrides();
            let overrides = [kh, kw, ("WG", DW_V5_WG as f64), ("R", (-geo.pad_x).rem_euclid(4) as f64)];
            dw_blocks(&geo, DW_V5, &overrides, tiles, g, x, w_shape)
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
            let part = Tensor::scratch(&[n_split, cout, kdim]);
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

/// dw v5's and v10's launch: the 8-pixel blocks split into enough splits to reach ~DW_TARGET_GROUPS workgroups
/// (`tiles` workgroups per split), none shorter than DW_V5_MIN_BLOCKS blocks; dw = the sum of the splits.
fn dw_blocks(
    geo: &Geometry,
    shader: Shader,
    overrides: &[(&'static str, f64)],
    tiles: usize,
    g: &Tensor,
    x: &Tensor,
    w_shape: &[usize],
) -> Result<Tensor> {
    let (cout, kdim) = (geo.cout, geo.kdim());
    let (chunk, n_split) = block_splits(geo.batch * geo.out_h * geo.out_w.div_ceil(DW_V5_TN), tiles);
    let mut p = geo.params(false);
    p.chunk = chunk as u32;
    p.n_split = n_split as u32;
    let part = Tensor::scratch(&[n_split, cout, kdim]);
    launch(shader, "main", overrides, &p, &[g, x], &[&part], groups(tiles * n_split, 1));
    // dw = Σ_s part[s]
    let dw = if n_split == 1 { part } else { sum_to_shape(&part, &[1, cout, kdim])? };
    dw.detach().reshape(w_shape)
}

/// (blocks per split, splits) for `nblk` 8-pixel blocks and `tiles` workgroups per split: about
/// DW_TARGET_GROUPS workgroups, no split shorter than DW_V5_MIN_BLOCKS blocks nor longer than
/// DW_LOOP_BUDGET (one loop pass per block; llvmpipe stops every loop of an invocation after 65,535 passes,
/// docs/llvmpipe-stores.md).
pub(super) fn block_splits(nblk: usize, tiles: usize) -> (usize, usize) {
    let want = DW_TARGET_GROUPS.div_ceil(tiles).clamp(1, nblk.div_ceil(DW_V5_MIN_BLOCKS).max(1));
    let chunk = nblk.div_ceil(want).min(DW_LOOP_BUDGET);
    (chunk, nblk.div_ceil(chunk))
}

/// dw v10 (square kernels up to 7×7, rows of whole vec4s): one invocation per (DW_V10_TM output channels,
/// input channels, tap rows, split): one input channel with its 9 taps for 3×3, DW_V10_TC for 1×1, one input
/// channel and one row of taps for 5×5 and 7×7 (all 49 of 8 channels would be 392 accumulators).
fn dw_v10(geo: &Geometry, g: &Tensor, x: &Tensor, w_shape: &[usize]) -> Result<Tensor> {
    let tc = if geo.kh == 1 { DW_V10_TC } else { 1 };
    let kr = if geo.kh <= 3 { geo.kh } else { 1 };
    let input_tiles = geo.cin.div_ceil(tc) * (geo.kh / kr);
    let tiles = geo.cout.div_ceil(DW_V10_TM) * input_tiles;
    let [kh, kw] = geo.overrides();
    let mut overrides = vec![
        kh,
        kw,
        ("KR", kr as f64),
        ("TM", DW_V10_TM as f64),
        ("TC", tc as f64),
        ("WG", DW_V10_WG as f64),
        ("R", (-geo.pad_x).rem_euclid(4) as f64),
    ];
    // the subgroup piece reads each of a block's 2·TM g vec4 once a subgroup: it needs every invocation of a
    // workgroup on the same output channels (input tiles and tap-row groups a multiple of the workgroup)
    let shared = input_tiles.is_multiple_of(DW_V10_WG);
    let shader = crate::ops::window_piece(DW_V10, 2 * DW_V10_TM, DW_V10_WG as u32, shared, &mut overrides);
    dw_blocks(geo, shader, &overrides, tiles.div_ceil(DW_V10_WG), g, x, w_shape)
}

/// v7's dw: dW = Σ_n g[n] (Cout × H·W) · x[n]ᵀ (H·W × Cin), one batched GEMM and a sum over the batch.
fn dw_gemm(geo: &Geometry, g: &Tensor, x: &Tensor, w_shape: &[usize]) -> Result<Tensor> {
    let (cout, hw) = (geo.cout, geo.in_h * geo.in_w);
    let g3 = g.detach().reshape(&[geo.batch, cout, hw])?;
    let x3 = x.detach().reshape(&[geo.batch, geo.cin, hw])?;
    let per = crate::ops::matmul::matmul_picked(&g3, false, &x3, true)?;
    sum_to_shape(&per, &[1, cout, geo.cin])?.detach().reshape(w_shape)
}

/// dw v9 reads any kernel up to 9 wide (KW = 3 a row's taps per k-group, others one tap of 3 rows), rows of whole
/// vec4s in x and g, and needs its packed g and its split partials to fit a storage binding (large images at the
/// paper's widths do not: they take v5's dw).
fn dw_v9_reads(geo: &Geometry) -> bool {
    let limit = crate::gpu::gpu().limits.max_storage_buffer_binding_size;
    let fits = |values: usize| (values as u64) * 4 <= limit;
    let plan = DwV9Plan::new(geo);
    geo.kw <= 9
        && geo.in_w.is_multiple_of(4)
        && geo.out_w.is_multiple_of(4)
        && fits(plan.packed_len())
        && fits(plan.splits.iter().sum::<usize>() * geo.cout * geo.kdim())
}

/// dw v9's layout: pixel blocks, channel blocks, windows of `DW_V9_WINDOW` blocks, and the splits of each window
/// (up to `DW_V9_WINDOW / DW_V9_CHUNK` per window while there are few windows, one per window when there are
/// many, so the partials stay about `DW_V9_TARGET_SPLITS`·Cout·K values or at most one per window).
pub(super) struct DwV9Plan {
    nb: usize,
    ncb: usize,
    nwin: usize,
    pub(super) chunk: usize,
    pub(super) splits: Vec<usize>,
}

/// About this many split partials in all, while the windows allow it.
const DW_V9_TARGET_SPLITS: usize = 64;

impl DwV9Plan {
    pub(super) fn new(geo: &Geometry) -> DwV9Plan {
        let nb = geo.batch * geo.out_h * geo.out_w.div_ceil(DW_V5_TN);
        let nwin = nb.div_ceil(DW_V9_WINDOW);
        let per_window = (DW_V9_TARGET_SPLITS / nwin).clamp(1, DW_V9_WINDOW / DW_V9_CHUNK);
        let chunk = DW_V9_WINDOW / per_window;
        let splits = (0..nwin).map(|w| (nb - w * DW_V9_WINDOW).min(DW_V9_WINDOW).div_ceil(chunk)).collect();
        DwV9Plan { nb, ncb: geo.cout.div_ceil(DW_V5_TM), nwin, chunk, splits }
    }
    /// Values of the packed g, the last window included whole.
    pub(super) fn packed_len(&self) -> usize {
        let block = DW_V5_TM * DW_V5_TN;
        let last = ((self.ncb - 1) * self.nb + (self.nwin - 1) * DW_V9_WINDOW) * block;
        (self.ncb * self.nb * block).max(last + UNIFORM_BLOCK_F32)
    }
}

/// dw v5's vec4 reads apply: KW ∈ {1, 3}, rows of whole vec4s in x and g.
fn dw_v5_reads(geo: &Geometry) -> bool {
    (geo.kw == 1 || geo.kw == 3) && rows_of_vec4(geo)
}

/// Rows of whole vec4s in x and g (v10's reads, with its kernel sizes from `reuse_dw_applies`).
fn rows_of_vec4(geo: &Geometry) -> bool {
    geo.in_w.is_multiple_of(4) && geo.out_w.is_multiple_of(4)
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
    let plan = DwV9Plan::new(geo);
    let (nb, ncb) = (plan.nb, plan.ncb);
    let block = DW_V5_TM * DW_V5_TN; // floats per pixel block
    let gp = Tensor::scratch(&[plan.packed_len()]);
    let p = geo.params(false);
    launch(PACK_V5, "grad_blocks", &[], &p, &[g], &[&gp], groups(ncb * nb * block, WG_DIRECT));
    // splits: every window's, in window order (the same for every channel block)
    let splits = &plan.splits;
    let part = Tensor::scratch(&[splits.iter().sum(), cout, kdim]);
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
                chunk: plan.chunk as u32,
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
