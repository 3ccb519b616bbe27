// common.wgsl: what the fast FFT rungs (v2–v5) share, appended to each by `shader!` (WGSL declarations may come
// in any order): the uniform block, the index helpers and the layout's loads and stores. Each shader declares its
// own bindings `p`, `x` and `y` (see its header); the layout is fft_v1_dft.wgsl's: element e of the stack at
// words e·es + (e / hw)·is, the imaginary part cs further unless the side is real.

struct Params {
    n: u32, lines: u32, lines_per_wg: u32, log2n: u32,
    stride: u32, inner: u32, outer: u32, hw: u32,
    in_es: u32, in_is: u32, in_cs: u32, in_real: u32,
    out_es: u32, out_is: u32, out_cs: u32, out_real: u32,
    map_images: u32, sign: f32, scale: f32, lines_sh: u32,
    inner_sh: u32, hw_sh: u32, len: u32, blue: u32, // len, blue: v4 only (Bluestein)
}

const NOT_POW2: u32 = 32u; // inner_sh / hw_sh when inner / hw is not a power of two

// a / d as a shift when d = 2^sh (sh < 32, uniform: the branch is not divergent)
fn div(a: u32, d: u32, sh: u32) -> u32 {
    if sh != NOT_POW2 { return a >> sh; }
    return a / d;
}

// the complex index of element 0 of line `line`: base = (line / inner)·outer + line % inner
fn line_base(line: u32) -> u32 {
    let o = div(line, p.inner, p.inner_sh);
    return o * p.outer + (line - o * p.inner);
}

// the image holding complex element e (a line's elements all lie in one image: see load_in)
fn image_of(e: u32) -> u32 {
    return div(e, p.hw, p.hw_sh);
}

// complex element e of the input
fn load(e: u32) -> vec2<f32> {
    return load_in(e, image_of(e));
}

// complex element e of the input, in image img = image_of(e): a line's elements (a row or a column of one
// image) share it, so the private rungs find it once a line. On llvmpipe `div` is not known to take the same
// branch in every lane, so each call would pay the SIMD lanes' scalar divisions as well as the shift.
fn load_in(e: u32, img: u32) -> vec2<f32> {
    let a = e * p.in_es + img * p.in_is;
    if p.in_real != 0u {
        return vec2<f32>(x[a], 0.0);
    }
    return vec2<f32>(x[a], x[a + p.in_cs]);
}

// complex element e of the output (the real part only for a real output)
fn store(e: u32, v: vec2<f32>) {
    store_in(e, image_of(e), v);
}

// store for element e of image img = image_of(e) (as load_in)
fn store_in(e: u32, img: u32, v: vec2<f32>) {
    let a = e * p.out_es + img * p.out_is;
    y[a] = v.x;
    if p.out_real == 0u {
        y[a + p.out_cs] = v.y;
    }
}

fn cmul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}
