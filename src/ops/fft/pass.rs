//! One 1-D pass of a transform along the rows or the columns of an image stack, and the 2-D transforms built
//! from two of them: the layouts, the uniform block the shaders share, the host-side tables and the launch.

use bytemuck::{Pod, Zeroable};

use super::*;
use crate::gpu::Shader;
use crate::ops::{groups_1d, launch, launch_with_uniforms};
use crate::shader;

const V1: Shader = shader!("fft/fft_v1_dft.wgsl");
const V2: Shader = shader!("fft/fft_v2_stockham.wgsl", "fft/common.wgsl");
const V3: Shader = shader!("fft/fft_v3_private.wgsl", "fft/common.wgsl");
const V4: Shader = shader!("fft/fft_v4_mixed.wgsl", "fft/common.wgsl", "fft/radix.wgsl");
const V5: Shader = shader!("fft/fft_v5_private_mixed.wgsl", "fft/common.wgsl", "fft/radix.wgsl");
const RE_PRODUCT: Shader = shader!("fft/re_product.wgsl");

thread_local! {
    /// The host tables of the rungs per (rung, line length), each computed once (in f64) and kept on the device.
    static TABLES: std::cell::RefCell<std::collections::HashMap<(&'static str, usize), Tensor>> = Default::default();
}

/// The table of `rung` for lines of length n: built by `build` on first use.
fn table(rung: &'static str, n: usize, build: impl FnOnce() -> Tensor) -> Tensor {
    TABLES.with(|t| t.borrow_mut().entry((rung, n)).or_insert_with(build).clone())
}

/// v3's twiddles, one per (stage s, butterfly q < n/2) at vec4 s·n/2 + q (.xy): exp(−2πi·t/n) with
/// t = (q >> s) << s (fft_v3_private.wgsl), padded to a 64 KiB uniform block.
fn twiddles(n: usize) -> Tensor {
    table("v3", n, || {
        let half = n / 2;
        let mut v = vec![0.0f32; crate::ops::UNIFORM_BLOCK_F32];
        for s in 0..n.trailing_zeros() as usize {
            for q in 0..half {
                let (c, sn) = root(((q >> s) << s) as f64, n as f64);
                v[4 * (s * half + q)] = c as f32;
                v[4 * (s * half + q) + 1] = sn as f32;
            }
        }
        Tensor::from_slice(&v, &[v.len()]).expect("length matches")
    })
}

/// exp(−2πi·num/den) in f64.
fn root(num: f64, den: f64) -> (f64, f64) {
    let (s, c) = (-2.0 * std::f64::consts::PI * num / den).sin_cos();
    (c, s)
}

/// v4's table for lines of length n (layout in fft_v4_mixed.wgsl), in f64 rounded once to f32: the twiddles
/// tw[t] = exp(−2πi·t/L) for t < L = `mixed_len(n)`; for Bluestein (L ≠ n) then the chirp
/// c[j] = exp(−πi·j²/n) for j < n and, per sign s = −1, +1, B̂_s = DFT_L(b_s)/L with b_s[j] = conj(c_s[|j|])
/// wrapped circularly (c_{+1} = conj(c_{−1})). The DFT of b is direct, O(L²) once per n.
fn mixed_table(n: usize) -> Tensor {
    table("v4", n, || {
        let len = mixed_len(n);
        let mut v: Vec<(f64, f64)> = (0..len).map(|t| root(t as f64, len as f64)).collect();
        if len != n {
            // j² mod 2n keeps the angle's argument small: exp(−πi·j²/n) has period 2n in j²
            let chirp: Vec<(f64, f64)> = (0..n).map(|j| root(((j * j) % (2 * n)) as f64, (2 * n) as f64)).collect();
            v.extend(&chirp);
            for sign in [-1.0, 1.0] {
                // b[j] = conj(c_s[j]) = c_{−s}[j]; c_{−1} is `chirp`, c_{+1} its conjugate
                let b_at = |j: usize| {
                    let (re, im) = chirp[j];
                    (re, sign * im)
                };
                let mut b = vec![(0.0, 0.0); len];
                for j in 0..n {
                    b[j] = b_at(j);
                    if j > 0 {
                        b[len - j] = b_at(j);
                    }
                }
                for k in 0..len {
                    let (mut re, mut im) = (0.0, 0.0);
                    for (j, &(br, bi)) in b.iter().enumerate() {
                        let (c, s) = root(((j * k) % len) as f64, len as f64);
                        re += br * c - bi * s;
                        im += br * s + bi * c;
                    }
                    v.push((re / len as f64, im / len as f64));
                }
            }
        }
        let flat: Vec<f32> = v.iter().flat_map(|&(re, im)| [re as f32, im as f32]).collect();
        let words = flat.len();
        Tensor::from_slice(&flat, &[words]).expect("length matches")
    })
}

/// v5's uniform window for lines of length n: tw[t] = exp(−2πi·t/n) (f64, rounded once) in the first two
/// floats of vec4 t, t < n, zero-padded to one 64 KiB block.
fn private_mixed_table(n: usize) -> Tensor {
    table("v5", n, || {
        let mut v = vec![0.0f32; crate::ops::UNIFORM_BLOCK_F32];
        for t in 0..n {
            let (c, s) = root(t as f64, n as f64);
            v[4 * t] = c as f32;
            v[4 * t + 1] = s as f32;
        }
        Tensor::from_slice(&v, &[v.len()]).expect("length matches")
    })
}

/// Mirrors `struct Params` in fft_v1_dft.wgsl … fft_v5_private_mixed.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
struct LineParams {
    n: u32,
    lines: u32,
    lines_per_wg: u32,
    log2n: u32,
    stride: u32,
    inner: u32,
    outer: u32,
    hw: u32,
    in_es: u32,
    in_is: u32,
    in_cs: u32,
    in_real: u32,
    out_es: u32,
    out_is: u32,
    out_cs: u32,
    out_real: u32,
    map_images: u32,
    sign: f32,
    scale: f32,
    lines_sh: u32,
    inner_sh: u32,
    hw_sh: u32,
    /// v4 only: the transform length L (n, or Bluestein's power of two); unused elsewhere.
    len: u32,
    /// v4 only: 1 for Bluestein; unused elsewhere.
    blue: u32,
}

/// log2 of `v` when it is a power of two, else 32 (`NOT_POW2` in fft_v2_stockham.wgsl: divide for real).
fn shift_of(v: usize) -> u32 {
    if v.is_power_of_two() {
        v.trailing_zeros()
    } else {
        32
    }
}

/// Mirrors `struct Params` in re_product.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReProductParams {
    n_out: u32,
    batches: u32,
    _p0: u32,
    _p1: u32,
}

