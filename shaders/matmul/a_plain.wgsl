// a_plain.wgsl: the core-WGSL piece of matmul_v6_uniform.wgsl (rung v6): its entry point, and every lane
// reading all TM A rows of its tile from the window (on llvmpipe a gather of 8 scalar loads per component; on a
// GPU the constant cache's broadcast). AJ = TM.

fn a_row(j: u32, sl: u32) -> u32 { return j; }

fn a_quads(xa: array<vec4<f32>, TMAX>) -> array<vec4<f32>, TMAX> { return xa; }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    run(wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y, li, 0u);
}
