// window/plain.wgsl: the core-WGSL piece of the kernels that read a workgroup-shared operand from a uniform
// window (flash_forward, flash_dq, flash_dkv, conv v9): their entry point, and `win_rows`, the ROWV vec4 of the
// window from `base` on, read by every invocation. On llvmpipe that is a gather of 8 scalar loads per component
// whatever the index (it proves only constants uniform); on a GPU the constant cache's broadcast.
// The kernel defines `win`, WG, ROWV, ROW_MAX, `struct WinRows { e: array<vec4<f32>, ROW_MAX> }` and
// `fn run(t: u32, sl: u32)` (t the invocation's linear id, sl its subgroup lane: 0 here).

fn win_rows(base: u32, sl: u32) -> WinRows {
    var b: WinRows;
    // unroll
    for (var i = 0u; i < ROWV; i++) { b.e[i] = win[base + i]; }
    return b;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    run((wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li, 0u);
}
