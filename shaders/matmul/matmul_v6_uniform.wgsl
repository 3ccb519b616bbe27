// matmul_v6_uniform.wgsl: matmul v5's `main` (8 rows × 2 column quads of C per thread, vec4 loads, no workgroup
// memory) with A read from a 64 KiB uniform block instead of a storage buffer. v5 spends half its storage loads on
// A (8 of 16 vec4 per k-quad), at one address for the whole workgroup; on llvmpipe a storage read costs ~9× a
// uniform one (docs/llvmpipe-stores.md), and on a GPU a workgroup-uniform address is the constant cache's
// broadcast. The host covers A in windows: each dispatch binds the window holding its rows.
//
// math:   C[b, i, j] = Σ_kq Σ_{u<4} A[b, i, 4kq + u] · B[b, 4kq + u, j], as in v5
// layout: A (batch, M, K) row-major with K % 8 == 0, read from the window `aw` as vec4: row i of batch b at
//         ((b − bb0)·a_bs + (i − 8·t0)·K) / 4 (a_bs = 0 for a matrix shared by the batch); B (batch, K, N) and
//         C (batch, M, N) as in v5 (N % 4 == 0)
// grid:   @workgroup_size(WG) along N; one workgroup per (batch of the dispatch, row tile of the dispatch, WG·2
//         column quads), row tiles fastest; linear id. Threads past the edge compute clamped duplicates and store
//         nothing.
// binds:  @group(0) 0 params (uniform), 1 B, 2 C (rw), 3 aw (uniform block: the A window)

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_bs: u32, a_rs: u32, a_cs: u32, _p0: u32,
    b_bs: u32, b_rs: u32, b_cs: u32, _p1: u32,
    bb0: u32,  // the dispatch's first batch
    nbat: u32, // its batches
    t0: u32,   // its first row tile (8 rows)
    nt: u32,   // its row tiles
}

