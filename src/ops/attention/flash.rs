//! Fused softmax attention (FlashAttention-2's schedule, shaped for the engine's adapters): no n×n score matrix
//! in the forward or the backward, one pass over the keys per query with an online softmax, the backward
//! recomputing probabilities from the saved log-sum-exp.
//!
//! **Why uniform windows.** The keys and values every query walks over (and, in the key-side backward, the
//! queries every key walks over) are read as 64 KiB uniform blocks: on llvmpipe a storage read costs ~9× a
//! uniform one (docs/llvmpipe-stores.md), and on a GPU all invocations of a dispatch read the same row at the
//! same time, which is the constant cache's broadcast. K and V are first packed key-major, (k, v) rows of 2d
//! floats per head (`flash_pack_kv.wgsl`); a head whose rows exceed one window takes several dispatches, which
//! carry the running (m, l, acc) state through the output and the stats buffer. The backward packs (q, dO, lse,
//! D) rows of 2d + 4 floats per query (`flash_pack_qdo.wgsl`, D_i = dO_i·O_i).
//!
//! Dispatches per call: forward 1 + heads·batch·⌈n / keys per window⌉; backward 1 + the same for dq (on the
//! forward's packed K/V, kept for it) and for dk/dv.
//! Applies when dim_head is a multiple of 4 and at most 64 ([`applies`]); the composed path (matmul, softmax,
//! matmul) covers the rest.

use super::super::{launch, launch_with_uniforms, UNIFORM_BLOCK_F32};
use crate::gpu::Shader;
use crate::ops::tune::Key;
use crate::tensor::Tensor;
use crate::{autograd, shader, Result};

const PACK_KV: Shader = shader!("attention/flash_pack_kv.wgsl");
const PACK_QDO: Shader = shader!("attention/flash_pack_qdo.wgsl");
/// The three window kernels, each with its plain and its subgroup piece ([`crate::ops::window_piece`]).
const FORWARD: crate::ops::WindowKernel = [
    shader!("attention/flash_forward.wgsl", "window/plain.wgsl"),
    shader!("attention/flash_forward.wgsl", "window/subgroup.wgsl"),
];
const DQ: crate::ops::WindowKernel = [
    shader!("attention/flash_dq.wgsl", "window/plain.wgsl"),
    shader!("attention/flash_dq.wgsl", "window/subgroup.wgsl"),
];
const DKV: crate::ops::WindowKernel = [
    shader!("attention/flash_dkv.wgsl", "window/plain.wgsl"),
    shader!("attention/flash_dkv.wgsl", "window/subgroup.wgsl"),
];

