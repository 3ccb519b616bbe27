// flash_dq.wgsl: dq of the fused attention (FlashAttention-2's backward, query side): each invocation owns RR
// queries (RR·t .. RR·t + RR − 1: every key row read from the window serves all of them), recomputes their
// probabilities against this dispatch's window of keys from the saved log-sum-exp, and accumulates dq in
// registers; several windows accumulate through dqkv.
//
// math:   P_ij = e^(scale·q_i·k_j − lse_i); dP_ij = dO_i·v_j; dS_ij = P_ij·(dP_ij − D_i);
//         dq_i = scale·Σ_j dS_ij·k_j (D_i = dO_i·O_i, from flash_pack_qdo.wgsl)
// layout: qdo rows of 2d + 4 floats (q, dO, lse, D, 0, 0) per (bh, i) at bh·q_base + i·(2d + 4), read as vec4;
//         dqkv (B, 3·heads·d, n): dq of head h at channel h·d + c; window: rows of 2d floats (k, v) as vec4
// grid:   @workgroup_size(WG), one invocation per RR queries of head bh (those past n clamped to the last and
//         not stored), linear id
// binds:  @group(0) 0 params (uniform), 1 qdo, 2 dqkv (rw), 3 kv window (uniform block)
// pieces: the entry point and the window reads (`win_rows`: a key's ROWV = 2·D4 vec4, k then v) come from
//         window/plain.wgsl or window/subgroup.wgsl (flash_forward.wgsl says how); no early return.
// unroll: the loops marked `// unroll` are expanded for each D4 and RR (src/gpu/specialize.rs), so the private
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
override RR: u32 = 2u;  // queries per invocation, 1 ..= RMAX
const RMAX: u32 = 8u;
const DMAX4: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qdo: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(3) var<uniform> win: array<vec4<f32>, 4096>; // the K/V window
override ROWV: u32 = 8u; // 2·D4 (the host sets it)
const ROW_MAX: u32 = 2u * DMAX4;
struct WinRows {
    e: array<vec4<f32>, ROW_MAX>,
}

// one query's inputs (scaled q, dO, lse, D) and its dq accumulator
struct Row {
    q: array<vec4<f32>, DMAX4>,
    g: array<vec4<f32>, DMAX4>,
    acc: array<vec4<f32>, DMAX4>,
    lse: f32,
    dsum: f32,
}

fn load_row(i: u32) -> Row {
    var r: Row;
    let rb = (p.bh * p.q_base) / 4u + i * (2u * D4 + 1u);  // this query's row, in vec4s
    // unroll
    for (var c4 = 0u; c4 < D4; c4++) {
        r.q[c4] = p.scale * qdo[rb + c4];
        r.g[c4] = qdo[rb + D4 + c4];
        r.acc[c4] = vec4<f32>(0.0);
    }
    let ld = qdo[rb + 2u * D4];
    r.lse = ld.x;
    r.dsum = ld.y;
    return r;
}

fn store_row(i: u32, r: Row) {
    let b = p.bh / p.heads;
    let head = p.bh % p.heads;
    let ob = (b * 3u * p.heads * p.d + head * p.d) * p.n + i;
    // unroll
    for (var c4 = 0u; c4 < D4; c4++) {
        let v = p.scale * r.acc[c4];
        // unroll
        for (var e = 0u; e < 4u; e++) {
            let at = ob + (4u * c4 + e) * p.n;
            var prev = 0.0;
            if p.first == 0u { prev = dqkv[at]; }
            dqkv[at] = prev + v[e];
        }
    }
}

// invocation t of the dispatch (its linear id), sl its subgroup lane (0 for the plain piece)
fn run(t: u32, sl: u32) {
    let i0 = RR * t; // past the last query: clamped loads, no stores
    var r: array<Row, RMAX>;
    // unroll
    for (var u = 0u; u < RR; u++) { r[u] = load_row(min(i0 + u, p.n - 1u)); }
    for (var jj = 0u; jj < p.nk; jj++) {
        let blk = win_rows(jj * 2u * D4, sl);
        var s: array<f32, RMAX>;
        var dp: array<f32, RMAX>;
        // unroll
        for (var u = 0u; u < RR; u++) { s[u] = 0.0; dp[u] = 0.0; }
        // unroll
        for (var c4 = 0u; c4 < D4; c4++) {
            let k4 = blk.e[c4];
            let v4 = blk.e[D4 + c4];
            // unroll
            for (var u = 0u; u < RR; u++) {
                s[u] += dot(r[u].q[c4], k4);
                dp[u] += dot(r[u].g[c4], v4);
            }
        }
        var ds: array<f32, RMAX>;
        // unroll
        for (var u = 0u; u < RR; u++) { ds[u] = exp(s[u] - r[u].lse) * (dp[u] - r[u].dsum); }
        // unroll
        for (var c4 = 0u; c4 < D4; c4++) {
            let k4 = blk.e[c4];
            // unroll
            for (var u = 0u; u < RR; u++) { r[u].acc[c4] += ds[u] * k4; }
        }
    }
    // unroll
    for (var u = 0u; u < RR; u++) {
        if i0 + u < p.n { store_row(i0 + u, r[u]); }
    }
}
