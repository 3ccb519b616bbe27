// fft_v5_private_mixed.wgsl: 1-D FFT of a 2-3-5 length (240 = 4·4·3·5, 120, 60, 30, …, up to MAXN) along one
// axis of a stack of images, one whole line per invocation in a private array: v3's schedule (no workgroup
// memory, no barrier: every lane of a SIMD group runs the same butterfly on its own line, so every private
// index is the same in every lane) with v4's mixed-radix stages. The rung for CPU adapters at BraTS sizes.
// Unlike v3, the line length is a runtime value, not an override: llvmpipe unrolls loops of constant trip
// count completely, and a 240-point transform unrolled took it ~20 s to compile per length.
//
// math:   Y[k] = scale · Σ_{j<n} x[j] · exp(sign · 2πi · j·k / n)        sign = −1 forward, +1 inverse
//         Stockham autosort as in fft_v4_mixed.wgsl: radices taken greedily (4 while it divides, then 2, 3, 5);
//         at the stage of radix r after sub-transforms of length P, butterfly i = g·P + k (g < n/(P·r), k < P)
//         reads u_j = X[i + j·n/r]·ω^(j·k), ω = exp(sign·2πi/(P·r)), takes the r-point DFT with the same sign
//         and writes Y[g·P·r + k + j·P] = v_j (the (g, k) loops replace v4's k = i mod P). ω^(j·k) =
//         tw[j·k·n/(P·r)], tw[t] = exp(−2πi·t/n) from the host (f64 rounded once), conjugated for sign +1.
//         With map_images > 0 the kernel is the whole FF-Parser column step: the transform, ⊙ the real map M,
//         the opposite-sign transform (unscaled), then scale.
// layout: as fft_v1_dft.wgsl: element k of line l at complex index e = base(l) + k·stride,
//         base(l) = (l / inner)·outer + (l % inner); words e·es + (e / hw)·is (+ cs for the imaginary part);
//         map index ((e / hw) % map_images)·hw + e % hw. Private buffer A is buf[0 .. MAXN), B buf[MAXN ..).
//         Twiddles: a 64 KiB uniform window, twiddle t in twu[t].xy (one vec4 each, read lane-uniformly: a
//         broadcast, where a storage read would loop over the lanes).
// grid:   @workgroup_size(64), one invocation per line (lines of a workgroup consecutive: along columns
//         neighbouring lanes read neighbouring words); linear workgroup id. n ≤ MAXN, only 2-3-5 lengths (the
//         host sends others to v4).
// binds:  @group(0) 0 params (uniform), 1 x, 2 map (bound to x when unused), 3 y (rw), 4 twiddles (uniform block)
// backward: the same kernel with the opposite sign (see src/ops/fft/mod.rs)

const MAXN: u32 = 256u;    // the longest line (the private buffers hold 2·MAXN complex values)
const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> map: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> twu: array<vec4<f32>, 4096>;

var<private> buf: array<vec2<f32>, 512>;

// twiddle t for sign −1, its conjugate for sign +1
fn tw_at(t: u32, sign: f32) -> vec2<f32> {
    let v = twu[t].xy;
    return vec2<f32>(v.x, -sign * v.y);
}

// The Stockham stages of length n with the given sign, starting in buffer `src0` (0 or MAXN); returns the
// buffer offset that holds the result, in natural order.
fn stages(src0: u32, sign: f32) -> u32 {
    let n = p.n;
    var src = src0;
    var pp = 1u;       // P: the sub-transform length so far
    var rem = n;       // n / P
    loop {
        if rem == 1u { break; }
        let r = radix_of(rem);
        let m = n / r;        // butterflies per line, and the reads' stride
        let step = rem / r;   // n / (P·r): groups of this stage, and the twiddle stride
        let dst = MAXN - src;
        for (var g = 0u; g < step; g++) {
            for (var k = 0u; k < pp; k++) {
                let a = src + g * pp + k;
                let o = dst + g * pp * r + k;
                var u: array<vec2<f32>, 5>;
                u[0] = buf[a];
                for (var j = 1u; j < r; j++) { u[j] = cmul(buf[a + j * m], tw_at(j * k * step, sign)); }
                let v = dft_r(r, u, sign);
                for (var j = 0u; j < r; j++) { buf[o + j * pp] = v[j]; }
            }
        }
        src = dst;
        pp *= r;
        rem = step;
    }
    return src;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let line_raw = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    // guard: lanes past the last line compute a clamped duplicate and store nothing (no early return, so the
    // loops below stay the same in every lane)
    let live = line_raw < p.lines;
    let line = min(line_raw, p.lines - 1u);
    let base = line_base(line);
    let img = image_of(base); // the line's image: every element's (common.wgsl)
    let n = p.n;

    for (var k = 0u; k < n; k++) {
        buf[k] = load_in(base + k * p.stride, img);
    }

    var src = stages(0u, p.sign);

    if p.map_images > 0u {
        // FF-Parser column step: X ⊙ M, then the opposite-sign transform of the product
        for (var k = 0u; k < n; k++) {
            let e = base + k * p.stride;
            buf[src + k] *= map[(img % p.map_images) * p.hw + (e - img * p.hw)];
        }
        src = stages(src, -p.sign);
    }

    if !live { return; }
    for (var k = 0u; k < n; k++) {
        store_in(base + k * p.stride, img, buf[src + k] * p.scale);
    }
}
