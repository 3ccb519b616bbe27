// copy_vec4.wgsl: memory bandwidth probe, dst = src as vec4<f32>. The bytes moved are 2 · 16 per thread
// (one vec4 read, one written), so GB/s = 32 · n4 / time.
//
// math:   dst[i] = src[i]
// layout: src, dst: (n4) vec4<f32> (the host binds f32 buffers whose length is a multiple of 4)
// grid:   @workgroup_size(256), one thread per vec4, linear workgroup id over (x, y, z)
// binds:  @group(0) 0 params (uniform), 1 src, 2 dst (rw)

struct Params {
    n4: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 256u + li;
    // guard: the last workgroup (and any split padding) runs past n4
    if i >= p.n4 { return; }
    dst[i] = src[i];
}
