// flash_dkv.wgsl: dk and dv of the fused attention (FlashAttention-2's backward, key side): each invocation
// owns RR keys (RR·t .. RR·t + RR − 1: every query row read from the window serves all of them), walks this
// dispatch's window of queries (their q, dO, lse and D packed by flash_pack_qdo.wgsl), and accumulates dk and dv
// in registers; several windows accumulate through dqkv.
//
// math:   P_ij = e^(scale·q_i·k_j − lse_i); dP_ij = dO_i·v_j; dS_ij = P_ij·(dP_ij − D_i);
//         dv_j = Σ_i P_ij·dO_i; dk_j = scale·Σ_i dS_ij·q_i
// layout: qkv (B, 3·heads·d, n); dqkv (B, 3·heads·d, n): dk of head h at channel heads·d + h·d + c, dv at
//         2·heads·d + h·d + c; window: query rows of 2d + 4 floats (q, dO, lse, D, 0, 0) as vec4
// grid:   @workgroup_size(WG), one invocation per RR keys of head bh (those past n clamped to the last and not
//         stored), linear id
// binds:  @group(0) 0 params (uniform), 1 qkv, 2 dqkv (rw), 3 q/dO window (uniform block)
// pieces: the entry point and the window reads (`win_rows`: a query's ROWV = 2·D4 + 1 vec4, q, dO and
//         (lse, D, 0, 0)) come from window/plain.wgsl or window/subgroup.wgsl (flash_forward.wgsl says how); no
//         early return.
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
override RR: u32 = 2u;  // keys per invocation, 1 ..= RMAX
const RMAX: u32 = 8u;
const DMAX4: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(3) var<uniform> win: array<vec4<f32>, 4096>; // the Q/dO window
override ROWV: u32 = 9u; // 2·D4 + 1 (the host sets it)
const ROW_MAX: u32 = 2u * DMAX4 + 1u;
struct WinRows {
    e: array<vec4<f32>, ROW_MAX>,
}

// one key's scaled k, its v, and its dk, dv accumulators
struct Col {
    k: array<vec4<f32>, DMAX4>,
    v: array<vec4<f32>, DMAX4>,
    dk: array<vec4<f32>, DMAX4>,
    dv: array<vec4<f32>, DMAX4>,
}

fn kch() -> u32 {
    let b = p.bh / p.heads;
    let head = p.bh % p.heads;
    return b * 3u * p.heads * p.d + p.heads * p.d + head * p.d;  // k's channels; v's are heads·d further
}

fn load_col(j: u32) -> Col {
    var r: Col;
    let hd = p.heads * p.d;
    // unroll
    for (var c4 = 0u; c4 < D4; c4++) {
        let c = kch() + 4u * c4;
        r.k[c4] = p.scale * vec4<f32>(qkv[c * p.n + j], qkv[(c + 1u) * p.n + j], qkv[(c + 2u) * p.n + j], qkv[(c + 3u) * p.n + j]);
        let cv = c + hd;
        r.v[c4] = vec4<f32>(qkv[cv * p.n + j], qkv[(cv + 1u) * p.n + j], qkv[(cv + 2u) * p.n + j], qkv[(cv + 3u) * p.n + j]);
        r.dk[c4] = vec4<f32>(0.0);
        r.dv[c4] = vec4<f32>(0.0);
    }
    return r;
}

fn store_col(j: u32, r: Col) {
    let hd = p.heads * p.d;
    // unroll
    for (var c4 = 0u; c4 < D4; c4++) {
        let rk = p.scale * r.dk[c4];
        let rv = r.dv[c4];
        // unroll
        for (var e = 0u; e < 4u; e++) {
            let at = (kch() + 4u * c4 + e) * p.n + j;
            let av = at + hd * p.n;
            var pk = 0.0;
            var pv = 0.0;
            if p.first == 0u { pk = dqkv[at]; pv = dqkv[av]; }
            dqkv[at] = pk + rk[e];
            dqkv[av] = pv + rv[e];
        }
    }
}

// invocation t of the dispatch (its linear id), sl its subgroup lane (0 for the plain piece)
fn run(t: u32, sl: u32) {
    let j0 = RR * t; // past the last key: clamped loads, no stores
    var r: array<Col, RMAX>;
    // unroll
    for (var u = 0u; u < RR; u++) { r[u] = load_col(min(j0 + u, p.n - 1u)); }
    for (var ii = 0u; ii < p.nk; ii++) {
        let blk = win_rows(ii * (2u * D4 + 1u), sl);
        var s: array<f32, RMAX>;
        var dp: array<f32, RMAX>;
        // unroll
        for (var u = 0u; u < RR; u++) { s[u] = 0.0; dp[u] = 0.0; }
        // unroll
        for (var c4 = 0u; c4 < D4; c4++) {
            let q4 = blk.e[c4];
            let g4 = blk.e[D4 + c4];
            // unroll
            for (var u = 0u; u < RR; u++) {
                s[u] += dot(q4, r[u].k[c4]);
                dp[u] += dot(g4, r[u].v[c4]);
            }
        }
        let ld = blk.e[2u * D4];
        var pr: array<f32, RMAX>;
        var ds: array<f32, RMAX>;
        // unroll
        for (var u = 0u; u < RR; u++) {
            pr[u] = exp(s[u] - ld.x);
            ds[u] = pr[u] * (dp[u] - ld.y);
        }
        // unroll
        for (var c4 = 0u; c4 < D4; c4++) {
            let q4 = blk.e[c4];
            let g4 = blk.e[D4 + c4];
            // unroll
            for (var u = 0u; u < RR; u++) {
                r[u].dv[c4] += pr[u] * g4;
                r[u].dk[c4] += ds[u] * q4;
            }
        }
    }
    // unroll
    for (var u = 0u; u < RR; u++) {
        if j0 + u < p.n { store_col(j0 + u, r[u]); }
    }
}
