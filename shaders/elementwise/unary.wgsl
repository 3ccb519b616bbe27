// unary.wgsl: y = f(x) elementwise, f picked by the override OP.
//
// math:   0 scale      y = alpha·x + beta       (scale, add a scalar, negate, affine)
//         1 silu       y = x·σ(x)
//         2 gelu       y = x·Φ(x) = ½x(1 + erf(x/√2))          (exact GELU, as torch.nn.GELU())
//         3 exp        y = eˣ
//         4 sqrt       y = √x
//         5 clamp      y = min(max(x, alpha), beta)
//         6 square     y = x²
//         7 sigmoid    y = σ(x)
// layout: x, y: f32, any shape, contiguous, n elements
// grid:   @workgroup_size(256), one thread per element, linear workgroup id (split over y/z past 65,535)
// binds:  @group(0) 0 params (uniform), 1 x, 2 y (rw)
// backward: elementwise/unary_backward.wgsl

struct Params {
    n: u32,
    alpha: f32,
    beta: f32,
}

override OP: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// erf(z) for f32: Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7 (about one f32 ulp near 1).
fn erf_f32(z: f32) -> f32 {
    let s = sign(z);
    let a = abs(z);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return s * (1.0 - poly * exp(-a * a));
}

fn sigmoid(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-v));
}

fn f(v: f32) -> f32 {
    switch OP {
        case 0u: { return p.alpha * v + p.beta; }
        case 1u: { return v * sigmoid(v); }
        case 2u: { return 0.5 * v * (1.0 + erf_f32(v * 0.70710678118654752)); }
        case 3u: { return exp(v); }
        case 4u: { return sqrt(v); }
        case 5u: { return min(max(v, p.alpha), p.beta); }
        case 6u: { return v * v; }
        default: { return sigmoid(v); }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 256u + li;
    // guard: past the last element
    if i >= p.n { return; }
    y[i] = f(x[i]);
}
