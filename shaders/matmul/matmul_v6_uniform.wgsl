// matmul_v6_uniform.wgsl: matmul v5's `main` (TM rows × 2 column quads of C per thread, vec4 loads, no
// workgroup memory) with A read from a 64 KiB uniform block instead of a storage buffer. v5 spends half its storage
// loads on A (8 of 16 vec4 per k-quad), at one address for the whole workgroup; on llvmpipe a storage read costs
// ~9× a uniform one (docs/llvmpipe-stores.md), and on a GPU a workgroup-uniform address is the constant cache's
// broadcast. The host covers A in windows: each dispatch binds the window holding its rows. TM = 8, 16 or 32
// (rungs v6_uniform, v6_uniform_r16, v6_uniform_r32): each B quad loaded serves TM rows, so more rows mean fewer
// storage loads per FMA (and more accumulators: 2·TM vec4, past the registers from 16 on).
//
// math:   C[b, i, j] = Σ_kq Σ_{u<4} A[b, i, 4kq + u] · B[b, 4kq + u, j], as in v5
// layout: A (batch, M, K) row-major with K % 8 == 0, read from the window `aw` as vec4: row i of batch b at
//         ((b − bb0)·a_bs + (i − TM·t0)·K) / 4 (a_bs = 0 for a matrix shared by the batch); B (batch, K, N) and
//         C (batch, M, N) as in v5 (N % 4 == 0)
// grid:   @workgroup_size(WG) along N; one workgroup per (batch of the dispatch, row tile of TM rows of the
//         dispatch, WG·2 column quads), row tiles fastest; linear id. Threads past the edge compute clamped
//         duplicates and store nothing.
// binds:  @group(0) 0 params (uniform), 1 B, 2 C (rw), 3 aw (uniform block: the A window)
// pieces: the entry point and how a lane's A quads become the TM rows' come from matmul/a_plain.wgsl (v6: every
//         lane reads all TM rows, AJ = TM) or matmul/a_subgroup.wgsl (v7, devices with SUBGROUP: lane l reads
//         rows l, l + SG, .. of the tile, AJ = ⌈TM / SG⌉ reads, and subgroupBroadcast hands row i round; the
//         same values in the same sums, so v6's bits). Every thread of a workgroup shares the row tile, so every
//         subgroup does; no early return.
// unroll: the loops marked `// unroll` are expanded for each TM (src/gpu/specialize.rs), so the per-row arrays are
//         indexed by constants and live in registers (a loop-over-arrays form ran 2× slower on llvmpipe than the
//         hand-unrolled one that preceded it; expanded it is the same code).

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_bs: u32, a_rs: u32, a_cs: u32, _p0: u32,
    b_bs: u32, b_rs: u32, b_cs: u32, _p1: u32,
    bb0: u32,  // the dispatch's first batch
    nbat: u32, // its batches
    t0: u32,   // its first row tile (TM rows)
    nt: u32,   // its row tiles
}

const TMAX: u32 = 32u;
override TM: u32 = 8u;  // C rows per thread (and per workgroup), ≤ TMAX
const TNQ: u32 = 2u;    // C column quads (vec4) per thread: TN = 8 columns; unrolled by hand for 2
override WG: u32 = 16u; // threads per workgroup, all along N
override AJ: u32 = 8u;  // A quads a lane reads per k-quad (the piece's: TM for a_plain, ⌈TM / SG⌉ for a_subgroup)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> aw: array<vec4<f32>, 4096>;

// One k-quad of one C quad: acc + x.x·y0 + x.y·y1 + x.z·y2 + x.w·y3 (x = 4 k values of an A row, y_u = the
// quad of B row k + u), as 4 FMAs in k order.
fn quad(acc: vec4<f32>, x: vec4<f32>, y0: vec4<f32>, y1: vec4<f32>, y2: vec4<f32>, y3: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(x.w), y3, fma(vec4<f32>(x.z), y2, fma(vec4<f32>(x.y), y1, fma(vec4<f32>(x.x), y0, acc))));
}

