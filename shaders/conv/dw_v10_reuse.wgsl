// dw_v10_reuse.wgsl: the weight gradient of a square convolution up to 7×7, each invocation owning TM output
// channels × TC input channels × KR rows of their taps (all KH·KW taps for 3×3 and 1×1, KR = KH; one row of
// KW taps for 5×5 and 7×7, KR = 1, whose 8·KH·KW accumulators would not fit), so every g value it loads
// feeds TC·KR·KW FMAs (3×3: TC = 1, 9 FMAs; 1×1: TC = 8, 8 FMAs; 7×7: 7; dw v5 owns 8 channels × 3 k's: 3).
// Why: on llvmpipe the g loads are v5's cost, not its FMAs. g's address is the same in the whole workgroup,
// yet every storage read is a per-lane loop (docs/llvmpipe-stores.md): v5 with its 16 g vec4 per block replaced
// by values computed from the index ran 2.4–3× faster (16->16 and 32->32 channels at 64², batch 8), with its
// x loads replaced, 1.1×. Here a block loads TM·2 vec4 of g and TC·KR rows × ≤ 5 vec4 of x for TM·TC·KR·KW·8
// FMAs: 5.1 FMAs per component for 3×3 at TM 8 (v5: 2.3), 4 for 1×1.
//
// math:   dW[co, ci, ky, kx] = Σ_P g[n, co, oy, ox] · x[n, ci, oy + ky − pad_y, ox + kx − pad_x]   (P = (n, oy, ox))
//         Workgroup row s sums the 8-pixel blocks [s·chunk, (s+1)·chunk) into part[s, co, k]
//         (k = ci·KH·KW + ky·KW + kx); the host adds the splits in a fixed order (no atomics: deterministic).
// layout: g (N, Cout, out_h, out_w) and x (N, Cin, in_h, in_w) read as vec4 (the host sends only square
//         kernels up to 7×7 with in_w % 4 == 0 and out_w % 4 == 0), part (n_split, Cout, K) f32. The block's
//         input window of one row is ≤ 5 aligned vec4 starting r = (−pad_x) mod 4 values before the block's first
//         tap; tap kx's 8 values start at window offset r + kx (a constant once the loops are expanded, so the
//         picks and shifts fold). Accumulators are scalars (acc[(c·TC + t)·KH·KW + tap], each += two vec4
//         dots per block): TM·TC·KR·KW of them, not 4× that.
// grid:   @workgroup_size(WG); per split, one invocation per (TM output channels, TC input channels, KR tap
//         rows), input tiles fastest, then tap-row groups, WG of them per workgroup; workgroup id = split ·
//         groups + group, linear. Invocations
//         past the last tile, and channels past Cout or Cin, compute clamped duplicates and store nothing.
// binds:  @group(0) 0 params (uniform), 1 g (as vec4), 2 x (as vec4), 3 part (rw)
// unroll: the loops marked `// unroll` are expanded for each TM, TC, KH, KW, KR and R (src/gpu/specialize.rs).
// pieces: the entry point and the block's g reads (`g_block`) come from dw_v10_g_plain.wgsl (every invocation
//         reads its TM channels' 2·TM vec4) or dw_v10_g_subgroup.wgsl (where every invocation of a workgroup has
//         the same TM channels: each lane reads 2·TM / SG of them and subgroupBroadcast hands them round, the same
//         bits). Control flow stays uniform around `g_block`: the only return is after the block loop.

struct Params {
    batch: u32, cin: u32, cout: u32, kdim: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    pad_y: i32, pad_x: i32, has_bias: u32, npix: u32,
    chunk: u32, n_split: u32, _p0: u32, _p1: u32,
}

override KH: u32 = 3u;  // 1, 3, 5 or 7 (KW the same)
override KW: u32 = 3u;
override KR: u32 = 3u;  // tap rows per invocation: KH for 1×1 and 3×3, 1 for 5×5 and 7×7
const KG: u32 = KH / KR; // tap-row groups
override TM: u32 = 8u;  // output channels per invocation
override TC: u32 = 1u;  // input channels per invocation
override WG: u32 = 8u;  // invocations per workgroup
override R: u32 = 3u;   // window alignment r = (−pad_x) mod 4
const TN: u32 = 8u;     // pixels per block (one output row), two vec4
const KK: u32 = KH * KW;
override ROWV: u32 = 16u; // 2·TM: the vec4 of g a block reads (the subgroup piece's; the host sets it)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;

// the 4 values starting s (0..3) into the 8 values (lo, hi); s is a constant after expansion
fn shl(lo: vec4<f32>, hi: vec4<f32>, s: u32) -> vec4<f32> {
    let s1 = vec4<f32>(lo.yzw, hi.x);
    let s2 = vec4<f32>(lo.zw, hi.xy);
    let s3 = vec4<f32>(lo.w, hi.xyz);
    return select(select(select(s3, s2, s == 2u), s1, s == 1u), lo, s == 0u);
}

