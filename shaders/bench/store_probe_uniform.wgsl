// store_probe_uniform.wgsl: reads from a uniform block (a 16 KiB table inside the params uniform) against the same
// reads from a storage buffer, with lane-divergent and with lane-uniform indices; one vec4 written per
// invocation. On llvmpipe a divergent uniform read is an unrolled, branch-free gather, a divergent storage read
// a runtime loop over the lanes with a bounds branch per component (docs/llvmpipe-stores.md).
//
// math:   out[t] = Σ_e table[(t + e·7) % 1024] (divergent) or Σ_e table[(e·7) % 1024] (uniform), PER terms
// layout: table: 1024 vec4<f32> (in params, or the first 16 KiB of src); dst: (threads) vec4<f32>
// grid:   @workgroup_size(256), PER reads per invocation, linear workgroup id over (x, y, z)
// binds:  @group(0) 0 params (uniform, with the table), 1 src, 2 dst (rw)

struct Params {
    n4: u32,
    threads: u32,
    _p0: u32,
    _p1: u32,
    table: array<vec4<f32>, 1024>,
}

override PER: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

fn tid(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 256u + li;
}

@compute @workgroup_size(256)
fn ubo_divergent(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = tid(wg, nwg, li);
    if t >= p.threads { return; }
    var acc = vec4<f32>(0.0);
    for (var e = 0u; e < PER; e++) { acc += p.table[(t + e * 7u) & 1023u]; }
    dst[t] = acc;
}

@compute @workgroup_size(256)
fn ssbo_divergent(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = tid(wg, nwg, li);
    if t >= p.threads { return; }
    var acc = vec4<f32>(0.0);
    for (var e = 0u; e < PER; e++) { acc += src[(t + e * 7u) & 1023u]; }
    dst[t] = acc;
}

@compute @workgroup_size(256)
fn ubo_uniform(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = tid(wg, nwg, li);
    if t >= p.threads { return; }
    var acc = vec4<f32>(0.0);
    for (var e = 0u; e < PER; e++) { acc += p.table[(e * 7u + p._p0) & 1023u]; }
    dst[t] = acc;
}

@compute @workgroup_size(256)
fn ssbo_uniform(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = tid(wg, nwg, li);
    if t >= p.threads { return; }
    var acc = vec4<f32>(0.0);
    for (var e = 0u; e < PER; e++) { acc += src[(e * 7u + p._p0) & 1023u]; }
    dst[t] = acc;
}

// the same sum with the loop trip count from the params (a runtime loop: its counter is a phi, never uniform)
@compute @workgroup_size(256)
fn ssbo_uniform_runtime_loop(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = tid(wg, nwg, li);
    if t >= p.threads { return; }
    var acc = vec4<f32>(0.0);
    for (var e = 0u; e < p._p1; e++) { acc += src[(e * 7u) & 1023u]; }
    dst[t] = acc;
}
