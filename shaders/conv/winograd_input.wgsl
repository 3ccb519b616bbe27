// winograd_input.wgsl: the input transform of conv v6 (Winograd F(2×2, 3×3)): each 4×4 input patch under a
// 2×2 output tile becomes V = Bᵀ·d·B, one value per plane ξ.
//
// math:   tile (n, ty, tx) covers outputs (2ty .. 2ty+1, 2tx .. 2tx+1) and reads the 4×4 patch
//         d[i][j] = x[n, ci, 2ty − pad_y + i, 2tx − pad_x + j] (zero outside the image).
//         Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]];  V = Bᵀ·d·B, so with t = Bᵀ·d
//         (rows combined: t0 = d0 − d2, t1 = d1 + d2, t2 = d2 − d1, t3 = d1 − d3) V[a] = the same combination
//         of row a's four columns. Only adds and subtracts: the transform itself rounds nothing away.
// layout: x (N, Cin, in_h, in_w); V (16, Cin, P) with P = N·th·tw tiles (th = ⌈out_h/2⌉, tw = ⌈out_w/2⌉), tile
//         p = (n·th + ty)·tw + tx; plane ξ = 4a + b. With the override TRANSPOSED, V is (16, P, Cin) instead:
//         the weight gradient's GEMM (winograd_grad.wgsl) reads it as its untransposed right operand.
// grid:   @workgroup_size(64), one invocation per (ci, p), p fastest (ci fastest when TRANSPOSED): neighbouring
//         lanes write neighbouring words of each plane (for TRANSPOSED, measured: 3×3 dw of (8, 64→64, 64×64)
//         77.5–79.5 ms with p fastest, 64.6–65.8 ms with ci fastest); linear workgroup id.
// binds:  @group(0) 0 params (uniform), 1 x, 2 v (rw)

struct Params {
    batch: u32, cin: u32, cout: u32, kdim: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    pad_y: i32, pad_x: i32, has_bias: u32, npix: u32,
    chunk: u32, n_split: u32, _p0: u32, _p1: u32,
}

override TRANSPOSED: bool = false; // V as (16, P, Cin) rather than (16, Cin, P)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;

// Bᵀ applied to four values (a column, or a row)
fn bt(d: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(d.x - d.z, d.y + d.z, d.z - d.y, d.y - d.w);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let th = (p.out_h + 1u) / 2u;
    let tw = (p.out_w + 1u) / 2u;
    let np = p.batch * th * tw;
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 64u + li;
    // guard: invocations past the last (ci, tile)
    if i >= p.cin * np { return; }
    // (ci, tile): tiles fastest, so neighbouring lanes write neighbouring words of a plane; TRANSPOSED writes
    // (tile, ci) rows, so there channels go fastest for the same reason
    var ci = i / np;
    var t = i % np;
    if TRANSPOSED {
        ci = i % p.cin;
        t = i / p.cin;
    }
    let tx = t % tw;
    let ty = (t / tw) % th;
    let n = t / (tw * th);
    let y0 = 2 * i32(ty) - p.pad_y;
    let x0 = 2 * i32(tx) - p.pad_x;
    let plane = (n * p.cin + ci) * p.in_h * p.in_w;
    // the patch, one row per vec4 (zero outside the image)
    var d: array<vec4<f32>, 4>;
    for (var r = 0; r < 4; r++) {
        let iy = y0 + r;
        var row = vec4<f32>();
        if iy >= 0 && iy < i32(p.in_h) {
            let rb = plane + u32(iy) * p.in_w;
            for (var c = 0; c < 4; c++) {
                let ix = x0 + c;
                if ix >= 0 && ix < i32(p.in_w) { row[c] = x[rb + u32(ix)]; }
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
    for (var a = 0u; a < 4u; a++) {
        for (var b = 0u; b < 4u; b++) {
            v[(a * 4u + b) * stride + o] = rows[a][b];
        }
    }
}
