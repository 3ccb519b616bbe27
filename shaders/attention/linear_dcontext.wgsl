// linear_dcontext.wgsl: the split-K partials of linear attention's context gradient dC = Σ_i scale·q̂·doutᵀ, in
// one pass over q and dout. Each workgroup owns one chunk of pixels of one head and one block of eb4·4 output
// channels; its invocation l takes the pixels i0 + l, i0 + l + 64, ... For each it recomputes q̂ (softmax over
// the d features) and accumulates q̂·doutᵀ for its block. linear_merge.wgsl:backward sums the 64·nchunk
// partials of a head; q's own gradient is linear_dq.wgsl's (per pixel, so that each context row it reads from
// the uniform window serves PIX pixels: in this kernel, one pixel an iteration, the same work ran 2.2× slower,
// docs/bench-history.md). With QUAD = 1 (n % 4 == 0) an invocation takes pixel quads i0 + 4l, i0 + 4l + 256, ...
// and reads each q and dout row's four values as one vec4, the softmax lane-wise over the quad (why:
// linear_context.wgsl).
//
// math:   q̂ = softmax_c(q[·, i]); acc_J[c, e] = Σ_{i∈J} scale·q̂[c, i]·dout[e, i] over an invocation's pixels J
//         (dC = Σ_J acc_J, since out[e, i] = Σ_c C[c, e]·scale·q̂[c, i])
// layout: qkv (B, 3·heads·d, n); dout (B·heads, d, n); part as in linear_context.wgsl (only acc_J written)
// grid:   @workgroup_size(64), one workgroup per (head, chunk, block), block fastest, linear id;
//         registers: acc of d·eb4 ≤ 128 vec4 (D, EB4 and DP4 are pipeline constants: the feature loops unroll)
// binds:  @group(0) 0 params (uniform), 1 qkv, 2 dout, 3 qkv and 4 dout again as vec4 (QUAD), 5 part (rw, vec4)
// unroll: the loops marked `// unroll` are expanded for each D and EB4 (src/gpu/specialize.rs), so the private
//         arrays are indexed by constants and live in registers (llvmpipe leaves them loops: measured,
//         docs/bench-history.md).

// (struct Params and its binding 0: linear_common.wgsl)

const DMAX: u32 = 64u;
// the loop bounds are pipeline constants, so that the compiler unrolls the feature loops and keeps the arrays in
// registers (indexed by a runtime counter they would be memory, read and written lane by lane on llvmpipe)
override D: u32 = 16u;   // = p.d
override EB4: u32 = 4u;  // = p.eb4
override QUAD: u32 = 0u; // 1: four neighbouring pixels a step, read as vec4 (n % 4 == 0)
override DP4: u32 = 4u;  // = p.dp / 4: vec4 per row of a partial

@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> qkv4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> dout4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> part: array<vec4<f32>>;

// dout[e, i] of head bh, 0 past d
fn g_at(bh: u32, e: u32, i: u32) -> f32 {
    if e < D { return dout[(bh * p.d + e) * p.n + i]; }
    return 0.0;
}

// g_at for the quad of pixels i .. i + 3 (QUAD: i % 4 == 0), one vec4
fn g_quad(bh: u32, e: u32, i: u32) -> vec4<f32> {
    if e < D { return dout4[((bh * p.d + e) * p.n + i) / 4u]; }
    return vec4<f32>(0.0);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let g = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: workgroups past the last (head, chunk, block)
    if g >= p.nbh * p.nchunk * p.neb { return; }
    let eb = g % p.neb;
    let chunk = (g / p.neb) % p.nchunk;
    let bh = g / (p.neb * p.nchunk);
    let qch = head_channel(0u, bh);
    let i0 = chunk * p.chunk;
    let i1 = min(i0 + p.chunk, p.n);
    let e0 = eb * EB4 * 4u;
    var acc: array<vec4<f32>, 2u * DMAX>; // [c·eb4 + b4]
    // unroll
    for (var k = 0u; k < D * EB4; k++) { acc[k] = vec4<f32>(0.0); }
    if QUAD == 0u {
        for (var i = i0 + li; i < i1; i += 64u) {
            let qe = q_exp(qch, i); // linear_qexp.wgsl
            var q = qe.e;
            let f = p.scale / qe.s;
            // unroll
            for (var c = 0u; c < D; c++) { q[c] *= f; }
            var gb: array<vec4<f32>, 16>;
            // unroll
            for (var b4 = 0u; b4 < EB4; b4++) {
                let e = e0 + 4u * b4;
                gb[b4] = vec4<f32>(g_at(bh, e, i), g_at(bh, e + 1u, i), g_at(bh, e + 2u, i), g_at(bh, e + 3u, i));
            }
            // unroll
            for (var c = 0u; c < D; c++) {
                // unroll
                for (var b4 = 0u; b4 < EB4; b4++) { acc[c * EB4 + b4] += q[c] * gb[b4]; }
            }
        }
    } else {
        let n4 = p.n / 4u;
        for (var i = i0 + 4u * li; i < i1; i += 256u) {
            // q̂ of the quad's four pixels, lane-wise: q[c] holds feature c of pixels i .. i + 3
            var q: array<vec4<f32>, DMAX>;
            var mx = vec4<f32>(-3.4e38);
            // unroll
            for (var c = 0u; c < D; c++) {
                q[c] = qkv4[(qch + c) * n4 + i / 4u];
                mx = max(mx, q[c]);
            }
            var s = vec4<f32>(0.0);
            // unroll
            for (var c = 0u; c < D; c++) {
                q[c] = exp(q[c] - mx);
                s += q[c];
            }
            let f = p.scale / s;
            // unroll
            for (var c = 0u; c < D; c++) { q[c] *= f; }
            // dout channel e0 + k at the quad's pixels (0 past d)
            var gq: array<vec4<f32>, 64>;
            // unroll
            for (var k = 0u; k < EB4 * 4u; k++) { gq[k] = g_quad(bh, e0 + k, i); }
            // unroll
            for (var u = 0u; u < 4u; u++) {
                // unroll
                for (var c = 0u; c < D; c++) {
                    // unroll
                    for (var b4 = 0u; b4 < EB4; b4++) {
                        let gb = vec4<f32>(gq[4u * b4][u], gq[4u * b4 + 1u][u], gq[4u * b4 + 2u][u], gq[4u * b4 + 3u][u]);
                        acc[c * EB4 + b4] += q[c][u] * gb;
                    }
                }
            }
        }
    }
    // acc_J as vec4 rows of dp (columns past d zero: g_quad's and g_at's zeros)
    let base = ((bh * p.nchunk + chunk) * 64u + li) * (p.ps / 4u) + 2u * DP4;
    // unroll
    for (var c = 0u; c < D; c++) {
        // unroll
        for (var b4 = 0u; b4 < EB4; b4++) {
            let e4 = eb * EB4 + b4;
            if e4 < DP4 { part[base + c * DP4 + e4] = acc[c * EB4 + b4]; }
        }
    }
}
