// flash_forward.wgsl: softmax attention without the n² score matrix (FlashAttention's online softmax). Each
// invocation owns QR query rows (QR·t .. QR·t + QR − 1: every key row read from the window serves all of them)
// and walks the keys of this dispatch's uniform window in blocks of four, keeping per query the running max m,
// the running sum l and the unnormalised output acc in registers; a head with more keys than one window takes
// several dispatches that continue the state through o and stats.
//
// math:   s_j = scale·Σ_c q[c, i]·k[c, j]. Per block J of four keys: m' = max(m, max_J s_j);
//         l = l·e^(m − m') + Σ_J e^(s_j − m'); acc = acc·e^(m − m') + Σ_J e^(s_j − m')·v[·, j]; m = m' (the
//         window's last nk mod 4 keys one at a time). Last window: o[·, i] = acc / l, lse_i = m + ln l (saved
//         for the backward). Equals softmax_j(s)·vᵀ exactly in exact arithmetic. The block costs one rescale
//         and 1.25 exponentials per (query, key) instead of one rescale and two.
// layout: qkv (B, 3·heads·d, n) (q of head h at channel h·d + c); o (B·heads, d, n) = (B, heads·d, H, W);
//         stats (B·heads, n, 2): (m, l) between windows, (lse, l) after the last; window: rows of 2d floats,
//         k then v (flash_pack_kv.wgsl), as vec4
// grid:   @workgroup_size(WG), one invocation per QR queries of head bh (those past n clamped to the last and
//         not stored), linear id; d/4 = D4 vec4 per vector
// binds:  @group(0) 0 params (uniform), 1 qkv, 2 o (rw), 3 stats (rw), 4 kv window (uniform block)
// pieces: the entry point and the window reads (`win_rows`: a block's ROWV = 8·D4 vec4) come from
//         window/plain.wgsl (every invocation reads them) or window/subgroup.wgsl (each lane reads ROWV / SG of
//         them and subgroupBroadcast hands them round: the same values, so the same bits). No early return, so
//         broadcasts see whole subgroups: invocations past n compute clamped duplicates and store nothing.
// unroll: the loops marked `// unroll` are expanded for each D4 and QR (src/gpu/specialize.rs), so the private
//         arrays are indexed by constants and live in registers (llvmpipe leaves them loops: measured,
//         docs/bench-history.md).

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
override QR: u32 = 2u;  // queries per invocation, 1 ..= QMAX
const QMAX: u32 = 8u;
const DMAX4: u32 = 16u; // d ≤ 64

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<uniform> win: array<vec4<f32>, 4096>; // the K/V window

// one query's state: its scaled q, unnormalised output, running max and sum
struct Row {
    q: array<vec4<f32>, DMAX4>,
    acc: array<vec4<f32>, DMAX4>,
    m: f32,
    l: f32,
}

fn load_row(i: u32, qch: u32) -> Row {
    var r: Row;
    // unroll
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
        // unroll
        for (var c4 = 0u; c4 < D4; c4++) {
            let c = 4u * c4;
            r.acc[c4] = vec4<f32>(o[ob + c * p.n], o[ob + (c + 1u) * p.n], o[ob + (c + 2u) * p.n], o[ob + (c + 3u) * p.n]);
        }
    } else {
        // unroll
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
    // unroll
    for (var c4 = 0u; c4 < D4; c4++) {
        let c = 4u * c4;
        let v = r.acc[c4] * inv;
        o[ob + c * p.n] = v.x;
        o[ob + (c + 1u) * p.n] = v.y;
        o[ob + (c + 2u) * p.n] = v.z;
        o[ob + (c + 3u) * p.n] = v.w;
    }
}

// the block of four keys at window row jb: k then v of each, 2·D4 vec4 a key (what win_rows returns)
override ROWV: u32 = 32u; // 8·D4 (the host sets it)
const ROW_MAX: u32 = 8u * DMAX4;
struct WinRows {
    e: array<vec4<f32>, ROW_MAX>,
}

// invocation t of the dispatch (its linear id), sl its subgroup lane (0 for the plain piece)
fn run(t: u32, sl: u32) {
    let i0 = QR * t; // past the last query: clamped loads, no stores
    let b = p.bh / p.heads;
    let head = p.bh % p.heads;
    let qch = b * 3u * p.heads * p.d + head * p.d;
    var r: array<Row, QMAX>;
    // unroll
    for (var u = 0u; u < QR; u++) { r[u] = load_row(min(i0 + u, p.n - 1u), qch); }
    // blocks of four keys: one max and one rescale of each running state per block, four exponentials
    let nb4 = p.nk / 4u * 4u;
    for (var jb = 0u; jb < nb4; jb += 4u) {
        let kb = jb * 2u * D4;  // the block's first key row in the window, in vec4s: k then v, 2·D4 a row
        let blk = win_rows(kb, sl);
        var s: array<vec4<f32>, QMAX>;
        // unroll
        for (var u = 0u; u < QR; u++) { s[u] = vec4<f32>(0.0); }
        // unroll
        for (var c4 = 0u; c4 < D4; c4++) {
            let ka = blk.e[c4];
            let kb1 = blk.e[2u * D4 + c4];
            let kc = blk.e[4u * D4 + c4];
            let kd = blk.e[6u * D4 + c4];
            // unroll
            for (var u = 0u; u < QR; u++) {
                let q = r[u].q[c4];
                s[u] += vec4<f32>(dot(q, ka), dot(q, kb1), dot(q, kc), dot(q, kd));
            }
        }
        var corr: array<f32, QMAX>;
        // unroll
        for (var u = 0u; u < QR; u++) {
            let m = max(r[u].m, max(max(s[u].x, s[u].y), max(s[u].z, s[u].w)));
            corr[u] = exp(r[u].m - m);
            s[u] = exp(s[u] - m);  // now the block's probabilities
            r[u].l = r[u].l * corr[u] + (s[u].x + s[u].y) + (s[u].z + s[u].w);
            r[u].m = m;
        }
        // unroll
        for (var c4 = 0u; c4 < D4; c4++) {
            let va = blk.e[D4 + c4];
            let vb = blk.e[3u * D4 + c4];
            let vc = blk.e[5u * D4 + c4];
            let vd = blk.e[7u * D4 + c4];
            // unroll
            for (var u = 0u; u < QR; u++) {
                let e = s[u];
                r[u].acc[c4] = r[u].acc[c4] * corr[u] + e.x * va + e.y * vb + e.z * vc + e.w * vd;
            }
        }
    }
    // the window's last nk mod 4 keys, one at a time
    for (var jj = nb4; jj < p.nk; jj++) {
        let kb = jj * 2u * D4;  // this key's row in the window, in vec4s: k then v
        // unroll
        for (var u = 0u; u < QR; u++) {
            var sc = 0.0;
            // unroll
            for (var c4 = 0u; c4 < D4; c4++) { sc += dot(r[u].q[c4], win[kb + c4]); }
            let m = max(r[u].m, sc);
            let corr1 = exp(r[u].m - m);
            let e = exp(sc - m);
            r[u].l = r[u].l * corr1 + e;
            // unroll
            for (var c4 = 0u; c4 < D4; c4++) { r[u].acc[c4] = r[u].acc[c4] * corr1 + e * win[kb + D4 + c4]; }
            r[u].m = m;
        }
    }
    // unroll
    for (var u = 0u; u < QR; u++) {
        if i0 + u < p.n { store_row(i0 + u, r[u]); }
    }
}
