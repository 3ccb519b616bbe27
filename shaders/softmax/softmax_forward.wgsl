// softmax_forward.wgsl: y = softmax(x) along one axis, numerically stable (the row max is subtracted first).
//
// math:   for each row r (one position of every other axis):  m = max_a x[r, a];  s = Σ_a exp(x[r, a] − m)
//         y[r, a] = exp(x[r, a] − m) / s
//         Subtracting m keeps every exp argument ≤ 0, so nothing overflows whatever the magnitude of x
//         (exp(80) is near f32's limit; exp(89) overflows); the largest term is exp(0) = 1, so s ≥ 1.
// layout: x, y: contiguous f32 viewed as (outer, len, inner), softmax over `len`. Row r = o·inner + i starts at
//         o·len·inner + i and its elements are `inner` apart (inner = 1 for the last axis)
// entries:
//   `per_workgroup`  one workgroup of 256 threads per row: threads stride over the row, then two tree
//                    reductions in workgroup memory (max, then sum), as in reduce/sum.wgsl; for long rows
//   `per_thread`     one thread per row with three serial loops (max, sum, write); for short rows, where
//                    neighbouring threads read neighbouring addresses when inner > 1
// grid:   linear workgroup id over (x, y, z), so the host can launch more than 65,535 workgroups
// binds:  @group(0) 0 params (uniform), 1 x, 2 y (rw)
// backward: softmax/softmax_backward.wgsl (reads y)

struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    n_rows: u32,
}

const WG: u32 = 256u;
// the lowest finite f32: the identity of max without an infinity literal (WGSL has none)
const LOWEST: f32 = -0x1.fffffep+127f;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

var<workgroup> red: array<f32, WG>;

fn row_base(row: u32) -> u32 {
    return (row / p.inner) * p.len * p.inner + row % p.inner;
}

// Max of every thread's `v` over the workgroup. Call from uniform control flow.
fn workgroup_max(li: u32, v: f32) -> f32 {
    red[li] = v;
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier(); // red[] writes of the previous round are visible
        if li < s {
            red[li] = max(red[li], red[li + s]);
        }
    }
    workgroupBarrier(); // the last round's write to red[0] is visible
    let r = red[0];
    workgroupBarrier(); // everyone has read red[0] before red[] is reused
    return r;
}

// Sum of every thread's `v` over the workgroup. Call from uniform control flow.
fn workgroup_sum(li: u32, v: f32) -> f32 {
    red[li] = v;
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier(); // red[] writes of the previous round are visible
        if li < s {
            red[li] += red[li + s];
        }
    }
    workgroupBarrier(); // the last round's write to red[0] is visible
    let r = red[0];
    workgroupBarrier(); // everyone has read red[0] before red[] is reused
    return r;
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
    // pass 1: m = max_a x[a]
    var m = LOWEST;
    for (var a = li; a < p.len; a += WG) {
        m = max(m, x[base + a * p.inner]);
    }
    m = workgroup_max(li, m);
    // pass 2: s = Σ_a exp(x[a] − m)
    var s = 0.0;
    for (var a = li; a < p.len; a += WG) {
        s += exp(x[base + a * p.inner] - m);
    }
    let inv = 1.0 / workgroup_sum(li, s);
    // pass 3: y[a] = exp(x[a] − m) / s
    for (var a = li; a < p.len; a += WG) {
        let i = base + a * p.inner;
        y[i] = exp(x[i] - m) * inv;
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
    var m = LOWEST;
    for (var a = 0u; a < p.len; a++) {
        m = max(m, x[base + a * p.inner]);
    }
    var s = 0.0;
    for (var a = 0u; a < p.len; a++) {
        s += exp(x[base + a * p.inner] - m);
    }
    let inv = 1.0 / s;
    for (var a = 0u; a < p.len; a++) {
        let i = base + a * p.inner;
        y[i] = exp(x[i] - m) * inv;
    }
}
