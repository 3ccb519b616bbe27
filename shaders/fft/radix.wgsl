// radix.wgsl: the mixed-radix butterflies of v4 and v5, appended to each by `shader!`.
//
// math:   dft_r(r, u, sign)[j] = Σ_{i<r} u_i · exp(sign · 2πi · i·j / r) for r = 2, 3, 4, 5, written out (the
//         radix-3 and radix-5 forms with the real constants below); the caller has already multiplied u_i by
//         its stage twiddle. radix_of picks the next radix of a remaining length greedily (4 while it
//         divides, then 2, 3, 5), the same in every invocation.

const C3: f32 = -0.5;                 // cos(2π/3)
const S3: f32 = 0.8660254037844386;   // sin(2π/3)
const C51: f32 = 0.30901699437494745; // cos(2π/5)
const C52: f32 = -0.8090169943749475; // cos(4π/5)
const S51: f32 = 0.9510565162951535;  // sin(2π/5)
const S52: f32 = 0.5877852522924731;  // sin(4π/5)

// i·z
fn mul_i(z: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(-z.y, z.x);
}

// The next radix for a remaining length (uniform): 4 while it divides, then 2, 3, 5.
fn radix_of(rem: u32) -> u32 {
    if rem % 4u == 0u { return 4u; }
    if rem % 2u == 0u { return 2u; }
    if rem % 3u == 0u { return 3u; }
    return 5u;
}

// The r-point DFT (r = 2, 3, 4 or 5, uniform) of u[0 .. r) with the given sign, in v[0 .. r).
fn dft_r(r: u32, u: array<vec2<f32>, 5>, sign: f32) -> array<vec2<f32>, 5> {
    var v: array<vec2<f32>, 5>;
    if r == 2u {
        v[0] = u[0] + u[1];
        v[1] = u[0] - u[1];
    } else if r == 4u {
        let a0 = u[0] + u[2];
        let a1 = u[0] - u[2];
        let a2 = u[1] + u[3];
        let a3 = sign * mul_i(u[1] - u[3]);
        v[0] = a0 + a2;
        v[1] = a1 + a3;
        v[2] = a0 - a2;
        v[3] = a1 - a3;
    } else if r == 3u {
        let t0 = u[0] + C3 * (u[1] + u[2]);
        let d = (sign * S3) * mul_i(u[1] - u[2]);
        v[0] = u[0] + u[1] + u[2];
        v[1] = t0 + d;
        v[2] = t0 - d;
    } else {
        let s14 = u[1] + u[4];
        let s23 = u[2] + u[3];
        let d14 = sign * mul_i(u[1] - u[4]);
        let d23 = sign * mul_i(u[2] - u[3]);
        let t1 = u[0] + C51 * s14 + C52 * s23;
        let t2 = u[0] + C52 * s14 + C51 * s23;
        let e1 = S51 * d14 + S52 * d23;
        let e2 = S52 * d14 - S51 * d23;
        v[0] = u[0] + s14 + s23;
        v[1] = t1 + e1;
        v[2] = t2 + e2;
        v[3] = t2 - e2;
        v[4] = t1 - e1;
    }
    return v;
}
