// dw_v4_shaped.wgsl: dw_v3_blocked.wgsl with the tile shape picked per problem, as conv_v4_shaped.wgsl does for
// the forward: the override BM ∈ {16, 32, 64} sets the output channels per tile and BN = 4096 / BM the k's, so a
// Cout = 16 conv no longer computes 48 padding channels of every 64. Still 64 threads × 8×8 of dW per thread,
// two vec4 of g and two of X feeding 64 FMAs; the host picks the shape with the least padded work.
//
// math:   dW[co, k] = Σ_P G[co, P] · X[P, k]        (M = Cout, N = K = Cin·KH·KW, reduction over P = N·out_h·out_w)
//         G[co, P] = g[n, co, oy, ox],  X[P, k] = x[n, ci, oy + ky − pad_y, ox + kx − pad_x] (0 in the padding)
//         Workgroup s sums pixels P ∈ [s·chunk, (s+1)·chunk) into part[s, co, k]; the host sums over s.
// layout: g (N, Cout, out_h, out_w), x (N, Cin, in_h, in_w), part (n_split, Cout, K), contiguous f32;
//         KH, KW, BM override constants. Gs[kk][q] = channels 4q .. 4q+3 at pixel kk; Xs[kk][q] = k's 4q .. 4q+3.
// grid:   @workgroup_size(64); one workgroup per (split s, BM-channel tile, BN-wide tile of k), linear id;
//         thread li = (ty, tx) = (li / (BN/8), li % (BN/8)) owns channels ty·8 .. +8 and k's tx·8 .. +8
// binds:  @group(0) 0 params (uniform), 1 g, 2 x, 3 part (rw)

struct Params {
    batch: u32, cin: u32, cout: u32, kdim: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    pad_y: i32, pad_x: i32, has_bias: u32, npix: u32,
    chunk: u32, n_split: u32, _p0: u32, _p1: u32,
}

override KH: u32 = 3u;
override KW: u32 = 3u;
override BM: u32 = 64u;       // output channels per tile: 16, 32 or 64
override BN = 4096u / BM;     // k's per tile: 256, 128 or 64 (64 threads × 64 outputs = BM·BN)
override QM = BM / 4u;        // vec4s per Gs row
override QN = BN / 4u;        // vec4s per Xs row
override TX = BN / 8u;        // threads along the k's
const BK: u32 = 16u;          // pixels per step
const THREADS: u32 = 64u;
const LANES: u32 = THREADS / BK; // staging threads per pixel row

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;

// sized for the largest tile side (BM = 64 for Gs, BN = 256 for Xs); smaller shapes use the front
var<workgroup> Gs: array<vec4<f32>, 256>;  // [BK][QM]: g tile
var<workgroup> Xs: array<vec4<f32>, 1024>; // [BK][QN]: gathered im2col tile

// part[s, co, k0 .. k0+8] = (lo, hi), skipping channels past Cout and k's past K
fn store8(s: u32, co: u32, k0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if co >= p.cout { return; }
    for (var j = 0u; j < 8u; j++) {
        let k = k0 + j;
        if k >= p.kdim { return; }
        part[(s * p.cout + co) * p.kdim + k] = select(hi[j % 4u], lo[j % 4u], j < 4u);
    }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
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

    // staging: this thread fills pixel row kk of both tiles, quads lq, lq + LANES, .. (4 channels / 4 k's each)
    let kk = li % BK;
    let lq = li / BK;

    var acc: array<vec4<f32>, 16>; // acc[2i], acc[2i+1] = dW row ty·8 + i, k's tx·8 .. +4 and +4 .. +8
    let tx = li % TX;
    let ty = li / TX;
    for (var t = 0u; t < p.chunk; t += BK) {
        // this thread's pixel for the step, unravelled once for all its staged values
        let q = p_begin + t + kk;
        let q_ok = q < p_end;
        let n = q / hw_out;
        let rem = q % hw_out;
        let oy = i32(rem / p.out_w) - p.pad_y;
        let ox = i32(rem % p.out_w) - p.pad_x;
        for (var j = 0u; j < QM / LANES; j++) {
            let quad = lq + j * LANES;
            var gv = vec4<f32>(0.0);
            if q_ok {
                for (var c = 0u; c < 4u; c++) {
                    let co = co0 + quad * 4u + c;
                    if co < p.cout { gv[c] = g[(n * p.cout + co) * hw_out + rem]; }
                }
            }
            Gs[kk * QM + quad] = gv;
        }
        for (var j = 0u; j < QN / LANES; j++) {
            let quad = lq + j * LANES;
            var xv = vec4<f32>(0.0);
            if q_ok {
                for (var c = 0u; c < 4u; c++) {
                    let k = k0 + quad * 4u + c;
                    let iy = oy + i32((k / KW) % KH);
                    let ix = ox + i32(k % KW);
                    if k < p.kdim && iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w) {
                        xv[c] = x[(n * p.cin + k / (KH * KW)) * hw_in + u32(iy) * p.in_w + u32(ix)];
                    }
                }
            }
            Xs[kk * QN + quad] = xv;
        }
        workgroupBarrier(); // Gs/Xs complete before the products read them
        for (var e = 0u; e < BK; e++) {
            let xa = Xs[e * QN + tx * 2u];
            let xb = Xs[e * QN + tx * 2u + 1u];
            let ga = Gs[e * QM + ty * 2u];
            let gb = Gs[e * QM + ty * 2u + 1u];
            acc[0] += ga.x * xa;  acc[1] += ga.x * xb;
            acc[2] += ga.y * xa;  acc[3] += ga.y * xb;
            acc[4] += ga.z * xa;  acc[5] += ga.z * xb;
            acc[6] += ga.w * xa;  acc[7] += ga.w * xb;
            acc[8] += gb.x * xa;  acc[9] += gb.x * xb;
            acc[10] += gb.y * xa; acc[11] += gb.y * xb;
            acc[12] += gb.z * xa; acc[13] += gb.z * xb;
            acc[14] += gb.w * xa; acc[15] += gb.w * xb;
        }
        workgroupBarrier(); // products done before the next step overwrites Gs/Xs
    }

    // constant indices into acc keep it in registers (a dynamic index would push it to memory on some drivers)
    let c0 = co0 + ty * 8u;
    let kq = k0 + tx * 8u;
    store8(s, c0, kq, acc[0], acc[1]);
    store8(s, c0 + 1u, kq, acc[2], acc[3]);
    store8(s, c0 + 2u, kq, acc[4], acc[5]);
    store8(s, c0 + 3u, kq, acc[6], acc[7]);
    store8(s, c0 + 4u, kq, acc[8], acc[9]);
    store8(s, c0 + 5u, kq, acc[10], acc[11]);
    store8(s, c0 + 6u, kq, acc[12], acc[13]);
    store8(s, c0 + 7u, kq, acc[14], acc[15]);
}
