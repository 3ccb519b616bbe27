// mse_backward.wgsl: gradient of loss = mean((pred − target)²) for pred or for target.
//
// math:   d loss/d pred   = +2·(pred − target)/n · g      (g = upstream gradient of the [1] loss)
//         d loss/d target = −2·(pred − target)/n · g
//         SIGN (+1 or −1) picks which; `scale` = 2/n, computed on the host in f64
// layout: pred, target, d: any shape, contiguous, n elements;  g: (1)
// grid:   @workgroup_size(256), one thread per element, linear workgroup id (split over y/z past 65,535)
// binds:  @group(0) 0 params (uniform), 1 pred, 2 tgt (the target: `target` is a reserved word in WGSL), 3 g, 4 d (rw)
// forward: loss/mse_forward.wgsl

struct Params {
    n: u32,
    scale: f32,
}

override SIGN: f32 = 1.0;

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> tgt: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> d: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    // guard: past the last element
    if i >= p.n { return; }
    d[i] = SIGN * p.scale * (pred[i] - tgt[i]) * g[0];
}
