// dw_v1_direct.wgsl: conv2d's weight gradient, one thread per weight element, looping over every pixel.
//
// math:   dw[co, ci, ky, kx] = Σ_n Σ_oy Σ_ox g[n, co, oy, ox] · x[n, ci, oy + ky − pad_y, ox + kx − pad_x]
//         (x = 0 outside the image). Instead of testing every pixel, the oy and ox loops start and stop
//         where the shifted row/column enters and leaves the image: oy ∈ [pad_y − ky, in_h + pad_y − ky) ∩ [0, out_h).
// layout: g (N, Cout, out_h, out_w), x (N, Cin, in_h, in_w), dw (Cout, Cin, KH, KW), contiguous f32;
//         KH, KW override constants
// grid:   @workgroup_size(64), one thread per dw element, linear workgroup id
// binds:  @group(0) 0 params (uniform), 1 g, 2 x, 3 dw (rw)

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
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let wid = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    let i = wid * WG + li;
    // guard: the tail of the last workgroup
    if i >= p.cout * p.kdim { return; }
    let kx = i32(i % KW);
    let ky = i32((i / KW) % KH);
    let ci = (i / (KH * KW)) % p.cin;
    let co = i / p.kdim;

    // the output rows/columns whose shifted input row/column lies inside the image
    let oy0 = max(0, p.pad_y - ky);
    let oy1 = min(i32(p.out_h), i32(p.in_h) + p.pad_y - ky);
    let ox0 = max(0, p.pad_x - kx);
    let ox1 = min(i32(p.out_w), i32(p.in_w) + p.pad_x - kx);
    let hw_out = p.out_h * p.out_w;
    let hw_in = p.in_h * p.in_w;
    var acc = 0.0;
    for (var n = 0u; n < p.batch; n++) {
        let g_base = (n * p.cout + co) * hw_out; // g[n, co]
        let x_base = (n * p.cin + ci) * hw_in;   // x[n, ci]
        for (var oy = oy0; oy < oy1; oy++) {
            let g_row = g_base + u32(oy) * p.out_w;
            let x_row = x_base + u32(oy + ky - p.pad_y) * p.in_w;
            for (var ox = ox0; ox < ox1; ox++) {
                acc += g[g_row + u32(ox)] * x[x_row + u32(ox + kx - p.pad_x)];
            }
        }
    }
    dw[i] = acc;
}