const TM: u32 = 8u;  // C rows per thread (and per workgroup); the code below is unrolled by hand for 8
const TNQ: u32 = 2u; // C column quads (vec4) per thread: TN = 8 columns; unrolled by hand for 2
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
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
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

    // vec4 offsets at k = 0 of the 8 A rows and the 2 B column quads, clamped into the matrix (threads past
    // the edge compute duplicates and never store them). Loops over fixed-size arrays ran 2× slower on
    // llvmpipe than this hand-unrolled form, hence the numbered names.
    // A rows in the window: relative to the dispatch's first batch and first row tile
    let ab = lb * p.a_bs / 4u;
    let ar = p.a_rs / 4u; // one row of A in vec4s
    let last = p.m - 1u;
    let r0 = p.t0 * TM;
    let a0 = ab + (min(row0 + 0u, last) - r0) * ar;
    let a1 = ab + (min(row0 + 1u, last) - r0) * ar;
    let a2 = ab + (min(row0 + 2u, last) - r0) * ar;
    let a3 = ab + (min(row0 + 3u, last) - r0) * ar;
    let a4 = ab + (min(row0 + 4u, last) - r0) * ar;
    let a5 = ab + (min(row0 + 5u, last) - r0) * ar;
    let a6 = ab + (min(row0 + 6u, last) - r0) * ar;
    let a7 = ab + (min(row0 + 7u, last) - r0) * ar;
    let br = p.b_rs / 4u; // one row of B in vec4s
    let b0 = bb * p.b_bs / 4u + min(q0, nq - 1u);
    let b1 = bb * p.b_bs / 4u + min(q0 + WG, nq - 1u);

    // c<i><j>: C row row0 + i, column quad q0 + j·WG
    var c00 = vec4<f32>(); var c01 = vec4<f32>();
    var c10 = vec4<f32>(); var c11 = vec4<f32>();
    var c20 = vec4<f32>(); var c21 = vec4<f32>();
    var c30 = vec4<f32>(); var c31 = vec4<f32>();
    var c40 = vec4<f32>(); var c41 = vec4<f32>();
    var c50 = vec4<f32>(); var c51 = vec4<f32>();
    var c60 = vec4<f32>(); var c61 = vec4<f32>();
    var c70 = vec4<f32>(); var c71 = vec4<f32>();
    var kb = 0u; // 4·kq·br: B row 4kq in vec4s
    for (var kq = 0u; kq < p.k / 4u; kq++) {
        // B rows 4kq .. 4kq + 3, both column quads: 8 vec4 loads
        let y00 = b[b0 + kb]; let y10 = b[b0 + kb + br]; let y20 = b[b0 + kb + 2u * br]; let y30 = b[b0 + kb + 3u * br];
        let y01 = b[b1 + kb]; let y11 = b[b1 + kb + br]; let y21 = b[b1 + kb + 2u * br]; let y31 = b[b1 + kb + 3u * br];
        // each A row: one vec4 load (k = 4kq .. 4kq + 3), then 2 quads × 4 k × 4 lanes = 32 FMAs
        let x0 = aw[a0 + kq];
        c00 = quad(c00, x0, y00, y10, y20, y30); c01 = quad(c01, x0, y01, y11, y21, y31);
        let x1 = aw[a1 + kq];
        c10 = quad(c10, x1, y00, y10, y20, y30); c11 = quad(c11, x1, y01, y11, y21, y31);
        let x2 = aw[a2 + kq];
        c20 = quad(c20, x2, y00, y10, y20, y30); c21 = quad(c21, x2, y01, y11, y21, y31);
        let x3 = aw[a3 + kq];
        c30 = quad(c30, x3, y00, y10, y20, y30); c31 = quad(c31, x3, y01, y11, y21, y31);
        let x4 = aw[a4 + kq];
        c40 = quad(c40, x4, y00, y10, y20, y30); c41 = quad(c41, x4, y01, y11, y21, y31);
        let x5 = aw[a5 + kq];
        c50 = quad(c50, x5, y00, y10, y20, y30); c51 = quad(c51, x5, y01, y11, y21, y31);
        let x6 = aw[a6 + kq];
        c60 = quad(c60, x6, y00, y10, y20, y30); c61 = quad(c61, x6, y01, y11, y21, y31);
        let x7 = aw[a7 + kq];
        c70 = quad(c70, x7, y00, y10, y20, y30); c71 = quad(c71, x7, y01, y11, y21, y31);
        kb += 4u * br;
    }

    // store: row and column-quad guards (and `live` for split padding)
    let cb = bb * p.m * nq;
    let in0 = live && q0 < nq;
    let in1 = live && q0 + WG < nq;
    if row0 + 0u < p.m { let r = cb + (row0 + 0u) * nq; if in0 { c[r + q0] = c00; } if in1 { c[r + q0 + WG] = c01; } }
    if row0 + 1u < p.m { let r = cb + (row0 + 1u) * nq; if in0 { c[r + q0] = c10; } if in1 { c[r + q0 + WG] = c11; } }
    if row0 + 2u < p.m { let r = cb + (row0 + 2u) * nq; if in0 { c[r + q0] = c20; } if in1 { c[r + q0 + WG] = c21; } }
    if row0 + 3u < p.m { let r = cb + (row0 + 3u) * nq; if in0 { c[r + q0] = c30; } if in1 { c[r + q0 + WG] = c31; } }
    if row0 + 4u < p.m { let r = cb + (row0 + 4u) * nq; if in0 { c[r + q0] = c40; } if in1 { c[r + q0 + WG] = c41; } }
    if row0 + 5u < p.m { let r = cb + (row0 + 5u) * nq; if in0 { c[r + q0] = c50; } if in1 { c[r + q0 + WG] = c51; } }
    if row0 + 6u < p.m { let r = cb + (row0 + 6u) * nq; if in0 { c[r + q0] = c60; } if in1 { c[r + q0 + WG] = c61; } }
    if row0 + 7u < p.m { let r = cb + (row0 + 7u) * nq; if in0 { c[r + q0] = c70; } if in1 { c[r + q0 + WG] = c71; } }
}
