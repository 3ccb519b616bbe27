// linear_context.wgsl: linear attention's context k̂·vᵀ split over the pixels (split-K). Each workgroup owns one
// chunk of pixels of one head and one block of eb4·4 value channels; its invocation l takes the pixels
// j0 + l, j0 + l + 64, ... (so that neighbouring invocations read neighbouring addresses), walks them once with
// an online softmax (a running row maximum of k that rescales the sums when it grows) and writes its partial
// softmax state. With QUAD = 1 (n % 4 == 0) it takes the pixel quads j0 + 4l, j0 + 4l + 256, ... instead and
// reads each k and v row's four values as one vec4: on llvmpipe every storage access is a loop over the SIMD
// lanes paid per access (docs/llvmpipe-stores.md), and the k and v loads were ~60% of this kernel's time;
// linear_merge.wgsl:forward combines the 64·nchunk partials of a head.
//
// math:   head bh, k row c (< d), the pixel set J of one invocation: m_J[c] = max_{j∈J} k[c, j];
//         s_J[c] = Σ_J e^(k[c, j] − m_J[c]); acc_J[c, e] = Σ_J e^(k[c, j] − m_J[c])·v[e, j] (an empty J leaves
//         m_J = −3.4e38, s_J = acc_J = 0). Merged: C[c, e] = Σ_J acc_J[c, e]·e^(m_J − m) / Σ_J s_J·e^(m_J − m)
//         with m = max_J m_J, which is softmax_j(k)·vᵀ exactly in exact arithmetic.
// layout: qkv (B, 3·heads·d, n) (k of head h at channel heads·d + h·d + c, v at 2·heads·d + h·d + e);
//         part (B·heads, nchunk, 64) blocks of ps = 2·dp + d·dp floats (dp = d rounded up to a multiple of 4,
//         so that every row is whole vec4s): m_J (dp), s_J (dp), acc_J (d rows of dp), zero past d
// grid:   @workgroup_size(64), one workgroup per (bh, chunk, value block), value block fastest, linear id (the
//         chunk a multiple of 4 pixels, so a quad never straddles two);
//         registers: acc of d·eb4 ≤ 128 vec4 (D, EB4 and DP4 are pipeline constants: the feature loops unroll)
// binds:  @group(0) 0 params (uniform), 1 qkv, 2 qkv again as vec4 (QUAD), 3 part (rw, vec4)
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
@group(0) @binding(2) var<storage, read> qkv4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> part: array<vec4<f32>>;

// v[e, j] of the channel block starting at ch, 0 past the head's d channels
fn v_at(ch: u32, e: u32, j: u32) -> f32 {
    if e < D { return qkv[(ch + e) * p.n + j]; }
    return 0.0;
}

// v_at for the quad of pixels j .. j + 3 (QUAD: j % 4 == 0), one vec4
fn v_quad(ch: u32, e: u32, j: u32) -> vec4<f32> {
    if e < D { return qkv4[((ch + e) * p.n + j) / 4u]; }
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
    let kch = head_channel(1u, bh);
    let vch = head_channel(2u, bh);
    let j0 = chunk * p.chunk;
    let j1 = min(j0 + p.chunk, p.n);
    let e0 = eb * EB4 * 4u;
    var m: array<f32, DMAX>;
    var s: array<f32, DMAX>;
    var acc: array<vec4<f32>, 2u * DMAX>; // [c·eb4 + b4]
    // unroll
    for (var c = 0u; c < D; c++) {
        m[c] = -3.4e38;
        s[c] = 0.0;
        // unroll
        for (var b4 = 0u; b4 < EB4; b4++) { acc[c * EB4 + b4] = vec4<f32>(0.0); }
    }
    if QUAD == 0u {
        for (var j = j0 + li; j < j1; j += 64u) {
            var vv: array<vec4<f32>, 16>;
            // unroll
            for (var b4 = 0u; b4 < EB4; b4++) {
                let e = e0 + 4u * b4;
                vv[b4] = vec4<f32>(v_at(vch, e, j), v_at(vch, e + 1u, j), v_at(vch, e + 2u, j), v_at(vch, e + 3u, j));
            }
            // unroll
            for (var c = 0u; c < D; c++) {
                let x = qkv[(kch + c) * p.n + j];
                let rw = online(m[c], x);
                m[c] = max(m[c], x);
                s[c] = s[c] * rw.x + rw.y;
                // unroll
                for (var b4 = 0u; b4 < EB4; b4++) { acc[c * EB4 + b4] = acc[c * EB4 + b4] * rw.x + rw.y * vv[b4]; }
            }
        }
    } else {
        let n4 = p.n / 4u;
        for (var j = j0 + 4u * li; j < j1; j += 256u) {
            // value channel e0 + i at the quad's four pixels (0 past the head's d channels)
            var vq: array<vec4<f32>, 64>;
            // unroll
            for (var i = 0u; i < EB4 * 4u; i++) { vq[i] = v_quad(vch, e0 + i, j); }
            // unroll
            for (var c = 0u; c < D; c++) {
                let xq = qkv4[(kch + c) * n4 + j / 4u];
                // the quad's pixels in order, each as the scalar path's step
                // unroll
                for (var u = 0u; u < 4u; u++) {
                    let x = xq[u];
                    let rw = online(m[c], x);
                    m[c] = max(m[c], x);
                    s[c] = s[c] * rw.x + rw.y;
                    // unroll
                    for (var b4 = 0u; b4 < EB4; b4++) {
                        let vv = vec4<f32>(vq[4u * b4][u], vq[4u * b4 + 1u][u], vq[4u * b4 + 2u][u], vq[4u * b4 + 3u][u]);
                        acc[c * EB4 + b4] = acc[c * EB4 + b4] * rw.x + rw.y * vv;
                    }
                }
            }
        }
    }
    // the partial as vec4 (dp % 4 == 0): m and s zero past d (the arrays' zero values), acc's columns past d
    // zero (v_quad's and v_at's zeros)
    let base = ((bh * p.nchunk + chunk) * 64u + li) * (p.ps / 4u);
    if eb == 0u {
        // unroll
        for (var c4 = 0u; c4 < DP4; c4++) {
            part[base + c4] = vec4<f32>(m[4u * c4], m[4u * c4 + 1u], m[4u * c4 + 2u], m[4u * c4 + 3u]);
            part[base + DP4 + c4] = vec4<f32>(s[4u * c4], s[4u * c4 + 1u], s[4u * c4 + 2u], s[4u * c4 + 3u]);
        }
    }
    // unroll
    for (var c = 0u; c < D; c++) {
        // unroll
        for (var b4 = 0u; b4 < EB4; b4++) {
            let e4 = eb * EB4 + b4;
            if e4 < DP4 { part[base + 2u * DP4 + c * DP4 + e4] = acc[c * EB4 + b4]; }
        }
    }
}
