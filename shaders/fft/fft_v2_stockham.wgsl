// fft_v2_stockham.wgsl: 1-D FFT along one axis of a stack of images, radix-2 Stockham in workgroup memory.
// Like v1_dft, but each workgroup loads whole lines into workgroup memory and runs log2(n) radix-2 stages,
// ping-ponging between two buffers: O(n log n) instead of O(n²). Lengths: powers of two up to SLOTS.
//
// math:   Y[k] = scale · Σ_{j<n} x[j] · exp(sign · 2πi · j·k / n)        sign = −1 forward, +1 inverse
//         Stockham autosort, radix 2 (Eric Bainville, "OpenCL Fast Fourier Transform", bealto.com): at the
//         stage with sub-transform length q = 1, 2, 4, …, n/2, butterfly i < n/2 with k = i mod q reads
//         u0 = X[i], u1 = X[i + n/2]·exp(sign·πi·k/q) and writes Y[2(i − k) + k] = u0 + u1, Y[… + q] = u0 − u1.
//         No bit reversal: the last stage leaves the output in natural order.
//         twiddles: one table per workgroup, tw[j] = exp(πi·j/(n/2)) for j < n/2, filled once before the
//         stages; stage q reads tw[k·(n/2)/q] (the same angle π·k/q, exact in f32 since q is a power of two)
//         and flips the sign of its imaginary part for sign = −1. Cost, measured on llvmpipe: a cos and a sin
//         per butterfly and stage (the first version of this kernel) cost more than the butterflies.
//         Index math: n, n/2, q and lines_per_wg are powers of two, and so are inner and hw whenever the host
//         sets inner_sh / hw_sh < 32: then every / and % is a shift or a mask. Integer division has no SIMD
//         instruction on x86, so llvmpipe runs it lane by lane.
//         with map_images > 0 the kernel is the whole FF-Parser column step: forward stages, multiply by the
//         real map M, then the same stages with the opposite sign (the inverse, unscaled), then scale.
// layout: as fft_v1_dft.wgsl: element k of line l at complex index e = base(l) + k·stride,
//         base(l) = (l / inner)·outer + (l % inner); words e·es + (e / hw)·is (+ cs for the imaginary part);
//         map index ((e / hw) % map_images)·hw + e % hw.
// grid:   @workgroup_size(256); each workgroup takes lines_per_wg consecutive lines (lines_per_wg·n ≤ SLOTS,
//         a power of two),
//         so a stage has lines_per_wg·n/2 butterflies spread over the threads. Linear workgroup id.
// binds:  @group(0) 0 params (uniform), 1 x, 2 map (bound to x when unused), 3 y (rw)
// backward: the same kernel with the opposite sign (see src/ops/fft/mod.rs)


const WG: u32 = 256u;
const SLOTS: u32 = 1024u; // complex elements per ping-pong buffer (2 × 1024 × 8 B = 16 KiB; with `tw`, 20 KiB)
const PI: f32 = 3.141592653589793;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> map: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// buffer A is buf[0 .. SLOTS), buffer B is buf[SLOTS .. 2·SLOTS); line l of the workgroup starts at l·n
var<workgroup> buf: array<vec2<f32>, 2048>;
// tw[j] = exp(πi·j/(n/2)), j < n/2 (4 KiB)
var<workgroup> tw: array<vec2<f32>, 512>;

// Complex index of element k of the workgroup's local line l.
fn elem(first: u32, l: u32, k: u32) -> u32 {
    return line_base(first + l) + k * p.stride;
}

// Which (local line, k) the t-th load/store of the workgroup touches: along rows (stride 1) neighbouring
// threads take neighbouring k; along columns they take neighbouring lines, which are neighbours in memory.
// t runs over lines_per_wg·n slots; slots of lines past the last (a partial last workgroup) are skipped.
fn slot(t: u32) -> vec2<u32> {
    if p.stride == 1u {
        return vec2<u32>(t >> p.log2n, t & (p.n - 1u));
    }
    return vec2<u32>(t & (p.lines_per_wg - 1u), t >> p.lines_sh);
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
            let l = t >> (p.log2n - 1u);          // t / half
            let i = t & (half - 1u);              // t % half
            let k = i & (q - 1u);
            let r = tw[k << (p.log2n - 1u - s)];  // exp(πi·k/q)
            let u0 = buf[src + l * p.n + i];
            let u1 = cmul(buf[src + l * p.n + i + half], vec2<f32>(r.x, sign * r.y));
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
    let count = p.lines_per_wg * p.n;

    let half = p.n >> 1u;
    for (var j = li; j < half; j += WG) {
        let theta = PI * (f32(j) / f32(half));
        tw[j] = vec2<f32>(cos(theta), sin(theta));
    }
    for (var t = li; t < count; t += WG) {
        let s = slot(t);
        if s.x < nl { buf[s.x * p.n + s.y] = load(elem(first, s.x, s.y)); }
    }
    workgroupBarrier(); // the twiddle table and the lines in buffer A are visible to every thread's butterflies

    var src = stages(0u, nl, p.sign, li);

    if p.map_images > 0u {
        // FF-Parser column step: X ⊙ M, then the opposite-sign transform of the product
        for (var t = li; t < count; t += WG) {
            let s = slot(t);
            if s.x >= nl { continue; }
            let e = elem(first, s.x, s.y);
            let img = div(e, p.hw, p.hw_sh);
            buf[src + s.x * p.n + s.y] *= map[(img % p.map_images) * p.hw + (e - img * p.hw)];
        }
        workgroupBarrier(); // the filtered spectrum is visible before the inverse stages read it
        src = stages(src, nl, -p.sign, li);
    }

    for (var t = li; t < count; t += WG) {
        let s = slot(t);
        if s.x < nl { store(elem(first, s.x, s.y), buf[src + s.x * p.n + s.y] * p.scale); }
    }
}
