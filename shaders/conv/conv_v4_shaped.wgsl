// conv_v4_shaped.wgsl: conv_v3_blocked.wgsl with the tile shape picked per problem. The model's convs have few
// output channels (Cout = 16 or 32 in the tiny preset), so v3's 64-channel tiles compute 50–75% padding. Here the
// override BM ∈ {16, 32, 64} sets the channels per tile and BN = 4096 / BM the pixels, so every shape keeps v3's
// 64 threads × 8×8 outputs per thread (two vec4 of W and two vec4 of X feed 64 FMAs) and only the tile's aspect
// changes: 16×256, 32×128 or 64×64. The host picks the shape with the least padded work (`TileShape`).
//
// math:   Y[co, P] = b[co] + Σ_k W[co, k] · X[k, P]   as in conv_v2_implicit_gemm.wgsl (implicit GEMM,
//         M = Cout, N = N·out_h·out_w, K = Cin·KH·KW, X gathered from x with zero padding, signed pads)
// layout: x (N, Cin, in_h, in_w), w (Cout, Cin, KH, KW), b (Cout), y (N, Cout, out_h, out_w), contiguous f32;
//         KH, KW, BM override constants. Ws[kk][q] = channels 4q .. 4q+3 at k; Xs[kk][q] = pixels 4q .. 4q+3 at k.
// grid:   @workgroup_size(64); one workgroup per BM×BN tile of Y (channel tile, pixel tile), linear id;
//         thread li = (ty, tx) = (li / (BN/8), li % (BN/8)) owns channels ty·8 .. +8 and pixels tx·8 .. +8
// binds:  @group(0) 0 params (uniform), 1 x, 2 w, 3 b (ignored when has_bias = 0), 4 y (rw)

struct Params {
    batch: u32, cin: u32, cout: u32, kdim: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    pad_y: i32, pad_x: i32, has_bias: u32, npix: u32,
    chunk: u32, n_split: u32, _p0: u32, _p1: u32,
}

override KH: u32 = 3u;
override KW: u32 = 3u;
override BM: u32 = 64u;       // output channels per tile: 16, 32 or 64
override BN = 4096u / BM;     // output pixels per tile: 256, 128 or 64 (64 threads × 64 outputs = BM·BN)
override QM = BM / 4u;        // vec4s per Ws row
override QN = BN / 4u;        // vec4s per Xs row
override TX = BN / 8u;        // threads along the pixels
const BK: u32 = 16u;          // reduction indices k = (ci, ky, kx) per step
const THREADS: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// sized for the largest tile side (BM = 64 for Ws, BN = 256 for Xs); smaller shapes use the front
var<workgroup> Ws: array<vec4<f32>, 256>;  // [BK][QM]: W tile
var<workgroup> Xs: array<vec4<f32>, 1024>; // [BK][QN]: gathered im2col tile

