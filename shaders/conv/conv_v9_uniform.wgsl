// conv_v9_uniform.wgsl: conv v5 (conv_v5_vec4.wgsl: 8 output channels × 8 consecutive output pixels of one
// row per invocation, the input window loaded once per input row and reused for all KW taps) with the weights
// read from a uniform block instead of a storage buffer. On llvmpipe every storage read is a loop over the 8
// SIMD lanes with a bounds branch per component, a uniform read a branch-free gather ~9× cheaper
// (docs/llvmpipe-stores.md); v5 spends 24 of its 40 storage components per (ci, ky) row on weights. On a GPU the
// weight index is the same for the whole workgroup: the constant cache's broadcast.
//
// math:   y[n, co, oy, ox] = b[co] + Σ_ci Σ_ky Σ_kx w[co, ci, ky, kx] · x[n, ci, oy + ky − pad_y, ox + kx − pad_x]
//         (implicit GEMM, M = Cout, N = N·out_h·out_w, K = Cin·KH·KW, zero padding, signed pads for dx)
// layout: x (N, Cin, in_h, in_w) read as vec4 (in_w % 4 == 0, KW ≤ 9), b (Cout), y (N, Cout, out_h, out_w).
//         Weights packed by pack_weights_v5.wgsl:blocked as (Cout/8 blocks, kp, 8) with kp = K rounded up to 8
//         (so a block is a multiple of 256 bytes, the uniform offset alignment), zero-padded; one dispatch binds
//         the 64 KiB window that starts at block cb0 and covers its nb blocks (nb·kp·8 ≤ 16,384 values).
//         Window of x exactly as in v5 (see there).
// grid:   @workgroup_size(WG) along pixel blocks (8 pixels of one output row each); one workgroup per
//         (8 channels of this dispatch's nb blocks, WG pixel blocks), channel blocks fastest; linear id.
//         Invocations past the end compute clamped duplicates and store nothing.
// binds:  @group(0) 0 params (uniform), 1 x (as vec4), 2 b (ignored when has_bias = 0), 3 y (rw),
//         4 win (uniform block: packed weights)
// pieces: the entry point and the weight reads (`win_rows`: one (ci, ky) row's KW taps, ROWV = 2·KW vec4) come
//         from shaders/window/plain.wgsl or shaders/window/subgroup.wgsl (each lane reads 1/SG of the row and
//         subgroupBroadcast hands it round: the same values, so the same bits)

struct Params {
    batch: u32, cin: u32, cout: u32, kdim: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    pad_y: i32, pad_x: i32, has_bias: u32, npix: u32,
    cb0: u32, nb: u32, kp: u32, _p1: u32,  // first channel block, blocks, padded K
}

override KH: u32 = 3u;
override KW: u32 = 3u;
override WG: u32 = 16u; // invocations per workgroup, all along the pixels
override R: u32 = 3u;   // window alignment r = (−pad_x) mod 4 (see layout): a constant, so each tap's vec4 picks and
                        // shifts fold into fixed swizzles instead of selects once the tap loop is expanded (the
                        // kx loop is marked `// unroll`, ky too for KH ≤ 3: src/gpu/specialize.rs)
const TM: u32 = 8u;     // output channels per invocation; the code below is unrolled by hand for 8
const TN: u32 = 8u;     // output pixels per invocation (one row), two vec4; unrolled by hand

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> win: array<vec4<f32>, 4096>;
override ROWV: u32 = 6u; // 2·KW: one (ci, ky) row of taps, 8 weights a tap (the host sets it)
const ROW_MAX: u32 = 18u; // KW ≤ 9
struct WinRows {
    e: array<vec4<f32>, ROW_MAX>,
}

// window vec4 number q (0..4); q is the same for the whole workgroup, so the selects cost no loads
fn pick(v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>, v4: vec4<f32>, q: u32) -> vec4<f32> {
    return select(select(select(select(v4, v3, q == 3u), v2, q == 2u), v1, q == 1u), v0, q == 0u);
}

