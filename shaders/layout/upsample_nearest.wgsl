// upsample_nearest.wgsl: nearest-neighbour 2× upsampling (the Upsample of MedSegDiff, before its 3×3 conv)
// and its backward.
//
// math:   forward   y[n, c, Y, X] = x[n, c, ⌊Y/2⌋, ⌊X/2⌋]   (torch.nn.Upsample(scale_factor=2, mode='nearest'))
//         backward  dx[n, c, yy, xx] = Σ_{a, b ∈ {0,1}} g[n, c, 2·yy + a, 2·xx + b]  (each input fed a 2×2 block)
// layout: x, dx: contiguous (N, C, H, W); y, g: contiguous (N, C, 2H, 2W). Params: nc = N·C, h, w = input size,
//         n = number of elements this entry writes (N·C·4HW forward, N·C·HW backward)
// grid:   @workgroup_size(256), one thread per element written (a gather both ways: no atomics),
//         linear workgroup id over (x, y, z)
// binds:  @group(0) 0 params (uniform), 1 input (x or g), 2 output (y or dx, rw)

struct Params {
    nc: u32,
    h: u32,
    w: u32,
    n: u32,
}

const WG: u32 = 256u;
// the input's H and W (= p.h, p.w) as pipeline constants: the index arithmetic's divisions and remainders
// compile to multiplies and shifts (by a runtime value each is a division per SIMD lane on llvmpipe)
override H: u32 = 1u;
override W: u32 = 1u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn linear_id(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
}

@compute @workgroup_size(256)
fn forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let o = linear_id(wg, nwg, li);
    // guard: past the last output element
    if o >= p.n { return; }
    let w2 = 2u * W;
    let h2 = 2u * H;
    let xx = o % w2;
    let yy = (o / w2) % h2;
    let plane = o / (w2 * h2);
    dst[o] = src[(plane * H + yy / 2u) * W + xx / 2u];
}

@compute @workgroup_size(256)
fn backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = linear_id(wg, nwg, li);
    // guard: past the last input element
    if i >= p.n { return; }
    let xx = i % W;
    let yy = (i / W) % H;
    let plane = i / (W * H);
    let w2 = 2u * W;
    // top-left of the 2×2 block in g (N, C, 2H, 2W)
    let base = (plane * 2u * H + 2u * yy) * w2 + 2u * xx;
    dst[i] = src[base] + src[base + 1u] + src[base + w2] + src[base + w2 + 1u];
}
