// sum.wgsl: out[o] = scale · Σ_r x[o, r]: sum (or mean, with scale = 1/count) over any set of axes.
//
// math:   the input's axes are split on the host into "kept" axes (which index the output) and "reduced"
//         axes (which are summed). Both are ≤ 4-D index spaces with their own element strides into x:
//             base(o) = Σ_d ko_d · kst_d   (ko = o unravelled over kshape)
//             off(r)  = Σ_d ro_d · rst_d   (ro = r unravelled over rshape)
//             out[o]  = scale · Σ_{r < n_red} x[base(o) + off(r)]
// layout: x: f32 contiguous; out: contiguous over the kept axes, n_out elements
// entries:
//   `per_workgroup`  one workgroup of 256 threads per output: each thread strides over r, then a tree
//                    reduction in workgroup memory (for few outputs with long sums: bias gradients)
//   `per_thread`     one thread per output, a serial loop over r (for many outputs with short sums)
// grid:   linear workgroup id over (x, y, z) so the host can split more than 65,535 workgroups
// binds:  @group(0) 0 params (uniform), 1 x, 2 out (rw)
// shared: the params block and the unravelling (with the shapes as pipeline constants): sum_common.wgsl;
//         sum_kept_vec4.wgsl is `per_thread` four outputs an invocation
// backward: sum's gradient is a broadcast of g (done on the host with elementwise mul by ones)

// (struct Params, its binding 0, unravel_dot, kept_base, red_off: sum_common.wgsl)

const WG: u32 = 256u;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(256)
fn per_workgroup(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let o = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding past the last output (uniform across the workgroup, so barriers stay uniform)
    if o >= p.n_out { return; }
    let base = kept_base(o);
    var acc = 0.0;
    for (var r = li; r < p.n_red; r += WG) {
        acc += x[base + red_off(r)];
    }
    partial[li] = acc;
    // tree reduction: halve the active threads each round
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier(); // partial[] writes of the previous round are visible
        if li < s {
            partial[li] += partial[li + s];
        }
    }
    if li == 0u {
        out[o] = partial[0] * p.scale;
    }
}

@compute @workgroup_size(256)
fn per_thread(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let o = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    // guard: past the last output
    if o >= p.n_out { return; }
    let base = kept_base(o);
    var acc = 0.0;
    for (var r = 0u; r < p.n_red; r++) {
        acc += x[base + red_off(r)];
    }
    out[o] = acc * p.scale;
}
