// strided_copy_vec4.wgsl: strided_copy.wgsl on vec4s. The host sends a copy here when the innermost axis of
// its (merged) index space is contiguous in src and dst (stride 1), its length and both offsets and every
// other stride are multiples of 4; it then divides all of them by 4. One invocation moves 4 floats, so the
// integer index math (no SIMD division on x86: llvmpipe runs it lane by lane) and the per-lane loads are
// paid once per vec4 instead of once per float. Measured: see ops/layout.rs.
//
// math:   dst4[dst_off + Σ i_d·dst_st_d] (+)= src4[src_off + Σ i_d·src_st_d], all in vec4 units (ACC adds)
// layout: src, dst: vec4<f32> views of the f32 tensors; index space right-aligned into `shape` (axis 3 the
//         contiguous one, in vec4s)
// grid:   @workgroup_size(256), one invocation per vec4 of the index space, linear workgroup id over (x, y, z)
// binds:  @group(0) 0 params (uniform), 1 src, 2 dst (rw)

struct Params {
    shape: vec4<u32>,
    src_st: vec4<u32>,
    dst_st: vec4<u32>,
    src_off: u32,
    dst_off: u32,
    n: u32,
}

const WG: u32 = 256u;
override ACC: bool = false; // dst += src instead of dst = src
// shape.y, shape.z, shape.w as pipeline constants: the unravelling's divisions and remainders compile to
// multiplies and shifts (by runtime values each is a division per SIMD lane on llvmpipe)
override S1: u32 = 1u;
override S2: u32 = 1u;
override S3: u32 = 1u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    // guard: past the last vec4 of the index space
    if i >= p.n { return; }
    // unravel i over shape (row-major, axis 3 fastest)
    let i3 = i % S3;
    let r2 = i / S3;
    let i2 = r2 % S2;
    let r1 = r2 / S2;
    let i1 = r1 % S1;
    let i0 = r1 / S1;
    let idx = vec4<u32>(i0, i1, i2, i3);
    let d = p.dst_off + dot(idx, p.dst_st);
    let v = src[p.src_off + dot(idx, p.src_st)];
    if ACC { dst[d] += v; } else { dst[d] = v; }
}
