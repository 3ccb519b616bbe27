// mse_forward.wgsl: first stage of the MSE loss, mean((pred − target)²): per-workgroup partial sums.
//
// math:   partial[w] = Σ_{i ∈ slice w} (pred[i] − target[i])² / n     (the 1/n of the mean folded in here)
//         loss = Σ_w partial[w], summed by reduce/sum.wgsl on the host side of ops::loss (one more dispatch)
// layout: pred, target: any shape, contiguous, n elements;  partial: (n_partials)
// grid:   @workgroup_size(256), n_partials ≤ 1024 workgroups (the host caps it); thread li of workgroup w
//         walks i = w·256 + li, then steps of n_partials·256 (a grid-stride loop, so any n fits), then a
//         tree reduction in workgroup memory (as reduce/sum.wgsl `per_workgroup`)
// binds:  @group(0) 0 params (uniform), 1 pred, 2 tgt (the target: `target` is a reserved word in WGSL), 3 partial (rw)
// backward: loss/mse_backward.wgsl

struct Params {
    n: u32,
    n_partials: u32,
    inv_n: f32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> tgt: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial_out: array<f32>;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let w = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding past the last partial (uniform across the workgroup, so barriers stay uniform)
    if w >= p.n_partials { return; }
    var acc = 0.0;
    for (var i = w * WG + li; i < p.n; i += p.n_partials * WG) {
        let d = pred[i] - tgt[i];
        acc += d * d;
    }
    partial[li] = acc;
    // tree reduction: halve the active threads each round
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier(); // partial[] writes of the previous round (or the first store) are visible
        if li < s {
            partial[li] += partial[li + s];
        }
    }
    if li == 0u {
        partial_out[w] = partial[0] * p.inv_n;
    }
}
