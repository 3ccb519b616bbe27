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
    let wi = o % p.w;
    let hi = (o / p.w) % p.h;
    let cc = (o / (p.w * p.h)) % (p.c * p.r * p.r);
    let bi = o / (p.w * p.h * p.c * p.r * p.r);
    // cc = c·r² + r1·r + r2
    let ci = cc / (p.r * p.r);
    let r1 = (cc / p.r) % p.r;
    let r2 = cc % p.r;
    // input (b, c, h·r, w·r)
    let wr = p.w * p.r;
    let hr = p.h * p.r;
    y[o] = x[((bi * p.c + ci) * hr + hi * p.r + r1) * wr + wi * p.r + r2];
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
    let wr = p.w * p.r;
    let hr = p.h * p.r;
    let xx = o % wr;
    let yy = (o / wr) % hr;
    let ci = (o / (wr * hr)) % p.c;
    let bi = o / (wr * hr * p.c);
    // Y = hi·r + r1, X = wi·r + r2
    let hi = yy / p.r;
    let r1 = yy % p.r;
    let wi = xx / p.r;
    let r2 = xx % p.r;
    // input (b, c·r², h, w), channel c·r² + r1·r + r2
    let cc = ci * p.r * p.r + r1 * p.r + r2;
    y[o] = x[((bi * p.c * p.r * p.r + cc) * p.h + hi) * p.w + wi];
}
