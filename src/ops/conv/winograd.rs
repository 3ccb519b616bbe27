//! Winograd F(2×2, 3×3) and F(4×4, 3×3) forward (v6, v8) and F(3×3, 2×2) dw: the transforms in
//! winograd_transforms.wgsl / winograd4_transforms.wgsl and one GEMM per transformed plane on the matmul.

use super::{groups, ConvParams, Geometry, WG_DIRECT};
use crate::gpu::Shader;
use crate::ops::launch;
use crate::tensor::Tensor;
use crate::{shader, Result};

const WINO2: Shader = shader!("conv/winograd_transforms.wgsl");
const WINO4: Shader = shader!("conv/winograd4_transforms.wgsl", "conv/winograd4_common.wgsl");
/// F(4×4)'s input and output transforms four tiles an invocation, as vec4 lanes (same bits as WINO4's).
const WINO4_QUAD: Shader = shader!("conv/winograd4_quad.wgsl", "conv/winograd4_common.wgsl");

/// The Winograd tile sizes: F(2×2, 3×3) for v6, F(4×4, 3×3) for v8. Each has one shader with the entries
/// `weights`, `input` and `output` and the same bindings.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum WinogradTile {
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
    /// The transforms' pipeline constants: the tile grid (TY × TX tiles an image), the batch NB and CIN, so
    /// that finding an invocation's channel and tile divides by constants (by runtime values, a division per
    /// SIMD lane on llvmpipe). `extra` are the entry's own.
    fn overrides(self, geo: &Geometry, extra: &[(&'static str, f64)]) -> Vec<(&'static str, f64)> {
        let mut ov = vec![
            ("TY", geo.out_h.div_ceil(self.m()) as f64),
            ("TX", geo.out_w.div_ceil(self.m()) as f64),
            ("NB", geo.batch as f64),
            ("CIN", geo.cin as f64),
        ];
        ov.extend_from_slice(extra);
        ov
    }
    /// Whether every transformed tensor fits one binding: V and M (planes of Cin or Cout × tiles) and U (planes
    /// of Cout × Cin; dw's Ŵ is F(2×2)'s U shape).
    pub(super) fn fits(self, geo: &Geometry) -> bool {
        self.fits_within(geo, crate::gpu::gpu().limits.max_storage_buffer_binding_size)
    }
    pub(super) fn fits_within(self, geo: &Geometry, limit: u64) -> bool {
        let per_plane = (self.tiles(geo) * geo.cin.max(geo.cout)).max(geo.cout * geo.cin);
        (self.planes() * 4 * per_plane) as u64 <= limit
    }
}

/// v6 / v8, Winograd F(m×m, 3×3): transform the filters (U = G·g·Gᵀ) and the input patches (V = Bᵀ·d·B) into
/// (m + 2)² planes, multiply plane by plane with the matmul (M[ξ] = U[ξ]·V[ξ], Cout × Cin times Cin × tiles),
/// and transform each tile's products back into its m×m outputs (Y = Aᵀ·M·A + b). F(2×2): 16 multiplies per
/// 4 outputs and input channel instead of 36; F(4×4): 36 per 16 instead of 144.
pub(super) fn winograd(
    tile: WinogradTile,
    geo: &Geometry,
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    p: ConvParams,
    y: &Tensor,
) {
    let (planes, tiles, sh) = (tile.planes(), tile.tiles(geo), tile.shader());
    let kind = if planes == 16 { "winograd F(2x2)" } else { "winograd F(4x4)" };
    let u = super::packed::packed(w, kind, || {
        let u = Tensor::scratch(&[planes, geo.cout, geo.cin]);
        launch(sh, "weights", &[], &p, &[w, w], &[&u], groups(geo.cout * geo.cin, WG_DIRECT));
        u
    });
    let v = Tensor::scratch(&[planes, geo.cin, tiles]);
    let ov = tile.overrides(geo, &[]);
    let (quad_in, quad_out) = quads(tile, geo);
    if quad_in {
        let ov = tile.overrides(geo, &[("PX", geo.pad_x as f64)]);
        launch(WINO4_QUAD, "input4", &ov, &p, &[x, x], &[&v], groups(geo.cin * tiles / 4, WG_DIRECT));
    } else {
        launch(sh, "input", &ov, &p, &[x, x], &[&v], groups(geo.cin * tiles, WG_DIRECT));
    }
    let m = crate::ops::matmul::matmul_picked(&u, false, &v, false).expect("the planes' shapes agree by construction");
    if quad_out {
        launch(WINO4_QUAD, "output4", &ov, &p, &[&m, bias], &[y], groups(geo.cout * tiles / 4, WG_DIRECT));
    } else {
        launch(sh, "output", &ov, &p, &[&m, bias], &[y], groups(geo.cout * tiles, WG_DIRECT));
    }
}

/// Whether F(4×4)'s (input, output) transforms run four tiles an invocation (winograd4_quad.wgsl): the tile
/// grid's rows a multiple of 4 tiles (a quad stays in one row, and V's and M's planes are whole vec4s), the
/// input (output) rows whole vec4s, and pad_x ≤ 4 (a quad's patches within six aligned vec4 a row). On
/// llvmpipe a quad's 36 vec4 loads and stores cost about what one tile's 36 scalar ones did
/// (docs/bench-history.md).
fn quads(tile: WinogradTile, geo: &Geometry) -> (bool, bool) {
    #[cfg(test)]
    if SCALAR_TRANSFORMS.with(|s| s.get()) {
        return (false, false);
    }
    let rows = tile == WinogradTile::F4 && geo.out_w.div_ceil(4).is_multiple_of(4) && (0..=4).contains(&geo.pad_x);
    (rows && geo.in_w.is_multiple_of(4), rows && geo.out_w.is_multiple_of(4))
}

#[cfg(test)]
thread_local! {
    /// Tests: run F(4×4)'s one-tile transforms on this thread even where the quad ones apply.
    pub(super) static SCALAR_TRANSFORMS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// v6's weight gradient, Winograd F(3×3, 2×2) (entries `grad_tiles`, `grad_output` of
/// winograd_transforms.wgsl): the input patches as in the forward (V, here (16, P, Cin)), each 2×2 tile of g as
/// Ĝ = G·g·Gᵀ (16, Cout, P), one GEMM per plane over all tiles (Ŵ\[ξ\] = Ĝ\[ξ\]·V\[ξ\], K = P), and
/// dW = Aᵀ·Ŵ·A per filter.
pub(super) fn winograd_dw(geo: &Geometry, g: &Tensor, x: &Tensor, w_shape: &[usize]) -> Result<Tensor> {
    let tiles = WinogradTile::F2.tiles(geo);
    let p = geo.params(false);
    let v = Tensor::scratch(&[16, tiles, geo.cin]);
    let ov = WinogradTile::F2.overrides(geo, &[("TRANSPOSED", 1.0)]);
    launch(WINO2, "input", &ov, &p, &[x, x], &[&v], groups(geo.cin * tiles, WG_DIRECT));
    let gh = Tensor::scratch(&[16, geo.cout, tiles]);
    let ov = WinogradTile::F2.overrides(geo, &[]);
    launch(WINO2, "grad_tiles", &ov, &p, &[g, g], &[&gh], groups(geo.cout * tiles, WG_DIRECT));
    let wh = crate::ops::matmul::matmul_picked(&gh, false, &v, false)?;
    let dw = Tensor::uninit(w_shape);
    launch(WINO2, "grad_output", &[], &p, &[&wh, &wh], &[&dw], groups(geo.cout * geo.cin, WG_DIRECT));
    Ok(dw)
}

#[cfg(test)]
mod tests {
    use super::super::{conv2d_backward_input, conv2d_with, ConvKernel};
    use crate::tensor::Tensor;

    #[test]
    fn f4s_quad_transforms_give_the_one_tile_transforms_bits() {
        // the forward and dx of v8 with its input and output transforms four tiles an invocation must equal the
        // one-tile ones bit for bit: both quads (pad 1), rows of 18 (input one tile at a time, output quads),
        // 13 rows (a tile row past the output's bottom), and a grid of 3 tiles a row (no quads)
        let mut rng = crate::rng::Rng::new(41);
        let numel = |s: &[usize]| s.iter().product::<usize>();
        for (x, w, pad, quads) in [
            ([2, 5, 16, 16], [7, 5, 3, 3], 1, (true, true)),
            ([1, 3, 18, 18], [4, 3, 3, 3], 0, (false, true)),
            ([1, 2, 13, 32], [3, 2, 3, 3], 1, (true, true)),
            ([1, 2, 10, 10], [3, 2, 3, 3], 1, (false, false)),
        ] {
            let xt = Tensor::from_slice(&rng.uniform_vec(numel(&x), -1.0, 1.0), &x).unwrap();
            let wt = Tensor::from_slice(&rng.uniform_vec(numel(&w), -1.0, 1.0), &w).unwrap();
            let run = |scalar: bool| {
                super::SCALAR_TRANSFORMS.with(|s| s.set(scalar));
                crate::ops::work::start();
                let y = conv2d_with(ConvKernel::Winograd4, &xt, &wt, None, pad).unwrap();
                let calls = crate::ops::work::stop();
                let dx = conv2d_backward_input(ConvKernel::Winograd4, &y, &wt, pad, &x).unwrap();
                super::SCALAR_TRANSFORMS.with(|s| s.set(false));
                (y.to_vec(), dx.to_vec(), calls[0].kernels.clone())
            };
            let (y0, dx0, k0) = run(true);
            let (y1, dx1, k1) = run(false);
            let what = format!("x {x:?} w {w:?} pad {pad}");
            let ran = |k: &[String], entry: &str| k.iter().any(|k| k.starts_with(entry));
            assert!(
                ran(&k0, "conv/winograd4_transforms.wgsl:input") && !ran(&k0, "conv/winograd4_quad"),
                "{what}: {k0:?}"
            );
            assert_eq!(ran(&k1, "conv/winograd4_quad.wgsl:input4"), quads.0, "{what}: {k1:?}");
            assert_eq!(ran(&k1, "conv/winograd4_quad.wgsl:output4"), quads.1, "{what}: {k1:?}");
            assert!(y0 == y1, "{what}: forward, quad transforms differ from the one-tile ones");
            assert!(dx0 == dx1, "{what}: dx, quad transforms differ from the one-tile ones");
        }
    }
}