// a block's g for the TM channels: lo[c], hi[c] = the block's two vec4 of channel co0 + c (what g_block returns)
struct GBlock {
    lo: array<vec4<f32>, TM>,
    hi: array<vec4<f32>, TM>,
}

// invocation t of the dispatch (its linear id), sl its subgroup lane (0 for the plain piece)
fn run(t: u32, sl: u32) {
    let li = t % WG;
    let tiles_c = (p.cin + TC - 1u) / TC;
    let tiles = tiles_c * KG * ((p.cout + TM - 1u) / TM);
    let groups = (tiles + WG - 1u) / WG;      // workgroups per split
    let w_raw = t / WG;
    // guard: padding workgroups and tiles past the last compute a clamped duplicate and store nothing
    let wid = min(w_raw, groups * p.n_split - 1u);
    let inv_raw = (wid % groups) * WG + li;
    let live = w_raw < groups * p.n_split && inv_raw < tiles;
    let inv = min(inv_raw, tiles - 1u);
    let ci0 = (inv % tiles_c) * TC;
    let ky0 = (inv / tiles_c) % KG * KR;      // the invocation's first tap row
    let co0 = (inv / (tiles_c * KG)) * TM;
    let s = wid / groups;

    let bxn = (p.out_w + TN - 1u) / TN;       // pixel blocks per output row
    let nblk = p.batch * p.out_h * bxn;
    let b_begin = s * p.chunk;
    let b_end = min(nblk, b_begin + p.chunk);
    let hw4 = p.out_h * p.out_w / 4u;         // one g channel in vec4s
    let wq = i32(p.in_w / 4u);                // one x row in vec4s
    let cm = p.cout - 1u;
    let zero = vec4<f32>();

    var acc: array<f32, TM * TC * KR * KW>;
    // unroll
    for (var j = 0u; j < TM * TC * KR * KW; j++) {
        acc[j] = 0.0;
    }
    // the block's position (n, oy, ox0), stepped along with blk (no per-block integer division)
    var ox0 = (b_begin % bxn) * TN;
    var oy = (b_begin / bxn) % p.out_h;
    var n = b_begin / bxn / p.out_h;
    for (var blk = b_begin; blk < b_end; blk++) {
        // g at the block for the TM channels (padding channels read channel Cout − 1 and are never stored);
        // the high half is 0 past the row's end (out_w % 8 == 4) and its index stays inside the row
        let gb = n * p.cout * hw4 + (oy * p.out_w + ox0) / 4u;
        let hok = ox0 + 4u < p.out_w;
        let gbk = g_block(gb, hok, co0, cm, hw4, sl);
        let aq = (i32(ox0) - p.pad_x - i32(R)) / 4; // exact: the numerator is a multiple of 4
        // unroll
        for (var t = 0u; t < TC; t++) {
            // padding input channels read channel Cin − 1 and are never stored
            let ci = min(ci0 + t, p.cin - 1u);
            // unroll
            for (var kr = 0u; kr < KR; kr++) {
                // input row iy of channel ci: aligned vec4s, zero outside the image
                let iy = i32(oy) + i32(ky0 + kr) - p.pad_y;
                let rok = iy >= 0 && iy < i32(p.in_h);
                let rb = i32(((n * p.cin + ci) * p.in_h + u32(clamp(iy, 0, i32(p.in_h) - 1))) * u32(wq));
                var w: array<vec4<f32>, 5>;
                // unroll
                for (var q = 0u; q < 5u; q++) {
                    // only the vec4s the taps reach: r + 8 + KW − 1 values
                    if q < (R + TN + KW + 2u) / 4u {
                        let col = aq + i32(q);
                        w[q] = select(zero, x[u32(rb + clamp(col, 0, wq - 1))], rok && col >= 0 && col < wq);
                    }
                }
                // unroll
                for (var kx = 0u; kx < KW; kx++) {
                    let o = R + kx;
                    let lo = shl(w[o / 4u], w[o / 4u + 1u], o % 4u);
                    let hi = shl(w[o / 4u + 1u], w[min(o / 4u + 2u, 4u)], o % 4u);
                    // unroll
                    for (var c = 0u; c < TM; c++) {
                        acc[((c * TC + t) * KR + kr) * KW + kx] += dot(gbk.lo[c], lo) + dot(gbk.hi[c], hi);
                    }
                }
            }
        }
        // next block: along the row, then the next row, then the next image
        ox0 += TN;
        if ox0 >= p.out_w { ox0 = 0u; oy += 1u; }
        if oy == p.out_h { oy = 0u; n += 1u; }
    }

    if !live { return; }
    // unroll
    for (var c = 0u; c < TM; c++) {
        // unroll
        for (var t = 0u; t < TC; t++) {
            if co0 + c < p.cout && ci0 + t < p.cin {
                // unroll
                for (var j = 0u; j < KR * KW; j++) {
                    let k = (ci0 + t) * KK + ky0 * KW + j; // taps of rows ky0 .. ky0 + KR − 1
                    part[(s * p.cout + co0 + c) * p.kdim + k] = acc[(c * TC + t) * KR * KW + j];
                }
            }
        }
    }
}
