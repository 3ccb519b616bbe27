//! The window rungs: v6 (A in 64 KiB uniform windows) and v7 (the same, A quads shared by subgroup
//! broadcasts). Which windows a problem takes, and their dispatches.

use bytemuck::{Pod, Zeroable};

use super::{MatmulParams, Plan, V6, V7};
use crate::tensor::Tensor;
#[cfg(test)]
use crate::Result;

/// Mirrors `struct Params` of matmul_v6_uniform.wgsl: the common params, then the dispatch's batches and row tiles.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct V6Params {
    base: MatmulParams,
    bb0: u32,
    nbat: u32,
    t0: u32,
    nt: u32,
}

/// v6 with `tm` rows a thread takes untransposed operands with K % 8 (so row tiles of A start on 256-byte
/// boundaries), C wider than `main_rows16`'s range, a row tile of tm rows that fits a uniform window, and, for a
/// per-batch A, whole matrices of a multiple of 64 values (so every batch starts on a boundary).
pub(super) fn v6_applies(pl: &Plan, ta: bool, tb: bool, tm: usize) -> bool {
    let (m, n, k) = (pl.m, pl.n, pl.p.k as usize);
    !ta && !tb
        && k.is_multiple_of(8)
        && n.is_multiple_of(4)
        && n as u32 > super::V5_ROWS16_MAX_N
        && tm * k <= crate::ops::UNIFORM_BLOCK_F32
        && (pl.a_shared || pl.batch == 1 || (m * k).is_multiple_of(64))
}

/// v6: v5's `main` with A in uniform windows, `tm` rows a thread. Windows hold whole matrices of A when they fit
/// (several batches a dispatch), else chunks of row tiles; each dispatch covers the batches and row tiles of its
/// window. With `lanes` (v7) each subgroup of that many lanes reads a row tile's A quads once and broadcasts them.
pub(super) fn launch_v6(pl: &Plan, tm: usize, lanes: Option<u32>, a: &Tensor, b: &Tensor, c: &Tensor) {
    let (m, n, k, batch) = (pl.m, pl.n, pl.p.k as usize, pl.batch);
    let window = crate::ops::UNIFORM_BLOCK_F32;
    let (tile, mat, tiles_m) = (tm * k, m * k, m.div_ceil(tm));
    let per_tiles = |bb: usize, nbat: usize, base: usize| -> Vec<(usize, usize, usize, usize, usize)> {
        let tpw = window / tile;
        (0..tiles_m).step_by(tpw).map(|t0| (bb, nbat, t0, tpw.min(tiles_m - t0), base + t0 * tile)).collect()
    };
    // (first batch, batches, first row tile, row tiles, window start in values)
    let windows: Vec<(usize, usize, usize, usize, usize)> = if pl.a_shared || batch == 1 {
        per_tiles(0, batch, 0)
    } else if mat <= window {
        let bpw = window / mat;
        (0..batch).step_by(bpw).map(|bb0| (bb0, bpw.min(batch - bb0), 0, tiles_m, bb0 * mat)).collect()
    } else {
        (0..batch).flat_map(|bb| per_tiles(bb, 1, bb * mat)).collect()
    };
    // the last window must lie inside A's buffer: copy A into a large enough one when it does not (a copy
    // command, not a kernel; A is the small operand here)
    let need = windows.iter().map(|w| w.4).max().unwrap_or(0) + window;
    let have = (a.buf().raw().size() - a.buf().offset()) as usize / 4;
    let padded;
    let src = if have >= need {
        a
    } else {
        padded = Tensor::uninit(&[need]);
        crate::gpu::gpu().record_copy(a.buf(), padded.buf());
        &padded
    };
    // v7's workgroups hold whole subgroups (both powers of two)
    let lanes_wg = lanes.map_or(1, |l| l as usize);
    let wg = n.div_ceil(8).next_power_of_two().clamp(8, 16).max(lanes_wg);
    let tiles_n = (n / 4).div_ceil(2 * wg) as u32;
    for (bb0, nbat, t0, nt, start) in windows {
        let p = V6Params { base: pl.p, bb0: bb0 as u32, nbat: nbat as u32, t0: t0 as u32, nt: nt as u32 };
        let groups = nt as u32 * tiles_n * nbat as u32;
        match lanes {
            Some(l) => {
                let ov =
                    [("WG", wg as f64), ("TM", tm as f64), ("SG", l as f64), ("AJ", tm.div_ceil(l as usize) as f64)];
                crate::ops::launch_with_uniforms(V7, "main", &ov, &p, &[b], &[c], &[(src, start)], groups);
            }
            None => {
                // TM (and AJ = TM) only where not the shader's default 8, so v6_uniform keeps its key and label
                let ov = [("WG", wg as f64), ("TM", tm as f64), ("AJ", tm as f64)];
                let ov = if tm == 8 { &ov[..1] } else { &ov[..] };
                crate::ops::launch_with_uniforms(V6, "main", ov, &p, &[b], &[c], &[(src, start)], groups);
            }
        }
    }
}

/// v7 with `tm` rows a thread on `lanes`-lane broadcasts whatever the device's subgroup size (tests: a
/// smaller count than the real subgroup must give the same bits).
#[cfg(test)]
pub(super) fn matmul_v7_assuming(lanes: u32, tm: usize, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let pl = super::plan(a.shape(), false, b.shape(), false)?;
    assert!(v6_applies(&pl, false, false, tm), "a v7 problem");
    let mut shape = pl.batch_shape.clone();
    shape.extend([pl.m, pl.n]);
    let c = Tensor::uninit(&shape);
    launch_v6(&pl, tm, Some(lanes), a, b, &c);
    Ok(c)
}
