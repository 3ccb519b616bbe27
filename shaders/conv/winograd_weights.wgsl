// winograd_weights.wgsl: the weight transform of conv v6 (Winograd F(2×2, 3×3), Lavin & Gray 2015,
// "Fast Algorithms for Convolutional Neural Networks"): each 3×3 filter becomes a 4×4 tile U = G·g·Gᵀ.
//
// math:   G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]  (4×3);  U = G·g·Gᵀ for g = w[co, ci] (3×3).
//         Rows first: r_a = (G·g) row a; then the same combination across each row's 3 columns.
// layout: w (Cout, Cin, 3, 3); U (16, Cout, Cin): plane ξ = 4a + b holds U[a][b] of every filter, so the
//         GEMM for plane ξ is U[ξ] (Cout × Cin) · V[ξ] (Cin × P)
// grid:   @workgroup_size(64), one invocation per filter (co, ci), linear workgroup id
// binds:  @group(0) 0 params (uniform), 1 w, 2 u (rw)

struct Params {
    batch: u32, cin: u32, cout: u32, kdim: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    pad_y: i32, pad_x: i32, has_bias: u32, npix: u32,
    chunk: u32, n_split: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> u: array<f32>;

// G·(g0, g1, g2) for one column (or row) of three values
fn g4(g0: f32, g1: f32, g2: f32) -> vec4<f32> {
    return vec4<f32>(g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let f = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 64u + li; // filter co·Cin + ci
    let nf = p.cout * p.cin;
    // guard: invocations past the last filter
    if f >= nf { return; }
    let b = f * 9u;
    // G·g: column j of g -> 4 values (rows a = 0..3 of G·g)
    let c0 = g4(w[b + 0u], w[b + 3u], w[b + 6u]);
    let c1 = g4(w[b + 1u], w[b + 4u], w[b + 7u]);
    let c2 = g4(w[b + 2u], w[b + 5u], w[b + 8u]);
    // (G·g)·Gᵀ: row a of G·g is (c0[a], c1[a], c2[a]); G applied to it gives U[a][0..4]
    for (var a = 0u; a < 4u; a++) {
        let r = g4(c0[a], c1[a], c2[a]);
        for (var bb = 0u; bb < 4u; bb++) {
            u[(a * 4u + bb) * nf + f] = r[bb];
        }
    }
}
