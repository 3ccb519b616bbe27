// dw_v2_implicit_gemm.wgsl: like dw_v1, but as conv_v2's register-blocked GEMM with the reduction running
// over pixels, split into chunks ("split-K") so that a few large weight tiles still give many workgroups.
//
// math:   dW[co, k] = Σ_P G[co, P] · X[P, k]        (M = Cout, N = K = Cin·KH·KW, reduction over P = N·out_h·out_w)
//         G[co, P] = g[n, co, oy, ox],  X[P, k] = x[n, ci, oy + ky − pad_y, ox + kx − pad_x] (0 in the padding)
//         Workgroup s sums only pixels P ∈ [s·chunk, (s+1)·chunk) and writes part[s, co, k]; the host then
//         sums part over s (reduce/sum.wgsl), so dw = Σ_s part[s].
// layout: g (N, Cout, out_h, out_w), x (N, Cin, in_h, in_w), part (n_split, Cout, K), contiguous f32;
//         KH, KW override constants. Gs is pixel-major ([BK][BM]), like matmul v3's As.
// grid:   @workgroup_size(16, 16); one workgroup per (split s, 64-channel tile, 64-wide tile of k), linear id;
//         thread (ty, tx) owns channels ty·TM .. +TM and k's tx·TN .. +TN of the tile
// binds:  @group(0) 0 params (uniform), 1 g, 2 x, 3 part (rw)

struct Params {
    batch: u32, cin: u32, cout: u32, kdim: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    pad_y: i32, pad_x: i32, has_bias: u32, npix: u32,
    chunk: u32, n_split: u32, _p0: u32, _p1: u32,
}

override KH: u32 = 3u;
override KW: u32 = 3u;
const BM: u32 = 64u;       // output channels per tile
const BN: u32 = 64u;       // k = (ci, ky, kx) per tile
const BK: u32 = 16u;       // pixels per step
const TM: u32 = 4u;
const TN: u32 = 4u;
const THREADS: u32 = 256u; // (BM/TM)·(BN/TN)
const PER: u32 = 4u;       // tile elements each thread stages per step: BM·BK / THREADS = BK·BN / THREADS

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;

var<workgroup> Gs: array<f32, 1024>; // [BK][BM]: g tile, pixel-major
var<workgroup> Xs: array<f32, 1024>; // [BK][BN]: gathered im2col tile

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let tiles_m = (p.cout + BM - 1u) / BM;
    let tiles_n = (p.kdim + BN - 1u) / BN;
    let wid = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding (uniform per workgroup, so the barriers below stay uniform)
    if wid >= tiles_m * tiles_n * p.n_split { return; }
    let s = wid / (tiles_m * tiles_n);
    let co0 = ((wid / tiles_n) % tiles_m) * BM;
    let k0 = (wid % tiles_n) * BN;
    let hw_out = p.out_h * p.out_w;
    let hw_in = p.in_h * p.in_w;
    let p_begin = s * p.chunk;
    let p_end = min(p.npix, p_begin + p.chunk);

    // Staging: this thread always fills pixel row kk of both tiles, at rows/columns rr + 16·j. Its 4 columns
    // of X (fixed k's) are unravelled once, here.
    let kk = li % BK;
    let rr = li / BK;
    var c_off: array<u32, 4>; // ci·in_h·in_w
    var c_dy: array<i32, 4>;  // ky − pad_y
    var c_dx: array<i32, 4>;  // kx − pad_x
    var c_ok: array<bool, 4>; // k < K
    for (var j = 0u; j < PER; j++) {
        let k = k0 + rr + j * (THREADS / BK);
        c_off[j] = (k / (KH * KW)) * hw_in;
        c_dy[j] = i32((k / KW) % KH) - p.pad_y;
        c_dx[j] = i32(k % KW) - p.pad_x;
        c_ok[j] = k < p.kdim;
    }

    var acc: array<vec4<f32>, 4>; // acc[i] = dW row (ty·TM + i), k's tx·TN .. +4
    for (var t = 0u; t < p.chunk; t += BK) {
        // this thread's pixel for the step, unravelled once and shared by its 8 staged values
        let q = p_begin + t + kk;
        let q_ok = q < p_end;
        let n = q / hw_out;
        let rem = q % hw_out;
        let oy = i32(rem / p.out_w);
        let ox = i32(rem % p.out_w);
        for (var j = 0u; j < PER; j++) {
            let r = rr + j * (THREADS / BK);
            let co = co0 + r;
            var v = 0.0;
            if q_ok && co < p.cout { v = g[(n * p.cout + co) * hw_out + rem]; }
            Gs[kk * BM + r] = v;
        }
        for (var j = 0u; j < PER; j++) {
            let c = rr + j * (THREADS / BK);
            let iy = oy + c_dy[j];
            let ix = ox + c_dx[j];
            var v = 0.0;
            if q_ok && c_ok[j] && iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w) {
                v = x[n * p.cin * hw_in + c_off[j] + u32(iy) * p.in_w + u32(ix)];
            }
            Xs[kk * BN + c] = v;
        }
        workgroupBarrier(); // Gs/Xs complete before the products read them
        for (var e = 0u; e < BK; e++) {
            let xo = e * BN + lid.x * TN;
            let xv = vec4<f32>(Xs[xo], Xs[xo + 1u], Xs[xo + 2u], Xs[xo + 3u]);
            let go = e * BM + lid.y * TM;
            acc[0] += Gs[go] * xv;
            acc[1] += Gs[go + 1u] * xv;
            acc[2] += Gs[go + 2u] * xv;
            acc[3] += Gs[go + 3u] * xv;
        }
        workgroupBarrier(); // products done before the next step overwrites Gs/Xs
    }

    for (var i = 0u; i < TM; i++) {
        let co = co0 + lid.y * TM + i;
        if co >= p.cout { break; }
        for (var j = 0u; j < TN; j++) {
            let k = k0 + lid.x * TN + j;
            if k < p.kdim {
                part[(s * p.cout + co) * p.kdim + k] = acc[i][j];
            }
        }
    }
}
