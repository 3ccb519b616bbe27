// sum_kept_vec4.wgsl: sum.wgsl's `per_thread` four neighbouring outputs an invocation, read and written as vec4:
// for sums whose kept axes end in a contiguous run of whole vec4s (the dw rungs' split partials, (splits, Cout,
// K) -> (Cout, K)). On llvmpipe every storage access is a per-lane loop whatever its width
// (docs/llvmpipe-stores.md), so a vec4 read serves four sums for the price of one.
//
// math:   out[4q + j] = scale · Σ_{r < n_red} x[base(4q) + j + off(r)], j < 4 (sum.wgsl's base and off); the
//         sums run in sum.wgsl's order, so each equals `per_thread`'s bit for bit
// layout: x: f32 contiguous, read as vec4 (the host checks that kshape.w % 4 == 0, kst.w == 1 and every other
//         stride is a multiple of 4, so base(4q) + off(r) is); out: n_out / 4 vec4
// grid:   @workgroup_size(256), one invocation per vec4 of outputs, linear workgroup id over (x, y, z)
// binds:  @group(0) 0 params (uniform), 1 x (vec4), 2 out (vec4, rw)

// (struct Params, its binding 0, kept_base, red_off: sum_common.wgsl)

const WG: u32 = 256u;

@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let q = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    // guard: past the last vec4 of outputs
    if q >= p.n_out / 4u { return; }
    let base = kept_base(4u * q);
    var acc = vec4<f32>(0.0);
    for (var r = 0u; r < p.n_red; r++) {
        acc += x4[(base + red_off(r)) / 4u];
    }
    out4[q] = acc * p.scale;
}
