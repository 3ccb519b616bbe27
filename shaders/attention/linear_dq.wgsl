// linear_dq.wgsl: linear attention's q gradient, PIX pixels per invocation: dout pushed back through the head's
// context (read from a uniform window of linear_merge.wgsl:forward's head blocks, each row serving PIX pixels)
// and through q's softmax over the d features.
//
// math:   q̂[c] = e^(q[c, i] − max_c q[·, i]) / Σ_c e^(q[c, i] − max); dq̂[c] = scale·Σ_e C[c, e]·dout[e, i]
//         (out[e, i] = Σ_c C[c, e]·scale·q̂[c]); dq[c, i] = q̂[c]·(dq̂[c] − Σ_c' q̂[c']·dq̂[c'])
// layout: qkv (B, 3·heads·d, n); dout (B·heads, d, n); dqkv like qkv (this kernel writes the q channels);
//         window: heads bh0 .. bh0 + nbw of blocks of hs floats, C (d rows of dp, zero-padded past d)
// grid:   @workgroup_size(64); workgroup g = (head of the window, block of 64·PIX pixels), linear id; invocation
//         li of block blk owns pixels blk·64·PIX + li + 64·k, k < PIX (neighbouring invocations, neighbouring
//         pixels)
// binds:  @group(0) 0 params (uniform), 1 qkv, 2 dout, 3 dqkv (rw), 4 win (uniform block: the context window)
// pieces: the entry point and the context reads (`win_rows`: row c of a head's context, ROWV = DP4 vec4) come
//         from shaders/window/plain.wgsl or shaders/window/subgroup.wgsl (one read a lane, broadcast: the same
//         bits); the early return is per workgroup, so subgroups stay whole
// unroll: the loops marked `// unroll` are expanded for each D, DP4 and PIX (src/gpu/specialize.rs), so the private
//         arrays are indexed by constants and live in registers (llvmpipe leaves them loops: measured,
//         docs/bench-history.md).

// (struct Params and its binding 0: linear_common.wgsl)

@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(4) var<uniform> win: array<vec4<f32>, 4096>;

// (the pixel grid, D, DP4, PIX, where_am_i and the window rows WG, ROWV, WinRows: linear_pixels.wgsl; q_exp:
// linear_qexp.wgsl)

// dout[e, i] of head bh, 0 past d
fn g_at(bh: u32, e: u32, i: u32) -> f32 {
    if e < D { return dout[(bh * p.d + e) * p.n + i]; }
    return 0.0;
}

// invocation t of the dispatch (its linear id), sl its subgroup lane (0 for the plain piece)
fn run(t: u32, sl: u32) {
    let w = where_am_i(t / WG, t % WG);
    // guard: workgroups past the window's last block
    if !w.ok { return; }
    let bh = p.bh0 + w.lh;
    let qch = head_channel(0u, bh);
    var ga: array<vec4<f32>, 64>; // [k·DP4 + e4]: dout of pixel k
    // unroll
    for (var k = 0u; k < PIX; k++) {
        let i = pix(w, k);
        // unroll
        for (var e4 = 0u; e4 < DP4; e4++) {
            let e = 4u * e4;
            ga[k * DP4 + e4] = vec4<f32>(g_at(bh, e, i), g_at(bh, e + 1u, i), g_at(bh, e + 2u, i), g_at(bh, e + 3u, i));
        }
    }
    var dq: array<f32, 256>; // [k·D + c]: dq̂ of pixel k
    // unroll
    for (var c = 0u; c < D; c++) {
        let row = (w.lh * p.hs + c * p.dp) / 4u;
        let cr = win_rows(row, sl);
        var a: array<vec4<f32>, PMAX>;
        // unroll
        for (var k = 0u; k < PIX; k++) { a[k] = vec4<f32>(0.0); }
        // unroll
        for (var e4 = 0u; e4 < DP4; e4++) {
            let cv = cr.e[e4];
            // unroll
            for (var k = 0u; k < PIX; k++) { a[k] += cv * ga[k * DP4 + e4]; }
        }
        // unroll
        for (var k = 0u; k < PIX; k++) { dq[k * D + c] = p.scale * (a[k].x + a[k].y + a[k].z + a[k].w); }
    }
    // unroll
    for (var k = 0u; k < PIX; k++) {
        let i = pix(w, k);
        let qe = q_exp(qch, i);
        var q = qe.e;
        var dot_qdq = 0.0;
        // unroll
        for (var c = 0u; c < D; c++) {
            q[c] /= qe.s;
            dot_qdq += q[c] * dq[k * D + c];
        }
        if w.i0 + 64u * k < p.n {
            // unroll
            for (var c = 0u; c < D; c++) { dqkv[(qch + c) * p.n + i] = q[c] * (dq[k * D + c] - dot_qdq); }
        }
    }
}
