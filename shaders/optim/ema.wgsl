// ema.wgsl: exponential moving average of a parameter, in place: shadow ← decay·shadow + (1 − decay)·param.
//
// math:   one fused multiply-add per element (three separate elementwise launches would cost 3× the dispatches,
//         and a training step runs this once per parameter tensor)
// layout: param, shadow: any shape, contiguous, n elements each
// grid:   @workgroup_size(256), one thread per element, linear workgroup id (split over y/z past 65,535)
// binds:  @group(0) 0 params (uniform), 1 param, 2 shadow (rw)

struct Params {
    n: u32,
    decay: f32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> shadow: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    // guard: past the last element
    if i >= p.n { return; }
    shadow[i] = p.decay * shadow[i] + (1.0 - p.decay) * param[i];
}
