// winograd4_common.wgsl: what conv v8's F(4×4, 3×3) transforms share, appended to winograd4_transforms.wgsl
// (one tile an invocation) and winograd4_quad.wgsl (four tiles an invocation, as vec4 lanes) by `shader!`: the
// params block, the tile grid and the transform matrices' products (math: winograd4_transforms.wgsl). Each file
// declares its own bindings (the quad entries read and write vec4 views).

struct Params {
    batch: u32, cin: u32, cout: u32, kdim: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    pad_y: i32, pad_x: i32, has_bias: u32, npix: u32,
    chunk: u32, n_split: u32, _p0: u32, _p1: u32,
}

struct Six { a: vec3<f32>, b: vec3<f32> } // six values (0..2 in a, 3..5 in b)

fn six(v0: f32, v1: f32, v2: f32, v3: f32, v4: f32, v5: f32) -> Six {
    return Six(vec3<f32>(v0, v1, v2), vec3<f32>(v3, v4, v5));
}

// Bᵀ·d for six values
fn bt(d: Six) -> Six {
    let d0 = d.a.x; let d1 = d.a.y; let d2 = d.a.z; let d3 = d.b.x; let d4 = d.b.y; let d5 = d.b.z;
    return six(4.0 * d0 - 5.0 * d2 + d4,
               -4.0 * (d1 + d2) + d3 + d4,
               4.0 * (d1 - d2) - d3 + d4,
               -2.0 * d1 - d2 + 2.0 * d3 + d4,
               2.0 * d1 - d2 - 2.0 * d3 + d4,
               4.0 * d1 - 5.0 * d3 + d5);
}

// G·(g0, g1, g2)
fn g6(g0: f32, g1: f32, g2: f32) -> Six {
    return six(0.25 * g0,
               -(g0 + g1 + g2) / 6.0,
               -(g0 - g1 + g2) / 6.0,
               g0 / 24.0 + g1 / 12.0 + g2 / 6.0,
               g0 / 24.0 - g1 / 12.0 + g2 / 6.0,
               g2);
}

// Aᵀ·m for six values
fn at(m: Six) -> vec4<f32> {
    let m0 = m.a.x; let m1 = m.a.y; let m2 = m.a.z; let m3 = m.b.x; let m4 = m.b.y; let m5 = m.b.z;
    return vec4<f32>(m0 + m1 + m2 + m3 + m4,
                     m1 - m2 + 2.0 * (m3 - m4),
                     m1 + m2 + 4.0 * (m3 + m4),
                     m1 - m2 + 8.0 * (m3 - m4) + m5);
}

// value i (0..5) of six; both indices stay in range because select evaluates both sides
fn at6(s: Six, i: u32) -> f32 {
    return select(s.b[max(i, 3u) - 3u], s.a[min(i, 2u)], i < 3u);
}

fn lin(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 64u + li;
}

// The output's tiles of 4×4: per column (⌈out_h/4⌉) and per row (⌈out_w/4⌉); tile t = (n·th + ty)·tw + tx
// The tile grid and the batch as pipeline constants (TY = ⌈out_h/4⌉, TX = ⌈out_w/4⌉, NB = batch; CIN = cin):
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
