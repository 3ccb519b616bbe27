// dw_v9_uniform.wgsl: dw v5 (dw_v5_vec4.wgsl: each invocation owns 8 output channels × 3 consecutive k's of dW
// and walks pixel blocks of 8, the input window loaded per block as ≤ 5 aligned vec4) with g read from a
// uniform block. v5 reads g's 8 channels at the block as 16 vec4 storage loads against ≤ 5 for x: 80% of its
// storage traffic, and on llvmpipe a storage read costs ~9× a uniform one (docs/llvmpipe-stores.md). On a GPU
// the g index is the same for the whole workgroup (the constant cache's broadcast).
//
// math:   dW[co, k] = Σ_P g[n, co, oy, ox] · x[n, ci, oy + ky − pad_y, ox + kx − pad_x]   (P = (n, oy, ox))
//         Workgroup s of the dispatch sums the 8-pixel blocks [win0 + s·chunk, +chunk) of its window into
//         part[part0 + s, co, k] for the dispatch's 8 channels; the host adds the splits in a fixed order.
// layout: x (N, Cin, in_h, in_w) as vec4 (KW ≤ 9, in_w % 4 == 0, out_w % 4 == 0; v5's dw: KW ∈ {1, 3}); part
//         (splits, Cout, K). g packed by pack_weights_v5.wgsl:grad_blocks as (Cout/8 channel blocks, pixel
//         blocks, 8 channels, 8 pixels), zero past Cout and past a row's end; one dispatch binds the 64 KiB window
//         of 256 pixel blocks of one channel block: block b's channel i is the vec4s 16·(b − win0) + 2i, + 1.
// grid:   @workgroup_size(WG) along groups of 3 k's; one workgroup per (split, WG k-groups), k-groups fastest;
//         linear id. Invocations past the end compute clamped duplicates and store nothing.
// binds:  @group(0) 0 params (uniform), 1 x (as vec4), 2 part (rw), 3 gw (uniform block: the g window)

struct Params {
    batch: u32, cin: u32, cout: u32, kdim: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    pad_y: i32, pad_x: i32, has_bias: u32, npix: u32,
    chunk: u32,   // pixel blocks per split
    win0: u32,    // the window's first pixel block (global block index over (n, oy, ox / 8))
    nb_win: u32,  // pixel blocks in the window
    cb: u32,      // the dispatch's channel block (channels 8·cb ..)
    part0: u32,   // the window's first split in part
    _p0: u32, _p1: u32, _p2: u32,
}

override KH: u32 = 3u;
override KW: u32 = 3u;  // 3: a k-group is one row's 3 taps; any other width (≤ 9): one tap of each of 3 rows
override WG: u32 = 16u; // invocations per workgroup, all along the k-groups
override R: u32 = 3u;   // window alignment r = (−pad_x) mod 4: a constant, so the taps' picks and shifts fold
const TM: u32 = 8u;     // output channels per invocation; unrolled by hand
const TK: u32 = 3u;     // k's per invocation; unrolled by hand
const TN: u32 = 8u;     // pixels per block (one row), two vec4

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> part: array<f32>;
@group(0) @binding(3) var<uniform> gw: array<vec4<f32>, 4096>;

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
    part[((p.part0 + s) * p.cout + co) * p.kdim + k] = (a.x + a.y) + (a.z + a.w);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let ngrp = (p.kdim + TK - 1u) / TK;       // groups of 3 k's
    let tiles_k = (ngrp + WG - 1u) / WG;
    let n_split = (p.nb_win + p.chunk - 1u) / p.chunk;
    let total = tiles_k * n_split;
    let w_raw = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding and groups past the last compute a clamped duplicate and store nothing
    let wid = min(w_raw, total - 1u);
    let grp_raw = (wid % tiles_k) * WG + li;
    let live = w_raw < total && grp_raw < ngrp;
    let grp = min(grp_raw, ngrp - 1u);
    let co0 = p.cb * TM;
    let s = wid / tiles_k;
    let k0 = grp * TK;

    let bxn = (p.out_w + TN - 1u) / TN;       // pixel blocks per output row
    let b_begin = p.win0 + s * p.chunk;
    let b_end = min(p.win0 + p.nb_win, b_begin + p.chunk);
    let r = R;
    let nv = (r + TN + KW - 1u + 3u) / 4u;    // window vec4s actually needed (2..4)
    let zero = vec4<f32>();

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
        if KW != 3u {
            // any other width: each k is its own input row k / KW and tap k % KW (KW = 1: three rows, tap 0)
            let ka = k0 + 1u;
            let kb = k0 + 2u;
            t0 = tap(window(n, k0 / KW, oy, aq, nv, true), r + k0 % KW);
            t1 = tap(window(n, ka / KW, oy, aq, nv, ka < p.kdim), r + ka % KW);
            t2 = tap(window(n, kb / KW, oy, aq, nv, kb < p.kdim), r + kb % KW);
        } else {
            // one input row (k0 / 3), its three taps
            let wv = window(n, k0 / KW, oy, aq, nv, true);
            t0 = tap(wv, r);
            t1 = tap(wv, r + 1u);
            t2 = tap(wv, r + 2u);
        }
        // g at the block from the uniform window (zero past Cout and past the row's end, as packed)
        let gb = (blk - p.win0) * 16u;
        let h0 = gw[gb]; let h0b = gw[gb + 1u];
        let h1 = gw[gb + 2u]; let h1b = gw[gb + 3u];
        let h2 = gw[gb + 4u]; let h2b = gw[gb + 5u];
        let h3 = gw[gb + 6u]; let h3b = gw[gb + 7u];
        let h4 = gw[gb + 8u]; let h4b = gw[gb + 9u];
        let h5 = gw[gb + 10u]; let h5b = gw[gb + 11u];
        let h6 = gw[gb + 12u]; let h6b = gw[gb + 13u];
        let h7 = gw[gb + 14u]; let h7b = gw[gb + 15u];
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
