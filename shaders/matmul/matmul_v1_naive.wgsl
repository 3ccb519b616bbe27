// matmul_v1_naive.wgsl: batched C[b] = A[b] · B[b], one thread per output element. The first rung of the
// ladder: every thread reads a full row of A and a full column of B from global memory.
//
// math:   C[b, i, j] = Σ_k A[b, i, k] · B[b, k, j]
// layout: A element (b, i, k) at b·a_bs + i·a_rs + k·a_cs (any strides: a transposed or batch-broadcast A is
//         just other strides, a_bs = 0 shares one matrix across the batch); B likewise; C contiguous (batch, M, N)
// grid:   @workgroup_size(64), one thread per C element, linear workgroup id over (x, y, z)
// binds:  @group(0) 0 params (uniform), 1 A, 2 B, 3 C (rw)

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_bs: u32, a_rs: u32, a_cs: u32, _p0: u32,
    b_bs: u32, b_rs: u32, b_cs: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 64u + li;
    // guard: past the last element of C
    if idx >= p.m * p.n * p.batch { return; }
    let j = idx % p.n;
    let i = (idx / p.n) % p.m;
    let bb = idx / (p.m * p.n);
    var acc = 0.0;
    for (var kk = 0u; kk < p.k; kk++) {
        acc += a[bb * p.a_bs + i * p.a_rs + kk * p.a_cs] * b[bb * p.b_bs + kk * p.b_rs + j * p.b_cs];
    }
    c[idx] = acc;
}
