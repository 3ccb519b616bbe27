// grad_norm.wgsl: sums of squares for the global gradient norm, and torch's clip coefficient.
//
// math:   partials          out[offset + w] = Σ_{i ∈ slice w} x[i]²     (one partial sum per workgroup)
//         finish            out[0] = Σ_{i < n} x[i], or its square root when SQRT = 1
//         clip_coefficient  out[0] = min(1, max_norm / (x[0] + 1e-6))   (torch.nn.utils.clip_grad_norm_)
//         The global norm of tensors t_1..t_k is sqrt(Σ_k Σ_i t_k[i]²): one `partials` dispatch per tensor,
//         each filling its own slots of ONE shared buffer (at `offset`), then one `finish` with SQRT = 1.
//         Nothing goes back to the host.
// layout: x: f32, n elements;  out: f32 (partials: the shared slot buffer; finish, clip: one value)
// grid:   partials: @workgroup_size(256), n_partials workgroups (host caps it at 256); thread li of
//         workgroup w walks i = w·256 + li in steps of n_partials·256 (grid-stride), then a tree reduction
//         in workgroup memory (as reduce/sum.wgsl `per_workgroup`).
//         finish: one workgroup, same stride-then-tree pattern over the n slots.  clip: one workgroup, one thread.
// binds:  @group(0) 0 params (uniform), 1 x, 2 out (rw)   (the same for all three entry points)
// backward: none (optimizer internals are not taped)

struct Params {
    n: u32,          // elements of x to read
    offset: u32,     // partials: first slot of out this tensor owns
    n_partials: u32, // partials: workgroups launched for this tensor
    max_norm: f32,   // clip_coefficient only
}

override SQRT: u32 = 0u;

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, WG>;

// Sum `v` over the workgroup into partial[0] (read it after this returns, from thread 0).
fn tree_sum(li: u32, v: f32) {
    partial[li] = v;
    // tree reduction: halve the active threads each round
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier(); // partial[] writes of the previous round (or the first store) are visible
        if li < s {
            partial[li] += partial[li + s];
        }
    }
}

@compute @workgroup_size(256)
fn partials(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let w = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding past this tensor's partials (uniform across the workgroup, so barriers stay uniform)
    if w >= p.n_partials { return; }
    var acc = 0.0;
    for (var i = w * WG + li; i < p.n; i += p.n_partials * WG) {
        acc += x[i] * x[i];
    }
    tree_sum(li, acc);
    if li == 0u {
        out[p.offset + w] = partial[0];
    }
}

@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) li: u32) {
    // launched as exactly one workgroup: no guard needed
    var acc = 0.0;
    for (var i = li; i < p.n; i += WG) {
        acc += x[i];
    }
    tree_sum(li, acc);
    if li == 0u {
        if SQRT == 1u {
            out[0] = sqrt(partial[0]);
        } else {
            out[0] = partial[0];
        }
    }
}

@compute @workgroup_size(1)
fn clip_coefficient() {
    // x[0] is the norm; the 1e-6 keeps a zero norm from dividing by zero, as torch does
    out[0] = min(1.0, p.max_norm / (x[0] + 1e-6));
}
