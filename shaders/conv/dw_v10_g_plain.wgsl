// dw_v10_g_plain.wgsl: the core-WGSL piece of dw_v10_reuse.wgsl: its entry point, and `g_block`, the block's
// 2·TM vec4 of g (the low and high four pixels of channels co0 .. co0 + TM − 1; padding channels read channel
// Cout − 1, the high half is 0 past the row's end) read by every invocation.

fn g_block(gb: u32, hok: bool, co0: u32, cm: u32, hw4: u32, sl: u32) -> GBlock {
    let hb = select(0u, 1u, hok);
    var b: GBlock;
    // unroll
    for (var c = 0u; c < TM; c++) {
        let gi = gb + min(co0 + c, cm) * hw4;
        b.lo[c] = g[gi];
        b.hi[c] = select(vec4<f32>(), g[gi + hb], hok);
    }
    return b;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    run((wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li, 0u);
}
