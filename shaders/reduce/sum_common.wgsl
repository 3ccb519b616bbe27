// sum_common.wgsl: what sum.wgsl and sum_kept_vec4.wgsl share, appended to each by `shader!`: the params block
// and the unravelling of the kept and reduced index spaces (math: sum.wgsl).

struct Params {
    kshape: vec4<u32>,
    kst: vec4<u32>,
    rshape: vec4<u32>,
    rst: vec4<u32>,
    n_out: u32,
    n_red: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

// The index spaces' shapes past their first axis as pipeline constants (kshape.yzw = K1..K3, rshape.yzw =
// R1..R3): the unravelling's divisions and remainders compile to multiplies and shifts (by runtime values each
// is a division per SIMD lane on llvmpipe, and per_thread unravels every element it reads)
override K1: u32 = 1u;
override K2: u32 = 1u;
override K3: u32 = 1u;
override R1: u32 = 1u;
override R2: u32 = 1u;
override R3: u32 = 1u;

// Σ_d i_d·strides_d with i unravelled over (·, s1, s2, s3) (row-major, the last axis fastest)
fn unravel_dot(i: u32, s1: u32, s2: u32, s3: u32, strides: vec4<u32>) -> u32 {
    let i3 = i % s3;
    let r2 = i / s3;
    let i2 = r2 % s2;
    let r1 = r2 / s2;
    let i1 = r1 % s1;
    let i0 = r1 / s1;
    return dot(vec4<u32>(i0, i1, i2, i3), strides);
}

fn kept_base(o: u32) -> u32 { return unravel_dot(o, K1, K2, K3, p.kst); }
fn red_off(r: u32) -> u32 { return unravel_dot(r, R1, R2, R3, p.rst); }
