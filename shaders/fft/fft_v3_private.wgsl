// fft_v3_private.wgsl: 1-D FFT along one axis of a stack of images, one whole line per invocation in private
// memory: no workgroup memory and no barrier. The rung for CPU adapters (llvmpipe), where every barrier is a
// switch between the workgroup's SIMD coroutines and every workgroup-memory access with per-lane addresses is
// a loop over the lanes, which made v2 spend most of its time outside the butterflies. Here all the lanes of a
// SIMD group run the same butterfly on their own lines. The stages have constant geometry (Pease): every stage
// reads and writes the same private indices, so only the butterfly loop is expanded (`// unroll`,
// src/gpu/specialize.rs) and every array index is a constant, while the stage loop stays a loop. (The in-place
// order changes its indices each stage: expanded for N = 64 it took llvmpipe ~90 s to compile, left a loop its
// indices were runtime values, a per-lane access each. Constant geometry ran N = 64 2.7× and N = 32 1.5×
// faster with the same bits, docs/bench-history.md.)
//
// math:   Y[k] = scale · Σ_{j<n} x[j] · exp(sign · 2πi · j·k / n)        sign = −1 forward, +1 inverse
//         radix-2 decimation in frequency (natural order in, bit-reversed out), so the forward needs no
//         reordering on load; the result is stored through the bit reversal. Stage s < log2 N, butterfly
//         q < N/2: (u, v) = (a[q], a[q + N/2]); b[2q] = u + v, b[2q + 1] = (u − v)·W^t with t = (q >> s) << s,
//         W = exp(−2πi/N) (conjugated for sign = +1): the DIF butterfly of sub-transform q >> s, whose halves
//         the previous stage interleaved. With map_images > 0 (the FF-Parser column step) the bit-reversed
//         spectrum is multiplied by M, then transformed back with the opposite sign by the transposed stages
//         (decimation in time, bit-reversed in, natural out: s from log2 N − 1 down, (u, v) = (a[2q],
//         a[2q + 1]·W^t), b[q] = u + v, b[q + N/2] = u − v), then scaled.
//         twiddles: twu[s·N/2 + q].xy = exp(−2πi·t/N), computed on the host in f64, one f32 rounding from exact.
// layout: as fft_v1_dft.wgsl (lines, strides, real/interleaved/planar words, map index); a line lies in one
//         image, so its image index is found once (common.wgsl's load_in / store_in).
// grid:   @workgroup_size(64), one invocation per line (lines l of a workgroup are consecutive: along columns
//         neighbouring lanes read neighbouring words); linear workgroup id.
// binds:  @group(0) 0 params (uniform), 1 x, 2 map (bound to x when unused), 3 y (rw), 4 twu (a 64 KiB
//         uniform block: a twiddle index is the same in every lane, a uniform read llvmpipe gathers from
//         cache where a storage read would loop over the lanes)
// backward: the same kernel with the opposite sign (see src/ops/fft/mod.rs)

override N: u32 = 64u;     // line length, a power of two ≤ MAXN (equals p.n)
override LOG2N: u32 = 6u;
const MAXN: u32 = 256u;    // the private array's size (WGSL private arrays need a constant size)
const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> map: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> twu: array<vec4<f32>, 4096>;


// the bit reversal of i < N over LOG2N bits (two shifts, so N = 1 never shifts by 32)
fn rev(i: u32) -> u32 {
    return (reverseBits(i) >> (31u - LOG2N)) >> 1u;
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

    var a: array<vec2<f32>, MAXN>;
    var b: array<vec2<f32>, MAXN>;
    // unroll
    for (var k = 0u; k < N; k++) {
        a[k] = load_in(base + k * p.stride, img);
    }

    // forward (sign p.sign), decimation in frequency, constant geometry: natural order in, bit-reversed out.
    // Stage s reads a[q], a[q + N/2] and writes b[2q], b[2q + 1] (butterfly q < N/2 of sub-transform
    // j = q >> s, twiddle W^((q >> s) << s)); the same butterflies on the same values as the in-place order,
    // so the same sums, but the same indices in every stage: the stage loop stays a loop, its body expanded.
    let c0 = -p.sign; // twu holds exp(−2πi·t/N): conjugate (multiply Im by −1) for sign +1
    for (var s = 0u; s < LOG2N; s++) {
        // unroll
        for (var q = 0u; q < N / 2u; q++) {
            let t = twu[s * (N / 2u) + q].xy;
            let u = a[q];
            let v = a[q + N / 2u];
            b[2u * q] = u + v;
            b[2u * q + 1u] = cmul(u - v, vec2<f32>(t.x, c0 * t.y));
        }
        a = b;
    }

    if p.map_images > 0u {
        // FF-Parser column step: element k sits at a[rev(k)]; multiply by M, then the opposite-sign transform
        // by decimation in time (bit-reversed in, natural out): the forward's stages transposed, last first,
        // reading b[2q], b[2q + 1] and writing a[q], a[q + N/2]
        // unroll
        for (var i = 0u; i < N; i++) {
            let e = base + rev(i) * p.stride;
            a[i] *= map[(img % p.map_images) * p.hw + (e - img * p.hw)];
        }
        let c1 = p.sign;
        for (var st = 0u; st < LOG2N; st++) {
            let s = LOG2N - 1u - st;
            // unroll
            for (var q = 0u; q < N / 2u; q++) {
                let t = twu[s * (N / 2u) + q].xy;
                let u = a[2u * q];
                let v = cmul(a[2u * q + 1u], vec2<f32>(t.x, c1 * t.y));
                b[q] = u + v;
                b[q + N / 2u] = u - v;
            }
            a = b;
        }
    }

    if !live { return; }
    // unroll
    for (var i = 0u; i < N; i++) {
        // without the map step, a[i] holds element rev(i); after it, element i
        let k = select(rev(i), i, p.map_images > 0u);
        store_in(base + k * p.stride, img, a[i] * p.scale);
    }
}
