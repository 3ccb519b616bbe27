//! The forward (and so dx) rungs' launches: v1–v5 and v9 here, v6/v8 through [`super::winograd`], v7 on the
//! matmul. See the module doc of [`super`] for what each rung does and why.

use super::winograd::{winograd, WinogradTile};
use super::{groups, ConvKernel, ConvParams, Geometry, WG_DIRECT};
use crate::gpu::Shader;
use crate::ops::{launch, launch_with_uniforms, UNIFORM_BLOCK_F32};
use crate::shader;
use crate::tensor::{numel, Tensor};

const V1: Shader = shader!("conv/conv_v1_direct.wgsl");
const V2: Shader = shader!("conv/conv_v2_implicit_gemm.wgsl");
const V3: Shader = shader!("conv/conv_v3_blocked.wgsl");
const V4: Shader = shader!("conv/conv_v4_shaped.wgsl");
const V5: Shader = shader!("conv/conv_v5_vec4.wgsl");
pub(super) const PACK_V5: Shader = shader!("conv/pack_weights_v5.wgsl");
/// v9 with its window pieces ([`crate::ops::window_piece`]).
const V9: crate::ops::WindowKernel = [
    shader!("conv/conv_v9_uniform.wgsl", "window/plain.wgsl"),
    shader!("conv/conv_v9_uniform.wgsl", "window/subgroup.wgsl"),
];
/// v5: output channels and pixel blocks (8 pixels of a row) per invocation, invocations per workgroup, and the
/// widest kernel its 5-vec4 input window covers (r + 8 + KW − 1 ≤ 20 values for every r ≤ 3).
const V5_TM: usize = 8;
const V5_TN: usize = 8;
const V5_WG: usize = 16;
const V5_MAX_KW: usize = 9;
/// Tile of the implicit-GEMM kernels (BM = BN in the shaders) and their reduction step (BK).
pub(super) const TILE: usize = 64;
pub(super) const STEP: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TileShape {
    pub(super) bm: usize,
    pub(super) bn: usize,
}

impl TileShape {
    pub(super) const ALL: [TileShape; 3] =
        [TileShape { bm: 64, bn: 64 }, TileShape { bm: 32, bn: 128 }, TileShape { bm: 16, bn: 256 }];

    /// The shape for an M×N output (M = Cout), see above. `ALL` lists the squarest first, so `min_by_key`'s
    /// first minimum is the tie-break.
    pub(super) fn pick(m: usize, n: usize) -> TileShape {
        let padded = |t: &TileShape| m.div_ceil(t.bm) * t.bm * n.div_ceil(t.bn) * t.bn;
        *TileShape::ALL.iter().min_by_key(|t| padded(t)).expect("ALL is not empty")
    }
    pub(super) fn tiles(&self, m: usize, n: usize) -> usize {
        m.div_ceil(self.bm) * n.div_ceil(self.bn)
    }
    pub(super) fn overrides(&self, geo: &Geometry) -> [(&'static str, f64); 3] {
        let [kh, kw] = geo.overrides();
        [kh, kw, ("BM", self.bm as f64)]
    }
}

/// Forward launch for any geometry (also dx's): y = x ⋆ w (+ b), not taped.
pub(super) fn forward_raw(kernel: ConvKernel, geo: &Geometry, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    let _work = crate::ops::work::scope("conv2d", || geo.describe(), geo.flops());
    let winograd3x3 = geo.kh == 3 && geo.kw == 3;
    let kernel = match kernel {
        // v7: a 1×1 convolution without padding or bias is the matmul W (Cout × Cin) · x[n] (Cin × H·W)
        ConvKernel::Gemm if geo.is_pointwise() && b.is_none() => {
            let (hw, cin, cout) = (geo.in_h * geo.in_w, geo.cin, geo.cout);
            let x3 = x.detach().reshape(&[geo.batch, cin, hw]).expect("same element count");
            let w2 = w.detach().reshape(&[cout, cin]).expect("same element count");
            let y3 =
                crate::ops::matmul::matmul_picked(&w2, false, &x3, false).expect("the shapes agree by construction");
            return y3.reshape(&geo.out_shape()).expect("same element count");
        }
        // v6 and v8 are for 3×3 whose transformed tensors fit a binding, v7 for 1×1 without bias: the rest runs v9
        // where its weights fit, else v5
        ConvKernel::Winograd if !(winograd3x3 && WinogradTile::F2.fits(geo)) => ConvKernel::Vec4,
        ConvKernel::Winograd4 if !(winograd3x3 && WinogradTile::F4.fits(geo)) => ConvKernel::Vec4,
        ConvKernel::Gemm | ConvKernel::Reuse => ConvKernel::Uniform,
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
            let wp = super::packed::packed(w, "v5", || {
                let wp = Tensor::scratch(&[geo.kdim(), geo.cout.div_ceil(V5_TM) * V5_TM]);
                launch(PACK_V5, "main", &[], &p, &[w], &[&wp], self::groups(wp.numel(), WG_DIRECT));
                wp
            });
            let r = (-geo.pad_x).rem_euclid(4);
            let overrides = [kh, kw, ("WG", V5_WG as f64), ("R", r as f64)];
            launch(V5, "main", &overrides, &p, &[x, &wp, bias], &[&y], groups);
        }
        ConvKernel::Winograd => winograd(WinogradTile::F2, geo, x, w, bias, p, &y),
        ConvKernel::Winograd4 => winograd(WinogradTile::F4, geo, x, w, bias, p, &y),
        // v5 reads x as vec4 rows: other widths (and very wide kernels) take v4 (v7 was mapped away above)
        ConvKernel::Shaped | ConvKernel::Vec4 | ConvKernel::Gemm | ConvKernel::Reuse => {
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
    p.kp = kp as u32;
    let wp = super::packed::packed(w, "v9", || {
        let wp = Tensor::scratch(&[(nblk * kp * V5_TM).max(last + UNIFORM_BLOCK_F32)]);
        launch(PACK_V5, "blocked", &[], &p, &[w], &[&wp], groups(nblk * kp * V5_TM, WG_DIRECT));
        wp
    });
    let blocks = geo.batch * geo.out_h * geo.out_w.div_ceil(V5_TN);
    let [kh, kw] = geo.overrides();
    let mut overrides = vec![kh, kw, ("WG", V5_WG as f64), ("R", (-geo.pad_x).rem_euclid(4) as f64)];
    // the subgroup piece for 3×3 kernels only: per-kernel GPU time on llvmpipe, 3×3 32->32 at 64² (batch 8)
    // 27.3 -> 19.8 ms, 1×1 128->32 18.9 -> 19.9, 7×7 3->16 6.9 -> 7.4 (docs/bench-history.md)
    let shader = crate::ops::window_piece(V9, 2 * geo.kw, V5_WG as u32, geo.kw == 3, &mut overrides);
    for cb0 in (0..nblk).step_by(per) {
        let nb = per.min(nblk - cb0);
        p.chunk = cb0 as u32;
        p.n_split = nb as u32;
        let window = [(&wp, cb0 * kp * V5_TM)];
        launch_with_uniforms(
            shader,
            "main",
            &overrides,
            &p,
            &[x, bias],
            &[y],
            &window,
            groups(nb, 1) * groups(blocks, V5_WG),
        );
    }
}