// y[channel co, pixels q0 .. q0+8] = (lo, hi) + b[co], skipping channels past Cout and pixels past the last;
// pixel P = (n, rem) of channel co lives at y[(n·Cout + co)·hw_out + rem]
fn store8(co: u32, q0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if co >= p.cout { return; }
    var bias = 0.0;
    if p.has_bias != 0u { bias = b[co]; }
    let hw_out = p.out_h * p.out_w;
    for (var j = 0u; j < 8u; j++) {
        let q = q0 + j;
        if q >= p.npix { return; }
        let v = select(hi[j % 4u], lo[j % 4u], j < 4u);
        y[((q / hw_out) * p.cout + co) * hw_out + q % hw_out] = v + bias;
    }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let tiles_m = (p.cout + BM - 1u) / BM;
    let tiles_n = (p.npix + BN - 1u) / BN;
    let wid = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding (uniform per workgroup, so the barriers below stay uniform)
    if wid >= tiles_m * tiles_n { return; }
    let co0 = (wid / tiles_n) * BM;
    let px0 = (wid % tiles_n) * BN;
    let hw_out = p.out_h * p.out_w;
    let hw_in = p.in_h * p.in_w;

    // Staging X: this thread always fills quad xq (4 pixels) of rows xr, xr + THREADS/QN, .., so its 4 pixels
    // are unravelled once here, not once per step. Staging W: quad wq (4 channels) of rows wr, wr + THREADS/QM, ..
    let xq = li % QN;
    let xr = li / QN;
    let wq = li % QM;
    let wr = li / QM;
    var pn: array<u32, 4>;   // start of image n in x
    var py: array<i32, 4>;   // oy − pad_y
    var px: array<i32, 4>;   // ox − pad_x
    var pok: array<bool, 4>; // pixel exists
    for (var c = 0u; c < 4u; c++) {
        let q = px0 + xq * 4u + c;
        pok[c] = q < p.npix;
        pn[c] = (q / hw_out) * p.cin * hw_in;
        py[c] = i32((q % hw_out) / p.out_w) - p.pad_y;
        px[c] = i32(q % p.out_w) - p.pad_x;
    }

    var acc: array<vec4<f32>, 16>; // acc[2i], acc[2i+1] = Y channel ty·8 + i, pixels tx·8 .. +4 and +4 .. +8
    let tx = li % TX;
    let ty = li / TX;
    for (var t = 0u; t < p.kdim; t += BK) {
        // W: channels co0 + 4·wq .. +4 at k; zero past Cout or K
        for (var j = 0u; j < BK * QM / THREADS; j++) {
            let kk = wr + j * (THREADS / QM);
            let k = t + kk;
            var wv = vec4<f32>(0.0);
            if k < p.kdim {
                for (var c = 0u; c < 4u; c++) {
                    let co = co0 + wq * 4u + c;
                    if co < p.cout { wv[c] = w[co * p.kdim + k]; }
                }
            }
            Ws[kk * QM + wq] = wv;
        }
        // X: pixels px0 + 4·xq .. +4 at k; zero past K, past the last pixel, or in the padding
        for (var j = 0u; j < BK * QN / THREADS; j++) {
            let kk = xr + j * (THREADS / QN);
            let k = t + kk;
            let ci = k / (KH * KW);
            let ky = i32((k / KW) % KH);
            let kx = i32(k % KW);
            var xv = vec4<f32>(0.0);
            if k < p.kdim {
                for (var c = 0u; c < 4u; c++) {
                    let iy = py[c] + ky;
                    let ix = px[c] + kx;
                    if pok[c] && iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w) {
                        xv[c] = x[pn[c] + ci * hw_in + u32(iy) * p.in_w + u32(ix)];
                    }
                }
            }
            Xs[kk * QN + xq] = xv;
        }
        workgroupBarrier(); // Ws/Xs complete before the products read them
        for (var kk = 0u; kk < BK; kk++) {
            let xa = Xs[kk * QN + tx * 2u];
            let xb = Xs[kk * QN + tx * 2u + 1u];
            let wa = Ws[kk * QM + ty * 2u];
            let wb = Ws[kk * QM + ty * 2u + 1u];
            acc[0] += wa.x * xa;  acc[1] += wa.x * xb;
            acc[2] += wa.y * xa;  acc[3] += wa.y * xb;
            acc[4] += wa.z * xa;  acc[5] += wa.z * xb;
            acc[6] += wa.w * xa;  acc[7] += wa.w * xb;
            acc[8] += wb.x * xa;  acc[9] += wb.x * xb;
            acc[10] += wb.y * xa; acc[11] += wb.y * xb;
            acc[12] += wb.z * xa; acc[13] += wb.z * xb;
            acc[14] += wb.w * xa; acc[15] += wb.w * xb;
        }
        workgroupBarrier(); // products done before the next step overwrites Ws/Xs
    }

    // constant indices into acc keep it in registers (a dynamic index would push it to memory on some drivers)
    let c0 = co0 + ty * 8u;
    let q0 = px0 + tx * 8u;
    store8(c0, q0, acc[0], acc[1]);
    store8(c0 + 1u, q0, acc[2], acc[3]);
    store8(c0 + 2u, q0, acc[4], acc[5]);
    store8(c0 + 3u, q0, acc[6], acc[7]);
    store8(c0 + 4u, q0, acc[8], acc[9]);
    store8(c0 + 5u, q0, acc[10], acc[11]);
    store8(c0 + 6u, q0, acc[12], acc[13]);
    store8(c0 + 7u, q0, acc[14], acc[15]);
}
