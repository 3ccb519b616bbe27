// dw_v5_vec4.wgsl: the weight gradient built like conv_v5_vec4.wgsl: no workgroup memory, no barrier. Each
// invocation owns 8 output channels × 3 consecutive k's of dW (k = ci·KH·KW + ky·KW + kx): for KW = 3 the three
// taps of one input row (ci, ky), for KW = 1 three input rows. It walks its split's pixels 8 of one output row at
// a time: 8 channels of g as 16 vec4 (same address in the whole workgroup: its invocations differ only in k) and
// the input window as ≤ 5 aligned vec4 per row (addresses differ per invocation: the expensive loads), shifted
// per tap as in the forward; 48 vec4 FMAs per block. Accumulators are vec4 over pixel lanes, summed at the end.
//
// math:   dW[co, k] = Σ_P g[n, co, oy, ox] · x[n, ci, oy + ky − pad_y, ox + kx − pad_x]   (P = (n, oy, ox))
//         Workgroup s sums the 8-pixel blocks [s·chunk, (s+1)·chunk) into part[s, co, k]; the host adds the
//         splits in a fixed order (no atomics, so the result is deterministic).
// layout: g (N, Cout, out_h, out_w) and x (N, Cin, in_h, in_w) read as vec4 (the host sends only KW ∈ {1, 3},
//         in_w % 4 == 0 and out_w % 4 == 0 here; other shapes go to dw v4), part (n_split, Cout, K) f32.
//         Window: see conv_v5_vec4.wgsl (tap kx's 8 values start at window offset r + kx).
// grid:   @workgroup_size(WG) along groups of 3 k's; one workgroup per (split, 8 channels, WG k-groups), k-groups
//         fastest; linear id. Invocations past the end compute clamped duplicates and store nothing.
// binds:  @group(0) 0 params (uniform), 1 g (as vec4), 2 x (as vec4), 3 part (rw)

struct Params {
    batch: u32, cin: u32, cout: u32, kdim: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    pad_y: i32, pad_x: i32, has_bias: u32, npix: u32,
    chunk: u32, n_split: u32, _p0: u32, _p1: u32,
}

override KH: u32 = 3u;
override KW: u32 = 3u;  // 1 or 3
override WG: u32 = 16u; // invocations per workgroup, all along the k-groups
override R: u32 = 3u;   // window alignment r = (−pad_x) mod 4: a constant, so the taps' picks and shifts fold
const TM: u32 = 8u;     // output channels per invocation; unrolled by hand
const TK: u32 = 3u;     // k's per invocation; unrolled by hand
const TN: u32 = 8u;     // pixels per block (one row), two vec4

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;

struct Win { v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>, v4: vec4<f32> }
struct Tap { lo: vec4<f32>, hi: vec4<f32> }

// window vec4 number q (0..4); q is the same for the whole workgroup, so the selects cost no loads
fn pick(w: Win, q: u32) -> vec4<f32> {
    return select(select(select(select(w.v4, w.v3, q == 3u), w.v2, q == 2u), w.v1, q == 1u), w.v0, q == 0u);
}

// the 4 values starting s (0..3) into the 8 values (lo, hi)
fn shl(lo: vec4<f32>, hi: vec4<f32>, s: u32) -> vec4<f32> {
    let s1 = vec4<f32>(lo.yzw, hi.x);
    let s2 = vec4<f32>(lo.zw, hi.xy);
    let s3 = vec4<f32>(lo.w, hi.xyz);
    return select(select(select(s3, s2, s == 2u), s1, s == 1u), lo, s == 0u);
}

// input row `row` = ci·KH + ky of image n for output row oy, window starting at vec4 aq (nv vec4s): the
// expensive loads. Zero outside the image and for rows past the last (ok = false).
fn window(n: u32, row: u32, oy: u32, aq: i32, nv: u32, ok: bool) -> Win {
    let wq = i32(p.in_w / 4u);
    let iy = i32(oy) + i32(row % KH) - p.pad_y;
    let rok = ok && iy >= 0 && iy < i32(p.in_h);
    let rb = ((n * p.cin + row / KH) * p.in_h + u32(clamp(iy, 0, i32(p.in_h) - 1))) * u32(wq);
    var w = Win(vec4<f32>(), vec4<f32>(), vec4<f32>(), vec4<f32>(), vec4<f32>());
    if rok {
        if aq >= 0 && aq < wq { w.v0 = x[rb + u32(aq)]; }
        if aq + 1 >= 0 && aq + 1 < wq { w.v1 = x[rb + u32(aq + 1)]; }
        if nv > 2u && aq + 2 >= 0 && aq + 2 < wq { w.v2 = x[rb + u32(aq + 2)]; }
        if nv > 3u && aq + 3 >= 0 && aq + 3 < wq { w.v3 = x[rb + u32(aq + 3)]; }
        if nv > 4u && aq + 4 >= 0 && aq + 4 < wq { w.v4 = x[rb + u32(aq + 4)]; }
    }
    return w;
}

