// unary_backward.wgsl: dx = dy · f'(x) for the functions of elementwise/unary.wgsl (same OP numbering).
//
// math:   0 scale   f' = alpha
//         1 silu    f' = σ(x)·(1 + x·(1 − σ(x)))
//         2 gelu    f' = Φ(x) + x·φ(x),  φ(x) = e^(−x²/2)/√(2π)
//         3 exp     f' = eˣ
//         4 sqrt    f' = 1 / (2√x)
//         5 clamp   f' = 1 inside (alpha, beta), 0 outside (the subgradient PyTorch uses at the edges: 1 at = )
//         6 square  f' = 2x
//         7 sigmoid f' = σ(x)(1 − σ(x))
// layout: x, dy, dx: f32, n elements, contiguous
// grid:   @workgroup_size(256), one thread per element, linear workgroup id
// binds:  @group(0) 0 params (uniform), 1 x, 2 dy, 3 dx (rw)

struct Params {
    n: u32,
    alpha: f32,
    beta: f32,
}

override OP: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

// erf(z): Abramowitz & Stegun 7.1.26 (same as unary.wgsl)
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

fn df(v: f32) -> f32 {
    switch OP {
        case 0u: { return p.alpha; }
        case 1u: { let s = sigmoid(v); return s * (1.0 + v * (1.0 - s)); }
        case 2u: {
            let cdf = 0.5 * (1.0 + erf_f32(v * 0.70710678118654752));
            let pdf = 0.39894228040143268 * exp(-0.5 * v * v);
            return cdf + v * pdf;
        }
        case 3u: { return exp(v); }
        case 4u: { return 0.5 / sqrt(v); }
        case 5u: { return select(0.0, 1.0, v >= p.alpha && v <= p.beta); }
        case 6u: { return 2.0 * v; }
        default: { let s = sigmoid(v); return s * (1.0 - s); }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 256u + li;
    // guard: past the last element
    if i >= p.n { return; }
    dx[i] = dy[i] * df(x[i]);
}
