// conv_v2_implicit_gemm.wgsl: like v1, but the convolution runs as a register-blocked GEMM whose B operand
// (the im2col matrix) is gathered from x on the fly into workgroup memory and never stored in global memory.
// The tiling is shaders/matmul/matmul_v3_blocked.wgsl's: 64×64 tile per workgroup, 4×4 per thread.
//
// math:   Y[co, P] = b[co] + Σ_k W[co, k] · X[k, P]            (one GEMM: M = Cout, N = N·out_h·out_w, K = Cin·KH·KW)
//         W[co, k] = w[co, ci, ky, kx]                            (the weight is already row-major (Cout, K))
//         X[k, P]  = x[n, ci, oy + ky − pad_y, ox + kx − pad_x]  (0 outside the image: zero padding)
//         with k = (ci, ky, kx) and P = (n, oy, ox) unravelled; this is the "implicit GEMM" of cuDNN
//         (Chetlur et al. 2014, "cuDNN: Efficient Primitives for Deep Learning", §3.1).
//         pad_y/pad_x are signed so conv2d's dx can run here too (see flip_weights.wgsl).
// layout: x (N, Cin, in_h, in_w), w (Cout, Cin, KH, KW), b (Cout), y (N, Cout, out_h, out_w), contiguous f32;
//         KH, KW are override constants, so unravelling k divides by constants (a multiply and a shift).
//         Ws is stored k-major ([BK][BM]) like matmul v3's As, so a thread's 4 rows are one contiguous run.
// grid:   @workgroup_size(16, 16); one workgroup per BM×BN tile of Y (64 output channels × 64 output pixels),
//         linear workgroup id = (channel tile, pixel tile); thread (ty, tx) owns channels ty·TM .. +TM and
//         pixels tx·TN .. +TN of the tile. Pixel tiles run across image boundaries (P counts over the batch),
//         so small late-stage feature maps still fill whole tiles.
// binds:  @group(0) 0 params (uniform), 1 x, 2 w, 3 b (ignored when has_bias = 0), 4 y (rw)

struct Params {
    batch: u32, cin: u32, cout: u32, kdim: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    pad_y: i32, pad_x: i32, has_bias: u32, npix: u32,
    chunk: u32, n_split: u32, _p0: u32, _p1: u32,
}

override KH: u32 = 3u;
override KW: u32 = 3u;
const BM: u32 = 64u;       // output channels per tile
const BN: u32 = 64u;       // output pixels per tile
const BK: u32 = 16u;       // reduction indices k = (ci, ky, kx) per step
const TM: u32 = 4u;        // channels per thread
const TN: u32 = 4u;        // pixels per thread
const THREADS: u32 = 256u; // (BM/TM)·(BN/TN)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> Ws: array<f32, 1024>; // [BK][BM]: W tile, k-major
var<workgroup> Xs: array<f32, 1024>; // [BK][BN]: gathered im2col tile

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let tiles_m = (p.cout + BM - 1u) / BM;
    let tiles_n = (p.npix + BN - 1u) / BN;
    let wid = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding (uniform per workgroup, so the barriers below stay uniform)
    if wid >= tiles_m * tiles_n { return; }
    let co0 = (wid / tiles_n) * BM;
    let px0 = (wid % tiles_n) * BN;
    let hw_out = p.out_h * p.out_w;
    let hw_in = p.in_h * p.in_w;

    // The gather: this thread always fills column lc of Xs (rows lr, lr + 4, ..), so its output pixel
    // (n, oy, ox) is unravelled once here, not once per K step. Consecutive threads take consecutive pixels,
    // so their reads of x are contiguous along a row.
    let lc = li % BN;
    let lr = li / BN;
    let pix = px0 + lc;
    let pix_ok = pix < p.npix;
    let n = pix / hw_out;
    let oy = i32((pix % hw_out) / p.out_w);
    let ox = i32(pix % p.out_w);
    let x_img = n * p.cin * hw_in;

    var acc: array<vec4<f32>, 4>; // acc[i] = Y channel (ty·TM + i), pixels tx·TN .. +4
    for (var t = 0u; t < p.kdim; t += BK) {
        // stage BM×BK of W: 4 per thread, consecutive threads along k; zero past Cout or K
        for (var j = 0u; j < BM * BK / THREADS; j++) {
            let r = li / BK + j * (THREADS / BK);
            let kk = li % BK;
            let co = co0 + r;
            let k = t + kk;
            var v = 0.0;
            if co < p.cout && k < p.kdim { v = w[co * p.kdim + k]; }
            Ws[kk * BM + r] = v;
        }
        // gather BK×BN of X: 4 per thread; zero past K, past the last pixel, or in the padding
        for (var j = 0u; j < BK * BN / THREADS; j++) {
            let kk = lr + j * (THREADS / BN);
            let k = t + kk;
            let ci = k / (KH * KW);
            let ky = (k / KW) % KH;
            let kx = k % KW;
            let iy = oy + i32(ky) - p.pad_y;
            let ix = ox + i32(kx) - p.pad_x;
            var v = 0.0;
            if pix_ok && k < p.kdim && iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w) {
                v = x[x_img + ci * hw_in + u32(iy) * p.in_w + u32(ix)];
            }
            Xs[kk * BN + lc] = v;
        }
        workgroupBarrier(); // Ws/Xs complete before the products read them
        for (var kk = 0u; kk < BK; kk++) {
            let xo = kk * BN + lid.x * TN;
            let xv = vec4<f32>(Xs[xo], Xs[xo + 1u], Xs[xo + 2u], Xs[xo + 3u]);
            let wo = kk * BM + lid.y * TM;
            acc[0] += Ws[wo] * xv;
            acc[1] += Ws[wo + 1u] * xv;
            acc[2] += Ws[wo + 2u] * xv;
            acc[3] += Ws[wo + 3u] * xv;
        }
        workgroupBarrier(); // products done before the next step overwrites Ws/Xs
    }

    // write back: pixel P = (n, rem) of channel co lives at y[(n·Cout + co)·hw_out + rem]
    for (var j = 0u; j < TN; j++) {
        let q = px0 + lid.x * TN + j;
        if q >= p.npix { break; }
        let base = (q / hw_out) * p.cout * hw_out + q % hw_out;
        for (var i = 0u; i < TM; i++) {
            let co = co0 + lid.y * TM + i;
            if co >= p.cout { break; }
            var bias = 0.0;
            if p.has_bias != 0u { bias = b[co]; }
            y[base + co * hw_out] = acc[i][j] + bias;
        }
    }
}
