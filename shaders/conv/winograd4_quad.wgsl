// winograd4_quad.wgsl: conv v8's F(4×4, 3×3) input and output transforms (winograd4_transforms.wgsl) four
// horizontally neighbouring tiles an invocation, the tiles as the four lanes of a vec4: every value of the
// scalar entries becomes a vec4 over tiles tx .. tx + 3, so the same arithmetic in the same order gives the
// same bits, and V's and M's planes (tiles contiguous) are read and written a vec4 at a time. On llvmpipe each
// storage access is a per-lane loop paid per access whatever its width (docs/llvmpipe-stores.md): a tile of
// the scalar `input` made 36 loads and 36 stores, a quad here 36 vec4 loads and 36 vec4 stores for four.
//
// math:   as winograd4_transforms.wgsl: `input4` V = Bᵀ·d·B per 6×6 patch, `output4` Y = Aᵀ·M·A + b per tile.
//         Tile tx + j reads patch columns 4(tx + j) − pad_x + c (c < 6); with pad_x = PX ≤ 4 a quad's patches
//         lie in the six aligned vec4 of columns 4tx − 4 .. 4tx + 19, column 4tx − PX + c + 4j being component
//         (4 + c − PX) % 4 of vec4 (4 + c − PX) / 4 + j (constants once expanded).
// layout: as winograd4_transforms.wgsl; x, V, M, y read and written as vec4. Applies (the host checks) when
//         the tile grid's width TX is a multiple of 4 (so a quad stays in one tile row and P is a multiple of
//         4), in_w % 4 == 0 (`input4`) or out_w % 4 == 0 (`output4`), and 0 ≤ pad_x ≤ 4.
// grid:   @workgroup_size(64), linear workgroup id; one invocation per (ci, quad) (`input4`) or (co, quad)
//         (`output4`), quads fastest.
// binds:  @group(0) 0 params (uniform), 1 src as vec4 (x or M), 2 bias (`output4`; `input4`: src again),
//         3 dst as vec4 (V or y; rw)
// unroll: the fixed loops are marked `// unroll` and expanded (src/gpu/specialize.rs).

// (struct Params, Six, bt, at, the tile grid: winograd4_common.wgsl)

override PX: i32 = 1; // = p.pad_x (0 ..= 4): which components hold a patch column is then a constant

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst4: array<vec4<f32>>;

// six vec4 (value i of four tiles in d[i])
alias Six4 = array<vec4<f32>, 6>;

// Bᵀ·d lane by lane (bt's arithmetic on vec4)
fn bt4(d: Six4) -> Six4 {
    return Six4(4.0 * d[0] - 5.0 * d[2] + d[4],
                -4.0 * (d[1] + d[2]) + d[3] + d[4],
                4.0 * (d[1] - d[2]) - d[3] + d[4],
                -2.0 * d[1] - d[2] + 2.0 * d[3] + d[4],
                2.0 * d[1] - d[2] - 2.0 * d[3] + d[4],
                4.0 * d[1] - 5.0 * d[3] + d[5]);
}

// Aᵀ·m lane by lane (at's arithmetic on vec4): row r of the result in element r
fn at4(m: Six4) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(m[0] + m[1] + m[2] + m[3] + m[4],
                               m[1] - m[2] + 2.0 * (m[3] - m[4]),
                               m[1] + m[2] + 4.0 * (m[3] + m[4]),
                               m[1] - m[2] + 8.0 * (m[3] - m[4]) + m[5]);
}

