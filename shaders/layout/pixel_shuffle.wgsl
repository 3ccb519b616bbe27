// pixel_shuffle.wgsl: space-to-depth (`unshuffle`) and its inverse depth-to-space (`shuffle`) by a factor r.
//
// math:   unshuffle  y[b, c·r² + r1·r + r2, h, w] = x[b, c, h·r + r1, w·r + r2]
//                    (einops 'b c (h r1) (w r2) -> b (c r1 r2) h w', torch.nn.PixelUnshuffle: MedSegDiff's
//                    Downsample with r = 2)
//         shuffle    y[b, c, h·r + r1, w·r + r2] = x[b, c·r² + r1·r + r2, h, w]   (torch.nn.PixelShuffle)
//         each is a pure permutation of elements, so each one's backward is the other
// layout: Params name the *small* side in both directions: channels c, height h, width w; the large side has
//         c·r² channels (unshuffle output, shuffle input) or h·r × w·r pixels (unshuffle input, shuffle output).
//         x, y: contiguous NCHW f32
// grid:   @workgroup_size(256), one thread per output element (a gather, so every output is written once),
//         linear workgroup id over (x, y, z)
// binds:  @group(0) 0 params (uniform), 1 x, 2 y (rw)
// backward: unshuffle's is `shuffle` of g, shuffle's is `unshuffle` of g

struct Params {
    b: u32,
    c: u32,
    h: u32,
    w: u32,
    r: u32,
    n: u32,
}

const WG: u32 = 256u;
// the small side's C, H, W and the factor R (= p.c, p.h, p.w, p.r) as pipeline constants, so that the index
// arithmetic's divisions and remainders compile to multiplies and shifts (by a runtime value each is a
// division per SIMD lane on llvmpipe: 3.3× slower, docs/bench-history.md)
override C: u32 = 1u;
override H: u32 = 1u;
override W: u32 = 1u;
override R: u32 = 2u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn linear_id(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
}

@compute @workgroup_size(256)
fn unshuffle(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let o = linear_id(wg, nwg, li);
    // guard: past the last output element
    if o >= p.n { return; }
    // o = ((b·(c·r²) + cc)·h + hi)·w + wi over the output (b, c·r², h, w)
    let wi = o % W;
    let hi = (o / W) % H;
    let cc = (o / (W * H)) % (C * R * R);
    let bi = o / (W * H * C * R * R);
    // cc = c·r² + r1·r + r2
    let ci = cc / (R * R);
    let r1 = (cc / R) % R;
    let r2 = cc % R;
    // input (b, c, h·r, w·r)
    let wr = W * R;
    let hr = H * R;
    y[o] = x[((bi * C + ci) * hr + hi * R + r1) * wr + wi * R + r2];
}

@compute @workgroup_size(256)
fn shuffle(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let o = linear_id(wg, nwg, li);
    // guard: past the last output element
    if o >= p.n { return; }
    // o = ((b·c + ci)·(h·r) + Y)·(w·r) + X over the output (b, c, h·r, w·r)
    let wr = W * R;
    let hr = H * R;
    let xx = o % wr;
    let yy = (o / wr) % hr;
    let ci = (o / (wr * hr)) % C;
    let bi = o / (wr * hr * C);
    // Y = hi·r + r1, X = wi·r + r2
    let hi = yy / R;
    let r1 = yy % R;
    let wi = xx / R;
    let r2 = xx % R;
    // input (b, c·r², h, w), channel c·r² + r1·r + r2
    let cc = ci * R * R + r1 * R + r2;
    y[o] = x[((bi * C * R * R + cc) * H + hi) * W + wi];
}
