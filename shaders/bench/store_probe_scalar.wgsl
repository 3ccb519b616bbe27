// store_probe_scalar.wgsl: the scalar (f32) twins of store_probe.wgsl's copies: the same bytes moved as 4·n4
// f32 values, one per invocation (`copy`) or PER per invocation lane-interleaved (`copy_strided`).
//
// math:   dst[i] = src[i]; bytes = 16·n4 per direction
// layout: src, dst: (4·n4) f32
// grid:   @workgroup_size(WG) (override, default 256), linear workgroup id over (x, y, z)
// binds:  @group(0) 0 params (uniform), 1 src, 2 dst (rw)

struct Params {
    n4: u32,
    threads: u32,
    _p0: u32,
    _p1: u32,
}

override WG: u32 = 256u;
override PER: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG)
fn copy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    if i >= 4u * p.n4 { return; }
    dst[i] = src[i];
}

@compute @workgroup_size(WG)
fn copy_strided(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    if t >= p.threads { return; }
    for (var e = 0u; e < PER; e++) {
        dst[e * p.threads + t] = src[e * p.threads + t];
    }
}
