// binary_vec4.wgsl: out = a ⊙ b for same-shape contiguous operands, four elements per invocation; the fast
// path of binary.wgsl's `main_same` (⊙ ∈ {add, sub, mul, div}, override OP).
//
// Why: on a software adapter (llvmpipe) every invocation is one SIMD lane and a storage load whose address
// differs per lane is issued lane by lane, so a vec4 load moves 16 bytes per lane-step instead of 4. Measured
// on llvmpipe (`medsegdiff bench --filter add`, add of 16M f32): `main_same` 5.2–5.9 GB/s; this kernel with
// one vec4 per invocation 9.4–9.7 GB/s, with two (as here) 10.1–10.4, with four 9.9–10.8.
//
// math:   out[i] = a[i] ⊙ b[i]
// layout: a, b, out: (n4) vec4<f32>, contiguous; the host sends only numel % 4 == 0
// grid:   @workgroup_size(256), two vec4 per invocation (i and i + 256, so a workgroup covers 512 consecutive
//         vec4s); linear workgroup id over (x, y, z)
// binds:  @group(0) 0 params (uniform), 1 a, 2 b, 3 out (rw)

struct Params {
    n4: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

override OP: u32 = 0u; // 0 add, 1 sub, 2 mul, 3 div

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;

fn apply(x: vec4<f32>, y: vec4<f32>) -> vec4<f32> {
    switch OP {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        default: { return x / y; }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    // two vec4 per invocation, 256 apart: a workgroup covers 512 consecutive vec4s
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 512u + li;
    // guard: the last workgroup (and any split padding) runs past n4
    if i < p.n4 { out[i] = apply(a[i], b[i]); }
    let j = i + 256u;
    if j < p.n4 { out[j] = apply(a[j], b[j]); }
}
