// transpose_vec4.wgsl: out[b, c, r] = x[b, r, c] for a batch of (R, C) matrices with R and C multiples of 4:
// `permute` swapping the last two axes (the transpose the matmul's vec4 rung asks for), four by four.
//
// Why not strided_copy.wgsl: a transpose walks one side with stride R or C, so that kernel moves one float per
// invocation and unravels every index with integer divisions (lane by lane on llvmpipe: x86 has no SIMD
// division). Here an invocation moves a 4×4 block: four vec4 row loads, a register transpose, four vec4 stores,
// and one unravel per 16 floats. Measured: see ops/layout.rs.
//
// math:   block (b, i, j) covers rows 4i .. 4i+3 and columns 4j .. 4j+3 of x[b]; out[b] row 4j + k is
//         (x[b, 4i, 4j + k], x[b, 4i + 1, 4j + k], x[b, 4i + 2, 4j + k], x[b, 4i + 3, 4j + k]).
// layout: x (B, R, C), out (B, C, R), both contiguous and read/written as vec4 (R % 4 == 0, C % 4 == 0)
// grid:   @workgroup_size(64), one invocation per 4×4 block, column blocks j fastest (neighbouring lanes read
//         neighbouring vec4s of the same rows); linear workgroup id
// binds:  @group(0) 0 params (uniform), 1 x (as vec4), 2 out (rw, as vec4)

struct Params {
    batch: u32,
    r4: u32, // R / 4
    c4: u32, // C / 4
    n: u32,  // blocks: batch · r4 · c4
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 64u + li;
    // guard: past the last block
    if t >= p.n { return; }
    let j = t % p.c4;
    let i = (t / p.c4) % p.r4;
    let b = t / (p.c4 * p.r4);
    // x[b] rows 4i .. 4i+3 are C/4 vec4s apart; block column j is vec4 j of each
    let xb = (b * p.r4 * 4u + 4u * i) * p.c4 + j;
    let r0 = x[xb];
    let r1 = x[xb + p.c4];
    let r2 = x[xb + 2u * p.c4];
    let r3 = x[xb + 3u * p.c4];
    // out[b] rows 4j .. 4j+3 are R/4 vec4s apart; block row i is vec4 i of each
    let ob = (b * p.c4 * 4u + 4u * j) * p.r4 + i;
    out[ob] = vec4<f32>(r0.x, r1.x, r2.x, r3.x);
    out[ob + p.r4] = vec4<f32>(r0.y, r1.y, r2.y, r3.y);
    out[ob + 2u * p.r4] = vec4<f32>(r0.z, r1.z, r2.z, r3.z);
    out[ob + 3u * p.r4] = vec4<f32>(r0.w, r1.w, r2.w, r3.w);
}
