// flash_pack_qdo.wgsl: the backward's per-query rows, query-major, for flash_dkv.wgsl's uniform windows, with
// FlashAttention-2's D_i = Σ_c dO[c, i]·O[c, i].
//
// math:   row (bh, i) of 2d + 4 floats: q[bh, ·, i] (d), dO[bh, ·, i] (d), lse[bh, i], D_i, 0, 0
// layout: qkv (B, 3·heads·d, n); o, dout (B·heads, d, n); stats (B·heads, n, 2) with the log-sum-exp at [.., 0];
//         qdo (B·heads) blocks of q_base floats, each n rows of 2d + 4
// grid:   @workgroup_size(64), one invocation per (bh, i), linear id
// binds:  @group(0) 0 params (uniform), 1 qkv, 2 o, 3 dout, 4 stats, 5 qdo (rw)

struct Params {
    n: u32,        // tokens (H·W)
    d: u32,        // dim_head (a multiple of 4, at most 64: D4 = d / 4)
    heads: u32,
    bh: u32,       // the (batch·heads + head) this dispatch works on
    _p0: u32,
    nk: u32,       // rows in the window
    first: u32,    // 1: the first window (start the running state), else continue it
    last: u32,     // 1: the last window (finish: normalise, write the log-sum-exp)
    scale: f32,    // dim_head^-1/2
    kv_base: u32,  // floats per (batch·head) in the packed K/V buffer (n·2d rounded up to 64)
    q_base: u32,   // floats per (batch·head) in the packed Q/dO buffer (n·(2d + 4) rounded up to 64)
    nbh: u32,      // batch·heads
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> o: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> qdo: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let t = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 64u + li;
    // guard: invocations past the last query
    if t >= p.nbh * p.n { return; }
    let i = t % p.n;
    let bh = t / p.n;
    let b = bh / p.heads;
    let head = bh % p.heads;
    let row = 2u * p.d + 4u;
    let base = bh * p.q_base + i * row;
    let qch = b * 3u * p.heads * p.d + head * p.d;
    var dsum = 0.0;
    for (var c = 0u; c < p.d; c++) {
        let g = dout[(bh * p.d + c) * p.n + i];
        dsum += g * o[(bh * p.d + c) * p.n + i];
        qdo[base + c] = qkv[(qch + c) * p.n + i];
        qdo[base + p.d + c] = g;
    }
    qdo[base + 2u * p.d] = stats[(bh * p.n + i) * 2u];
    qdo[base + 2u * p.d + 1u] = dsum;
    qdo[base + 2u * p.d + 2u] = 0.0;
    qdo[base + 2u * p.d + 3u] = 0.0;
}
