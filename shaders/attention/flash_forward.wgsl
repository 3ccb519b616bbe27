// flash_forward.wgsl: softmax attention without the n² score matrix (FlashAttention's online softmax). Each
// invocation owns one query row and walks the keys of this dispatch's uniform window, keeping the running max m,
// the running sum l and the unnormalised output acc in registers; a head with more keys than one window takes
// several dispatches that continue the state through o and stats.
//
// math:   s_j = scale·Σ_c q[c, i]·k[c, j]; m' = max(m, s_j); l = l·e^(m − m') + e^(s_j − m');
//         acc = acc·e^(m − m') + e^(s_j − m')·v[·, j]; m = m'. Last window: o[·, i] = acc / l, lse_i = m + ln l
//         (saved for the backward). Equals softmax_j(s)·vᵀ exactly in exact arithmetic.
// layout: qkv (B, 3·heads·d, n) (q of head h at channel h·d + c); o (B·heads, d, n) = (B, heads·d, H, W);
//         stats (B·heads, n, 2): (m, l) between windows, (lse, l) after the last; window: rows of 2d floats,
//         k then v (flash_pack_kv.wgsl), as vec4
// grid:   @workgroup_size(WG), one invocation per query of head bh, linear id; d/4 = D4 vec4 per vector
// binds:  @group(0) 0 params (uniform), 1 qkv, 2 o (rw), 3 stats (rw), 4 kv window (uniform block)

struct Params {
    n: u32,        // tokens (H·W)
    d: u32,        // dim_head (a multiple of 4, at most 64: D4 = d / 4)
    heads: u32,
    bh: u32,       // the (batch·heads + head) this dispatch works on
    j0: u32,       // first row of this dispatch's uniform window (a key for forward / dq, a query for dkv)
    nk: u32,       // rows in the window
    first: u32,    // 1: the first window (start the running state), else continue it
    last: u32,     // 1: the last window (finish: normalise, write the log-sum-exp)
    scale: f32,    // dim_head^-1/2
    kv_base: u32,  // floats per (batch·head) in the packed K/V buffer (n·2d rounded up to 64)
    q_base: u32,   // floats per (batch·head) in the packed Q/dO buffer (n·(2d + 4) rounded up to 64)
    nbh: u32,      // batch·heads
}

override WG: u32 = 16u;
override D4: u32 = 4u;
const DMAX4: u32 = 16u; // d ≤ 64

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<uniform> kv: array<vec4<f32>, 4096>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    // guard: invocations past the last query
    if i >= p.n { return; }
    let b = p.bh / p.heads;
    let head = p.bh % p.heads;
    let qch = b * 3u * p.heads * p.d + head * p.d;
    var q: array<vec4<f32>, DMAX4>;
    var acc: array<vec4<f32>, DMAX4>;
    for (var c4 = 0u; c4 < D4; c4++) {
        let c = 4u * c4;
        q[c4] = p.scale * vec4<f32>(qkv[(qch + c) * p.n + i], qkv[(qch + c + 1u) * p.n + i],
                                    qkv[(qch + c + 2u) * p.n + i], qkv[(qch + c + 3u) * p.n + i]);
    }
    let ob = p.bh * p.d * p.n + i;  // o[bh, c, i] = o[ob + c·n]
    let sb = (p.bh * p.n + i) * 2u;
    var m = -1e30;
    var l = 0.0;
    if p.first == 0u {
        m = stats[sb];
        l = stats[sb + 1u];
        for (var c4 = 0u; c4 < D4; c4++) {
            let c = 4u * c4;
            acc[c4] = vec4<f32>(o[ob + c * p.n], o[ob + (c + 1u) * p.n], o[ob + (c + 2u) * p.n], o[ob + (c + 3u) * p.n]);
        }
    } else {
        for (var c4 = 0u; c4 < D4; c4++) { acc[c4] = vec4<f32>(0.0); }
    }
    for (var jj = 0u; jj < p.nk; jj++) {
        let kb = jj * 2u * D4;  // this key's row in the window, in vec4s: k then v
        var s = 0.0;
        for (var c4 = 0u; c4 < D4; c4++) { s += dot(q[c4], kv[kb + c4]); }
        let mn = max(m, s);
        let corr = exp(m - mn);
        let pj = exp(s - mn);
        l = l * corr + pj;
        for (var c4 = 0u; c4 < D4; c4++) { acc[c4] = acc[c4] * corr + pj * kv[kb + D4 + c4]; }
        m = mn;
    }
    var inv = 1.0;
    if p.last != 0u {
        inv = 1.0 / l;
        stats[sb] = m + log(l);
    } else {
        stats[sb] = m;
    }
    stats[sb + 1u] = l;
    for (var c4 = 0u; c4 < D4; c4++) {
        let c = 4u * c4;
        let r = acc[c4] * inv;
        o[ob + c * p.n] = r.x;
        o[ob + (c + 1u) * p.n] = r.y;
        o[ob + (c + 2u) * p.n] = r.z;
        o[ob + (c + 3u) * p.n] = r.w;
    }
}
