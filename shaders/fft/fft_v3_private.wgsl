// fft_v3_private.wgsl: 1-D FFT along one axis of a stack of images, one whole line per invocation in private
// memory: no workgroup memory and no barrier. The rung for CPU adapters (llvmpipe), where every barrier is a
// switch between the workgroup's SIMD coroutines and every workgroup-memory access with per-lane addresses is
// a loop over the lanes, which made v2 spend most of its time outside the butterflies. Here all the lanes of a
// SIMD group run the same butterfly on their own lines, so every private-array index is the same in every
// lane (a plain vector access) and the loops have constant trip counts (N is an override constant). The loops
// are marked `// unroll` (src/gpu/specialize.rs): expanded, every array index is a constant and the line lives
// in registers; the N/2 twiddles are read once per line instead of once per butterfly. Lines of 64 keep their
// loops (unrolled, N = 64 ran no faster and took llvmpipe seconds to compile: 6 stages × 32 butterflies × 2).
//
// math:   Y[k] = scale · Σ_{j<n} x[j] · exp(sign · 2πi · j·k / n)        sign = −1 forward, +1 inverse
//         radix-2, in place: decimation in frequency (natural order in, bit-reversed out), so the forward
//         needs no reordering on load; the result is stored through the bit reversal. With map_images > 0
//         (the FF-Parser column step) the bit-reversed spectrum is multiplied by M, then transformed back with
//         the opposite sign by decimation in time (bit-reversed in, natural out), then scaled.
//         twiddles: tw[j] = exp(−2πi·j/N), j < N/2, computed on the host in f64 (bound as `tw`); a stage with
//         half-span m uses tw[j·N/(2m)], conjugated for sign = +1. Each twiddle is one f32 rounding away from
//         exact, as in v2.
// layout: as fft_v1_dft.wgsl (lines, strides, real/interleaved/planar words, map index).
// grid:   @workgroup_size(64), one invocation per line (lines l of a workgroup are consecutive: along columns
//         neighbouring lanes read neighbouring words); linear workgroup id.
// binds:  @group(0) 0 params (uniform), 1 x, 2 map (bound to x when unused), 3 tw, 4 y (rw)
// backward: the same kernel with the opposite sign (see src/ops/fft/mod.rs)

override N: u32 = 64u;     // line length, a power of two ≤ MAXN (equals p.n)
override LOG2N: u32 = 6u;
const MAXN: u32 = 64u;     // the private array's size (WGSL private arrays need a constant size)
const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> map: array<f32>;
@group(0) @binding(3) var<storage, read> tw: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;


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

    var a: array<vec2<f32>, MAXN>;
    // unroll 32
    for (var k = 0u; k < N; k++) {
        a[k] = load(base + k * p.stride);
    }
    // the N/2 twiddles, read once (a stage reads every (N/2m)-th of them, m butterflies each)
    var w: array<vec2<f32>, MAXN / 2u>;
    // unroll 16
    for (var j = 0u; j < N / 2u; j++) {
        w[j] = tw[j];
    }

    // forward (sign p.sign), decimation in frequency: natural order in, bit-reversed out. Stage st has half-span
    // m = N / 2^(st+1); butterfly q < N/2 of it pairs a[g + j] with a[g + j + m], j = q mod m, g = 2(q − j).
    let c0 = -p.sign; // tw holds exp(−2πi·j/N): conjugate (multiply Im by −1) for sign +1
    // unroll
    for (var st = 0u; st < LOG2N; st++) {
        let s = LOG2N - st;
        let m = 1u << (s - 1u);  // half-span of this stage's butterflies
        let step = N >> s;       // tw stride: exp(−2πi·j/(2m)) = tw[j·N/(2m)]
        // unroll 16
        for (var q = 0u; q < N / 2u; q++) {
            let j = q % m;
            let g = 2u * (q - j);
            let t = w[j * step];
            let u = a[g + j];
            let v = a[g + j + m];
            a[g + j] = u + v;
            a[g + j + m] = cmul(u - v, vec2<f32>(t.x, c0 * t.y));
        }
    }

    if p.map_images > 0u {
        // FF-Parser column step: element k sits at a[rev(k)]; multiply by M, then the opposite-sign transform
        // by decimation in time (bit-reversed in, natural out)
        // unroll 32
        for (var i = 0u; i < N; i++) {
            let e = base + rev(i) * p.stride;
            let img = div(e, p.hw, p.hw_sh);
            a[i] *= map[(img % p.map_images) * p.hw + (e - img * p.hw)];
        }
        let c1 = p.sign;
        // unroll
        for (var st = 0u; st < LOG2N; st++) {
            let m = 1u << st;
            let step = N >> (st + 1u);
            // unroll
            for (var q = 0u; q < N / 2u; q++) {
                let j = q % m;
                let g = 2u * (q - j);
                let t = w[j * step];
                let u = a[g + j];
                let v = cmul(a[g + j + m], vec2<f32>(t.x, c1 * t.y));
                a[g + j] = u + v;
                a[g + j + m] = u - v;
            }
        }
    }

    if !live { return; }
    // unroll 32
    for (var k = 0u; k < N; k++) {
        // without the map step, element k is at a[rev(k)]; after it, at a[k]
        let i = select(rev(k), k, p.map_images > 0u);
        store(base + k * p.stride, a[i] * p.scale);
    }
}
