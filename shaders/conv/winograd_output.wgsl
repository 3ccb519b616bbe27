// winograd_output.wgsl: the output transform of conv v6 (Winograd F(2×2, 3×3)): each tile's 16 GEMM results
// M (one per plane ξ) become its 2×2 outputs Y = Aᵀ·M·A, plus the bias.
//
// math:   M[ξ] = U[ξ]·V[ξ] summed over Cin by the GEMM (src/ops/conv.rs), so Y = Aᵀ·(Σ_ci U ⊙ V)·A is the 3×3
//         convolution of the tile. Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]: rows s0 = m0 + m1 + m2,
//         s1 = m1 − m2 − m3, then the same across columns.
// layout: M (16, Cout, P); y (N, Cout, out_h, out_w); tile p = (n·th + ty)·tw + tx writes outputs
//         (2ty .. 2ty+1, 2tx .. 2tx+1), skipping those past an odd out_h or out_w.
// grid:   @workgroup_size(64), one invocation per (co, p), p fastest; linear workgroup id.
// binds:  @group(0) 0 params (uniform), 1 m, 2 b (ignored when has_bias = 0), 3 y (rw)

struct Params {
    batch: u32, cin: u32, cout: u32, kdim: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    pad_y: i32, pad_x: i32, has_bias: u32, npix: u32,
    chunk: u32, n_split: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> m: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// Aᵀ applied to four values
fn at(q: vec4<f32>) -> vec2<f32> {
    return vec2<f32>(q.x + q.y + q.z, q.y - q.z - q.w);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let th = (p.out_h + 1u) / 2u;
    let tw = (p.out_w + 1u) / 2u;
    let np = p.batch * th * tw;
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 64u + li;
    // guard: invocations past the last (co, tile)
    if i >= p.cout * np { return; }
    let co = i / np;
    let t = i % np;
    let tx = t % tw;
    let ty = (t / tw) % th;
    let n = t / (tw * th);
    let stride = p.cout * np; // one plane
    let o = co * np + t;
    // the tile's 4×4 M, row a as a vec4
    var q: array<vec4<f32>, 4>;
    for (var a = 0u; a < 4u; a++) {
        let base = a * 4u * stride + o;
        q[a] = vec4<f32>(m[base], m[base + stride], m[base + 2u * stride], m[base + 3u * stride]);
    }
    // Aᵀ·M (rows), then Aᵀ across columns
    let s0 = q[0] + q[1] + q[2];
    let s1 = q[1] - q[2] - q[3];
    let r0 = at(s0);
    let r1 = at(s1);
    var bias = 0.0;
    if p.has_bias != 0u { bias = b[co]; }
    let oy = 2u * ty;
    let ox = 2u * tx;
    let yb = ((n * p.cout + co) * p.out_h + oy) * p.out_w + ox;
    let right = ox + 1u < p.out_w;
    y[yb] = r0.x + bias;
    if right { y[yb + 1u] = r0.y + bias; }
    if oy + 1u < p.out_h {
        y[yb + p.out_w] = r1.x + bias;
        if right { y[yb + p.out_w + 1u] = r1.y + bias; }
    }
}
