// sum_rows_vec4.wgsl: sum.wgsl's `per_workgroup` for the common long case: the reduced axes end in a
// contiguous run (bias gradients: Σ over N and the contiguous H·W of each channel), read as vec4.
//
// math:   out[o] = scale · Σ_r x[base(o) + off(r)] as in sum.wgsl, with the reduced index space seen as rows:
//         r = (row, j), row over (r0, r1, r2), j < L = rshape.w contiguous (rst.w = 1). Each row's offset is
//         unravelled once (the same in every lane), then the row is walked as vec4s: sum.wgsl unravels every
//         element with three integer divisions, which llvmpipe runs lane by lane (no SIMD division on x86).
// layout: x: f32 contiguous, bound as vec4 (the host sends only L % 4 == 0 and every other stride, and so every
//         row start, a multiple of 4); out: n_out elements.
// grid:   @workgroup_size(64), one workgroup per output: each lane sums vec4s j ≡ lane (mod 64) of every row,
//         then a tree reduction in workgroup memory; linear workgroup id
// binds:  @group(0) 0 params (uniform), 1 x (as vec4), 2 out (rw)

struct Params {
    kshape: vec4<u32>,
    kst: vec4<u32>,
    rshape: vec4<u32>,
    rst: vec4<u32>,
    n_out: u32,
    n_red: u32,
    scale: f32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, WG>;

fn unravel_dot(i: u32, shape: vec4<u32>, strides: vec4<u32>) -> u32 {
    let i3 = i % shape.w;
    let r2 = i / shape.w;
    let i2 = r2 % shape.z;
    let r1 = r2 / shape.z;
    let i1 = r1 % shape.y;
    let i0 = r1 / shape.y;
    return dot(vec4<u32>(i0, i1, i2, i3), strides);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let o = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding past the last output (uniform across the workgroup, so barriers stay uniform)
    if o >= p.n_out { return; }
    let base = unravel_dot(o, p.kshape, p.kst);
    let len = p.rshape.w;       // the contiguous run, in floats
    let rows = p.n_red / len;
    var acc = vec4<f32>();
    for (var row = 0u; row < rows; row++) {
        let rb = (base + unravel_dot(row * len, p.rshape, p.rst)) / 4u;
        for (var j = li; j < len / 4u; j += WG) {
            acc += x[rb + j];
        }
    }
    partial[li] = (acc.x + acc.y) + (acc.z + acc.w);
    // tree reduction: halve the active lanes each round
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier(); // partial[] writes of the previous round are visible
        if li < s {
            partial[li] += partial[li + s];
        }
    }
    if li == 0u {
        out[o] = partial[0] * p.scale;
    }
}