@compute @workgroup_size(64)
fn input4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let np = NB * tiles_y() * tiles_x();
    let nq = np / 4u;
    let q = lin(wg, nwg, li);
    // guard: invocations past the last (ci, quad)
    if q >= CIN * nq { return; }
    let ci = q / nq;
    let t = 4u * (q % nq);
    let pos = tile_pos(t);
    let n = pos.x;
    let y0 = 4 * i32(pos.y) - p.pad_y;
    let xb = 4 * i32(pos.z) - 4; // the first aligned column the quad's patches may reach
    let w4 = p.in_w / 4u;
    let plane4 = (n * CIN + ci) * p.in_h * w4;
    // the patch rows: rows[r][k] = columns xb + 4k .. xb + 4k + 3 of row y0 + r (zero outside the image)
    var rows: array<array<vec4<f32>, 6>, 6>;
    // unroll
    for (var r = 0; r < 6; r++) {
        let iy = y0 + r;
        // unroll
        for (var k = 0; k < 6; k++) {
            let cx = xb + 4 * k;
            var v = vec4<f32>(0.0);
            if iy >= 0 && iy < i32(p.in_h) && cx >= 0 && cx < i32(p.in_w) {
                v = src4[plane4 + u32(iy) * w4 + u32(cx) / 4u];
            }
            rows[r][k] = v;
        }
    }
    // Bᵀ down each of the 6 patch columns, four tiles at once (as `input`: columns first)
    var cols: array<Six4, 6>;
    // unroll
    for (var c = 0; c < 6; c++) {
        let o = 4 + c - PX;
        var d: Six4;
        // unroll
        for (var r = 0; r < 6; r++) {
            d[r] = vec4<f32>(rows[r][o / 4][o % 4], rows[r][o / 4 + 1][o % 4], rows[r][o / 4 + 2][o % 4],
                             rows[r][o / 4 + 3][o % 4]);
        }
        cols[c] = bt4(d);
    }
    // V row a = Bᵀ across (cols[0][a], …, cols[5][a]); plane 6a + k, tiles t .. t + 3 one vec4
    let stride4 = CIN * nq;
    let o4 = ci * nq + t / 4u;
    // unroll
    for (var a = 0; a < 6; a++) {
        let r = bt4(Six4(cols[0][a], cols[1][a], cols[2][a], cols[3][a], cols[4][a], cols[5][a]));
        // unroll
        for (var k = 0; k < 6; k++) {
            dst4[u32(a * 6 + k) * stride4 + o4] = r[k];
        }
    }
}

@compute @workgroup_size(64)
fn output4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let np = NB * tiles_y() * tiles_x();
    let nq = np / 4u;
    let q = lin(wg, nwg, li);
    // guard: invocations past the last (co, quad)
    if q >= p.cout * nq { return; }
    let co = q / nq;
    let t = 4u * (q % nq);
    let pos = tile_pos(t);
    let n = pos.x;
    let stride4 = p.cout * nq;
    let o4 = co * nq + t / 4u;
    // Aᵀ down each column b of M, four tiles at once: s[b][r] (as `output`)
    var s: array<array<vec4<f32>, 4>, 6>;
    // unroll
    for (var b = 0u; b < 6u; b++) {
        s[b] = at4(Six4(src4[(0u + b) * stride4 + o4], src4[(6u + b) * stride4 + o4],
                        src4[(12u + b) * stride4 + o4], src4[(18u + b) * stride4 + o4],
                        src4[(24u + b) * stride4 + o4], src4[(30u + b) * stride4 + o4]));
    }
    var bv = 0.0;
    if p.has_bias != 0u { bv = bias[co]; }
    let oy0 = 4u * pos.y;
    let w4 = p.out_w / 4u;
    // unroll
    for (var r = 0u; r < 4u; r++) {
        let oy = oy0 + r;
        if oy < p.out_h {
            let yb4 = ((n * p.cout + co) * p.out_h + oy) * w4 + pos.z;
            // tile j's output row r: Aᵀ across (s[0][r][j], …, s[5][r][j]), its four columns one vec4
            // unroll
            for (var j = 0u; j < 4u; j++) {
                let yr = at(six(s[0][r][j], s[1][r][j], s[2][r][j], s[3][r][j], s[4][r][j], s[5][r][j]));
                dst4[yb4 + j] = yr + bv;
            }
        }
    }
}
