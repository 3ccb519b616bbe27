// matmul_v3_blocked.wgsl: like v2, but each thread computes a TM×TN = 4×4 block of C in registers, so one
// workgroup (16×16 threads) covers a 64×64 C tile and every value read from workgroup memory feeds 4 FMAs
// (burn's 2023 "tiling 2d" rung; Simon Boehm's "kernel 5: 2D blocktiling" explains the idea for CUDA).
//
// math:   C[b, i, j] = Σ_t Σ_{kk<BK} As[kk, i] · Bs[kk, j] over K-tiles of BK
// layout: as matmul_v1_naive.wgsl (strided A and B, contiguous C). As is stored k-major ([BK][BM]) so the
//         inner loop reads a thread's 4 rows as one contiguous run.
// grid:   @workgroup_size(16, 16); one workgroup per BM×BN = 64×64 C tile; linear workgroup id =
//         (b, tile row, tile col); thread (ty, tx) owns rows ty·TM .. +TM and cols tx·TN .. +TN of the tile
// binds:  @group(0) 0 params (uniform), 1 A, 2 B, 3 C (rw)

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_bs: u32, a_rs: u32, a_cs: u32, _p0: u32,
    b_bs: u32, b_rs: u32, b_cs: u32, _p1: u32,
}

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const TM: u32 = 4u;
const TN: u32 = 4u;
const THREADS: u32 = 256u; // (BM/TM)·(BN/TN)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

var<workgroup> As: array<f32, 1024>; // [BK][BM]
var<workgroup> Bs: array<f32, 1024>; // [BK][BN]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let tiles_n = (p.n + BN - 1u) / BN;
    let tiles_m = (p.m + BM - 1u) / BM;
    let w = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding (uniform per workgroup, so the barriers below stay uniform)
    if w >= tiles_m * tiles_n * p.batch { return; }
    let bb = w / (tiles_m * tiles_n);
    let row0 = ((w / tiles_n) % tiles_m) * BM;
    let col0 = (w % tiles_n) * BN;
    let a_base = bb * p.a_bs;
    let b_base = bb * p.b_bs;

    var acc: array<vec4<f32>, 4>; // acc[i] = C row (ty·TM + i), cols tx·TN .. +4
    for (var t = 0u; t < p.k; t += BK) {
        // stage BM×BK of A and BK×BN of B: 1024 elements each, 4 per thread; zero outside the matrix
        for (var e = li; e < BM * BK; e += THREADS) {
            let r = e / BK;          // row within the tile
            let kk = e % BK;         // k within the tile
            let gr = row0 + r;
            let gk = t + kk;
            As[kk * BM + r] = select(0.0, a[a_base + gr * p.a_rs + gk * p.a_cs], gr < p.m && gk < p.k);
        }
        for (var e = li; e < BK * BN; e += THREADS) {
            let kk = e / BN;
            let cc = e % BN;
            let gk = t + kk;
            let gc = col0 + cc;
            Bs[kk * BN + cc] = select(0.0, b[b_base + gk * p.b_rs + gc * p.b_cs], gk < p.k && gc < p.n);
        }
        workgroupBarrier(); // As/Bs complete before the products read them
        for (var kk = 0u; kk < BK; kk++) {
            let bo = kk * BN + lid.x * TN;
            let bv = vec4<f32>(Bs[bo], Bs[bo + 1u], Bs[bo + 2u], Bs[bo + 3u]);
            let ao = kk * BM + lid.y * TM;
            acc[0] += As[ao] * bv;
            acc[1] += As[ao + 1u] * bv;
            acc[2] += As[ao + 2u] * bv;
            acc[3] += As[ao + 3u] * bv;
        }
        workgroupBarrier(); // products done before the next tile overwrites As/Bs
    }
    let c_base = bb * p.m * p.n;
    for (var i = 0u; i < TM; i++) {
        let r = row0 + lid.y * TM + i;
        if r >= p.m { break; }
        for (var j = 0u; j < TN; j++) {
            let cc = col0 + lid.x * TN + j;
            if cc < p.n {
                c[c_base + r * p.n + cc] = acc[i][j];
            }
        }
    }
}
