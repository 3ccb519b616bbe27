// linear_qexp.wgsl: q's softmax over the d features at one pixel, before normalising: shared by linear_out,
// linear_dq and linear_dcontext's pixel-at-a-time path (appended to each; they bind `qkv` and set D).
//
// math:   e[c] = e^(q[c, i] − max_c q[·, i]), s = Σ_c e[c] (c in order); q̂[c] = e[c] / s, which each caller
//         forms itself (scaled by dim_head^-1/2, or not)

struct QExp {
    e: array<f32, 64>, // d ≤ 64
    s: f32,
}

// q of head channel qch (head_channel(0, bh)) at pixel i
fn q_exp(qch: u32, i: u32) -> QExp {
    var r: QExp;
    var mx = -3.4e38;
    // unroll
    for (var c = 0u; c < D; c++) {
        r.e[c] = qkv[(qch + c) * p.n + i];
        mx = max(mx, r.e[c]);
    }
    r.s = 0.0;
    // unroll
    for (var c = 0u; c < D; c++) {
        r.e[c] = exp(r.e[c] - mx);
        r.s += r.e[c];
    }
    return r;
}
