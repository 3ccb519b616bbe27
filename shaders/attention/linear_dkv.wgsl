// linear_dkv.wgsl: linear attention's k and v gradients, PIX pixels per invocation, from the context gradient,
// r and the forward's log-sum-exp of k's rows (a uniform window of linear_merge.wgsl:backward's head blocks).
//
// math:   k̂[c, j] = e^(k[c, j] − lse[c]) (softmax over the pixels); dv[e, j] = Σ_c k̂[c, j]·dC[c, e];
//         dk̂[c, j] = Σ_e dC[c, e]·v[e, j]; dk[c, j] = k̂[c, j]·(dk̂[c, j] − r[c]), r[c] = Σ_e dC[c, e]·C[c, e]
//         = Σ_j k̂[c, j]·dk̂[c, j]
// layout: qkv (B, 3·heads·d, n); dqkv like qkv (this kernel writes the k and v channels); window: heads
//         bh0 .. bh0 + nbw of blocks of hs floats: dC (d rows of dp, zero-padded past d), r (d), lse (d)
// grid:   @workgroup_size(64); workgroup g = (head of the window, block of 64·PIX pixels), linear id; invocation
//         li of block blk owns pixels blk·64·PIX + li + 64·k, k < PIX (neighbouring invocations, neighbouring
//         pixels), each context entry read from the window serving PIX pixels
// binds:  @group(0) 0 params (uniform), 1 qkv, 2 dqkv (rw), 3 dw window (uniform block)

struct Params {
    n: u32,        // pixels (H·W)
    d: u32,        // dim_head, 1 ..= 64
    heads: u32,
    nbh: u32,      // batch·heads
    chunk: u32,    // pixels per workgroup of the split-K kernels
    nchunk: u32,   // chunks per head
    neb: u32,      // value-channel blocks per chunk
    eb4: u32,      // vec4 columns per block (eb4·d ≤ 64)
    hs: u32,       // floats per head in the head-block buffer this dispatch reads as a window or writes
    bh0: u32,      // first head of this dispatch's window
    nbw: u32,      // heads in this dispatch's window
    dp: u32,       // d rounded up to a multiple of 4: the row length of a context block
    ps: u32,       // floats per partial: 2d + d·d
    scale: f32,    // dim_head^-1/2
    hsf: u32,      // floats per head in the forward's head blocks (read by linear_merge.wgsl:backward)
    npart: u32,    // partials per head: 64·nchunk
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(3) var<uniform> dw: array<vec4<f32>, 4096>;

const DMAX4: u32 = 16u;
const PMAX: u32 = 4u;
// the loop bounds are pipeline constants, so that the compiler unrolls the feature and pixel loops and keeps the
// arrays in registers (indexed by a runtime counter they would be memory, read and written lane by lane on
// llvmpipe)
override D: u32 = 16u;   // = p.d
override DP4: u32 = 4u;  // = p.dp / 4
override PIX: u32 = 2u;  // pixels per invocation, 1 ..= PMAX

// This invocation's (head of the window, pixel k's index, whether the workgroup exists): workgroup g covers
// pixels blk·64·PIX .. + 64·PIX of head lh; invocation li takes blk·64·PIX + li + 64·k, k < PIX.
struct Where {
    lh: u32,
    i0: u32,
    ok: bool,
}

fn where_am_i(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> Where {
    let g = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    let nblk = (p.n + 64u * PIX - 1u) / (64u * PIX);
    return Where(g / nblk, g % nblk * 64u * PIX + li, g < p.nbw * nblk);
}

// pixel k of an invocation, clamped into the head (loads); stores check i0 + 64·k < n
fn pix(w: Where, k: u32) -> u32 { return min(w.i0 + 64u * k, p.n - 1u); }

// scalar k of the window
fn wat(k: u32) -> f32 { return dw[k / 4u][k % 4u]; }

// v[e, j] from channel block ch, 0 past d
fn v_at(ch: u32, e: u32, j: u32) -> f32 {
    if e < D { return qkv[(ch + e) * p.n + j]; }
    return 0.0;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let w = where_am_i(wg, nwg, li);
    // guard: workgroups past the window's last block
    if !w.ok { return; }
    let bh = p.bh0 + w.lh;
    let kch = (bh / p.heads * 3u + 1u) * p.heads * p.d + bh % p.heads * p.d;
    let vch = kch + p.heads * p.d;
    let hb = w.lh * p.hs;          // this head's block in the window
    let rb = hb + p.d * p.dp;      // r, then lse
    var v: array<vec4<f32>, 64>;   // [k·DP4 + e4]
    var dv: array<vec4<f32>, 64>;
    for (var k = 0u; k < PIX; k++) {
        let j = pix(w, k);
        for (var e4 = 0u; e4 < DP4; e4++) {
            let e = 4u * e4;
            v[k * DP4 + e4] = vec4<f32>(v_at(vch, e, j), v_at(vch, e + 1u, j), v_at(vch, e + 2u, j), v_at(vch, e + 3u, j));
            dv[k * DP4 + e4] = vec4<f32>(0.0);
        }
    }
    for (var c = 0u; c < D; c++) {
        let lse = wat(rb + p.d + c);
        let r = wat(rb + c);
        let row = (hb + c * p.dp) / 4u;
        var kh: array<f32, PMAX>;
        var a: array<vec4<f32>, PMAX>;
        for (var k = 0u; k < PIX; k++) {
            kh[k] = exp(qkv[(kch + c) * p.n + pix(w, k)] - lse);
            a[k] = vec4<f32>(0.0);
        }
        for (var e4 = 0u; e4 < DP4; e4++) {
            let dc = dw[row + e4];
            for (var k = 0u; k < PIX; k++) {
                dv[k * DP4 + e4] += kh[k] * dc;
                a[k] += dc * v[k * DP4 + e4];
            }
        }
        for (var k = 0u; k < PIX; k++) {
            let j = w.i0 + 64u * k;
            if j < p.n { dqkv[(kch + c) * p.n + j] = kh[k] * (a[k].x + a[k].y + a[k].z + a[k].w - r); }
        }
    }
    for (var k = 0u; k < PIX; k++) {
        let j = w.i0 + 64u * k;
        if j < p.n {
            for (var e = 0u; e < D; e++) { dqkv[(vch + e) * p.n + j] = dv[k * DP4 + e / 4u][e % 4u]; }
        }
    }
}