/// How complex element e of an (images, H, W) stack sits in memory: words e·es + (e / hw)·is (real part) and
/// + cs (imaginary part). See the layout lines of fft_v1_dft.wgsl.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    /// (…, H, W) real values; the imaginary part reads as 0 and is not written.
    Real,
    /// (…, H, W, 2) interleaved (re, im).
    Interleaved,
    /// (B, 2C, H, W): channel 2c holds Re, 2c+1 holds Im (einops `b d h w ri -> b (d ri) h w`).
    Planar,
}

impl Layout {
    /// (es, is, cs, real) for images of `hw` pixels.
    fn words(self, hw: u32) -> (u32, u32, u32, u32) {
        match self {
            Layout::Real => (1, 0, 0, 1),
            Layout::Interleaved => (2, 0, 1, 0),
            Layout::Planar => (1, hw, hw, 0),
        }
    }

    fn floats_per_elem(self) -> usize {
        if self == Layout::Real {
            1
        } else {
            2
        }
    }
}

/// A stack of `images` = B·C images of H×W pixels.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dims {
    pub(super) images: usize,
    pub(super) h: usize,
    pub(super) w: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Axis {
    Rows,
    Cols,
}

/// What one pass (or a 2-D transform) computes: `scale` · Σ x·exp(`sign`·2πi·…), read in `input` layout and
/// written in `output` layout.
#[derive(Clone, Copy, Debug)]
pub(super) struct Transform {
    input: Layout,
    output: Layout,
    sign: f32,
    scale: f32,
}

impl Transform {
    /// F: the unnormalised forward transform (sign −1).
    pub(super) fn forward(input: Layout, output: Layout) -> Transform {
        Transform { input, output, sign: -1.0, scale: 1.0 }
    }

    /// Fᴴ = H·W · F⁻¹: the unnormalised inverse-sign transform (sign +1).
    pub(super) fn adjoint(input: Layout, output: Layout) -> Transform {
        Transform { input, output, sign: 1.0, scale: 1.0 }
    }

    pub(super) fn scaled(self, scale: f32) -> Transform {
        Transform { scale, ..self }
    }
}

