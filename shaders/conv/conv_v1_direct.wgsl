// conv_v1_direct.wgsl: 2-D convolution (a cross-correlation, as in PyTorch), one thread per output element.
//
// math:   y[n, co, oy, ox] = b[co] + Σ_ci Σ_ky Σ_kx w[co, ci, ky, kx] · x[n, ci, oy + ky − pad_y, ox + kx − pad_x]
//         where x reads as 0 outside [0, in_h) × [0, in_w) (zero padding). pad_y/pad_x are signed: conv2d's
//         dx runs this kernel with pad = K − 1 − padding, which is negative when padding > K − 1.
// layout: x (N, Cin, in_h, in_w), w (Cout, Cin, KH, KW), b (Cout), y (N, Cout, out_h, out_w), contiguous f32.
//         KH and KW are override constants: one pipeline per kernel size, with the inner loops' bounds known.
// grid:   @workgroup_size(64), one thread per y element, linear workgroup id (the host may fold it into y/z)
// binds:  @group(0) 0 params (uniform), 1 x, 2 w, 3 b (ignored when has_bias = 0), 4 y (rw)
// backward: dx = this kernel on (g, flip_weights(w)); dw in conv/dw_v1_direct.wgsl; db = Σ g (reduce/sum.wgsl)

struct Params {
    batch: u32, cin: u32, cout: u32, kdim: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    pad_y: i32, pad_x: i32, has_bias: u32, npix: u32,
    chunk: u32, n_split: u32, _p0: u32, _p1: u32,
}

override KH: u32 = 3u;
override KW: u32 = 3u;
const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let wid = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    let i = wid * WG + li;
    // guard: the tail of the last workgroup and any split padding
    if i >= p.npix * p.cout { return; }
    let hw_out = p.out_h * p.out_w;
    let ox = i32(i % p.out_w);
    let oy = i32((i / p.out_w) % p.out_h);
    let co = (i / hw_out) % p.cout;
    let n = i / (hw_out * p.cout);

    var acc = 0.0;
    if p.has_bias != 0u { acc = b[co]; }
    let hw_in = p.in_h * p.in_w;
    for (var ci = 0u; ci < p.cin; ci++) {
        let x_base = (n * p.cin + ci) * hw_in;      // image n, channel ci
        let w_base = (co * p.cin + ci) * KH * KW;   // filter (co, ci)
        for (var ky = 0u; ky < KH; ky++) {
            let iy = oy + i32(ky) - p.pad_y;
            if iy < 0 || iy >= i32(p.in_h) { continue; } // zero padding: the whole kernel row reads 0
            for (var kx = 0u; kx < KW; kx++) {
                let ix = ox + i32(kx) - p.pad_x;
                if ix < 0 || ix >= i32(p.in_w) { continue; }
                acc += w[w_base + ky * KW + kx] * x[x_base + u32(iy) * p.in_w + u32(ix)];
            }
        }
    }
    y[i] = acc;
}
