// matmul_v7_subgroup.wgsl: matmul v6 (TM rows × 2 column quads of C per thread, A from a 64 KiB uniform
// window) with each A quad read once per subgroup instead of once per thread. In v6 every thread reads the
// same TM A quads per k-quad; on llvmpipe a uniform-block read whose index it cannot prove uniform is a gather
// of 8 scalar loads per component, and those reads were 30–60% of v6's time on the model's thin-K shapes
// (stubbing them out, docs/bench-history.md). Here lane l of a subgroup reads the quads of rows l, l + SG, ..
// of the tile (TJ = ⌈TM / SG⌉ reads), and row i reaches every lane as subgroupBroadcast(read i / SG, i % SG):
// on llvmpipe an extract and a splat, on a GPU a register shuffle.
//
// math:   C[b, i, j] = Σ_kq Σ_{u<4} A[b, i, 4kq + u] · B[b, 4kq + u, j], as in v5 and v6 (same order of sums)
// layout: as v6: A (batch, M, K) row-major, K % 8 == 0, in the window `aw`; B (batch, K, N), C (batch, M, N),
//         N % 4 == 0
// grid:   as v6: @workgroup_size(WG) along N, one workgroup per (batch, row tile, WG·2 column quads), row tiles
//         fastest, linear id; every thread of a workgroup shares the row tile, so every subgroup does. WG is a
//         multiple of SG.
// subgroups: SG is at most the adapter's smallest subgroup size (a larger real subgroup is still correct:
//         lane i % SG of it read row i). Control flow around the broadcasts is uniform: no early return, edge
//         threads compute clamped duplicates and store nothing.
// binds:  @group(0) 0 params (uniform), 1 B, 2 C (rw), 3 aw (uniform block: the A window)
// unroll: the loops marked `// unroll` are expanded for each TM and SG (src/gpu/specialize.rs), so the
//         broadcast lanes are constants, as subgroupBroadcast requires.

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
override SG: u32 = 8u;  // lanes a broadcast assumes: ≤ the adapter's smallest subgroup
override TJ: u32 = 1u; // A quads each lane reads per k-quad: ⌈TM / SG⌉ (the host sets it)
const TNQ: u32 = 2u;    // C column quads (vec4) per thread: TN = 8 columns; unrolled by hand for 2
override WG: u32 = 16u; // threads per workgroup, all along N

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> aw: array<vec4<f32>, 4096>;

// One k-quad of one C quad: acc + x.x·y0 + x.y·y1 + x.z·y2 + x.w·y3 (x = 4 k values of an A row, y_u = the
// quad of B row k + u), as 4 FMAs in k order.
fn quad(acc: vec4<f32>, x: vec4<f32>, y0: vec4<f32>, y1: vec4<f32>, y2: vec4<f32>, y3: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(x.w), y3, fma(vec4<f32>(x.z), y2, fma(vec4<f32>(x.y), y1, fma(vec4<f32>(x.x), y0, acc))));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_invocation_id) sl: u32) {
    let nq = p.n / 4u; // column quads of B and C
    let tiles_n = (nq + WG * TNQ - 1u) / (WG * TNQ);
    let tiles_m = p.nt;
    let w_raw = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
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
    // this lane's rows of the tile: sl, sl + SG, .. (clamped: past the tile or M they are duplicates nobody reads)
    var ao: array<u32, TMAX>;
    // unroll
    for (var j = 0u; j < TJ; j++) { ao[j] = ab + (min(row0 + min(j * SG + sl, TM - 1u), last) - r0) * ar; }
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
        // this lane's A quads (k = 4kq .. 4kq + 3), then per row its quad from lane i % SG and
        // 2 quads × 4 k × 4 lanes = 32 FMAs
        var xa: array<vec4<f32>, TMAX>;
        // unroll
        for (var j = 0u; j < TJ; j++) { xa[j] = aw[ao[j] + kq]; }
        // unroll
        for (var i = 0u; i < TM; i++) {
            let x = subgroupBroadcast(xa[i / SG], i % SG);
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
