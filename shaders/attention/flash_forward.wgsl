// flash_forward.wgsl: softmax attention without the n² score matrix (FlashAttention's online softmax). Each
// invocation owns two query rows (2t, 2t + 1: every key row read from the window serves both) and walks the keys
// of this dispatch's uniform window, keeping per query the running max m, the running sum l and the
// unnormalised output acc in registers; a head with more keys than one window takes several dispatches that
// continue the state through o and stats.
//
// math:   s_j = scale·Σ_c q[c, i]·k[c, j]; m' = max(m, s_j); l = l·e^(m − m') + e^(s_j − m');
//         acc = acc·e^(m − m') + e^(s_j − m')·v[·, j]; m = m'. Last window: o[·, i] = acc / l, lse_i = m + ln l
//         (saved for the backward). Equals softmax_j(s)·vᵀ exactly in exact arithmetic.
// layout: qkv (B, 3·heads·d, n) (q of head h at channel h·d + c); o (B·heads, d, n) = (B, heads·d, H, W);
//         stats (B·heads, n, 2): (m, l) between windows, (lse, l) after the last; window: rows of 2d floats,
//         k then v (flash_pack_kv.wgsl), as vec4
// grid:   @workgroup_size(WG), one invocation per two queries of head bh (the second clamped and not stored
//         past n), linear id; d/4 = D4 vec4 per vector
// binds:  @group(0) 0 params (uniform), 1 qkv, 2 o (rw), 3 stats (rw), 4 kv window (uniform block)

struct Params {
    n: u32,        // tokens (H·W)
    d: u32,        // dim_head (a multiple of 4, at most 64: D4 = d / 4)
    heads: u32,
    bh: u32,       // the (batch·heads + head) this dispatch works on
    _p0: u32,
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

// one query's state: its scaled q, unnormalised output, running max and sum
struct Row {
    q: array<vec4<f32>, DMAX4>,
    acc: array<vec4<f32>, DMAX4>,
    m: f32,
    l: f32,
}

fn load_row(i: u32, qch: u32) -> Row {
    var r: Row;
    for (var c4 = 0u; c4 < D4; c4++) {
        let c = 4u * c4;
        r.q[c4] = p.scale * vec4<f32>(qkv[(qch + c) * p.n + i], qkv[(qch + c + 1u) * p.n + i],
                                      qkv[(qch + c + 2u) * p.n + i], qkv[(qch + c + 3u) * p.n + i]);
    }
    let ob = p.bh * p.d * p.n + i;
    let sb = (p.bh * p.n + i) * 2u;
    r.m = -1e30;
    r.l = 0.0;
    if p.first == 0u {
        r.m = stats[sb];
        r.l = stats[sb + 1u];
        for (var c4 = 0u; c4 < D4; c4++) {
            let c = 4u * c4;
            r.acc[c4] = vec4<f32>(o[ob + c * p.n], o[ob + (c + 1u) * p.n], o[ob + (c + 2u) * p.n], o[ob + (c + 3u) * p.n]);
        }
    } else {
        for (var c4 = 0u; c4 < D4; c4++) { r.acc[c4] = vec4<f32>(0.0); }
    }
    return r;
}

fn store_row(i: u32, r: Row) {
    let ob = p.bh * p.d * p.n + i;
    let sb = (p.bh * p.n + i) * 2u;
    var inv = 1.0;
    if p.last != 0u {
        inv = 1.0 / r.l;
        stats[sb] = r.m + log(r.l);
    } else {
        stats[sb] = r.m;
    }
    stats[sb + 1u] = r.l;
    for (var c4 = 0u; c4 < D4; c4++) {
        let c = 4u * c4;
        let v = r.acc[c4] * inv;
        o[ob + c * p.n] = v.x;
        o[ob + (c + 1u) * p.n] = v.y;
        o[ob + (c + 2u) * p.n] = v.z;
        o[ob + (c + 3u) * p.n] = v.w;
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let t = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    let i0 = 2u * t;
    // guard: invocations past the last query
    if i0 >= p.n { return; }
    let live1 = i0 + 1u < p.n;
    let i1 = min(i0 + 1u, p.n - 1u);
    let b = p.bh / p.heads;
    let head = p.bh % p.heads;
    let qch = b * 3u * p.heads * p.d + head * p.d;
    var r0 = load_row(i0, qch);
    var r1 = load_row(i1, qch);
    for (var jj = 0u; jj < p.nk; jj++) {
        let kb = jj * 2u * D4;  // this key's row in the window, in vec4s: k then v
        var s0 = 0.0;
        var s1 = 0.0;
        for (var c4 = 0u; c4 < D4; c4++) {
            let kv4 = kv[kb + c4];
            s0 += dot(r0.q[c4], kv4);
            s1 += dot(r1.q[c4], kv4);
        }
        let m0 = max(r0.m, s0);
        let m1 = max(r1.m, s1);
        let corr0 = exp(r0.m - m0);
        let corr1 = exp(r1.m - m1);
        let p0 = exp(s0 - m0);
        let p1 = exp(s1 - m1);
        r0.l = r0.l * corr0 + p0;
        r1.l = r1.l * corr1 + p1;
        for (var c4 = 0u; c4 < D4; c4++) {
            let v4 = kv[kb + D4 + c4];
            r0.acc[c4] = r0.acc[c4] * corr0 + p0 * v4;
            r1.acc[c4] = r1.acc[c4] * corr1 + p1 * v4;
        }
        r0.m = m0;
        r1.m = m1;
    }
    store_row(i0, r0);
    if live1 { store_row(i1, r1); }
}
