// flash_pack_kv.wgsl: K and V of every head, key-major, for the fused attention's uniform windows
// (flash_forward.wgsl, flash_dq.wgsl read 64 KiB windows of it).
//
// math:   kvt[bh·kv_base + j·2d + c] = k[bh, c, j] (c < d), v[bh, c − d, j] (d ≤ c < 2d), where
//         q/k/v[bh, c, j] = qkv[b, part·heads·d + head·d + c, j] (part 0/1/2), bh = b·heads + head
// layout: qkv (B, 3·heads·d, n) contiguous (n = H·W); kvt (B·heads) blocks of kv_base floats, each n rows of 2d
// grid:   @workgroup_size(64), one invocation per (bh, j, c) with c fastest (contiguous stores), linear id
// binds:  @group(0) 0 params (uniform), 1 qkv, 2 kvt (rw)

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
@group(0) @binding(2) var<storage, read_write> kvt: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let t = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 64u + li;
    let row = 2u * p.d;
    // guard: invocations past the last element
    if t >= p.nbh * p.n * row { return; }
    let c = t % row;
    let j = (t / row) % p.n;
    let bh = t / (row * p.n);
    let b = bh / p.heads;
    let head = bh % p.heads;
    let part = 1u + c / p.d;  // 1 = k, 2 = v
    let ch = (b * 3u + part) * p.heads * p.d + head * p.d + c % p.d;
    kvt[bh * p.kv_base + j * row + c] = qkv[ch * p.n + j];
}
