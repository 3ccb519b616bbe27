// softmax_backward.wgsl: dx = y ⊙ (g − Σ_a g⊙y) along the softmax axis.
//
// math:   y = softmax(x) has Jacobian ∂y_b/∂x_a = y_b·(δ_ab − y_a), so
//         dx_a = Σ_b g_b·y_b·(δ_ab − y_a) = y_a·g_a − y_a·Σ_b g_b·y_b = y_a·(g_a − dot),  dot = Σ_b g_b·y_b
// layout: y (saved by the forward), g, dx: contiguous f32 viewed as (outer, len, inner), as in softmax_forward.wgsl
// entries:
//   `per_workgroup`  one workgroup of 256 threads per row, a tree reduction for dot; for long rows
//   `per_thread`     one thread per row, a serial loop for dot; for short rows
// grid:   linear workgroup id over (x, y, z)
// binds:  @group(0) 0 params (uniform), 1 y, 2 g, 3 dx (rw)

struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    n_rows: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

var<workgroup> red: array<f32, WG>;

fn row_base(row: u32) -> u32 {
    return (row / p.inner) * p.len * p.inner + row % p.inner;
}

@compute @workgroup_size(256)
fn per_workgroup(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding past the last row (uniform across the workgroup, so barriers stay uniform)
    if row >= p.n_rows { return; }
    let base = row_base(row);
    var acc = 0.0;
    for (var a = li; a < p.len; a += WG) {
        let i = base + a * p.inner;
        acc += g[i] * y[i];
    }
    red[li] = acc;
    // tree reduction: halve the active threads each round
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier(); // red[] writes of the previous round are visible
        if li < s {
            red[li] += red[li + s];
        }
    }
    workgroupBarrier(); // the last round's write to red[0] is visible
    let dot = red[0];
    for (var a = li; a < p.len; a += WG) {
        let i = base + a * p.inner;
        dx[i] = y[i] * (g[i] - dot);
    }
}

@compute @workgroup_size(256)
fn per_thread(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    // guard: past the last row
    if row >= p.n_rows { return; }
    let base = row_base(row);
    var dot = 0.0;
    for (var a = 0u; a < p.len; a++) {
        let i = base + a * p.inner;
        dot += g[i] * y[i];
    }
    for (var a = 0u; a < p.len; a++) {
        let i = base + a * p.inner;
        dx[i] = y[i] * (g[i] - dot);
    }
}
