// matmul_v5_vec4.wgsl: like v4 (registers only, no workgroup memory, no barrier), but every load is a vec4
// and each thread owns a bigger TM×TN = 8×8 block of C, so one k-quad step does 8 A loads + 8 B loads
// (vec4 each) for 256 FMAs, against v4's 8 scalar loads for 16 FMAs. On llvmpipe (Mesa 22.3) a load whose
// address differs per invocation is a loop over the 8 SIMD lanes, so the FMA-to-load ratio is what counts.
//
// math:   C[b, i, j] = Σ_kq Σ_{u<4} A[b, i, 4kq + u] · B[b, 4kq + u, j]: per k-quad, row i's vec4 of A (4 k
//         values) times the 4 rows of B's vec4 (4 columns each)
// layout: A (batch, M, K) and B (batch, K, N) row-major, C (batch, M, N), all read as vec4<f32>; the host
//         sends only K % 4 == 0, N % 4 == 0, untransposed operands here (others go to v4). a_bs / b_bs may be
//         0 (a matrix shared by the batch). Params are in f32 units, as for every rung; the shader divides by 4.
// grid:   @workgroup_size(WG) along N (WG an override, 8..16, picked by the host); one workgroup per
//         (b, TM rows, WG·TNQ column quads), row blocks varying fastest so consecutive workgroups reuse one
//         K × (4·WG·TNQ) panel of B from cache. Thread t owns column quads q0 + t + j·WG (j < TNQ), so
//         neighbouring threads read neighbouring vec4s. Rows/quads are clamped into the matrix before the
//         k loop (no bounds checks inside it); only the stores are guarded.
// binds:  @group(0) 0 params (uniform), 1 A, 2 B, 3 C (rw)
// entries: `main` (8 rows × 2 column quads per thread) and `main_rows16` (16 rows × 1 column quad per thread,
//         for narrow C: with N ≤ 32 half of `main`'s threads would only compute clamped duplicates; here all
//         WG = 8 threads own a real quad, and the 16 A rows are loads at one address for the whole workgroup)

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_bs: u32, a_rs: u32, a_cs: u32, _p0: u32,
    b_bs: u32, b_rs: u32, b_cs: u32, _p1: u32,
}

const TM: u32 = 8u;  // C rows per thread (and per workgroup); the code below is unrolled by hand for 8
const TNQ: u32 = 2u; // C column quads (vec4) per thread: TN = 8 columns; unrolled by hand for 2
override WG: u32 = 16u; // threads per workgroup, all along N

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

