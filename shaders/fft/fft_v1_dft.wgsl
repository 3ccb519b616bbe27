// fft_v1_dft.wgsl: 1-D DFT along one axis of a stack of images, the naive O(n²) rung of the FFT ladder.
// One workgroup per line; each thread computes whole output elements, reading its line from global memory.
// It works for every length n, so the fast rung falls back to it for lengths that are not powers of two.
//
// math:   Y[k] = scale · Σ_{j<n} x[j] · exp(sign · 2πi · j·k / n)        sign = −1 forward, +1 inverse
//         twiddle angle: m = (j·k) mod n is kept exactly as an integer (updated by adding k each step) and
//         taken into (−n/2, n/2], so the f32 angle 2π·m/n lies in [−π, π] and loses nothing to large j·k.
//         with map_images > 0, Y[k] is multiplied by the real map M before scaling (FF-Parser: the map sits
//         between the forward and the inverse column transforms; the inverse is a second launch here)
// layout: a "line" of n complex elements, element k of line l at complex index
//             e = base(l) + k·stride,  base(l) = (l / inner)·outer + (l % inner)
//         rows of (images, H, W): n = W, stride 1, inner 1, outer W;  columns: n = H, stride W, inner W, outer H·W.
//         complex index e is stored at words a = e·es + (e / hw)·is (real part) and a + cs (imaginary part):
//             real        es 1, is 0,  (no imaginary part: read as 0 / not written)
//             interleaved es 2, is 0,  cs 1       (…, H, W, 2)
//             planar      es 1, is hw, cs hw      (B, 2C, H, W): channel 2c = Re, 2c+1 = Im
//         map (if used): M[(e / hw) % map_images, e % hw]  — map_images = C (shared) or B·C (per sample)
// grid:   @workgroup_size(64), one workgroup per line (linear workgroup id; the host splits past 65,535)
// binds:  @group(0) 0 params (uniform), 1 x, 2 map (bound to x when unused), 3 y (rw)
// backward: the same kernel with the opposite sign (see src/ops/fft/mod.rs)

struct Params {
    n: u32, lines: u32, lines_per_wg: u32, log2n: u32,
    stride: u32, inner: u32, outer: u32, hw: u32,
    in_es: u32, in_is: u32, in_cs: u32, in_real: u32,
    out_es: u32, out_is: u32, out_cs: u32, out_real: u32,
    map_images: u32, sign: f32, scale: f32, lines_sh: u32,
    inner_sh: u32, hw_sh: u32, _p0: u32, _p1: u32, // lines_sh, inner_sh, hw_sh: used by v2 only
}

const WG: u32 = 64u;
const TWO_PI: f32 = 6.283185307179586;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> map: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn load(e: u32) -> vec2<f32> {
    let a = e * p.in_es + (e / p.hw) * p.in_is;
    if p.in_real != 0u {
        return vec2<f32>(x[a], 0.0);
    }
    return vec2<f32>(x[a], x[a + p.in_cs]);
}

fn store(e: u32, v: vec2<f32>) {
    let a = e * p.out_es + (e / p.hw) * p.out_is;
    y[a] = v.x;
    if p.out_real == 0u {
        y[a + p.out_cs] = v.y;
    }
}

fn cmul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

// exp(sign · 2πi · m / n) for 0 <= m < n, with the angle folded into [−π, π]
fn twiddle(m: u32, n: u32) -> vec2<f32> {
    var s = f32(m);
    if 2u * m > n {
        s = s - f32(n);
    }
    let theta = p.sign * TWO_PI * (s / f32(n));
    return vec2<f32>(cos(theta), sin(theta));
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let line = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding past the last line
    if line >= p.lines { return; }
    let base = (line / p.inner) * p.outer + (line % p.inner);
    for (var k = li; k < p.n; k += WG) {
        var acc = vec2<f32>(0.0, 0.0);
        var m = 0u; // (j·k) mod n
        for (var j = 0u; j < p.n; j++) {
            acc += cmul(load(base + j * p.stride), twiddle(m, p.n));
            m += k;
            if m >= p.n { m -= p.n; }
        }
        let e = base + k * p.stride;
        if p.map_images > 0u {
            acc *= map[((e / p.hw) % p.map_images) * p.hw + e % p.hw];
        }
        store(e, acc * p.scale);
    }
}
