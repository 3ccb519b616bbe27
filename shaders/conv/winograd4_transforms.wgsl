// winograd4_transforms.wgsl: the three transforms of conv v8, Winograd F(4×4, 3×3) (Lavin & Gray 2015): like
// v6's F(2×2, 3×3) (winograd_transforms.wgsl) with 6×6 tiles: 36 multiplies per 4×4 outputs and
// input channel instead of 144 (4× fewer) and 36 transformed values per 16 outputs instead of 64, bought with
// larger transform constants and so larger rounding error (see src/ops/conv.rs).
//
// math:   Bᵀ = [[4, 0, −5, 0, 1, 0], [0, −4, −4, 1, 1, 0], [0, 4, −4, −1, 1, 0], [0, −2, −1, 2, 1, 0],
//               [0, 2, −1, −2, 1, 0], [0, 4, 0, −5, 0, 1]]
//         G  = [[¼, 0, 0], [−⅙, −⅙, −⅙], [−⅙, ⅙, −⅙], [1/24, 1/12, ⅙], [1/24, −1/12, ⅙], [0, 0, 1]]
//         Aᵀ = [[1, 1, 1, 1, 1, 0], [0, 1, −1, 2, −2, 0], [0, 1, 1, 4, 4, 0], [0, 1, −1, 8, −8, 1]]
//         `weights`: U = G·g·Gᵀ per filter;  `input`: V = Bᵀ·d·B per 6×6 patch d at (4ty − pad_y, 4tx − pad_x);
//         `output`: Y = Aᵀ·M·A + b per tile, M[ξ] = U[ξ]·V[ξ] from the GEMM (src/ops/conv.rs).
// layout: w (Cout, Cin, 3, 3) -> U (36, Cout, Cin);  x (N, Cin, H, W) -> V (36, Cin, P), P = N·th·tw tiles of
//         4×4 outputs (th = ⌈out_h/4⌉, tw = ⌈out_w/4⌉), p = (n·th + ty)·tw + tx;  M (36, Cout, P) -> y (N, Cout,
//         out_h, out_w), outputs past the edges skipped. Plane ξ = 6a + b.
// grid:   @workgroup_size(64), linear workgroup id; one invocation per filter (`weights`), per (ci, p) (`input`,
//         p fastest) or per (co, p) (`output`, p fastest). Each invocation owns 36 floats of a bound buffer, so
//         under llvmpipe's 128 MiB binding limit these launches stay below 65,536 workgroups.
// binds:  @group(0) 0 params (uniform), 1 src (w, x or M), 2 bias (`output` only; otherwise src again),
//         3 dst (U, V or y; rw)
// shared: the params block, the tile grid and the transforms' products live in winograd4_common.wgsl;
//         winograd4_quad.wgsl runs `input` and `output` four tiles an invocation where the shapes allow
// unroll: the fixed 6- and 4-trip loops are marked `// unroll` and expanded (src/gpu/specialize.rs): constant
//         indices keep the tiles in registers (llvmpipe leaves them loops: measured, docs/bench-history.md).

// (struct Params, Six, bt, g6, at, at6, the tile grid: winograd4_common.wgsl)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn weights(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let f = lin(wg, nwg, li); // filter co·Cin + ci
    let nf = p.cout * p.cin;
    // guard: invocations past the last filter
    if f >= nf { return; }
    let b = f * 9u;
    // G·g: column j of g -> six values
    let c0 = g6(src[b + 0u], src[b + 3u], src[b + 6u]);
    let c1 = g6(src[b + 1u], src[b + 4u], src[b + 7u]);
    let c2 = g6(src[b + 2u], src[b + 5u], src[b + 8u]);
    // (G·g)·Gᵀ: row a = G applied to (c0[a], c1[a], c2[a])
    // unroll
    for (var a = 0u; a < 6u; a++) {
        let r = g6(at6(c0, a), at6(c1, a), at6(c2, a));
        // unroll
        for (var k = 0u; k < 6u; k++) {
            dst[(a * 6u + k) * nf + f] = at6(r, k);
        }
    }
}

@compute @workgroup_size(64)
fn input(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) li: u32) {
    let np = NB * tiles_y() * tiles_x();
    let i = lin(wg, nwg, li);
    // guard: invocations past the last (ci, tile)
    if i >= p.cin * np { return; }
    let ci = i / np;
    let t = i % np;
    let pos = tile_pos(t);
    let n = pos.x;
    let ty = pos.y;
    let tx = pos.z;
    let y0 = 4 * i32(ty) - p.pad_y;
    let x0 = 4 * i32(tx) - p.pad_x;
    let plane = (n * p.cin + ci) * p.in_h * p.in_w;
    // Bᵀ applied down each of the 6 columns of the patch: t_c = Bᵀ·(column c)
    var cols: array<Six, 6>;
    // unroll
    for (var c = 0; c < 6; c++) {
        let ix = x0 + c;
        var v = array<f32, 6>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        if ix >= 0 && ix < i32(p.in_w) {
            // unroll
            for (var r = 0; r < 6; r++) {
                let iy = y0 + r;
                if iy >= 0 && iy < i32(p.in_h) { v[r] = src[plane + u32(iy) * p.in_w + u32(ix)]; }
            }
        }
        cols[c] = bt(six(v[0], v[1], v[2], v[3], v[4], v[5]));
    }
    // row a of Bᵀ·d is (cols[0][a], …, cols[5][a]); V row a = Bᵀ applied across it
    let stride = p.cin * np;
    let o = ci * np + t;
    // unroll
    for (var a = 0u; a < 6u; a++) {
        let r = bt(six(at6(cols[0], a), at6(cols[1], a), at6(cols[2], a), at6(cols[3], a), at6(cols[4], a),
                       at6(cols[5], a)));
        // unroll
        for (var k = 0u; k < 6u; k++) {
            dst[(a * 6u + k) * stride + o] = at6(r, k);
        }
    }
}

@compute @workgroup_size(64)
fn output(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let np = NB * tiles_y() * tiles_x();
    let i = lin(wg, nwg, li);
    // guard: invocations past the last (co, tile)
    if i >= p.cout * np { return; }
    let co = i / np;
    let t = i % np;
    let pos = tile_pos(t);
    let n = pos.x;
    let ty = pos.y;
    let tx = pos.z;
    let stride = p.cout * np;
    let o = co * np + t;
    // Aᵀ applied down each column b of M: s_b = Aᵀ·M[·][b] (4 values)
    var s: array<vec4<f32>, 6>;
    // unroll
    for (var b = 0u; b < 6u; b++) {
        let m = six(src[(0u + b) * stride + o], src[(6u + b) * stride + o], src[(12u + b) * stride + o],
                    src[(18u + b) * stride + o], src[(24u + b) * stride + o], src[(30u + b) * stride + o]);
        s[b] = at(m);
    }
    var bv = 0.0;
    if p.has_bias != 0u { bv = bias[co]; }
    let oy0 = 4u * ty;
    let ox0 = 4u * tx;
    // unroll
    for (var r = 0u; r < 4u; r++) {
        let oy = oy0 + r;
        if oy < p.out_h {
            // Y row r = Aᵀ applied across (s_0[r], …, s_5[r])
            let yr = at(six(s[0][r], s[1][r], s[2][r], s[3][r], s[4][r], s[5][r]));
            let yb = ((n * p.cout + co) * p.out_h + oy) * p.out_w + ox0;
            // unroll
            for (var c = 0u; c < 4u; c++) {
                if ox0 + c < p.out_w { dst[yb + c] = yr[c] + bv; }
            }
        }
    }
}
