// strided_copy.wgsl: dst[dst_off + Σ i_d·dst_st_d] = src[src_off + Σ i_d·src_st_d] over a ≤ 4-D index space.
//
// math:   one general copy serves every "move elements, change nothing" op in ops/layout.rs:
//         concat   each input is copied into its slab of the output (dst_off = start·inner, dst strides of the output)
//         narrow   (and chunk) a slab of the input is read (src_off = start·inner) into a contiguous output
//         permute  the output is walked contiguously while the source strides are the input's, permuted
//         their backwards are the same copies with src and dst swapped
//         with the override ACC = true the copy adds instead: dst[..] += src[..] (the autograd tape uses it to
//         add narrow's gradient into its slab of the input's gradient, see src/autograd.rs)
// layout: src, dst: f32; the host right-aligns the index space into `shape` (size-1 padding in front) after
//         merging neighbouring axes that are contiguous in both src and dst, so a concat on channels is
//         3 axes (outer, axis, inner) and a plain copy is 1
// grid:   @workgroup_size(256), one thread per element of the index space, linear workgroup id over (x, y, z)
// binds:  @group(0) 0 params (uniform), 1 src, 2 dst (rw)
// backward: the same kernel (see ops/layout.rs)
// vec4 twin: strided_copy_vec4.wgsl, the same copy on vec4s when the innermost axis is contiguous in both

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
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    // guard: past the last element of the index space
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
