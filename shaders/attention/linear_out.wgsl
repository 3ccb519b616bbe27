// linear_out.wgsl: linear attention's output, PIX pixels per invocation: q's column softmaxed over the d
// features, scaled, and multiplied by the head's context, read from a uniform window of head blocks.
//
// math:   q̂[c] = scale·e^(q[c, i] − max_c q[·, i]) / Σ_c e^(q[c, i] − max); out[e, i] = Σ_c C[c, e]·q̂[c]
// layout: qkv (B, 3·heads·d, n) (q of head h at channel h·d + c); out (B·heads, d, n) = (B, heads·d, H, W);
//         window: heads bh0 .. bh0 + nbw of linear_merge.wgsl:forward's blocks (hs floats each, C rows of dp)
// grid:   @workgroup_size(64); workgroup g = (head of the window, block of 64·PIX pixels), linear id; invocation
//         li of block blk owns pixels blk·64·PIX + li + 64·k, k < PIX (neighbouring invocations, neighbouring
//         pixels), each context entry read from the window serving PIX pixels
// binds:  @group(0) 0 params (uniform), 1 qkv, 2 out (rw), 3 win (uniform block: the context window)
// pieces: the entry point and the context reads (`win_rows`: row c of a head's context, ROWV = DP4 vec4) come
//         from shaders/window/plain.wgsl or shaders/window/subgroup.wgsl (one read a lane, broadcast: the same
//         bits); the early return is per workgroup, so subgroups stay whole
// unroll: the loops marked `// unroll` are expanded for each D, DP4 and PIX (src/gpu/specialize.rs), so the private
//         arrays are indexed by constants and live in registers (llvmpipe leaves them loops: measured,
//         docs/bench-history.md).

// (struct Params and its binding 0: linear_common.wgsl)

@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;
@group(0) @binding(3) var<uniform> win: array<vec4<f32>, 4096>;

// (the pixel grid, D, DP4, PIX, where_am_i and the window rows WG, ROWV, WinRows: linear_pixels.wgsl; q_exp:
// linear_qexp.wgsl)

// invocation t of the dispatch (its linear id), sl its subgroup lane (0 for the plain piece)
fn run(t: u32, sl: u32) {
    let w = where_am_i(t / WG, t % WG);
    // guard: workgroups past the window's last block
    if !w.ok { return; }
    let bh = p.bh0 + w.lh;
    let qch = head_channel(0u, bh);
    var q: array<f32, 256>; // [k·D + c]: q̂ of pixel k, scaled
    // unroll
    for (var k = 0u; k < PIX; k++) {
        let qe = q_exp(qch, pix(w, k));
        // unroll
        for (var c = 0u; c < D; c++) { q[k * D + c] = qe.e[c] * (p.scale / qe.s); }
    }
    var acc: array<vec4<f32>, 64>; // [k·DP4 + e4]
    // unroll
    for (var k = 0u; k < PIX * DP4; k++) { acc[k] = vec4<f32>(0.0); }
    // unroll
    for (var c = 0u; c < D; c++) {
        let row = (w.lh * p.hs + c * p.dp) / 4u;
        let cr = win_rows(row, sl);
        // unroll
        for (var e4 = 0u; e4 < DP4; e4++) {
            let cv = cr.e[e4];
            // unroll
            for (var k = 0u; k < PIX; k++) { acc[k * DP4 + e4] += q[k * D + c] * cv; }
        }
    }
    // unroll
    for (var k = 0u; k < PIX; k++) {
        let i = w.i0 + 64u * k;
        if i < p.n {
            // unroll
            for (var e = 0u; e < D; e++) { o[(bh * p.d + e) * p.n + i] = acc[k * DP4 + e / 4u][e % 4u]; }
        }
    }
}