// workgroup w_raw (linear id), thread li of it, sl its subgroup lane (0 for the plain piece)
fn run(w_raw: u32, li: u32, sl: u32) {
    let nq = p.n / 4u; // column quads of B and C
    let tiles_n = (nq + WG * TNQ - 1u) / (WG * TNQ);
    let tiles_m = p.nt;
    // guard: split padding past the last tile recomputes the last tile and stores nothing (no early return:
    // llvmpipe wraps everything after a `return` in a branch)
    let total = tiles_m * tiles_n * p.nbat;
    let live = w_raw < total;
    let w = min(w_raw, total - 1u);
    let lb = w / (tiles_m * tiles_n);
    let bb = p.bb0 + lb;
    let row0 = (p.t0 + w % tiles_m) * TM;
    let q0 = ((w / tiles_m) % tiles_n) * (WG * TNQ) + li;

    // vec4 offsets at k = 0 of the TM A rows (in the window: relative to the dispatch's first batch and first
    // row tile) and the 2 B column quads, clamped into the matrix (threads past the edge compute duplicates and
    // never store them)
    let ab = lb * p.a_bs / 4u;
    let ar = p.a_rs / 4u; // one row of A in vec4s
    let last = p.m - 1u;
    let r0 = p.t0 * TM;
    // the rows this lane reads (a_row: the piece's), clamped into M
    var ao: array<u32, TMAX>;
    // unroll
    for (var j = 0u; j < AJ; j++) { ao[j] = ab + (min(row0 + a_row(j, sl), last) - r0) * ar; }
    let br = p.b_rs / 4u; // one row of B in vec4s
    let b0 = bb * p.b_bs / 4u + min(q0, nq - 1u);
    let b1 = bb * p.b_bs / 4u + min(q0 + WG, nq - 1u);

    // c0[i], c1[i]: C row row0 + i, column quads q0 and q0 + WG
    var c0: array<vec4<f32>, TMAX>;
    var c1: array<vec4<f32>, TMAX>;
    // unroll
    for (var i = 0u; i < TM; i++) {
        c0[i] = vec4<f32>();
        c1[i] = vec4<f32>();
    }
    var kb = 0u; // 4·kq·br: B row 4kq in vec4s
    for (var kq = 0u; kq < p.k / 4u; kq++) {
        // B rows 4kq .. 4kq + 3, both column quads: 8 vec4 loads
        let y00 = b[b0 + kb]; let y10 = b[b0 + kb + br]; let y20 = b[b0 + kb + 2u * br]; let y30 = b[b0 + kb + 3u * br];
        let y01 = b[b1 + kb]; let y11 = b[b1 + kb + br]; let y21 = b[b1 + kb + 2u * br]; let y31 = b[b1 + kb + 3u * br];
        // this lane's A quads (k = 4kq .. 4kq + 3), the TM rows' from them, then per row 2 quads × 4 k × 4
        // lanes = 32 FMAs
        var xa: array<vec4<f32>, TMAX>;
        // unroll
        for (var j = 0u; j < AJ; j++) { xa[j] = aw[ao[j] + kq]; }
        let xs = a_quads(xa);
        // unroll
        for (var i = 0u; i < TM; i++) {
            let x = xs[i];
            c0[i] = quad(c0[i], x, y00, y10, y20, y30);
            c1[i] = quad(c1[i], x, y01, y11, y21, y31);
        }
        kb += 4u * br;
    }

    // store: row and column-quad guards (and `live` for split padding)
    let cb = bb * p.m * nq;
    let in0 = live && q0 < nq;
    let in1 = live && q0 + WG < nq;
    // unroll
    for (var i = 0u; i < TM; i++) {
        if row0 + i < p.m {
            let r = cb + (row0 + i) * nq;
            if in0 { c[r + q0] = c0[i]; }
            if in1 { c[r + q0 + WG] = c1[i]; }
        }
    }
}
