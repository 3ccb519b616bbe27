// winograd_transforms.wgsl: the transforms of conv v6, Winograd F(2×2, 3×3) (Lavin & Gray 2015, "Fast
// Algorithms for Convolutional Neural Networks"): 16 multiplies per 2×2 outputs and input channel instead of
// 36; and of its weight gradient, F(3×3, 2×2), which shares the input transform. The GEMMs between them run on
// the matmul (src/ops/conv.rs); winograd4_transforms.wgsl is the F(4×4, 3×3) forward with the same bindings.
//
// math:   G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]  (4×3)
//         Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]
//         Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]
//         `weights`: U = G·g·Gᵀ per 3×3 filter g = w[co, ci] (rows first: (G·g) row a, then the same
//                    combination across each row's 3 columns)
//         `input`:   V = Bᵀ·d·B per 4×4 patch d[i][j] = x[n, ci, 2ty − pad_y + i, 2tx − pad_x + j] (zero outside
//                    the image) under the 2×2 output tile (n, ty, tx): rows combined t0 = d0 − d2, t1 = d1 + d2,
//                    t2 = d2 − d1, t3 = d1 − d3, then the same across columns. Only adds and subtracts.
//         `output`:  Y = Aᵀ·M·A + b per tile, M[ξ] = U[ξ]·V[ξ] summed over Cin by the GEMM, so Y is the 3×3
//                    convolution of the tile: rows s0 = m0 + m1 + m2, s1 = m1 − m2 − m3, then across columns.
//         weight gradient (`grad_tiles`, `grad_output`):
//             dW[co, ci, ky, kx] = Σ_{n, oy, ox} g[n, co, oy, ox] · x[n, ci, oy + ky − pad_y, ox + kx − pad_x].
//         Split the outputs into the forward's 2×2 tiles: tile t contributes R[ky][kx] = Σ_{i,j<2} d_t[i + ky]
//         [j + kx] · g_t[i][j], a 3×3 correlation of its 4×4 input patch d_t (as in `input`) with its 2×2
//         gradient g_t: Winograd F(3×3, 2×2), R = A₂ᵀ·[(G₂·g_t·G₂ᵀ) ⊙ (Bᵀ·d_t·B)]·A₂ with the same Bᵀ and
//             G₂ = [[1, 0], [½, ½], [½, −½], [0, 1]]   (4×2),   A₂ᵀ = [[1, 1, 1, 0], [0, 1, −1, 0], [0, 1, 1, −1]]
//         (A₂ᵀ found by least squares against the direct sum for this G₂ and Bᵀ, residual ~1e-30; the conv tests
//         check the whole path against the f64 reference). Σ_t commutes with A₂ᵀ·…·A₂, so
//         Ŵ[ξ] = Σ_t Ĝ_t[ξ] · V_t[ξ] is one GEMM per plane over all tiles (K = P, long), and dW = A₂ᵀ·Ŵ·A₂:
//         `grad_tiles` makes Ĝ = G₂·g_t·G₂ᵀ, `grad_output` makes dW.
// layout: w (Cout, Cin, 3, 3) -> U (16, Cout, Cin);  x (N, Cin, in_h, in_w) -> V (16, Cin, P), P = N·th·tw tiles
//         (th = ⌈out_h/2⌉, tw = ⌈out_w/2⌉), p = (n·th + ty)·tw + tx, or with the override TRANSPOSED V (16, P, Cin)
//         (the weight gradient's GEMM reads it as its untransposed right operand);
//         M (16, Cout, P) -> y (N, Cout, out_h, out_w), outputs past an odd out_h or out_w skipped.
//         g (N, Cout, out_h, out_w) -> Ĝ (16, Cout, P) (outputs past an odd out_h or out_w read as 0);
//         Ŵ (16, Cout, Cin) -> dW (Cout, Cin, 3, 3).
//         Plane ξ = 4a + b holds entry [a][b] of every tile, so the GEMM for plane ξ is U[ξ] (Cout × Cin) · V[ξ].
// grid:   @workgroup_size(64), linear workgroup id; one invocation per filter (`weights`), per (ci, p)
//         (`input`: p fastest, ci fastest when TRANSPOSED, so neighbouring lanes write neighbouring words of
//         each plane: measured for TRANSPOSED, 3×3 dw of (8, 64→64, 64×64) 77.5–79.5 ms with p fastest,
//         64.6–65.8 ms with ci fastest) or per (co, p) (`output`, `grad_tiles`: p fastest); `grad_output`: one
//         per filter. Each invocation owns 16 floats of a bound buffer, so under llvmpipe's 128 MiB binding
//         limit these launches stay below 65,536 workgroups.
// binds:  @group(0) 0 params (uniform), 1 src (w, x, M, g or Ŵ), 2 bias (`output` only; otherwise src again),
//         3 dst (U, V, y, Ĝ or dW; rw)
// unroll: the fixed 6- and 4-trip loops are marked `// unroll` and expanded (src/gpu/specialize.rs): constant
//         indices keep the tiles in registers (llvmpipe leaves them loops: measured, docs/bench-history.md).

