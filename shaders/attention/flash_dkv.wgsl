// flash_dkv.wgsl: dk and dv of the fused attention (FlashAttention-2's backward, key side): each invocation
// owns one key, walks this dispatch's window of queries (their q, dO, lse and D packed by flash_pack_qdo.wgsl),
// and accumulates dk and dv in registers; several windows accumulate through dqkv.
//
// math:   P_ij = e^(scale·q_i·k_j − lse_i); dP_ij = dO_i·v_j; dS_ij = P_ij·(dP_ij − D_i);
//         dv_j = Σ_i P_ij·dO_i; dk_j = scale·Σ_i dS_ij·q_i
// layout: qkv (B, 3·heads·d, n); dqkv (B, 3·heads·d, n): dk of head h at channel heads·d + h·d + c, dv at
//         2·heads·d + h·d + c; window: query rows of 2d + 4 floats (q, dO, lse, D, 0, 0) as vec4
// grid:   @workgroup_size(WG), one invocation per key of head bh, linear id
// binds:  @group(0) 0 params (uniform), 1 qkv, 2 dqkv (rw), 3 q/dO window (uniform block)

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
const DMAX4: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(3) var<uniform> qw: array<vec4<f32>, 4096>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let j = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    // guard: invocations past the last key
    if j >= p.n { return; }
    let b = p.bh / p.heads;
    let head = p.bh % p.heads;
    let hd = p.heads * p.d;
    let kch = b * 3u * hd + hd + head * p.d;  // k's channels; v's are hd further
    var k: array<vec4<f32>, DMAX4>;
    var v: array<vec4<f32>, DMAX4>;
    var dk: array<vec4<f32>, DMAX4>;
    var dv: array<vec4<f32>, DMAX4>;
    for (var c4 = 0u; c4 < D4; c4++) {
        let c = kch + 4u * c4;
        k[c4] = p.scale * vec4<f32>(qkv[c * p.n + j], qkv[(c + 1u) * p.n + j], qkv[(c + 2u) * p.n + j], qkv[(c + 3u) * p.n + j]);
        let cv = c + hd;
        v[c4] = vec4<f32>(qkv[cv * p.n + j], qkv[(cv + 1u) * p.n + j], qkv[(cv + 2u) * p.n + j], qkv[(cv + 3u) * p.n + j]);
        dk[c4] = vec4<f32>(0.0);
        dv[c4] = vec4<f32>(0.0);
    }
    for (var ii = 0u; ii < p.nk; ii++) {
        let rb = ii * (2u * D4 + 1u);
        var s = 0.0;
        var dp = 0.0;
        for (var c4 = 0u; c4 < D4; c4++) {
            s += dot(qw[rb + c4], k[c4]);
            dp += dot(qw[rb + D4 + c4], v[c4]);
        }
        let ld = qw[rb + 2u * D4];
        let pij = exp(s - ld.x);
        let ds = pij * (dp - ld.y);
        for (var c4 = 0u; c4 < D4; c4++) {
            dv[c4] += pij * qw[rb + D4 + c4];
            dk[c4] += ds * qw[rb + c4];
        }
    }
    for (var c4 = 0u; c4 < D4; c4++) {
        let rk = p.scale * dk[c4];
        let rv = dv[c4];
        for (var e = 0u; e < 4u; e++) {
            let at = (kch + 4u * c4 + e) * p.n + j;
            let av = at + hd * p.n;
            var pk = 0.0;
            var pv = 0.0;
            if p.first == 0u { pk = dqkv[at]; pv = dqkv[av]; }
            dqkv[at] = pk + rk[e];
            dqkv[av] = pv + rv[e];
        }
    }
}
