// matmul_v2_tiled.wgsl: like v1, but a 16×16 workgroup stages 16×16 tiles of A and B in workgroup memory,
// so each global element is read once per workgroup instead of once per thread (16× fewer global loads).
//
// math:   C[b, i, j] = Σ_t Σ_{kk<TILE} As[i, kk] · Bs[kk, j] over K-tiles t
// layout: as matmul_v1_naive.wgsl (strided A and B, contiguous C)
// grid:   @workgroup_size(16, 16); one workgroup per 16×16 C tile; linear workgroup id = (b, tile row, tile col)
// binds:  @group(0) 0 params (uniform), 1 A, 2 B, 3 C (rw)

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_bs: u32, a_rs: u32, a_cs: u32, _p0: u32,
    b_bs: u32, b_rs: u32, b_cs: u32, _p1: u32,
}

const TILE: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

var<workgroup> As: array<f32, 256>; // [TILE rows of C][TILE k]
var<workgroup> Bs: array<f32, 256>; // [TILE k][TILE cols of C]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tiles_n = (p.n + TILE - 1u) / TILE;
    let tiles_m = (p.m + TILE - 1u) / TILE;
    let w = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding (uniform per workgroup, so the barriers below stay uniform)
    if w >= tiles_m * tiles_n * p.batch { return; }
    let bb = w / (tiles_m * tiles_n);
    let row = ((w / tiles_n) % tiles_m) * TILE + lid.y;
    let col = (w % tiles_n) * TILE + lid.x;
    var acc = 0.0;
    for (var t = 0u; t < p.k; t += TILE) {
        // each thread stages one A and one B element; out-of-range ones are 0 so they add nothing
        let ka = t + lid.x;
        As[lid.y * TILE + lid.x] = select(0.0, a[bb * p.a_bs + row * p.a_rs + ka * p.a_cs], row < p.m && ka < p.k);
        let kb = t + lid.y;
        Bs[lid.y * TILE + lid.x] = select(0.0, b[bb * p.b_bs + kb * p.b_rs + col * p.b_cs], kb < p.k && col < p.n);
        workgroupBarrier(); // tiles are fully written before anyone reads them
        for (var kk = 0u; kk < TILE; kk++) {
            acc += As[lid.y * TILE + kk] * Bs[kk * TILE + lid.x];
        }
        workgroupBarrier(); // everyone is done reading before the next tile overwrites
    }
    if row < p.m && col < p.n {
        c[bb * p.m * p.n + row * p.n + col] = acc;
    }
}
