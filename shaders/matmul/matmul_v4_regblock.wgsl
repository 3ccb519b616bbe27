// matmul_v4_regblock.wgsl: like v3, each thread keeps a TM×TN = 4×4 block of C in registers, but there is no
// workgroup memory and no barrier: every operand comes straight from global memory (caches do the reuse).
// Written for CPU-style devices (llvmpipe runs one workgroup on one CPU thread, 8 invocations per SIMD
// register, and splits the shader at every barrier), where staging in workgroup memory is pure overhead.
//
// math:   C[b, i, j] = Σ_k A[b, i, k] · B[b, k, j]; per k step a thread loads 4 A values and 4 B values and
//         does 16 FMAs (v1 does 1 FMA per 2 loads)
// layout: as matmul_v1_naive.wgsl (any strides for A and B, contiguous C). Row and column indices are clamped
//         into the matrix before the k loop, so the loop has no bounds checks; only the stores are guarded.
// grid:   @workgroup_size(WG) along N (WG an override, 8..32, picked by the host so narrow C does not idle
//         lanes); one workgroup per (b, TM rows, WG·TN cols), row blocks varying fastest. All threads of a
//         workgroup share their 4 rows (the A loads are workgroup-uniform) and thread t owns columns
//         col0 + t·TN .. +TN, so neighbouring threads read neighbouring B values. This rung takes any
//         strides; v5 is the same idea with vec4 loads for untransposed operands.
// binds:  @group(0) 0 params (uniform), 1 A, 2 B, 3 C (rw)

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_bs: u32, a_rs: u32, a_cs: u32, _p0: u32,
    b_bs: u32, b_rs: u32, b_cs: u32, _p1: u32,
}

const TM: u32 = 4u; // C rows per thread (and per workgroup)
const TN: u32 = 4u; // C columns per thread
override WG: u32 = 32u; // threads per workgroup, all along N

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let tiles_n = (p.n + WG * TN - 1u) / (WG * TN);
    let tiles_m = (p.m + TM - 1u) / TM;
    let w_raw = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding past the last (b, row block, column tile) recomputes the last tile and stores
    // nothing. No early return: a `return` puts the rest of the shader under a branch, which on llvmpipe
    // keeps loads off its uniform (one load for all lanes) path.
    let total = tiles_m * tiles_n * p.batch;
    let live = w_raw < total;
    let w = min(w_raw, total - 1u);
    let bb = w / (tiles_m * tiles_n);
    // row blocks vary fastest: consecutive workgroups (which llvmpipe runs close together in time) share
    // their K×(WG·TN) panel of B, so it stays in cache; each workgroup reads its own TM rows of A once
    let row0 = (w % tiles_m) * TM;
    let col0 = ((w / tiles_m) % tiles_n) * (WG * TN) + li * TN;

    // clamp rows/cols into the matrix: out-of-range lanes compute a duplicate and skip the store
    let r = min(vec4<u32>(row0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.m - 1u));
    let cc = min(vec4<u32>(col0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.n - 1u));
    let ao = bb * p.a_bs + r * p.a_rs;   // A offsets of the 4 rows at k = 0
    let bo = bb * p.b_bs + cc * p.b_cs;  // B offsets of the 4 columns at k = 0

    var acc0 = vec4<f32>(); // C row row0 + 0, columns col0 .. +4
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    var ka = 0u; // k · a_cs
    var kb = 0u; // k · b_rs
    for (var kk = 0u; kk < p.k; kk++) {
        let bv = vec4<f32>(b[bo.x + kb], b[bo.y + kb], b[bo.z + kb], b[bo.w + kb]);
        acc0 = fma(vec4<f32>(a[ao.x + ka]), bv, acc0);
        acc1 = fma(vec4<f32>(a[ao.y + ka]), bv, acc1);
        acc2 = fma(vec4<f32>(a[ao.z + ka]), bv, acc2);
        acc3 = fma(vec4<f32>(a[ao.w + ka]), bv, acc3);
        ka += p.a_cs;
        kb += p.b_rs;
    }

    let c_base = bb * p.m * p.n;
    var rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < TM; i++) {
        if !live || row0 + i >= p.m { break; }
        for (var j = 0u; j < TN; j++) {
            if col0 + j < p.n {
                c[c_base + (row0 + i) * p.n + col0 + j] = rows[i][j];
            }
        }
    }
}
