// fill.wgsl: out[i] = value for every element (zeros, ones, constant tensors).
//
// layout: out: f32, n elements
// grid:   @workgroup_size(256), one thread per element, linear workgroup id (split over y/z past 65,535)
// binds:  @group(0) 0 params (uniform), 1 out (rw)

struct Params {
    n: u32,
    value: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 256u + li;
    // guard: past the last element
    if i >= p.n { return; }
    out[i] = p.value;
}
