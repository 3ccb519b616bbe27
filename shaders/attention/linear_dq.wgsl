// linear_dq.wgsl: linear attention's q gradient and the split-K partials of its context gradient, in one pass
// over q and dout. Each workgroup owns one chunk of pixels of one head (of this dispatch's window of heads) and
// one block of eb4·4 output channels; its invocation l takes the pixels i0 + l, i0 + l + 64, ... For each it
// recomputes q̂ (softmax over the d features), accumulates q̂·doutᵀ for its block, and (block 0 only) pushes
// dout back through the context, read from a uniform window of head blocks, and through the softmax.
// linear_merge.wgsl:backward sums the 64·nchunk partials of a head.
//
// math:   q̂ = softmax_c(q[·, i]); acc_J[c, e] = Σ_{i∈J} scale·q̂[c, i]·dout[e, i] over an invocation's pixels J
//         (dC = Σ_J acc_J, since out[e, i] = Σ_c C[c, e]·scale·q̂[c, i]); dq̂[c] = scale·Σ_e C[c, e]·dout[e, i];
//         dq[c, i] = q̂[c]·(dq̂[c] − Σ_c' q̂[c']·dq̂[c'])
// layout: qkv (B, 3·heads·d, n); dout (B·heads, d, n); dqkv like qkv (this kernel writes the q channels); part as
//         in linear_context.wgsl (only acc_J written); window: heads bh0 .. bh0 + nbw of linear_merge.wgsl:
//         forward's blocks (hs floats each, C rows of dp)
// grid:   @workgroup_size(64), one workgroup per (head of the window, chunk, block), block fastest, linear id;
//         registers: acc of d·eb4 ≤ 128 vec4 (D, DP4 and EB4 are pipeline constants: the feature loops unroll)
// binds:  @group(0) 0 params (uniform), 1 qkv, 2 dout, 3 dqkv (rw), 4 part (rw), 5 cw window (uniform block)
// unroll: the loops marked `// unroll` are expanded for each D, DP4 and EB4 (src/gpu/specialize.rs), so the private
//         arrays are indexed by constants and live in registers (llvmpipe leaves them loops: measured,
//         docs/bench-history.md).

// (struct Params and its binding 0: linear_common.wgsl)

const DMAX: u32 = 64u;
const DMAX4: u32 = 16u;
// the loop bounds are pipeline constants, so that the compiler unrolls the feature loops and keeps the arrays in
// registers (indexed by a runtime counter they would be memory, read and written lane by lane on llvmpipe)
override D: u32 = 16u;   // = p.d
override DP4: u32 = 4u;  // = p.dp / 4
override EB4: u32 = 4u;  // = p.eb4

@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>;
@group(0) @binding(5) var<uniform> cw: array<vec4<f32>, 4096>;

// dout[e, i] of head bh, 0 past d
fn g_at(bh: u32, e: u32, i: u32) -> f32 {
    if e < D { return dout[(bh * p.d + e) * p.n + i]; }
    return 0.0;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let g = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: workgroups past the window's last (head, chunk, block)
    if g >= p.nbw * p.nchunk * p.neb { return; }
    let eb = g % p.neb;
    let chunk = (g / p.neb) % p.nchunk;
    let lh = g / (p.neb * p.nchunk);
    let bh = p.bh0 + lh;
    let qch = head_channel(0u, bh);
    let i0 = chunk * p.chunk;
    let i1 = min(i0 + p.chunk, p.n);
    let e0 = eb * EB4 * 4u;
    var acc: array<vec4<f32>, 2u * DMAX>; // [c·eb4 + b4]
    // unroll
    for (var k = 0u; k < D * EB4; k++) { acc[k] = vec4<f32>(0.0); }
    for (var i = i0 + li; i < i1; i += 64u) {
        var q: array<f32, DMAX>;
        var mx = -3.4e38;
        // unroll
        for (var c = 0u; c < D; c++) {
            q[c] = qkv[(qch + c) * p.n + i];
            mx = max(mx, q[c]);
        }
        var s = 0.0;
        // unroll
        for (var c = 0u; c < D; c++) {
            q[c] = exp(q[c] - mx);
            s += q[c];
        }
        // unroll
        for (var c = 0u; c < D; c++) { q[c] /= s; }
        var gb: array<vec4<f32>, 16>;
        // unroll
        for (var b4 = 0u; b4 < EB4; b4++) {
            let e = e0 + 4u * b4;
            gb[b4] = vec4<f32>(g_at(bh, e, i), g_at(bh, e + 1u, i), g_at(bh, e + 2u, i), g_at(bh, e + 3u, i));
        }
        // unroll
        for (var c = 0u; c < D; c++) {
            let qc = p.scale * q[c];
            // unroll
            for (var b4 = 0u; b4 < EB4; b4++) { acc[c * EB4 + b4] += qc * gb[b4]; }
        }
        if eb == 0u {
            var ga: array<vec4<f32>, DMAX4>;
            // unroll
            for (var e4 = 0u; e4 < DP4; e4++) {
                if e4 < EB4 {
                    ga[e4] = gb[e4];
                } else {
                    let e = 4u * e4;
                    ga[e4] = vec4<f32>(g_at(bh, e, i), g_at(bh, e + 1u, i), g_at(bh, e + 2u, i), g_at(bh, e + 3u, i));
                }
            }
            var dq: array<f32, DMAX>;
            var dot_qdq = 0.0;
            // unroll
            for (var c = 0u; c < D; c++) {
                let row = (lh * p.hs + c * p.dp) / 4u;
                var a = vec4<f32>(0.0);
                // unroll
                for (var e4 = 0u; e4 < DP4; e4++) { a += cw[row + e4] * ga[e4]; }
                dq[c] = p.scale * (a.x + a.y + a.z + a.w);
                dot_qdq += q[c] * dq[c];
            }
            // unroll
            for (var c = 0u; c < D; c++) { dqkv[(qch + c) * p.n + i] = q[c] * (dq[c] - dot_qdq); }
        }
    }
    let base = ((bh * p.nchunk + chunk) * 64u + li) * p.ps + 2u * p.d;
    // unroll
    for (var c = 0u; c < D; c++) {
        // unroll
        for (var b4 = 0u; b4 < EB4; b4++) {
            // unroll
            for (var k = 0u; k < 4u; k++) {
                let e = e0 + 4u * b4 + k;
                if e < D { part[base + c * p.d + e] = acc[c * EB4 + b4][k]; }
            }
        }
    }
}