/// Invocations per workgroup of the per-query / per-key kernels: small, so that one head's 256 queries still
/// make 16 workgroups for the CPU adapter's threads.
const WG: u32 = 16;
/// A kernel's widths, rows per invocation, and the rung names of the tuner's table.
pub type Rungs = [(&'static str, u32); 4];

/// The forward's rungs: queries per invocation (the shader's QR, 1 ..= its QMAX 8). Each key row read from the
/// window serves that many queries, at the price of 8·d/4 vec4 registers a query; with the loops expanded
/// (src/gpu/specialize.rs) the private arrays stay in registers until they spill. Which width wins depends on
/// the head size, the token count and the adapter (register file, threads to fill), so `medsegdiff tune`
/// times them per shape ([`crate::ops::tune::Key::Flash`]); measured figures: docs/bench-history.md.
pub const QUERY_RUNGS: Rungs = [("qr1", 1), ("qr2", 2), ("qr4", 4), ("qr8", 8)];

/// The backward's rungs: queries (dq) and keys (dk, dv) per invocation, the shaders' RR (1 ..= their RMAX 8);
/// tuned per shape apart from the forward's ([`crate::ops::tune::Key::FlashBwd`]).
pub const ROW_RUNGS: Rungs = [("rr1", 1), ("rr2", 2), ("rr4", 4), ("rr8", 8)];

/// Rows × vec4 per row at most: the widths that apply to a head size. Beyond it the expanded kernel only spills,
/// and llvmpipe's compile time grows steeply (the forward at dim_head 64 on this VM: QR 2 3.4 s, QR 4 10 s, QR 8
/// 50 s).
const MAX_ROW_VEC4: u32 = 32;

/// The rungs of `all` for `dim_head`: width·d/4 ≤ 32 (d 16: up to 8 rows, 32: 4, 64: 2).
pub fn fitting(all: &'static Rungs, dim_head: usize) -> &'static [(&'static str, u32)] {
    let d4 = (dim_head / 4).max(1) as u32;
    let count = all.iter().take_while(|r| r.1 * d4 <= MAX_ROW_VEC4).count().max(1);
    &all[..count]
}

/// The rule when the table holds no entry for the shape: 4 rows an invocation (2 at dim_head 64, the most
/// [`fitting`] allows), fewer when that would not make two workgroups a dispatch (two threads of a 2-core CPU
/// adapter).
pub fn default_width(all: &'static Rungs, n: usize, dim_head: usize) -> u32 {
    let mut w = fitting(all, dim_head).last().map_or(1, |r| r.1).min(4);
    while w > 1 && n.div_ceil(w as usize * WG as usize) < 2 {
        w /= 2;
    }
    w
}

/// The rung name of [`default_width`] (what the tuner reports as the rule).
pub fn default_rung(all: &'static Rungs, n: usize, dim_head: usize) -> &'static str {
    let w = default_width(all, n, dim_head);
    all.iter().find(|r| r.1 == w).expect("the rule's width is a rung").0
}

/// The width of rung `name` among `rungs`.
pub fn width_of(rungs: &[(&'static str, u32)], name: &str) -> Option<u32> {
    rungs.iter().find(|r| r.0 == name).map(|r| r.1)
}

/// A kernel's width for `n` tokens of `dim_head`: the table's entry under `key` (if it fits), else
/// [`default_width`].
fn pick_width(key: Key, all: &'static Rungs, n: usize, dim_head: usize) -> u32 {
    crate::ops::tune::lookup(key)
        .and_then(|name| width_of(fitting(all, dim_head), &name))
        .unwrap_or_else(|| default_width(all, n, dim_head))
}

/// Launch window kernel `kernel` reading `rowv` vec4 a window read, with `ov` and its piece's overrides
/// ([`crate::ops::window_piece`]). On llvmpipe (8 lanes) the subgroup piece ran the forward 2.2–3.1× and the
/// backward 1.5–2× faster (docs/bench-history.md); a GPU's 32-lane subgroups exceed [`WG`], so GPUs run the
/// plain piece.
#[allow(clippy::too_many_arguments)]
fn launch_window<P: bytemuck::Pod>(
    kernel: crate::ops::WindowKernel,
    rowv: usize,
    ov: &[(&'static str, f64)],
    p: &P,
    ins: &[&Tensor],
    outs: &[&Tensor],
    window: &[(&Tensor, usize)],
    groups: u32,
) {
    let mut ov = ov.to_vec();
    let shader = crate::ops::window_piece(kernel, rowv, WG, true, &mut ov);
    launch_with_uniforms(shader, "main", &ov, p, ins, outs, window, groups);
}

/// Threads per workgroup of the packing kernels.
const WG_PACK: usize = 64;

/// Mirrors `struct Params` of every `shaders/attention/flash_*.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    d: u32,
    heads: u32,
    bh: u32,
    _p0: u32,
    nk: u32,
    first: u32,
    last: u32,
    scale: f32,
    kv_base: u32,
    q_base: u32,
    nbh: u32,
}

/// Whether the fused kernels take a head size: vec4 rows, at most 16 vec4 per register array.
pub fn applies(dim_head: usize) -> bool {
    dim_head.is_multiple_of(4) && (4..=64).contains(&dim_head)
}

/// Rows of `row` floats: (floats per head, rows per uniform window, the buffer's length for `nbh` heads of `n`
/// rows). Windows start on 256-byte boundaries (64 floats): heads are padded to a multiple of 64 floats and a
/// window holds a multiple of 64 / gcd(row, 64) rows.
fn windows(n: usize, row: usize, nbh: usize) -> (usize, usize, usize) {
    let per_head = (n * row).div_ceil(64) * 64;
    let step = 64 / gcd(row, 64);
    let rows = (UNIFORM_BLOCK_F32 / row) / step * step;
    let last_start = (n - 1) / rows * rows * row;
    (per_head, rows, (nbh - 1) * per_head + last_start + UNIFORM_BLOCK_F32)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

struct Geo {
    b: usize,
    heads: usize,
    d: usize,
    n: usize,
    h: usize,
    w: usize,
}

impl Geo {
    /// The geometry of qkv (B, 3·heads·d, H, W).
    fn of(qkv: &Tensor, heads: usize, d: usize) -> Geo {
        let s = qkv.shape();
        Geo { b: s[0], heads, d, n: s[2] * s[3], h: s[2], w: s[3] }
    }
    fn nbh(&self) -> usize {
        self.b * self.heads
    }
    fn params(&self) -> Params {
        Params {
            n: self.n as u32,
            d: self.d as u32,
            heads: self.heads as u32,
            bh: 0,
            _p0: 0,
            nk: 0,
            first: 0,
            last: 0,
            scale: (self.d as f32).powf(-0.5),
            kv_base: 0,
            q_base: 0,
            nbh: self.nbh() as u32,
        }
    }
    fn overrides(&self) -> [(&'static str, f64); 2] {
        [("WG", WG as f64), ("D4", (self.d / 4) as f64)]
    }
}

/// One dispatch's uniform window: head `bh`, rows `r0 .. r0 + rows` of its packed buffer.
#[derive(Clone, Copy)]
struct Window {
    bh: usize,
    r0: usize,
    rows: usize,
}

impl Window {
    /// The dispatch's params: `base` with this window's head, row count and first/last flags.
    fn params(self, base: Params, n: usize) -> Params {
        Params {
            bh: self.bh as u32,
            nk: self.rows as u32,
            first: (self.r0 == 0) as u32,
            last: (self.r0 + self.rows >= n) as u32,
            ..base
        }
    }
    /// Where the window starts in a packed buffer of `per_head` values a head and `row` values a row.
    fn start(self, per_head: usize, row: usize) -> usize {
        self.bh * per_head + self.r0 * row
    }
}

/// Every head's windows of `rows` rows, heads in order.
fn each_window(g: &Geo, rows: usize) -> impl Iterator<Item = Window> + '_ {
    (0..g.nbh()).flat_map(move |bh| (0..g.n).step_by(rows).map(move |r0| Window { bh, r0, rows: rows.min(g.n - r0) }))
}

/// K/V packed key-major for the windows: the forward walks it, and the backward's dq reuses it.
struct PackedKv {
    kvt: Tensor,
    per_head: usize,
    rows: usize,
}

fn pack_kv(g: &Geo, qkv: &Tensor) -> PackedKv {
    let (per_head, rows, len) = windows(g.n, 2 * g.d, g.nbh());
    let kvt = Tensor::uninit(&[len]);
    let p = Params { kv_base: per_head as u32, ..g.params() };
    let total = g.nbh() * g.n * 2 * g.d;
    launch(PACK_KV, "main", &[], &p, &[qkv], &[&kvt], total.div_ceil(WG_PACK) as u32);
    PackedKv { kvt, per_head, rows }
}

/// Forward: (out (B, heads·d, H, W), stats (B·heads, n, 2) with the log-sum-exp in [.., 0]), and the packed K/V;
/// `queries` per invocation (one of [`QUERY_RUNGS`], the shader's QR).
fn forward(g: &Geo, qkv: &Tensor, queries: u32) -> (Tensor, Tensor, PackedKv) {
    let kv = pack_kv(g, qkv);
    let out = Tensor::uninit(&[g.b, g.heads * g.d, g.h, g.w]);
    let stats = Tensor::uninit(&[g.nbh(), g.n, 2]);
    for win in each_window(g, kv.rows) {
        let p = win.params(g.params(), g.n);
        let window = [(&kv.kvt, win.start(kv.per_head, 2 * g.d))];
        let ov = [g.overrides()[0], g.overrides()[1], ("QR", queries as f64)];
        let groups = (g.n as u32).div_ceil(queries * WG);
        launch_window(FORWARD, 8 * g.d / 4, &ov, &p, &[qkv], &[&out, &stats], &window, groups);
    }
    (out, stats, kv)
}

/// A forward saved for its backward: the geometry, the input, the output, the stats and the packed K/V.
pub struct Saved {
    g: Geo,
    qkv: Tensor,
    out: Tensor,
    stats: Tensor,
    kv: PackedKv,
}

/// Backward: d(qkv) from the output gradient `dout` and the saved forward; `rows` queries (dq) and keys (dk, dv)
/// per invocation (one of [`ROW_RUNGS`], the shaders' RR).
pub fn backward(saved: &Saved, dout: &Tensor, rows: u32) -> Tensor {
    let Saved { g, qkv, out, stats, kv } = saved;
    let dqkv = Tensor::uninit(qkv.shape());
    let (q_head, q_rows, q_len) = windows(g.n, 2 * g.d + 4, g.nbh());
    let qdo = Tensor::uninit(&[q_len]);
    let base = Params { q_base: q_head as u32, ..g.params() };
    let nq = g.nbh() * g.n;
    launch(PACK_QDO, "main", &[], &base, &[qkv, out, dout, stats], &[&qdo], nq.div_ceil(WG_PACK) as u32);
    let ov = [g.overrides()[0], g.overrides()[1], ("RR", rows as f64)];
    let groups = (g.n as u32).div_ceil(rows * WG);
    for win in each_window(g, kv.rows) {
        let window = [(&kv.kvt, win.start(kv.per_head, 2 * g.d))];
        let p = win.params(base, g.n);
        launch_window(DQ, 2 * g.d / 4, &ov, &p, &[&qdo], &[&dqkv], &window, groups);
    }
    for win in each_window(g, q_rows) {
        let window = [(&qdo, win.start(q_head, 2 * g.d + 4))];
        let p = win.params(base, g.n);
        launch_window(DKV, 2 * g.d / 4 + 1, &ov, &p, &[qkv], &[&dqkv], &window, groups);
    }
    dqkv
}

/// The fused forward alone at `queries` per invocation, untaped (what the tuner times); the caller has checked
/// the shape and [`applies`].
pub fn forward_with(qkv: &Tensor, heads: usize, dim_head: usize, queries: u32) -> Tensor {
    forward(&Geo::of(qkv, heads, dim_head), qkv, queries).0
}

/// Run the fused forward of `qkv` untaped (the rule's width) and keep what [`backward`] needs.
pub fn save_forward(qkv: &Tensor, heads: usize, dim_head: usize) -> Saved {
    let g = Geo::of(qkv, heads, dim_head);
    let (out, stats, kv) = forward(&g, qkv, default_width(&QUERY_RUNGS, g.n, dim_head));
    Saved { g, qkv: qkv.clone(), out, stats, kv }
}

/// Softmax attention of qkv (B, 3·heads·dim_head, H, W) -> (B, heads·dim_head, H, W), fused and taped; the caller
/// has checked the shape and [`applies`].
pub(super) fn full_attention(qkv: &Tensor, heads: usize, dim_head: usize) -> Result<Tensor> {
    let g = Geo::of(qkv, heads, dim_head);
    let flops = 4.0 * (g.nbh() * g.n * g.n * g.d) as f64; // two n×n×d products, as PyTorch counts sdpa
    let (out, stats, kv) = {
        let _work = crate::ops::work::scope("attention.flash", || format!("bh{} n{} d{}", g.nbh(), g.n, g.d), flops);
        let key = Key::Flash { qkv: qkv.shape().to_vec(), heads };
        forward(&g, qkv, pick_width(key, &QUERY_RUNGS, g.n, dim_head))
    };
    let saved = Saved { g, qkv: qkv.clone(), out: out.detach(), stats, kv };
    autograd::record("full_attention", &[qkv], &out, move |dout, _| {
        let g = &saved.g;
        let key = Key::FlashBwd { qkv: saved.qkv.shape().to_vec(), heads };
        let rows = pick_width(key, &ROW_RUNGS, g.n, g.d);
        let _work = crate::ops::work::scope(
            "attention.flash.bwd",
            || format!("bh{} n{} d{}", g.nbh(), g.n, g.d),
            2.0 * flops, // dq, dk, dv and the recomputed scores: PyTorch counts 2× the forward for sdpa's backward
        );
        Ok(vec![Some(backward(&saved, dout, rows))])
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subgroup_pieces_give_the_plain_pieces_bits() {
        // the forward, dq and dk/dv with the window read once a subgroup must equal the plain pieces bit for
        // bit: several windows with tails (n = 1030, d 16), a partial workgroup (n = 15), d 64 (one row of 33
        // vec4 for dk/dv, 5 reads a lane), each with the widest rung that fits
        let mut rng = crate::rng::Rng::new(13);
        for (b, heads, d, h, w) in [(1, 2, 16, 10, 103), (2, 1, 8, 3, 5), (1, 1, 64, 5, 7)] {
            let shape = [b, 3 * heads * d, h, w];
            let x = Tensor::from_slice(&rng.uniform_vec(crate::tensor::numel(&shape), -2.0, 2.0), &shape).unwrap();
            let gshape = [b, heads * d, h, w];
            let gout = Tensor::from_slice(&rng.uniform_vec(crate::tensor::numel(&gshape), -1.0, 1.0), &gshape).unwrap();
            let g = Geo::of(&x, heads, d);
            let (wq, wr) = (fitting(&QUERY_RUNGS, d).last().unwrap().1, fitting(&ROW_RUNGS, d).last().unwrap().1);
            let run = |plain: bool| {
                crate::ops::PLAIN_WINDOWS.with(|p| p.set(plain));
                crate::ops::work::start();
                let _scope = crate::ops::work::scope("flash pieces", String::new, 0.0);
                let (out, stats, kv) = forward(&g, &x, wq);
                let saved = Saved { g: Geo::of(&x, heads, d), qkv: x.clone(), out: out.clone(), stats, kv };
                let dqkv = backward(&saved, &gout, wr);
                drop(_scope);
                let kernels = crate::ops::work::stop().into_iter().flat_map(|c| c.kernels).collect::<Vec<_>>();
                crate::ops::PLAIN_WINDOWS.with(|p| p.set(false));
                (out.to_vec(), dqkv.to_vec(), kernels)
            };
            let what = format!("b {b} heads {heads} d {d} n {}", h * w);
            let (out0, d0, k0) = run(true);
            let (out1, d1, k1) = run(false);
            assert!(k0.iter().all(|k| !k.contains("SG=")), "{what}: the plain pieces ran {k0:?}");
            let windowed = |k: &String| ["flash_forward", "flash_dq", "flash_dkv"].iter().any(|n| k.contains(n));
            if crate::ops::window_subgroup_lanes(WG).is_some() {
                assert!(k1.iter().filter(|k| windowed(k)).all(|k| k.contains("SG=")), "{what}: {k1:?}");
                assert_eq!(k1.iter().filter(|k| windowed(k)).count(), 3, "{what}: {k1:?}");
            }
            assert!(out0 == out1, "{what}: forward, subgroup pieces differ from the plain ones");
            assert!(d0 == d1, "{what}: d qkv, subgroup pieces differ from the plain ones");
        }
    }

    #[test]
    fn every_forward_width_matches_the_cpu_reference() {
        // every rung's QR queries per invocation; n = 1030 of dim_head 16 takes windows of 512, 512 and 6 keys (a
        // 2-key tail after the blocks of four, on a continued state), 3×5 one window with a 3-key tail, and 1×3
        // only the tail; dim_head 64 fills the register arrays (QR 8 of them)
        let mut rng = crate::rng::Rng::new(7);
        for (b, heads, d, h, w) in [(1, 2, 16, 10, 103), (2, 1, 8, 3, 5), (1, 1, 4, 1, 3), (1, 1, 64, 5, 7)] {
            let shape = [b, 3 * heads * d, h, w];
            let v = rng.uniform_vec(crate::tensor::numel(&shape), -2.0, 2.0);
            let x = Tensor::from_slice(&v, &shape).unwrap();
            let g = Geo::of(&x, heads, d);
            let want = super::super::cpu::full_attention(&crate::testing::to_f64(&v), &shape, heads, d);
            for &(_, queries) in fitting(&QUERY_RUNGS, d) {
                let (out, _, _) = forward(&g, &x, queries);
                let what = format!("flash forward QR {queries}, b {b} heads {heads} d {d} n {}", h * w);
                crate::testing::assert_close(&out.to_vec(), &want, 1e-5, 1e-4, &what);
            }
        }
    }

    #[test]
    fn every_backward_width_matches_the_composed_gradient() {
        // every rung's RR rows per invocation against the composed path's taped gradient; n = 1030 of dim_head 16
        // takes three key windows for dq and three query windows (455 rows of 2d + 4 floats) for dk / dv, with
        // tails of every residue; 3×5 and 1×3 hold fewer rows than one invocation's; dim_head 64
        let mut rng = crate::rng::Rng::new(9);
        for (b, heads, d, h, w) in [(1, 2, 16, 10, 103), (2, 1, 8, 3, 5), (1, 1, 4, 1, 3), (1, 1, 64, 5, 7)] {
            let shape = [b, 3 * heads * d, h, w];
            let x = Tensor::from_slice(&rng.uniform_vec(crate::tensor::numel(&shape), -2.0, 2.0), &shape).unwrap();
            let gshape = [b, heads * d, h, w];
            let gout = rng.uniform_vec(crate::tensor::numel(&gshape), -1.0, 1.0);
            let gout = Tensor::from_slice(&gout, &gshape).unwrap();
            let xg = x.detach().with_grad();
            let y = super::super::full_attention_composed(&xg, heads, d).unwrap();
            let yg = crate::ops::elementwise::mul(&y, &gout).unwrap();
            let loss = crate::ops::reduce::sum(&yg, &[0, 1, 2, 3], false).unwrap();
            let want = crate::autograd::backward(&loss).unwrap().get(&xg).unwrap().to_vec();
            let want = crate::testing::to_f64(&want);
            let saved = save_forward(&x, heads, d);
            for &(name, rows) in fitting(&ROW_RUNGS, d) {
                let what = format!("flash backward {name}, b {b} heads {heads} d {d} n {}", h * w);
                crate::testing::assert_close(&backward(&saved, &gout, rows).to_vec(), &want, 1e-5, 1e-4, &what);
            }
        }
    }

    #[test]
    fn windows_start_on_256_byte_boundaries_and_fit_the_buffer() {
        for (n, row, nbh) in [(256, 32, 16), (1024, 32, 16), (225, 36, 3), (1, 8, 1), (900, 132, 5), (4096, 128, 2)] {
            let (per_head, rows, len) = windows(n, row, nbh);
            assert!(rows >= 1 && rows * row <= UNIFORM_BLOCK_F32, "{n} {row}: {rows} rows");
            assert_eq!(per_head % 64, 0);
            assert!(per_head >= n * row);
            for bh in 0..nbh {
                for r0 in (0..n).step_by(rows) {
                    let start = bh * per_head + r0 * row;
                    assert_eq!(start % 64, 0, "n {n} row {row}: window at {start}");
                    assert!(start + UNIFORM_BLOCK_F32 <= len);
                }
            }
        }
    }
}