// One k-quad of one C quad: acc + x.x·y0 + x.y·y1 + x.z·y2 + x.w·y3 (x = 4 k values of an A row, y_u = the
// quad of B row k + u), as 4 FMAs in k order.
fn quad(acc: vec4<f32>, x: vec4<f32>, y0: vec4<f32>, y1: vec4<f32>, y2: vec4<f32>, y3: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(x.w), y3, fma(vec4<f32>(x.z), y2, fma(vec4<f32>(x.y), y1, fma(vec4<f32>(x.x), y0, acc))));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let nq = p.n / 4u; // column quads of B and C
    let tiles_n = (nq + WG * TNQ - 1u) / (WG * TNQ);
    let tiles_m = (p.m + TM - 1u) / TM;
    let w_raw = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding past the last tile recomputes the last tile and stores nothing (no early return:
    // llvmpipe wraps everything after a `return` in a branch)
    let total = tiles_m * tiles_n * p.batch;
    let live = w_raw < total;
    let w = min(w_raw, total - 1u);
    let bb = w / (tiles_m * tiles_n);
    let row0 = (w % tiles_m) * TM;
    let q0 = ((w / tiles_m) % tiles_n) * (WG * TNQ) + li;

    // vec4 offsets at k = 0 of the 8 A rows and the 2 B column quads, clamped into the matrix (threads past
    // the edge compute duplicates and never store them). Loops over fixed-size arrays ran 2× slower on
    // llvmpipe than this hand-unrolled form, hence the numbered names.
    let ab = bb * p.a_bs / 4u;
    let ar = p.a_rs / 4u; // one row of A in vec4s
    let last = p.m - 1u;
    let a0 = ab + min(row0 + 0u, last) * ar;
    let a1 = ab + min(row0 + 1u, last) * ar;
    let a2 = ab + min(row0 + 2u, last) * ar;
    let a3 = ab + min(row0 + 3u, last) * ar;
    let a4 = ab + min(row0 + 4u, last) * ar;
    let a5 = ab + min(row0 + 5u, last) * ar;
    let a6 = ab + min(row0 + 6u, last) * ar;
    let a7 = ab + min(row0 + 7u, last) * ar;
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
        let x0 = a[a0 + kq];
        c00 = quad(c00, x0, y00, y10, y20, y30); c01 = quad(c01, x0, y01, y11, y21, y31);
        let x1 = a[a1 + kq];
        c10 = quad(c10, x1, y00, y10, y20, y30); c11 = quad(c11, x1, y01, y11, y21, y31);
        let x2 = a[a2 + kq];
        c20 = quad(c20, x2, y00, y10, y20, y30); c21 = quad(c21, x2, y01, y11, y21, y31);
        let x3 = a[a3 + kq];
        c30 = quad(c30, x3, y00, y10, y20, y30); c31 = quad(c31, x3, y01, y11, y21, y31);
        let x4 = a[a4 + kq];
        c40 = quad(c40, x4, y00, y10, y20, y30); c41 = quad(c41, x4, y01, y11, y21, y31);
        let x5 = a[a5 + kq];
        c50 = quad(c50, x5, y00, y10, y20, y30); c51 = quad(c51, x5, y01, y11, y21, y31);
        let x6 = a[a6 + kq];
        c60 = quad(c60, x6, y00, y10, y20, y30); c61 = quad(c61, x6, y01, y11, y21, y31);
        let x7 = a[a7 + kq];
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

@compute @workgroup_size(WG)
fn main_rows16(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let nq = p.n / 4u;
    let tiles_n = (nq + WG - 1u) / WG;
    let tiles_m = (p.m + 2u * TM - 1u) / (2u * TM);
    let w_raw = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: as in `main`, split padding recomputes the last tile and stores nothing
    let total = tiles_m * tiles_n * p.batch;
    let live = w_raw < total;
    let w = min(w_raw, total - 1u);
    let bb = w / (tiles_m * tiles_n);
    let row0 = (w % tiles_m) * 2u * TM;
    let q0 = ((w / tiles_m) % tiles_n) * WG + li;

    // the 16 A rows (clamped into the matrix) and the one B column quad
    let ab = bb * p.a_bs / 4u;
    let ar = p.a_rs / 4u;
    let last = p.m - 1u;
    let a0 = ab + min(row0 + 0u, last) * ar;
    let a1 = ab + min(row0 + 1u, last) * ar;
    let a2 = ab + min(row0 + 2u, last) * ar;
    let a3 = ab + min(row0 + 3u, last) * ar;
    let a4 = ab + min(row0 + 4u, last) * ar;
    let a5 = ab + min(row0 + 5u, last) * ar;
    let a6 = ab + min(row0 + 6u, last) * ar;
    let a7 = ab + min(row0 + 7u, last) * ar;
    let a8 = ab + min(row0 + 8u, last) * ar;
    let a9 = ab + min(row0 + 9u, last) * ar;
    let a10 = ab + min(row0 + 10u, last) * ar;
    let a11 = ab + min(row0 + 11u, last) * ar;
    let a12 = ab + min(row0 + 12u, last) * ar;
    let a13 = ab + min(row0 + 13u, last) * ar;
    let a14 = ab + min(row0 + 14u, last) * ar;
    let a15 = ab + min(row0 + 15u, last) * ar;
    let br = p.b_rs / 4u;
    let b0 = bb * p.b_bs / 4u + min(q0, nq - 1u);

    // c<i>: C row row0 + i, column quad q0
    var c0 = vec4<f32>(); var c1 = vec4<f32>(); var c2 = vec4<f32>(); var c3 = vec4<f32>();
    var c4 = vec4<f32>(); var c5 = vec4<f32>(); var c6 = vec4<f32>(); var c7 = vec4<f32>();
    var c8 = vec4<f32>(); var c9 = vec4<f32>(); var c10 = vec4<f32>(); var c11 = vec4<f32>();
    var c12 = vec4<f32>(); var c13 = vec4<f32>(); var c14 = vec4<f32>(); var c15 = vec4<f32>();
    var kb = 0u;
    for (var kq = 0u; kq < p.k / 4u; kq++) {
        // B rows 4kq .. 4kq + 3 of the column quad: 4 vec4 loads (the ones that differ per thread)
        let y0 = b[b0 + kb]; let y1 = b[b0 + kb + br]; let y2 = b[b0 + kb + 2u * br]; let y3 = b[b0 + kb + 3u * br];
        // each A row: one vec4 load (same address in the whole workgroup), 16 FMAs
        c0 = quad(c0, a[a0 + kq], y0, y1, y2, y3);
        c1 = quad(c1, a[a1 + kq], y0, y1, y2, y3);
        c2 = quad(c2, a[a2 + kq], y0, y1, y2, y3);
        c3 = quad(c3, a[a3 + kq], y0, y1, y2, y3);
        c4 = quad(c4, a[a4 + kq], y0, y1, y2, y3);
        c5 = quad(c5, a[a5 + kq], y0, y1, y2, y3);
        c6 = quad(c6, a[a6 + kq], y0, y1, y2, y3);
        c7 = quad(c7, a[a7 + kq], y0, y1, y2, y3);
        c8 = quad(c8, a[a8 + kq], y0, y1, y2, y3);
        c9 = quad(c9, a[a9 + kq], y0, y1, y2, y3);
        c10 = quad(c10, a[a10 + kq], y0, y1, y2, y3);
        c11 = quad(c11, a[a11 + kq], y0, y1, y2, y3);
        c12 = quad(c12, a[a12 + kq], y0, y1, y2, y3);
        c13 = quad(c13, a[a13 + kq], y0, y1, y2, y3);
        c14 = quad(c14, a[a14 + kq], y0, y1, y2, y3);
        c15 = quad(c15, a[a15 + kq], y0, y1, y2, y3);
        kb += 4u * br;
    }

    // store: row and column-quad guards (and `live` for split padding)
    let cb = bb * p.m * nq + q0;
    if !live || q0 >= nq { return; }
    if row0 + 0u < p.m { c[cb + (row0 + 0u) * nq] = c0; }
    if row0 + 1u < p.m { c[cb + (row0 + 1u) * nq] = c1; }
    if row0 + 2u < p.m { c[cb + (row0 + 2u) * nq] = c2; }
    if row0 + 3u < p.m { c[cb + (row0 + 3u) * nq] = c3; }
    if row0 + 4u < p.m { c[cb + (row0 + 4u) * nq] = c4; }
    if row0 + 5u < p.m { c[cb + (row0 + 5u) * nq] = c5; }
    if row0 + 6u < p.m { c[cb + (row0 + 6u) * nq] = c6; }
    if row0 + 7u < p.m { c[cb + (row0 + 7u) * nq] = c7; }
    if row0 + 8u < p.m { c[cb + (row0 + 8u) * nq] = c8; }
    if row0 + 9u < p.m { c[cb + (row0 + 9u) * nq] = c9; }
    if row0 + 10u < p.m { c[cb + (row0 + 10u) * nq] = c10; }
    if row0 + 11u < p.m { c[cb + (row0 + 11u) * nq] = c11; }
    if row0 + 12u < p.m { c[cb + (row0 + 12u) * nq] = c12; }
    if row0 + 13u < p.m { c[cb + (row0 + 13u) * nq] = c13; }
    if row0 + 14u < p.m { c[cb + (row0 + 14u) * nq] = c14; }
    if row0 + 15u < p.m { c[cb + (row0 + 15u) * nq] = c15; }
}
