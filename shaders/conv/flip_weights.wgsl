// flip_weights.wgsl: rotate every filter by 180° and swap its in/out channels, the weight of conv2d's dx.
//
// math:   wt[ci, co, ky, kx] = w[co, ci, KH − 1 − ky, KW − 1 − kx]
//         Then dx[n, ci, y, x] = Σ_co Σ_ky,kx g[n, co, y + p − ky, x + p − kx] · w[co, ci, ky, kx]
//         is the forward convolution of g with wt at padding (KH − 1 − p, KW − 1 − p) (substitute
//         ky' = KH − 1 − ky), so dx reuses whichever forward kernel is chosen.
// layout: w (Cout, Cin, KH, KW), wt (Cin, Cout, KH, KW), contiguous f32; KH, KW override constants
// grid:   @workgroup_size(64), one thread per wt element, linear workgroup id
// binds:  @group(0) 0 params (uniform), 1 w, 2 wt (rw)

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
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> wt: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let wid = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    let i = wid * WG + li;
    // guard: the tail of the last workgroup
    if i >= p.cout * p.cin * KH * KW { return; }
    let kx = i % KW;
    let ky = (i / KW) % KH;
    let co = (i / (KH * KW)) % p.cout;   // wt is (Cin, Cout, ..): co is its second index
    let ci = i / (KH * KW * p.cout);
    wt[i] = w[((co * p.cin + ci) * KH + (KH - 1u - ky)) * KW + (KW - 1u - kx)];
}
