// dw_v10_g_subgroup.wgsl: the subgroup piece of dw_v10_reuse.wgsl (devices with SUBGROUP, and only where the
// host has checked that every invocation of a workgroup has the same co0): its entry point, and `g_block` with
// the block's ROWV = 2·TM vec4 of g read once a subgroup. Vec4 e (channel e / 2, half e % 2) is read by lane
// e % SG (WJ = ⌈ROWV / SG⌉ reads a lane) and reaches every lane as subgroupBroadcast(read e / SG, e % SG): the same
// values as dw_v10_g_plain.wgsl, so the same bits. SG is at most the adapter's smallest subgroup.

override SG: u32 = 8u;
override WJ: u32 = 2u; // ⌈ROWV / SG⌉ (the host sets it)

fn g_block(gb: u32, hok: bool, co0: u32, cm: u32, hw4: u32, sl: u32) -> GBlock {
    let hb = select(0u, 1u, hok);
    var mine: array<vec4<f32>, 64>;
    // unroll
    for (var j = 0u; j < WJ; j++) {
        let e = min(j * SG + sl, ROWV - 1u);
        let gi = gb + min(co0 + e / 2u, cm) * hw4;
        mine[j] = select(vec4<f32>(), g[gi + (e % 2u) * hb], e % 2u == 0u || hok);
    }
    var b: GBlock;
    // unroll
    for (var c = 0u; c < TM; c++) {
        b.lo[c] = subgroupBroadcast(mine[2u * c / SG], 2u * c % SG);
        b.hi[c] = subgroupBroadcast(mine[(2u * c + 1u) / SG], (2u * c + 1u) % SG);
    }
    return b;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sl: u32) {
    run((wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li, sl);
}
