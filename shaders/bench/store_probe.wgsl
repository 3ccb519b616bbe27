// store_probe.wgsl: memory-access probes that separate what a CPU Vulkan driver (llvmpipe) pays for loads,
// stores, their width and their pattern (benches/store_probe.rs times them; docs/llvmpipe-stores.md has the
// findings). Every entry moves `n4` vec4s (16 bytes each) of src into dst, or only reads or only writes them.
//
// math:   dst[i] = src[i] (copies), dst[i] = c (fill), out[t] = Σ src (read-only); bytes = 16·n4 per direction
// layout: src, dst: (n4) vec4<f32> (or 4·n4 f32 for the scalar entries); `out` is dst's first `threads` vec4s
// grid:   @workgroup_size(WG) (override, default 256); `PER` vec4s per invocation for the multi-element entries,
//         either contiguous per invocation (`..._blocked`: invocation t owns PER consecutive vec4s) or
//         lane-interleaved (`..._strided`: element e of invocation t is at e·threads + t, so neighbouring lanes
//         touch neighbouring addresses); linear workgroup id over (x, y, z); n4 is a multiple of WG·PER
// binds:  @group(0) 0 params (uniform), 1 src, 2 dst (rw)

struct Params {
    n4: u32,
    threads: u32, // invocations launched (n4 / PER)
    _p0: u32,
    _p1: u32,
}

override WG: u32 = 256u;
override PER: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

fn tid(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
}

// one vec4 per invocation (the copy probe)
@compute @workgroup_size(WG)
fn copy_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = tid(wg, nwg, li);
    if i >= p.n4 { return; }
    dst[i] = src[i];
}

// one vec4 per invocation, written as four scalar stores of its components (same bytes)
@compute @workgroup_size(WG)
fn copy_vec4_by_lane(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = tid(wg, nwg, li);
    if i >= p.n4 { return; }
    let v = src[i];
    dst[i].x = v.x;
    dst[i].y = v.y;
    dst[i].z = v.z;
    dst[i].w = v.w;
}

// PER vec4s per invocation, contiguous per invocation (lanes PER·16 bytes apart)
@compute @workgroup_size(WG)
fn copy_blocked(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = tid(wg, nwg, li);
    if t >= p.threads { return; }
    for (var e = 0u; e < PER; e++) {
        dst[t * PER + e] = src[t * PER + e];
    }
}

// PER vec4s per invocation, lane-interleaved (neighbouring lanes touch neighbouring vec4s)
@compute @workgroup_size(WG)
fn copy_strided(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = tid(wg, nwg, li);
    if t >= p.threads { return; }
    for (var e = 0u; e < PER; e++) {
        dst[e * p.threads + t] = src[e * p.threads + t];
    }
}

// stores only: PER vec4s of a constant per invocation, lane-interleaved
@compute @workgroup_size(WG)
fn fill_strided(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = tid(wg, nwg, li);
    if t >= p.threads { return; }
    let v = vec4<f32>(f32(t));
    for (var e = 0u; e < PER; e++) {
        dst[e * p.threads + t] = v;
    }
}

// loads only: PER vec4s per invocation, lane-interleaved, summed; one vec4 written per invocation
@compute @workgroup_size(WG)
fn read_strided(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = tid(wg, nwg, li);
    if t >= p.threads { return; }
    var acc = vec4<f32>(0.0);
    for (var e = 0u; e < PER; e++) {
        acc += src[e * p.threads + t];
    }
    dst[t] = acc;
}

// loads only, contiguous per invocation
@compute @workgroup_size(WG)
fn read_blocked(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = tid(wg, nwg, li);
    if t >= p.threads { return; }
    var acc = vec4<f32>(0.0);
    for (var e = 0u; e < PER; e++) {
        acc += src[t * PER + e];
    }
    dst[t] = acc;
}
