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
// binds:  @group(0) 0 params (uniform), 1 qkv, 2 dqkv (rw), 3 win (uniform block: the dC window)
// pieces: the entry point and the context-gradient reads (`win_rows`: row c of dC, ROWV = DP4 vec4) come from
//         shaders/window/plain.wgsl or shaders/window/subgroup.wgsl (one read a lane, broadcast: the same bits);
//         the early return is per workgroup, so subgroups stay whole
// unroll: the loops marked `// unroll` are expanded for each D, DP4 and PIX (src/gpu/specialize.rs), so the private
//         arrays are indexed by constants and live in registers (llvmpipe leaves them loops: measured,
//         docs/bench-history.md).

// (struct Params and its binding 0: linear_common.wgsl)

@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(3) var<uniform> win: array<vec4<f32>, 4096>;

// (the pixel grid, D, DP4, PIX, where_am_i and the window rows WG, ROWV, WinRows: linear_pixels.wgsl)

// scalar k of the window
fn wat(k: u32) -> f32 { return win[k / 4u][k % 4u]; }

// v[e, j] from channel block ch, 0 past d
fn v_at(ch: u32, e: u32, j: u32) -> f32 {
    if e < D { return qkv[(ch + e) * p.n + j]; }
    return 0.0;
}

// invocation t of the dispatch (its linear id), sl its subgroup lane (0 for the plain piece)
fn run(t: u32, sl: u32) {
    let w = where_am_i(t / WG, t % WG);
    // guard: workgroups past the window's last block
    if !w.ok { return; }
    let bh = p.bh0 + w.lh;
    let kch = head_channel(1u, bh);
    let vch = head_channel(2u, bh);
    let hb = w.lh * p.hs;          // this head's block in the window
    let rb = hb + p.d * p.dp;      // r, then lse
    var v: array<vec4<f32>, 64>;   // [k·DP4 + e4]
    var dv: array<vec4<f32>, 64>;
    // unroll
    for (var k = 0u; k < PIX; k++) {
        let j = pix(w, k);
        // unroll
        for (var e4 = 0u; e4 < DP4; e4++) {
            let e = 4u * e4;
            v[k * DP4 + e4] = vec4<f32>(v_at(vch, e, j), v_at(vch, e + 1u, j), v_at(vch, e + 2u, j), v_at(vch, e + 3u, j));
            dv[k * DP4 + e4] = vec4<f32>(0.0);
        }
    }
    // unroll
    for (var c = 0u; c < D; c++) {
        let lse = wat(rb + p.d + c);
        let r = wat(rb + c);
        let row = (hb + c * p.dp) / 4u;
        let dr = win_rows(row, sl);
        var kh: array<f32, PMAX>;
        var a: array<vec4<f32>, PMAX>;
        // unroll
        for (var k = 0u; k < PIX; k++) {
            kh[k] = exp(qkv[(kch + c) * p.n + pix(w, k)] - lse);
            a[k] = vec4<f32>(0.0);
        }
        // unroll
        for (var e4 = 0u; e4 < DP4; e4++) {
            let dc = dr.e[e4];
            // unroll
            for (var k = 0u; k < PIX; k++) {
                dv[k * DP4 + e4] += kh[k] * dc;
                a[k] += dc * v[k * DP4 + e4];
            }
        }
        // unroll
        for (var k = 0u; k < PIX; k++) {
            let j = w.i0 + 64u * k;
            if j < p.n { dqkv[(kch + c) * p.n + j] = kh[k] * (a[k].x + a[k].y + a[k].z + a[k].w - r); }
        }
    }
    // unroll
    for (var k = 0u; k < PIX; k++) {
        let j = w.i0 + 64u * k;
        if j < p.n {
            // unroll
            for (var e = 0u; e < D; e++) { dqkv[(vch + e) * p.n + j] = dv[k * DP4 + e / 4u][e % 4u]; }
        }
    }
}
