// fft_v2_stockham.wgsl: 1-D FFT along one axis of a stack of images, radix-2 Stockham in workgroup memory.
// Like v1_dft, but each workgroup loads whole lines into workgroup memory and runs log2(n) radix-2 stages,
// ping-ponging between two buffers: O(n log n) instead of O(n²). Lengths: powers of two up to SLOTS.
//
// math:   Y[k] = scale · Σ_{j<n} x[j] · exp(sign · 2πi · j·k / n)        sign = −1 forward, +1 inverse
//         Stockham autosort, radix 2 (Eric Bainville, "OpenCL Fast Fourier Transform", bealto.com): at the
//         stage with sub-transform length q = 1, 2, 4, …, n/2, butterfly i < n/2 with k = i mod q reads
//         u0 = X[i], u1 = X[i + n/2]·exp(sign·πi·k/q) and writes Y[2(i − k) + k] = u0 + u1, Y[… + q] = u0 − u1.
//         No bit reversal: the last stage leaves the output in natural order.
//         twiddle angle π·k/q: k/q is exact in f32 (q a power of two), so the angle carries one rounding.
//         with map_images > 0 the kernel is the whole FF-Parser column step: forward stages, multiply by the
//         real map M, then the same stages with the opposite sign (the inverse, unscaled), then scale.
// layout: as fft_v1_dft.wgsl: element k of line l at complex index e = base(l) + k·stride,
//         base(l) = (l / inner)·outer + (l % inner); words e·es + (e / hw)·is (+ cs for the imaginary part);
//         map index ((e / hw) % map_images)·hw + e % hw.
// grid:   @workgroup_size(256); each workgroup takes lines_per_wg consecutive lines (lines_per_wg·n ≤ SLOTS),
//         so a stage has lines_per_wg·n/2 butterflies spread over the threads. Linear workgroup id.
// binds:  @group(0) 0 params (uniform), 1 x, 2 map (bound to x when unused), 3 y (rw)
// backward: the same kernel with the opposite sign (see src/ops/fft.rs)

struct Params {
    n: u32, lines: u32, lines_per_wg: u32, log2n: u32,
    stride: u32, inner: u32, outer: u32, hw: u32,
    in_es: u32, in_is: u32, in_cs: u32, in_real: u32,
    out_es: u32, out_is: u32, out_cs: u32, out_real: u32,
    map_images: u32, sign: f32, scale: f32, _pad: u32,
}

const WG: u32 = 256u;
const SLOTS: u32 = 1024u; // complex elements per ping-pong buffer (2 × 1024 × 8 B = 16 KiB)
const PI: f32 = 3.141592653589793;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> map: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// buffer A is buf[0 .. SLOTS), buffer B is buf[SLOTS .. 2·SLOTS); line l of the workgroup starts at l·n
var<workgroup> buf: array<vec2<f32>, 2048>;

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

// Complex index of element k of the workgroup's local line l.
fn elem(first: u32, l: u32, k: u32) -> u32 {
    let line = first + l;
    return (line / p.inner) * p.outer + (line % p.inner) + k * p.stride;
}

// Which (local line, k) the t-th load/store of the workgroup touches: along rows (stride 1) neighbouring
// threads take neighbouring k; along columns they take neighbouring lines, which are neighbours in memory.
fn slot(t: u32, nl: u32) -> vec2<u32> {
    if p.stride == 1u {
        return vec2<u32>(t >> p.log2n, t & (p.n - 1u));
    }
    return vec2<u32>(t % nl, t / nl);
}

// log2(n) radix-2 stages over nl lines with the given sign, starting in buffer `src`; returns the buffer
// offset that holds the result. Called in uniform control flow (barriers inside).
fn stages(src0: u32, nl: u32, sign: f32, li: u32) -> u32 {
    var src = src0;
    let half = p.n >> 1u;
    for (var s = 0u; s < p.log2n; s++) {
        let q = 1u << s;
        let dst = SLOTS - src;
        for (var t = li; t < nl * half; t += WG) {
            let l = t / half;
            let i = t - l * half;
            let k = i & (q - 1u);
            let theta = sign * PI * (f32(k) / f32(q));
            let u0 = buf[src + l * p.n + i];
            let u1 = cmul(buf[src + l * p.n + i + half], vec2<f32>(cos(theta), sin(theta)));
            let j = ((i - k) << 1u) + k;
            buf[dst + l * p.n + j] = u0 + u1;
            buf[dst + l * p.n + j + q] = u0 - u1;
        }
        workgroupBarrier(); // this stage's writes to dst are visible before the next stage (or the store) reads them
        src = dst;
    }
    return src;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let w = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    let first = w * p.lines_per_wg;
    // guard: split padding past the last line (uniform across the workgroup, so barriers stay uniform)
    if first >= p.lines { return; }
    let nl = min(p.lines_per_wg, p.lines - first);
    let count = nl * p.n;

    for (var t = li; t < count; t += WG) {
        let s = slot(t, nl);
        buf[s.x * p.n + s.y] = load(elem(first, s.x, s.y));
    }
    workgroupBarrier(); // the loaded lines in buffer A are visible to every thread's butterflies

    var src = stages(0u, nl, p.sign, li);

    if p.map_images > 0u {
        // FF-Parser column step: X ⊙ M, then the opposite-sign transform of the product
        for (var t = li; t < count; t += WG) {
            let s = slot(t, nl);
            let e = elem(first, s.x, s.y);
            buf[src + s.x * p.n + s.y] *= map[((e / p.hw) % p.map_images) * p.hw + e % p.hw];
        }
        workgroupBarrier(); // the filtered spectrum is visible before the inverse stages read it
        src = stages(src, nl, -p.sign, li);
    }

    for (var t = li; t < count; t += WG) {
        let s = slot(t, nl);
        store(elem(first, s.x, s.y), buf[src + s.x * p.n + s.y] * p.scale);
    }
}