/// One 1-D pass along `axis` with the rung `kernel.for_len(n)`, not taped. `map` = (M, map_images) multiplies
/// the transformed lines by M; with the Stockham, private or mixed rung the same launch then transforms back with the opposite
/// sign, unscaled (see the shader headers). `pack` overrides the lines per Stockham workgroup (tests only).
/// The result is flat; callers reshape it.
pub(super) fn line_pass(
    kernel: FftKernel,
    axis: Axis,
    x: &Tensor,
    d: Dims,
    t: Transform,
    map: Option<(&Tensor, usize)>,
    pack: Option<usize>,
) -> Tensor {
    let hw = d.h * d.w;
    let (n, lines, stride, inner, outer) = match axis {
        Axis::Rows => (d.w, d.images * d.h, 1, 1, d.w),
        Axis::Cols => (d.h, d.images * d.w, d.w, d.w, hw),
    };
    let rung = kernel.for_len(n);
    let lines_per_wg = match rung {
        FftKernel::Dft => 1,
        FftKernel::Private | FftKernel::PrivateMixed => PRIVATE_WG,
        // a power of two (the shader splits slot indices with shifts): `pack` rounds down to one
        FftKernel::Stockham | FftKernel::Mixed => {
            let len = mixed_len(n);
            let l = pack.unwrap_or((STOCKHAM_ELEMS / len).max(1)).clamp(1, SLOTS / len);
            1 << l.ilog2()
        }
    };
    let (in_es, in_is, in_cs, in_real) = t.input.words(hw as u32);
    let (out_es, out_is, out_cs, out_real) = t.output.words(hw as u32);
    let p = LineParams {
        n: n as u32,
        lines: lines as u32,
        lines_per_wg: lines_per_wg as u32,
        log2n: n.trailing_zeros(),
        stride: stride as u32,
        inner: inner as u32,
        outer: outer as u32,
        hw: hw as u32,
        in_es,
        in_is,
        in_cs,
        in_real,
        out_es,
        out_is,
        out_cs,
        out_real,
        map_images: map.map_or(0, |m| m.1 as u32),
        sign: t.sign,
        scale: t.scale,
        lines_sh: shift_of(lines_per_wg),
        inner_sh: shift_of(inner),
        hw_sh: shift_of(hw),
        len: mixed_len(n) as u32,
        blue: (mixed_len(n) != n) as u32,
    };
    let out = Tensor::uninit(&[d.images * hw * t.output.floats_per_elem()]);
    let m = map.map_or(x, |m| m.0); // an unused map binding gets x
    let groups = lines.div_ceil(lines_per_wg) as u32; // one workgroup per lines_per_wg lines
    match rung {
        FftKernel::Dft => launch(V1, "main", &[], &p, &[x, m], &[&out], groups),
        FftKernel::Stockham => launch(V2, "main", &[], &p, &[x, m], &[&out], groups),
        FftKernel::Private => {
            let ov = [("N", n as f64), ("LOG2N", n.trailing_zeros() as f64)];
            launch_with_uniforms(V3, "main", &ov, &p, &[x, m], &[&out], &[(&twiddles(n), 0)], groups);
        }
        FftKernel::Mixed => launch(V4, "main", &[], &p, &[x, m, &mixed_table(n)], &[&out], groups),
        FftKernel::PrivateMixed => {
            let window = [(&private_mixed_table(n), 0)];
            launch_with_uniforms(V5, "main", &[], &p, &[x, m], &[&out], &window, groups);
        }
    }
    out
}

/// A 2-D transform: rows (into interleaved scratch), then columns (into `t.output`, with `t.scale`), not taped.
/// The result is flat; callers reshape it.
pub(super) fn transform2d(kernel: FftKernel, x: &Tensor, d: Dims, t: Transform, pack: Option<usize>) -> Tensor {
    let rows_t = Transform { output: Layout::Interleaved, scale: 1.0, ..t };
    let rows = line_pass(kernel, Axis::Rows, x, d, rows_t, None, pack);
    line_pass(kernel, Axis::Cols, &rows, d, Transform { input: Layout::Interleaved, ..t }, None, pack)
}

/// Re(ifft2(M ⊙ fft2(x))) for real x, not taped. `map_images` = C (shared map) or B·C (per sample).
pub(super) fn ff_parser_raw(kernel: FftKernel, x: &Tensor, map: &Tensor, map_images: usize, d: Dims) -> Tensor {
    let hw = (d.h * d.w) as f32;
    let c2c = Transform::forward(Layout::Interleaved, Layout::Interleaved);
    // rows: forward from the real x
    let spec = line_pass(kernel, Axis::Rows, x, d, Transform::forward(Layout::Real, Layout::Interleaved), None, None);
    // columns: forward, ⊙ M, inverse (one launch on the Stockham rung, two on the DFT rung)
    let filtered = match kernel.for_len(d.h) {
        FftKernel::Stockham | FftKernel::Private | FftKernel::Mixed | FftKernel::PrivateMixed => {
            line_pass(kernel, Axis::Cols, &spec, d, c2c, Some((map, map_images)), None)
        }
        FftKernel::Dft => {
            let s = line_pass(kernel, Axis::Cols, &spec, d, c2c, Some((map, map_images)), None);
            let back = Transform::adjoint(Layout::Interleaved, Layout::Interleaved);
            line_pass(kernel, Axis::Cols, &s, d, back, None, None)
        }
    };
    // rows: inverse with the whole 1/(H·W), keeping the real part
    let back = Transform::adjoint(Layout::Interleaved, Layout::Real).scaled(1.0 / hw);
    line_pass(kernel, Axis::Rows, &filtered, d, back, None, None)
}

/// out = Σ_b Re(X[b] ⊙ G[b]) over `batches` blocks of `n_out` complex elements (the FF-Parser's dM).
pub(super) fn re_product(xs: &Tensor, gs: &Tensor, n_out: usize, batches: usize) -> Tensor {
    let out = Tensor::uninit(&[n_out]);
    let p = ReProductParams { n_out: n_out as u32, batches: batches as u32, _p0: 0, _p1: 0 };
    launch(RE_PRODUCT, "main", &[], &p, &[xs, gs], &[&out], groups_1d(n_out));
    out
}
