// linear_common.wgsl: what every linear_*.wgsl kernel shares, appended to each (`shader!`): the params block
// where a head's q, k or v channels start in qkv, and the online-softmax step of the split-K kernels and their
// merge.

struct Params {
    n: u32,        // pixels (H·W)
    d: u32,        // dim_head, 1 ..= 64
    heads: u32,
    nbh: u32,      // batch·heads
    chunk: u32,    // pixels per workgroup of the split-K kernels
    nchunk: u32,   // chunks per head
    neb: u32,      // value-channel blocks per chunk
    eb4: u32,      // vec4 columns per block (eb4·d ≤ 64)
    hs: u32,       // floats per head in the head-block buffer this dispatch reads as a window or writes
    bh0: u32,      // first head of this dispatch's window
    nbw: u32,      // heads in this dispatch's window
    dp: u32,       // d rounded up to a multiple of 4: the row length of a context block
    ps: u32,       // floats per partial: 2·dp + d·dp
    scale: f32,    // dim_head^-1/2
    hsf: u32,      // floats per head in the forward's head blocks (read by linear_merge.wgsl:backward)
    npart: u32,    // partials per head: 64·nchunk
}

@group(0) @binding(0) var<uniform> p: Params;

// first channel of head bh's q (part 0), k (1) or v (2) in qkv (B, 3·heads·d, n)
fn head_channel(part: u32, bh: u32) -> u32 { return (bh / p.heads * 3u + part) * p.heads * p.d + bh % p.heads * p.d; }

// The online-softmax step of one k row at a new value x against the running maximum m: (r, w) such that the
// running sums become s·r + w and acc·r + w·v, one exponential either way.
fn online(m: f32, x: f32) -> vec2<f32> {
    let z = exp(-abs(x - m));
    let up = x > m;
    return vec2<f32>(select(1.0, z, up), select(z, 1.0, up));
}