struct Params {
    batch: u32, cin: u32, cout: u32, kdim: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    pad_y: i32, pad_x: i32, has_bias: u32, npix: u32,
    chunk: u32, n_split: u32, _p0: u32, _p1: u32,
}

override TRANSPOSED: bool = false; // `input`: V as (16, P, Cin) rather than (16, Cin, P)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

// G·(g0, g1, g2) for one column (or row) of three values
fn g4(g0: f32, g1: f32, g2: f32) -> vec4<f32> {
    return vec4<f32>(g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2);
}

// Bᵀ applied to four values (a column, or a row)
fn bt(d: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(d.x - d.z, d.y + d.z, d.z - d.y, d.y - d.w);
}

// G·(g0, g1): two values to four
fn g2to4(g0: f32, g1: f32) -> vec4<f32> {
    return vec4<f32>(g0, 0.5 * (g0 + g1), 0.5 * (g0 - g1), g1);
}

// Aᵀ·(m0, m1, m2, m3): four values to three
fn at3(m: vec4<f32>) -> vec3<f32> {
    return vec3<f32>(m.x + m.y + m.z, m.y - m.z, m.y + m.z - m.w);
}

// Aᵀ applied to four values
fn at(q: vec4<f32>) -> vec2<f32> {
    return vec2<f32>(q.x + q.y + q.z, q.y - q.z - q.w);
}

// The output's tiles of 2×2: per column (⌈out_h/2⌉) and per row (⌈out_w/2⌉); tile t = (n·th + ty)·tw + tx
// The tile grid and the batch as pipeline constants (TY = ⌈out_h/2⌉, TX = ⌈out_w/2⌉, NB = batch; CIN = cin):
// the divisions that find an invocation's channel and tile compile to multiplies and shifts (by runtime values
// each is a division per SIMD lane on llvmpipe, docs/bench-history.md)
override TY: u32 = 1u;
override TX: u32 = 1u;
override NB: u32 = 1u;
override CIN: u32 = 1u;
fn tiles_y() -> u32 { return TY; }
fn tiles_x() -> u32 { return TX; }

// (n, ty, tx) of tile t
fn tile_pos(t: u32) -> vec3<u32> {
    let tw = tiles_x();
    return vec3<u32>(t / (tw * tiles_y()), (t / tw) % tiles_y(), t % tw);
}

// linear invocation index over the (x, y, z) workgroup grid
fn lin(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 64u + li;
}

