// window/subgroup.wgsl: the subgroup piece of the kernels that read a workgroup-shared operand from a uniform
// window (devices with SUBGROUP; the kernel's contract as in window/plain.wgsl): `win_rows` reads the ROWV vec4
// from `base` on once per subgroup: lane l reads vec4 l, l + SG, .. (WJ = ⌈ROWV / SG⌉ reads), and vec4 i reaches
// every lane as subgroupBroadcast(read i / SG, i % SG), an extract and a splat on llvmpipe. The same values as
// the plain piece, so the same bits. SG is at most the adapter's smallest subgroup (a larger real one is still
// right: lane i % SG read vec4 i), WG is a multiple of SG, and `run` keeps control flow uniform around the
// calls (no early return).

override SG: u32 = 8u;
override WJ: u32 = 1u; // ⌈ROWV / SG⌉ (the host sets it)

fn win_rows(base: u32, sl: u32) -> WinRows {
    var mine: array<vec4<f32>, ROW_MAX>;
    // unroll
    for (var j = 0u; j < WJ; j++) { mine[j] = win[base + min(j * SG + sl, ROWV - 1u)]; }
    var b: WinRows;
    // unroll
    for (var i = 0u; i < ROWV; i++) { b.e[i] = subgroupBroadcast(mine[i / SG], i % SG); }
    return b;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sl: u32) {
    run((wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li, sl);
}
