// fft_v4_mixed.wgsl: 1-D FFT of any length along one axis of a stack of images: mixed-radix (4, 2, 3, 5)
// Stockham in workgroup memory for lengths whose only prime factors are 2, 3 and 5, and Bluestein's chirp-z
// algorithm (a circular convolution of power-of-two length, done by the same stages) for every other length.
// v2 generalised: BraTS slices (240 = 4·4·3·5, then 120, 60, 30) no longer fall back to v1's O(n²) sum.
//
// math:   Y[k] = scale · Σ_{j<n} x[j] · exp(sign · 2πi · j·k / n)        sign = −1 forward, +1 inverse
//         Stockham autosort, mixed radix (the radix-r form of Bainville's radix-2 kernel, see v2): the radices
//         are taken greedily from the remaining length (4 while it divides, then 2, 3, 5), so the stages and
//         their order are the same in every invocation. At the stage of radix r after sub-transforms of
//         length P (the product of the earlier radices; P = 1 first), butterfly i < L/r with k = i mod P reads
//         u_j = X[i + j·L/r]·ω^(j·k), ω = exp(sign·2πi/(P·r)), j < r; takes the r-point DFT v = DFT_r(u) with
//         the same sign (written out for r = 2, 3, 4, 5); and writes Y[(i − k)·r + k + j·P] = v_j. The last
//         stage leaves natural order. ω^(j·k) = tw[j·k·L/(P·r)] from the host table tw[t] = exp(−2πi·t/L)
//         (f64, rounded once to f32), conjugated for sign = +1; j·k·L/(P·r) < L, so the index never wraps.
//         Bluestein (blue = 1), for n with another prime factor: with c_j = exp(sign·πi·j²/n),
//         j·k = (j² + k² − (k − j)²)/2 turns the sum into Y[k] = c_k · Σ_j (x_j·c_j)·conj(c_{k−j}), a
//         circular convolution of length L = the power of two ≥ 2n − 1 (zero-padded a, b_j = conj(c_|j|)
//         wrapped). It runs as a forward FFT of length L, ⊙ B̂ = FFT_L(b)/L (host table, per sign), an
//         inverse FFT of length L, and ⊙ c_k. The chirp's j² is reduced mod 2n on the host, in f64.
//         With map_images > 0 the kernel is the whole FF-Parser column step: the transform, ⊙ the real map M,
//         the opposite-sign transform (unscaled), then scale (as v2).
// layout: as fft_v1_dft.wgsl: element k of line l at complex index e = base(l) + k·stride,
//         base(l) = (l / inner)·outer + (l % inner); words e·es + (e / hw)·is (+ cs for the imaginary part);
//         map index ((e / hw) % map_images)·hw + e % hw. In workgroup memory line l occupies [l·L, l·L + L).
//         tab: tw[0 .. L), then (Bluestein only) c[0 .. n) for sign −1, B̂ for sign −1 [L + n .. 2L + n),
//         B̂ for sign +1 [2L + n .. 3L + n); sign +1 reads conj(c).
// grid:   @workgroup_size(256); each workgroup takes lines_per_wg consecutive lines (a power of two,
//         lines_per_wg·L ≤ SLOTS); linear workgroup id. Lengths: L ≤ SLOTS, so n ≤ 1024 for the 2-3-5 lengths
//         and n ≤ 512 for Bluestein; the host sends longer lines to v1.
// memory: 24 KiB of workgroup memory (the two buffers and the twiddles; v2 takes 20 KiB), which the device
//         requests up to the adapter's limit (llvmpipe and desktop GPUs give 32 KiB or more).
// binds:  @group(0) 0 params (uniform), 1 x, 2 map (bound to x when unused), 3 tab, 4 y (rw)
// backward: the same kernel with the opposite sign (see src/ops/fft/mod.rs)


const WG: u32 = 256u;
const SLOTS: u32 = 1024u; // complex elements per ping-pong buffer (2 × 1024 × 8 B = 16 KiB)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> map: array<f32>;
@group(0) @binding(3) var<storage, read> tab: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// buffer A is buf[0 .. SLOTS), buffer B is buf[SLOTS .. 2·SLOTS)
var<workgroup> buf: array<vec2<f32>, 2048>;
// the twiddles tw[0 .. L) of tab, staged once per workgroup (8 KiB)
var<workgroup> twl: array<vec2<f32>, 1024>;

// twiddle t for sign −1, its conjugate for sign +1
fn tw_at(t: u32, sign: f32) -> vec2<f32> {
    let v = twl[t];
    return vec2<f32>(v.x, -sign * v.y);
}

// tab[t] for sign −1, its conjugate for sign +1
fn tab_at(t: u32, sign: f32) -> vec2<f32> {
    let v = tab[t];
    return vec2<f32>(v.x, -sign * v.y);
}

// Complex index of element k of the workgroup's local line l.
fn elem(first: u32, l: u32, k: u32) -> u32 {
    return line_base(first + l) + k * p.stride;
}