// the 8 window values from offset o
fn tap(w: Win, o: u32) -> Tap {
    let q = o / 4u;
    let s = o % 4u;
    let x0 = pick(w, q);
    let x1 = pick(w, q + 1u);
    let x2 = pick(w, q + 2u);
    return Tap(shl(x0, x1, s), shl(x1, x2, s));
}

// part[s, co, k] = the lanes of a summed, skipping channels past Cout, k's past K and dead invocations
fn store1(live: bool, s: u32, co: u32, k: u32, a: vec4<f32>) {
    if !live || co >= p.cout || k >= p.kdim { return; }
    part[(s * p.cout + co) * p.kdim + k] = (a.x + a.y) + (a.z + a.w);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let tiles_m = (p.cout + TM - 1u) / TM;
    let ngrp = (p.kdim + TK - 1u) / TK;       // groups of 3 k's
    let tiles_k = (ngrp + WG - 1u) / WG;
    let total = tiles_m * tiles_k * p.n_split;
    let w_raw = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding and groups past the last compute a clamped duplicate and store nothing
    let wid = min(w_raw, total - 1u);
    let grp_raw = (wid % tiles_k) * WG + li;
    let live = w_raw < total && grp_raw < ngrp;
    let grp = min(grp_raw, ngrp - 1u);
    let co0 = ((wid / tiles_k) % tiles_m) * TM;
    let s = wid / (tiles_k * tiles_m);
    let k0 = grp * TK;

    let bxn = (p.out_w + TN - 1u) / TN;       // pixel blocks per output row
    let nblk = p.batch * p.out_h * bxn;
    let b_begin = s * p.chunk;
    let b_end = min(nblk, b_begin + p.chunk);
    let r = R;
    let nv = (r + TN + KW - 1u + 3u) / 4u;    // window vec4s actually needed (2..4)
    let hw4 = p.out_h * p.out_w / 4u;         // one g channel in vec4s
    let zero = vec4<f32>();
    // this invocation's channels, clamped: padding channels read a real channel and are never stored
    let cm = p.cout - 1u;
    let g0 = min(co0, cm) * hw4;
    let g1 = min(co0 + 1u, cm) * hw4;
    let g2 = min(co0 + 2u, cm) * hw4;
    let g3 = min(co0 + 3u, cm) * hw4;
    let g4 = min(co0 + 4u, cm) * hw4;
    let g5 = min(co0 + 5u, cm) * hw4;
    let g6 = min(co0 + 6u, cm) * hw4;
    let g7 = min(co0 + 7u, cm) * hw4;

    // a<i><j>: channel co0 + i, k0 + j, one lane per pixel position mod 4
    var a00 = zero; var a01 = zero; var a02 = zero;
    var a10 = zero; var a11 = zero; var a12 = zero;
    var a20 = zero; var a21 = zero; var a22 = zero;
    var a30 = zero; var a31 = zero; var a32 = zero;
    var a40 = zero; var a41 = zero; var a42 = zero;
    var a50 = zero; var a51 = zero; var a52 = zero;
    var a60 = zero; var a61 = zero; var a62 = zero;
    var a70 = zero; var a71 = zero; var a72 = zero;
    // the block's position (n, oy, ox0), stepped along with blk: integer division has no SIMD instruction on
    // x86, so llvmpipe would run the four / and % per block lane by lane
    var ox0 = (b_begin % bxn) * TN;
    var oy = (b_begin / bxn) % p.out_h;
    var n = b_begin / bxn / p.out_h;
    for (var blk = b_begin; blk < b_end; blk++) {
        let aq = (i32(ox0) - p.pad_x - i32(r)) / 4; // exact: the numerator is a multiple of 4
        // the x values of the 3 k's at the block's 8 pixels
        var t0: Tap; var t1: Tap; var t2: Tap;
        if KW == 1u {
            // three input rows, one tap each
            t0 = tap(window(n, k0, oy, aq, nv, true), r);
            t1 = tap(window(n, k0 + 1u, oy, aq, nv, k0 + 1u < p.kdim), r);
            t2 = tap(window(n, k0 + 2u, oy, aq, nv, k0 + 2u < p.kdim), r);
        } else {
            // one input row (k0 / 3), its three taps
            let wv = window(n, k0 / KW, oy, aq, nv, true);
            t0 = tap(wv, r);
            t1 = tap(wv, r + 1u);
            t2 = tap(wv, r + 2u);
        }
        // g at the block: same address in the whole workgroup; the high half is 0 past the row's end
        let gb = n * p.cout * hw4 + (oy * p.out_w + ox0) / 4u;
        let hok = ox0 + 4u < p.out_w;
        let hb = select(0u, 1u, hok); // stays inside the row when the high half is dropped
        let h0 = g[gb + g0]; let h0b = select(zero, g[gb + g0 + hb], hok);
        let h1 = g[gb + g1]; let h1b = select(zero, g[gb + g1 + hb], hok);
        let h2 = g[gb + g2]; let h2b = select(zero, g[gb + g2 + hb], hok);
        let h3 = g[gb + g3]; let h3b = select(zero, g[gb + g3 + hb], hok);
        let h4 = g[gb + g4]; let h4b = select(zero, g[gb + g4 + hb], hok);
        let h5 = g[gb + g5]; let h5b = select(zero, g[gb + g5 + hb], hok);
        let h6 = g[gb + g6]; let h6b = select(zero, g[gb + g6 + hb], hok);
        let h7 = g[gb + g7]; let h7b = select(zero, g[gb + g7 + hb], hok);
        a00 = fma(h0, t0.lo, fma(h0b, t0.hi, a00)); a01 = fma(h0, t1.lo, fma(h0b, t1.hi, a01));
        a02 = fma(h0, t2.lo, fma(h0b, t2.hi, a02));
        a10 = fma(h1, t0.lo, fma(h1b, t0.hi, a10)); a11 = fma(h1, t1.lo, fma(h1b, t1.hi, a11));
        a12 = fma(h1, t2.lo, fma(h1b, t2.hi, a12));
        a20 = fma(h2, t0.lo, fma(h2b, t0.hi, a20)); a21 = fma(h2, t1.lo, fma(h2b, t1.hi, a21));
        a22 = fma(h2, t2.lo, fma(h2b, t2.hi, a22));
        a30 = fma(h3, t0.lo, fma(h3b, t0.hi, a30)); a31 = fma(h3, t1.lo, fma(h3b, t1.hi, a31));
        a32 = fma(h3, t2.lo, fma(h3b, t2.hi, a32));
        a40 = fma(h4, t0.lo, fma(h4b, t0.hi, a40)); a41 = fma(h4, t1.lo, fma(h4b, t1.hi, a41));
        a42 = fma(h4, t2.lo, fma(h4b, t2.hi, a42));
        a50 = fma(h5, t0.lo, fma(h5b, t0.hi, a50)); a51 = fma(h5, t1.lo, fma(h5b, t1.hi, a51));
        a52 = fma(h5, t2.lo, fma(h5b, t2.hi, a52));
        a60 = fma(h6, t0.lo, fma(h6b, t0.hi, a60)); a61 = fma(h6, t1.lo, fma(h6b, t1.hi, a61));
        a62 = fma(h6, t2.lo, fma(h6b, t2.hi, a62));
        a70 = fma(h7, t0.lo, fma(h7b, t0.hi, a70)); a71 = fma(h7, t1.lo, fma(h7b, t1.hi, a71));
        a72 = fma(h7, t2.lo, fma(h7b, t2.hi, a72));
        // next block: along the row, then the next row, then the next image
        ox0 += TN;
        if ox0 >= p.out_w { ox0 = 0u; oy += 1u; }
        if oy == p.out_h { oy = 0u; n += 1u; }
    }

    // one line per channel co0 + i: k's k0 .. k0 + 2
    let c = co0;
    store1(live, s, c, k0, a00); store1(live, s, c, k0 + 1u, a01); store1(live, s, c, k0 + 2u, a02);
    store1(live, s, c + 1u, k0, a10); store1(live, s, c + 1u, k0 + 1u, a11); store1(live, s, c + 1u, k0 + 2u, a12);
    store1(live, s, c + 2u, k0, a20); store1(live, s, c + 2u, k0 + 1u, a21); store1(live, s, c + 2u, k0 + 2u, a22);
    store1(live, s, c + 3u, k0, a30); store1(live, s, c + 3u, k0 + 1u, a31); store1(live, s, c + 3u, k0 + 2u, a32);
    store1(live, s, c + 4u, k0, a40); store1(live, s, c + 4u, k0 + 1u, a41); store1(live, s, c + 4u, k0 + 2u, a42);
    store1(live, s, c + 5u, k0, a50); store1(live, s, c + 5u, k0 + 1u, a51); store1(live, s, c + 5u, k0 + 2u, a52);
    store1(live, s, c + 6u, k0, a60); store1(live, s, c + 6u, k0 + 1u, a61); store1(live, s, c + 6u, k0 + 2u, a62);
    store1(live, s, c + 7u, k0, a70); store1(live, s, c + 7u, k0 + 1u, a71); store1(live, s, c + 7u, k0 + 2u, a72);
}
