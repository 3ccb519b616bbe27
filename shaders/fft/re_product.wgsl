// re_product.wgsl: out[o] = Σ_b Re(X[b, o] · G[b, o]), the FF-Parser's map gradient.
//
// math:   dL/dM = Σ_batch Re(fft2(x) ⊙ ifft2(g)) = Σ_b (Xre·Gre − Xim·Gim); with a per-sample map there is no
//         batch sum (the host passes batches = 1 and n_out = B·C·H·W)
// layout: X, G: interleaved complex, (batches, n_out, 2) contiguous; out: (n_out) f32
// grid:   @workgroup_size(256), one thread per output, a serial loop over the batch; linear workgroup id
// binds:  @group(0) 0 params (uniform), 1 X, 2 G, 3 out (rw)

struct Params {
    n_out: u32,
    batches: u32,
    _p0: u32,
    _p1: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xs: array<f32>;
@group(0) @binding(2) var<storage, read> gs: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let o = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    // guard: past the last output
    if o >= p.n_out { return; }
    var acc = 0.0;
    for (var b = 0u; b < p.batches; b++) {
        let e = 2u * (b * p.n_out + o);
        acc += xs[e] * gs[e] - xs[e + 1u] * gs[e + 1u];
    }
    out[o] = acc;
}