// Which (local line, k < n) the t-th load/store of the workgroup touches: along rows (stride 1) neighbouring
// threads take neighbouring k; along columns they take neighbouring lines, which are neighbours in memory.
fn slot(t: u32) -> vec2<u32> {
    if p.stride == 1u {
        let l = t / p.n;
        return vec2<u32>(l, t - l * p.n);
    }
    return vec2<u32>(t & (p.lines_per_wg - 1u), t >> p.lines_sh);
}

// The Stockham stages of length L = p.len over nl lines with the given sign, starting in buffer `src0`;
// returns the buffer offset that holds the result. Called in uniform control flow (barriers inside).
fn stages(src0: u32, nl: u32, sign: f32, li: u32) -> u32 {
    let len = p.len;
    var src = src0;
    var pp = 1u;       // P: the sub-transform length so far
    var rem = len;     // L / P
    loop {
        if rem == 1u { break; }
        let r = radix_of(rem);
        let m = len / r;        // butterflies per line
        let step = rem / r;     // L / (P·r): the twiddle stride
        let dst = SLOTS - src;
        for (var t = li; t < nl * m; t += WG) {
            let l = t / m;
            let i = t - l * m;
            let k = i % pp;
            let a = src + l * len + i;
            let o = dst + l * len + (i - k) * r + k;
            var u: array<vec2<f32>, 5>;
            u[0] = buf[a];
            for (var j = 1u; j < r; j++) { u[j] = cmul(buf[a + j * m], tw_at(j * k * step, sign)); }
            let v = dft_r(r, u, sign);
            for (var j = 0u; j < r; j++) { buf[o + j * pp] = v[j]; }
        }
        workgroupBarrier(); // this stage's writes to dst are visible before the next stage (or the caller) reads them
        src = dst;
        pp *= r;
        rem = step;
    }
    return src;
}

// The length-n transform of the nl lines at buffer offset src0 (elements k < n hold the input): the stages
// themselves, or Bluestein's chirp, convolution and chirp. Returns the offset of the result (k < n).
fn transform(src0: u32, nl: u32, sign: f32, li: u32) -> u32 {
    if p.blue == 0u {
        return stages(src0, nl, sign, li);
    }
    let len = p.len;
    let n = p.n;
    let bhat = len + n + select(0u, len, sign > 0.0);
    // a_j = x_j·c_j, zero-padded to L
    for (var t = li; t < nl * len; t += WG) {
        let l = t / len;
        let j = t - l * len;
        let a = src0 + t;
        if j < n { buf[a] = cmul(buf[a], tab_at(len + j, sign)); } else { buf[a] = vec2<f32>(0.0); }
    }
    workgroupBarrier(); // the chirped, padded lines are visible to the stages
    var s = stages(src0, nl, -1.0, li);
    for (var t = li; t < nl * len; t += WG) {
        let l = t / len;
        buf[s + t] = cmul(buf[s + t], tab[bhat + t - l * len]);
    }
    workgroupBarrier(); // the product with B̂ is visible to the inverse stages
    s = stages(s, nl, 1.0, li);
    for (var t = li; t < nl * n; t += WG) {
        let l = t / n;
        let k = t - l * n;
        let a = s + l * len + k;
        buf[a] = cmul(buf[a], tab_at(len + k, sign));
    }
    workgroupBarrier(); // the result is visible to the caller's next step
    return s;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let w = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    let first = w * p.lines_per_wg;
    // guard: split padding past the last line (uniform across the workgroup, so barriers stay uniform)
    if first >= p.lines { return; }
    let nl = min(p.lines_per_wg, p.lines - first);
    let count = p.lines_per_wg * p.n;
    let len = p.len;

    for (var t = li; t < len; t += WG) {
        twl[t] = tab[t];
    }
    for (var t = li; t < count; t += WG) {
        let s = slot(t);
        if s.x < nl { buf[s.x * len + s.y] = load(elem(first, s.x, s.y)); }
    }
    workgroupBarrier(); // the lines in buffer A are visible to every thread's butterflies

    var src = transform(0u, nl, p.sign, li);

    if p.map_images > 0u {
        // FF-Parser column step: X ⊙ M, then the opposite-sign transform of the product
        for (var t = li; t < count; t += WG) {
            let s = slot(t);
            if s.x >= nl { continue; }
            let e = elem(first, s.x, s.y);
            let img = div(e, p.hw, p.hw_sh);
            buf[src + s.x * len + s.y] *= map[(img % p.map_images) * p.hw + (e - img * p.hw)];
        }
        workgroupBarrier(); // the filtered spectrum is visible before the inverse transform reads it
        src = transform(src, nl, -p.sign, li);
    }

    for (var t = li; t < count; t += WG) {
        let s = slot(t);
        if s.x < nl { store(elem(first, s.x, s.y), buf[src + s.x * len + s.y] * p.scale); }
    }
}
