// pack_weights_v5.wgsl: the weight layouts conv_v5_vec4.wgsl (`main`) and conv_v9_uniform.wgsl (`blocked`) read:
// k-major, output channels padded to a multiple of 8 with zeros, so the 8 channels of one tap are two aligned
// vec4 loads; and (`grad_blocks`) the output gradient in the pixel-block layout dw_v9_uniform.wgsl reads.
//
// math:   main:    wp[k, c] = w[c, k] for c < Cout, 0 for Cout ≤ c < cpad (cpad = Cout rounded up to 8)
//         blocked: wp[blk, k, j] = w[8·blk + j, k] for k < K and 8·blk + j < Cout, else 0; k < kp (K rounded up
//                  to 8, in _p0), blk < cpad / 8; k = (ci, ky, kx)
//         grad_blocks: wp[((cb·NB + b)·8 + i)·8 + j] = g[n, 8·cb + i, oy, 8·bx + j] for pixel block
//                  b = (n·out_h + oy)·⌈out_w / 8⌉ + bx of NB, zero past Cout or past the row's end (w is g here)
// layout: w (Cout, K) row-major (a contiguous (Cout, Cin, KH, KW) weight); wp (K, cpad) or (cpad/8, kp, 8)
// grid:   @workgroup_size(64), one thread per wp element, linear workgroup id
// binds:  @group(0) 0 params (uniform), 1 w, 2 wp (rw)

struct Params {
    batch: u32, cin: u32, cout: u32, kdim: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    pad_y: i32, pad_x: i32, has_bias: u32, npix: u32,
    chunk: u32, n_split: u32, kp: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> wp: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let cpad = (p.cout + 7u) / 8u * 8u;
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 64u + li;
    // guard: threads past the last element
    if i >= p.kdim * cpad { return; }
    let k = i / cpad;
    let c = i % cpad;
    var v = 0.0;
    if c < p.cout { v = w[c * p.kdim + k]; }
    wp[i] = v;
}

@compute @workgroup_size(64)
fn blocked(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let nblk = (p.cout + 7u) / 8u;
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 64u + li;
    // guard: threads past the last element
    if i >= nblk * p.kp * 8u { return; }
    let blk = i / (p.kp * 8u);
    let k = (i / 8u) % p.kp;
    let c = blk * 8u + i % 8u;
    var v = 0.0;
    if c < p.cout && k < p.kdim { v = w[c * p.kdim + k]; }
    wp[i] = v;
}

@compute @workgroup_size(64)
fn grad_blocks(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let bxn = (p.out_w + 7u) / 8u;
    let nb = p.batch * p.out_h * bxn;
    let ncb = (p.cout + 7u) / 8u;
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 64u + li;
    // guard: threads past the last element
    if i >= ncb * nb * 64u { return; }
    let j = i % 8u;
    let c = (i / 8u) % 8u + (i / (64u * nb)) * 8u;
    let b = (i / 64u) % nb;
    let ox = (b % bxn) * 8u + j;
    let oy = (b / bxn) % p.out_h;
    let n = b / (bxn * p.out_h);
    var v = 0.0;
    if c < p.cout && ox < p.out_w { v = w[((n * p.cout + c) * p.out_h + oy) * p.out_w + ox]; }
    wp[i] = v;
}
