// adamw.wgsl: one AdamW step (torch.optim.AdamW, amsgrad off), in place on param, m and v.
//
// math:   ĝ = g · scale[0]                      (scale = the clip coefficient, or 1: clipping with no host trip)
//         p ← p · (1 − lr·wd)                   (decoupled weight decay, applied first as torch does)
//         m ← β1·m + (1 − β1)·ĝ
//         v ← β2·v + (1 − β2)·ĝ²
//         p ← p − lr/(1 − β1^t) · m / (sqrt(v)/sqrt(1 − β2^t) + eps)
//         which is p − lr·m̂/(sqrt(v̂) + eps) with m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t), written the way torch
//         evaluates it. The bias corrections are computed on the host in f64 and arrive in Params:
//         step_size = lr/(1 − β1^t), bc2_sqrt = sqrt(1 − β2^t), decay = 1 − lr·wd.
// layout: grad, param, m, v: any shape, contiguous, n elements each;  scale: (1)
// grid:   @workgroup_size(256), one thread per element, linear workgroup id (split over y/z past 65,535)
// binds:  @group(0) 0 params (uniform), 1 grad, 2 scale, 3 param (rw), 4 m (rw), 5 v (rw)

struct Params {
    n: u32,
    step_size: f32,
    bc2_sqrt: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    // guard: past the last element
    if i >= p.n { return; }
    let g = grad[i] * scale[0];
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * p.decay - p.step_size * mi / (sqrt(vi) / p.bc2_sqrt + p.eps);
}