@compute @workgroup_size(64)
fn weights(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) li: u32) {
    let f = lin(wg, nwg, li); // filter co·Cin + ci
    let nf = p.cout * p.cin;
    // guard: invocations past the last filter
    if f >= nf { return; }
    let b = f * 9u;
    // G·g: column j of g -> 4 values (rows a = 0..3 of G·g)
    let c0 = g4(src[b + 0u], src[b + 3u], src[b + 6u]);
    let c1 = g4(src[b + 1u], src[b + 4u], src[b + 7u]);
    let c2 = g4(src[b + 2u], src[b + 5u], src[b + 8u]);
    // (G·g)·Gᵀ: row a of G·g is (c0[a], c1[a], c2[a]); G applied to it gives U[a][0..4]
    // unroll
    for (var a = 0u; a < 4u; a++) {
        let r = g4(c0[a], c1[a], c2[a]);
        // unroll
        for (var bb = 0u; bb < 4u; bb++) {
            dst[(a * 4u + bb) * nf + f] = r[bb];
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
    // (ci, tile): tiles fastest, so neighbouring lanes write neighbouring words of a plane; TRANSPOSED writes
    // (tile, ci) rows, so there channels go fastest for the same reason
    var ci = i / np;
    var t = i % np;
    if TRANSPOSED {
        ci = i % CIN;
        t = i / CIN;
    }
    let pos = tile_pos(t);
    let n = pos.x;
    let ty = pos.y;
    let tx = pos.z;
    let y0 = 2 * i32(ty) - p.pad_y;
    let x0 = 2 * i32(tx) - p.pad_x;
    let plane = (n * p.cin + ci) * p.in_h * p.in_w;
    // the patch, one row per vec4 (zero outside the image)
    var d: array<vec4<f32>, 4>;
    // unroll
    for (var r = 0; r < 4; r++) {
        let iy = y0 + r;
        var row = vec4<f32>();
        if iy >= 0 && iy < i32(p.in_h) {
            let rb = plane + u32(iy) * p.in_w;
            // unroll
            for (var c = 0; c < 4; c++) {
                let ix = x0 + c;
                if ix >= 0 && ix < i32(p.in_w) { row[c] = src[rb + u32(ix)]; }
            }
        }
        d[r] = row;
    }
    // t = Bᵀ·d (rows), then V row a = Bᵀ applied across row a of t
    let t0 = d[0] - d[2];
    let t1 = d[1] + d[2];
    let t2 = d[2] - d[1];
    let t3 = d[1] - d[3];
    let rows = array<vec4<f32>, 4>(bt(t0), bt(t1), bt(t2), bt(t3));
    let stride = p.cin * np; // one plane
    let o = select(ci * np + t, t * p.cin + ci, TRANSPOSED);
    // unroll
    for (var a = 0u; a < 4u; a++) {
        // unroll
        for (var b = 0u; b < 4u; b++) {
            dst[(a * 4u + b) * stride + o] = rows[a][b];
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
    let stride = p.cout * np; // one plane
    let o = co * np + t;
    // the tile's 4×4 M, row a as a vec4
    var q: array<vec4<f32>, 4>;
    // unroll
    for (var a = 0u; a < 4u; a++) {
        let base = a * 4u * stride + o;
        q[a] = vec4<f32>(src[base], src[base + stride], src[base + 2u * stride], src[base + 3u * stride]);
    }
    // Aᵀ·M (rows), then Aᵀ across columns
    let s0 = q[0] + q[1] + q[2];
    let s1 = q[1] - q[2] - q[3];
    let r0 = at(s0);
    let r1 = at(s1);
    var bv = 0.0;
    if p.has_bias != 0u { bv = bias[co]; }
    let oy = 2u * ty;
    let ox = 2u * tx;
    let yb = ((n * p.cout + co) * p.out_h + oy) * p.out_w + ox;
    let right = ox + 1u < p.out_w;
    dst[yb] = r0.x + bv;
    if right { dst[yb + 1u] = r0.y + bv; }
    if oy + 1u < p.out_h {
        dst[yb + p.out_w] = r1.x + bv;
        if right { dst[yb + p.out_w + 1u] = r1.y + bv; }
    }
}

@compute @workgroup_size(64)
fn grad_tiles(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
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
    let c0 = g2to4(g00, g10);
    let c1 = g2to4(g01, g11);
    let stride = p.cout * np; // one plane
    let o = co * np + t;
    // unroll
    for (var a = 0u; a < 4u; a++) {
        let r = g2to4(c0[a], c1[a]);
        // unroll
        for (var b = 0u; b < 4u; b++) {
            dst[(a * 4u + b) * stride + o] = r[b];
        }
    }
}

@compute @workgroup_size(64)
fn grad_output(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let f = lin(wg, nwg, li); // filter co·Cin + ci
    let nf = p.cout * p.cin;
    // guard: invocations past the last filter
    if f >= nf { return; }
    // Ŵ's 4×4 for this filter, row a as a vec4
    var q: array<vec4<f32>, 4>;
    // unroll
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
