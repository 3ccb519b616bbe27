// sum_rows_vec4.wgsl: the first pass of a long sum whose reduced axes end in a contiguous run (bias gradients:
// Σ over N and the contiguous H·W of each channel): every run is cut into chunks of CHUNK vec4s and each
// chunk summed by one invocation, with no workgroup memory and no barrier. The host sums the partials (a short
// second pass: sum.wgsl's per_thread, or this pass again).
//
// math:   out[o] = Σ_r x[base(o) + off(r)] as in sum.wgsl, with the reduced index space seen as rows:
//         r = (row, j), row over (r0, r1, r2), j < L = rshape.w contiguous (rst.w = 1). This pass writes
//         part[(o·rows + row)·nchunk + c] = Σ_{j in chunk c} x[base(o) + off(row·L) + j], nchunk = ⌈L/4 / CHUNK⌉;
//         the host's second pass sums each o's rows·nchunk partials and applies the scale.
// why:    the one-workgroup-per-output tree reduction it replaces paid ~0.1 ms per workgroup on llvmpipe
//         (barriers are coroutine switches per 8-lane group, docs/llvmpipe-stores.md), 1.5–2.2 ms for a
//         16-channel bias gradient of 128 K values; bias gradients have few outputs, so that was per call.
// layout: x: f32 contiguous, bound as vec4 (the host sends only L % 4 == 0 and every other stride, and so every
//         row start, a multiple of 4); part: n_out·rows·nchunk f32.
// grid:   @workgroup_size(256) (WG_1D), one invocation per (output, row, chunk), linear workgroup id. A chunk is
//         contiguous within one invocation (the faster order on llvmpipe; on a GPU neighbouring lanes read
//         addresses CHUNK vec4s apart, uncoalesced, which these small sums can afford).
// binds:  @group(0) 0 params (uniform), 1 x (as vec4), 2 part (rw)

struct Params {
    kshape: vec4<u32>,
    kst: vec4<u32>,
    rshape: vec4<u32>,
    rst: vec4<u32>,
    n_out: u32,
    n_red: u32,
    scale: f32,
    nchunk: u32,
}

const WG: u32 = 256u;
/// vec4s per chunk: mirrors ROWS_CHUNK in src/ops/reduce.rs.
const CHUNK: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> part: array<f32>;

fn unravel_dot(i: u32, shape: vec4<u32>, strides: vec4<u32>) -> u32 {
    let i3 = i % shape.w;
    let r2 = i / shape.w;
    let i2 = r2 % shape.z;
    let r1 = r2 / shape.z;
    let i1 = r1 % shape.y;
    let i0 = r1 / shape.y;
    return dot(vec4<u32>(i0, i1, i2, i3), strides);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    let len = p.rshape.w;       // the contiguous run, in floats
    let rows = p.n_red / len;
    // guard: past the last (output, row, chunk)
    if t >= p.n_out * rows * p.nchunk { return; }
    let c = t % p.nchunk;
    let or = t / p.nchunk;      // o·rows + row
    let o = or / rows;
    let row = or % rows;
    let rb = (unravel_dot(o, p.kshape, p.kst) + unravel_dot(row * len, p.rshape, p.rst)) / 4u;
    let j0 = c * CHUNK;
    let j1 = min(j0 + CHUNK, len / 4u);
    var acc = vec4<f32>();
    for (var j = j0; j < j1; j++) {
        acc += x[rb + j];
    }
    part[t] = (acc.x + acc.y) + (acc.z + acc.w);
}
