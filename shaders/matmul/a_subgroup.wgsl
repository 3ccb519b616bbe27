// a_subgroup.wgsl: the subgroup piece of matmul_v6_uniform.wgsl (rung v7, devices with SUBGROUP): its entry
// point, and each A quad of the tile read by one lane: lane l reads rows l, l + SG, .. (AJ = ⌈TM / SG⌉ reads),
// and row i reaches every lane as subgroupBroadcast(read i / SG, i % SG), on llvmpipe an extract and a splat.
// SG is at most the adapter's smallest subgroup (a larger real one is still right: lane i % SG read row i); WG
// is a multiple of SG. v6's A reads were 30–60% of its time on thin-K shapes (docs/bench-history.md).

override SG: u32 = 8u;

// the tile row a lane reads j-th (rows past the tile read its last, a duplicate nobody takes)
fn a_row(j: u32, sl: u32) -> u32 { return min(j * SG + sl, TM - 1u); }

fn a_quads(xa: array<vec4<f32>, TMAX>) -> array<vec4<f32>, TMAX> {
    var xs: array<vec4<f32>, TMAX>;
    // unroll
    for (var i = 0u; i < TM; i++) { xs[i] = subgroupBroadcast(xa[i / SG], i % SG); }
    return xs;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_invocation_id) sl: u32) {
    run(wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y, li, sl);
}
