// binary.wgsl: out = a ⊙ b with NumPy broadcasting, ⊙ ∈ {add, sub, mul, div} picked by the override OP.
//
// math:   out[i0,i1,i2,i3] = a[i·sa] ⊙ b[i·sb], where a broadcast dimension has stride 0
// layout: a, b, out: f32, up to 4-D (shapes right-aligned to 4-D on the host; longer shapes are coalesced)
//         `shape` is out's shape; `sa`, `sb` are the element strides of a and b in out's index space
// grid:   @workgroup_size(256), one thread per output element; linear workgroup id over (x, y, z) so the
//         host can split more than 65,535 workgroups
// binds:  @group(0) 0 params (uniform), 1 a, 2 b, 3 out (rw)
// entry:  `main` (broadcasting) and `main_same` (a, b, out all the same shape: no index math)
// backward: composed on the host from these same kernels (d/da, d/db), then summed over broadcast axes

struct Params {
    shape: vec4<u32>,
    sa: vec4<u32>,
    sb: vec4<u32>,
    n: u32,
}

override OP: u32 = 0u; // 0 add, 1 sub, 2 mul, 3 div

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn apply(x: f32, y: f32) -> f32 {
    switch OP {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        default: { return x / y; }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 256u + li;
    // guard: the last workgroup (and any split padding) runs past n
    if i >= p.n { return; }
    // unravel i over the 4-D output shape (row-major)
    let i3 = i % p.shape.w;
    let r2 = i / p.shape.w;
    let i2 = r2 % p.shape.z;
    let r1 = r2 / p.shape.z;
    let i1 = r1 % p.shape.y;
    let i0 = r1 / p.shape.y;
    let idx = vec4<u32>(i0, i1, i2, i3);
    out[i] = apply(a[dot(idx, p.sa)], b[dot(idx, p.sb)]);
}

@compute @workgroup_size(256)
fn main_same(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 256u + li;
    if i >= p.n { return; }
    out[i] = apply(a[i], b[i]);
}
