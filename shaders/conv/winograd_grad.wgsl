// winograd_grad.wgsl: the two kernels of conv v6's weight gradient (Winograd F(3×3, 2×2)) besides the input
// transform: `transform` turns each 2×2 tile of the output gradient into 4×4 (Ĝ = G·g·Gᵀ), and `output`
// turns each filter's 16 GEMM sums back into its 3×3 gradient (dW = Aᵀ·Ŵ·A).
//
// math:   dW[co, ci, ky, kx] = Σ_{n, oy, ox} g[n, co, oy, ox] · x[n, ci, oy + ky − pad_y, ox + kx − pad_x]. Split
//         the outputs into the forward's 2×2 tiles: tile t contributes R[ky][kx] = Σ_{i,j<2} d_t[i + ky][j + kx] ·
//         g_t[i][j], a 3×3 correlation of its 4×4 input patch d_t (as in winograd_transforms.wgsl `input`) with its 2×2
//         gradient g_t: Winograd F(3×3, 2×2), R = Aᵀ·[(G·g_t·Gᵀ) ⊙ (Bᵀ·d_t·B)]·A with the forward's Bᵀ and
//             G = [[1, 0], [½, ½], [½, −½], [0, 1]]   (4×2),   Aᵀ = [[1, 1, 1, 0], [0, 1, −1, 0], [0, 1, 1, −1]]
//         (Aᵀ found by least squares against the direct sum for this G and Bᵀ, residual ~1e-30; the conv tests
//         check the whole path against the f64 reference). Σ_t commutes with Aᵀ·…·A, so
//         Ŵ[ξ] = Σ_t Ĝ_t[ξ] · V_t[ξ] is one GEMM per plane over all tiles (K = P, long), and dW = Aᵀ·Ŵ·A.
// layout: g (N, Cout, out_h, out_w); Ĝ (16, Cout, P) (tiles as in winograd_transforms.wgsl; outputs past an odd
//         out_h or out_w read as 0); Ŵ (16, Cout, Cin); dW (Cout, Cin, 3, 3).
// grid:   @workgroup_size(64), linear workgroup id; `transform`: one invocation per (co, tile), tiles fastest;
//         `output`: one invocation per filter (co, ci).
// binds:  @group(0) 0 params (uniform), 1 input (g or Ŵ), 2 output (Ĝ or dW, rw)

struct Params {
    batch: u32, cin: u32, cout: u32, kdim: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    pad_y: i32, pad_x: i32, has_bias: u32, npix: u32,
    chunk: u32, n_split: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

// G·(g0, g1): two values to four
fn g4(g0: f32, g1: f32) -> vec4<f32> {
    return vec4<f32>(g0, 0.5 * (g0 + g1), 0.5 * (g0 - g1), g1);
}

// Aᵀ·(m0, m1, m2, m3): four values to three
fn at3(m: vec4<f32>) -> vec3<f32> {
    return vec3<f32>(m.x + m.y + m.z, m.y - m.z, m.y + m.z - m.w);
}

@compute @workgroup_size(64)
fn transform(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
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
    let oy = 2u * ty;
    let ox = 2u * tx;
    let gb = ((n * p.cout + co) * p.out_h + oy) * p.out_w + ox;
    let right = ox + 1u < p.out_w;
    let down = oy + 1u < p.out_h;
    // the 2×2 tile of g (zero past an odd edge)
    let g00 = src[gb];
    let g01 = select(0.0, src[gb + select(0u, 1u, right)], right);
    let g10 = select(0.0, src[gb + select(0u, p.out_w, down)], down);
    let g11 = select(0.0, src[gb + select(0u, p.out_w + 1u, down && right)], down && right);
    // G·g_t (columns), then G across each of the 4 rows
    let c0 = g4(g00, g10);
    let c1 = g4(g01, g11);
    let stride = p.cout * np; // one plane
    let o = co * np + t;
    for (var a = 0u; a < 4u; a++) {
        let r = g4(c0[a], c1[a]);
        for (var b = 0u; b < 4u; b++) {
            dst[(a * 4u + b) * stride + o] = r[b];
        }
    }
}

@compute @workgroup_size(64)
fn output(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let f = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 64u + li; // filter co·Cin + ci
    let nf = p.cout * p.cin;
    // guard: invocations past the last filter
    if f >= nf { return; }
    // Ŵ's 4×4 for this filter, row a as a vec4
    var q: array<vec4<f32>, 4>;
    for (var a = 0u; a < 4u; a++) {
        let b = a * 4u * nf + f;
        q[a] = vec4<f32>(src[b], src[b + nf], src[b + 2u * nf], src[b + 3u * nf]);
    }
    // Aᵀ·Ŵ (rows), then Aᵀ across columns
    let s0 = q[0] + q[1] + q[2];
    let s1 = q[1] - q[2];
    let s2 = q[1] + q[2] - q[3];
    let r0 = at3(s0);
    let r1 = at3(s1);
    let r2 = at3(s2);
    let o = f * 9u;
    dst[o + 0u] = r0.x; dst[o + 1u] = r0.y; dst[o + 2u] = r0.z;
    dst[o + 3u] = r1.x; dst[o + 4u] = r1.y; dst[o + 5u] = r1.z;
    dst[o + 6u] = r2.x; dst[o + 7u] = r2.y; dst[o + 8u] = r2.z;
}
