// linear_out.wgsl: linear attention's output, PIX pixels per invocation: q's column softmaxed over the d
// features, scaled, and multiplied by the head's context, read from a uniform window of head blocks.
//
// math:   q̂[c] = scale·e^(q[c, i] − max_c q[·, i]) / Σ_c e^(q[c, i] − max); out[e, i] = Σ_c C[c, e]·q̂[c]
// layout: qkv (B, 3·heads·d, n) (q of head h at channel h·d + c); out (B·heads, d, n) = (B, heads·d, H, W);
//         window: heads bh0 .. bh0 + nbw of linear_merge.wgsl:forward's blocks (hs floats each, C rows of dp)
// grid:   @workgroup_size(64); workgroup g = (head of the window, block of 64·PIX pixels), linear id; invocation
//         li of block blk owns pixels blk·64·PIX + li + 64·k, k < PIX (neighbouring invocations, neighbouring
//         pixels), each context entry read from the window serving PIX pixels
// binds:  @group(0) 0 params (uniform), 1 qkv, 2 out (rw), 3 cw window (uniform block)

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
@group(0) @binding(2) var<storage, read_write> o: array<f32>;
@group(0) @binding(3) var<uniform> cw: array<vec4<f32>, 4096>;

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

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let w = where_am_i(wg, nwg, li);
    // guard: workgroups past the window's last block
    if !w.ok { return; }
    let bh = p.bh0 + w.lh;
    let qch = bh / p.heads * 3u * p.heads * p.d + bh % p.heads * p.d;
    var q: array<f32, 256>; // [k·D + c]: q̂ of pixel k, scaled
    for (var k = 0u; k < PIX; k++) {
        let i = pix(w, k);
        var mx = -3.4e38;
        for (var c = 0u; c < D; c++) {
            q[k * D + c] = qkv[(qch + c) * p.n + i];
            mx = max(mx, q[k * D + c]);
        }
        var s = 0.0;
        for (var c = 0u; c < D; c++) {
            q[k * D + c] = exp(q[k * D + c] - mx);
            s += q[k * D + c];
        }
        for (var c = 0u; c < D; c++) { q[k * D + c] *= p.scale / s; }
    }
    var acc: array<vec4<f32>, 64>; // [k·DP4 + e4]
    for (var k = 0u; k < PIX * DP4; k++) { acc[k] = vec4<f32>(0.0); }
    for (var c = 0u; c < D; c++) {
        let row = (w.lh * p.hs + c * p.dp) / 4u;
        for (var e4 = 0u; e4 < DP4; e4++) {
            let cv = cw[row + e4];
            for (var k = 0u; k < PIX; k++) { acc[k * DP4 + e4] += q[k * D + c] * cv; }
        }
    }
    for (var k = 0u; k < PIX; k++) {
        let i = w.i0 + 64u * k;
        if i < p.n {
            for (var e = 0u; e < D; e++) { o[(bh * p.d + e) * p.n + i] = acc[k * DP4 + e / 4u][e % 4u]; }
        }
    }
}