// the 4 values starting s (0..3) into the 8 values (lo, hi)
fn shl(lo: vec4<f32>, hi: vec4<f32>, s: u32) -> vec4<f32> {
    let s1 = vec4<f32>(lo.yzw, hi.x);
    let s2 = vec4<f32>(lo.zw, hi.xy);
    let s3 = vec4<f32>(lo.w, hi.xyz);
    return select(select(select(s3, s2, s == 2u), s1, s == 1u), lo, s == 0u);
}

// y[n, co, oy, ox0 .. ox0+8] = (lo, hi) + b[co]: yb is the offset of (n, 0, oy, ox0); skips channels past Cout,
// pixels past the row's end, and invocations past the last block
fn store8(co: u32, live: bool, ox0: u32, yb: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if !live || co >= p.cout { return; }
    var bias = 0.0;
    if p.has_bias != 0u { bias = b[co]; }
    let o = yb + co * p.out_h * p.out_w;
    for (var j = 0u; j < TN; j++) {
        if ox0 + j >= p.out_w { return; }
        let v = select(hi[j % 4u], lo[j % 4u], j < 4u);
        y[o + j] = v + bias;
    }
}

// invocation t of the dispatch (its linear id), sl its subgroup lane (0 for the plain piece)
fn run(t: u32, sl: u32) {
    let li = t % WG;
    let tiles_m = p.nb;                       // this dispatch's channel blocks
    let bxn = (p.out_w + TN - 1u) / TN;       // pixel blocks per output row
    let nblk = p.batch * p.out_h * bxn;       // pixel blocks in all
    let tiles_n = (nblk + WG - 1u) / WG;
    let total = tiles_m * tiles_n;
    let w_raw = t / WG;
    // guard: split padding and blocks past the last compute a clamped duplicate and store nothing (no early
    // return: llvmpipe wraps everything after a `return` in a branch)
    let wid = min(w_raw, total - 1u);
    let bl = wid % tiles_m;                   // channel block within the uniform window
    let co0 = (p.cb0 + bl) * TM;
    let blk_raw = (wid / tiles_m) * WG + li;
    let live = w_raw < total && blk_raw < nblk;
    let blk = min(blk_raw, nblk - 1u);
    let ox0 = (blk % bxn) * TN;
    let row = blk / bxn;                      // n·out_h + oy
    let oy = row % p.out_h;
    let n = row / p.out_h;

    // the input window (see layout): vec4 j of the row covers columns a + 4j .. +4
    let r = R;
    let nv = (r + TN + KW - 1u + 3u) / 4u;    // window vec4s actually needed (2..5)
    let wq = i32(p.in_w / 4u);                // one input row in vec4s
    let aq = (i32(ox0) - p.pad_x - i32(r)) / 4; // exact: the numerator is a multiple of 4
    let in0 = aq >= 0 && aq < wq;
    let in1 = aq + 1 >= 0 && aq + 1 < wq;
    let in2 = aq + 2 >= 0 && aq + 2 < wq;
    let in3 = aq + 3 >= 0 && aq + 3 < wq;
    let in4 = aq + 4 >= 0 && aq + 4 < wq;
    let q0 = u32(clamp(aq, 0, wq - 1));
    let q1 = u32(clamp(aq + 1, 0, wq - 1));
    let q2 = u32(clamp(aq + 2, 0, wq - 1));
    let q3 = u32(clamp(aq + 3, 0, wq - 1));
    let q4 = u32(clamp(aq + 4, 0, wq - 1));
    let plane = p.in_h * p.in_w / 4u;         // one input channel in vec4s
    let xn = n * p.cin * plane;
    let zero = vec4<f32>();

    // tap k's 8 weights are the vec4s 2·(bl·kp + k) and the next of the window (padding channels are zero and
    // never stored)
    let wbase = bl * p.kp * 2u;

    // c<i><h>: channel co0 + i, pixels ox0 + 4h .. +4
    var c00 = vec4<f32>(); var c01 = vec4<f32>();
    var c10 = vec4<f32>(); var c11 = vec4<f32>();
    var c20 = vec4<f32>(); var c21 = vec4<f32>();
    var c30 = vec4<f32>(); var c31 = vec4<f32>();
    var c40 = vec4<f32>(); var c41 = vec4<f32>();
    var c50 = vec4<f32>(); var c51 = vec4<f32>();
    var c60 = vec4<f32>(); var c61 = vec4<f32>();
    var c70 = vec4<f32>(); var c71 = vec4<f32>();
    for (var ci = 0u; ci < p.cin; ci++) {
        // unroll 3
        for (var ky = 0u; ky < KH; ky++) {
            let iy = i32(oy) + i32(ky) - p.pad_y;
            let rok = iy >= 0 && iy < i32(p.in_h);
            let rb = xn + ci * plane + u32(clamp(iy, 0, i32(p.in_h) - 1)) * u32(wq);
            // the window: 2..5 vec4 loads whose addresses differ per invocation (the expensive part)
            let v0 = select(zero, x[rb + q0], rok && in0);
            let v1 = select(zero, x[rb + q1], rok && in1);
            var v2 = zero; var v3 = zero; var v4 = zero;
            if nv > 2u { v2 = select(zero, x[rb + q2], rok && in2); }
            if nv > 3u { v3 = select(zero, x[rb + q3], rok && in3); }
            if nv > 4u { v4 = select(zero, x[rb + q4], rok && in4); }
            let kb = (ci * KH + ky) * KW;
            let wr = win_rows(wbase + 2u * kb, sl); // this row's KW taps, 2 vec4 each
            // unroll 7
            for (var kx = 0u; kx < KW; kx++) {
                // tap kx: the 8 window values from offset r + kx
                let o = r + kx;
                let q = o / 4u;
                let s = o % 4u;
                let x0 = pick(v0, v1, v2, v3, v4, q);
                let x1 = pick(v0, v1, v2, v3, v4, q + 1u);
                let x2 = pick(v0, v1, v2, v3, v4, q + 2u);
                let lo = shl(x0, x1, s);
                let hi = shl(x1, x2, s);
                // 8 weights as 2 vec4 from the uniform block (same address in the whole workgroup), 16 vec4 FMAs
                let wa = wr.e[2u * kx];
                let wb = wr.e[2u * kx + 1u];
                c00 = fma(vec4<f32>(wa.x), lo, c00); c01 = fma(vec4<f32>(wa.x), hi, c01);
                c10 = fma(vec4<f32>(wa.y), lo, c10); c11 = fma(vec4<f32>(wa.y), hi, c11);
                c20 = fma(vec4<f32>(wa.z), lo, c20); c21 = fma(vec4<f32>(wa.z), hi, c21);
                c30 = fma(vec4<f32>(wa.w), lo, c30); c31 = fma(vec4<f32>(wa.w), hi, c31);
                c40 = fma(vec4<f32>(wb.x), lo, c40); c41 = fma(vec4<f32>(wb.x), hi, c41);
                c50 = fma(vec4<f32>(wb.y), lo, c50); c51 = fma(vec4<f32>(wb.y), hi, c51);
                c60 = fma(vec4<f32>(wb.z), lo, c60); c61 = fma(vec4<f32>(wb.z), hi, c61);
                c70 = fma(vec4<f32>(wb.w), lo, c70); c71 = fma(vec4<f32>(wb.w), hi, c71);
            }
        }
    }

    let yb = n * p.cout * p.out_h * p.out_w + oy * p.out_w + ox0;
    store8(co0 + 0u, live, ox0, yb, c00, c01);
    store8(co0 + 1u, live, ox0, yb, c10, c11);
    store8(co0 + 2u, live, ox0, yb, c20, c21);
    store8(co0 + 3u, live, ox0, yb, c30, c31);
    store8(co0 + 4u, live, ox0, yb, c40, c41);
    store8(co0 + 5u, live, ox0, yb, c50, c51);
    store8(co0 + 6u, live, ox0, yb, c60, c61);
    store8(co0 + 7u, live, ox0, yb, c70, c71);
}
