//! 2-D discrete Fourier transforms over the last two axes of (B, C, H, W) tensors, and the FF-Parser of
//! MedSegDiff built on them. Conventions as `torch.fft`: complex values are interleaved (re, im) f32 pairs, so
//! a complex tensor has shape (B, C, H, W, 2); `fft2` is unnormalised, `ifft2` carries 1/(H·W):
//!
//!   F z[u, v] = Σ_{h,w} z[h, w] · exp(−2πi (u·h/H + v·w/W)),   ifft2 = F⁻¹ = Fᴴ / (H·W)   (F is symmetric).
//!
//! **Gradients of complex tensors.** A complex tensor is just a real tensor with a trailing 2, so the gradient
//! of a real loss L with respect to it is the pair (∂L/∂re, ∂L/∂im), read as the complex number
//! ∂L/∂re + i·∂L/∂im. With that convention, if y = A z for a complex matrix A and g = dL/dy, then
//! L changes by Σ Re(conj(g)·dy) = Re(gᴴ A dz) = Re((Aᴴ g)ᴴ dz), so dL/dz = Aᴴ g; when z is real only the
//! real part of Aᴴ g survives. Since Fᴴ = H·W · ifft2:
//! - `fft2` (x real, y = F x):            dx = Re(Fᴴ g) = Re(H·W · ifft2(g))            (SPEC §4, dynamic FF-Parser)
//! - `fft2_complex` forward (y = F z):    dz = Fᴴ g = H·W · ifft2(g)
//! - `fft2_complex` inverse (y = Fᴴz/HW): dz = F g / (H·W) = fft2(g) / (H·W)
//! - `fft2_channels`: the `fft2` rule, with g read from channels (2c, 2c+1) = (gre, gim)
//! - `ff_parser`, y = Re(ifft2(M ⊙ fft2(x))) with M real (SPEC §3); g real. Term 1, dx = Re(Aᵀ g) with
//!   A = F⁻¹ diag(M) F, Aᵀ = F diag(M) F⁻¹, whose real part on a real g equals that of A g (the two are complex
//!   conjugates), so dx = Re(ifft2(M ⊙ fft2(g))): the forward applied to g. Term 2, L = Re Σ_k (F⁻¹g)_k M_k X_k
//!   gives dM = Re(fft2(x) ⊙ ifft2(g)), summed over the batch when M (C, H, W) is shared by it.
//!
//! Forward saves nothing for `fft2`/`fft2_complex`/`fft2_channels` (linear ops); `ff_parser` saves x and M.
//!
//! **Kernels.** A 2-D transform is a pass of 1-D transforms along rows (length W) and then along columns
//! (length H); each pass reads one layout (real, interleaved complex, or planar channels) and writes another,
//! so layout changes never cost a copy. The ladder (shaders/fft/), every rung run by the same tests:
//! - `Dft`      (v1): one workgroup per line, each thread an O(n²) sum over its line in global memory. Any n.
//! - `Stockham` (v2): lines staged in workgroup memory, log2 n radix-2 Stockham stages, several short lines per
//!   workgroup, a twiddle table per workgroup. Powers of two up to 1024; other lengths fall back to v1 for that
//!   axis. **Default on GPUs.**
//! - `Private`  (v3): one whole line per invocation in a private array (radix-2, in place): no workgroup
//!   memory, no barrier, host-computed twiddles. Powers of two up to 64; longer lines take v2.
//!   **Default on CPU adapters** ([`FftKernel::pick`]).
//!
//! The FF-Parser is three launches with `Stockham` or `Private` (rows forward from the real x; columns forward,
//! ⊙ M and inverse in one kernel; rows inverse writing the real part and 1/(H·W)), four with `Dft`.
//! Napkin math: a complex 1-D FFT of length N costs 5·N·log2 N flops, so a 2-D FFT of an H×W image costs
//! 5·H·W·log2(H·W); the naive DFT costs 8·N² per line. Bytes: each pass reads and writes the tensor once.
//!
//! Measured on llvmpipe (2 cores; `medsegdiff bench --filter fft2`, fft2 of a real (8, 64, 64, 64) tensor, two
//! passes): v2 as first written (a cos and a sin per butterfly and stage, integer / and % in the index math)
//! 178–181 ms; v2 with the twiddle table and shifts 161–162 ms; v3 64 ms, of which 33 ms are its loads and
//! stores alone (the same kernel with the butterflies removed). On llvmpipe a workgroup is a set of SIMD
//! coroutines, so v2's barrier per stage is a switch through all of them, and every workgroup-memory access
//! with per-lane addresses is a loop over the lanes; v3 has neither. Its butterflies still cost about 100
//! cycles per 8-lane butterfly, which suggests the loop-indexed private array lives in memory rather than
//! registers (not checked in llvmpipe's IR); a radix-8 split with constant indices is the next step. On a GPU,
//! one 64-element line per thread is the wrong shape (registers, occupancy), hence the adapter-dependent pick.

use bytemuck::{Pod, Zeroable};

use super::{groups_1d, launch};
use crate::gpu::Shader;
use crate::tensor::Tensor;
use crate::{autograd, shader, shape_err, Result};

const V1: Shader = shader!("fft/fft_v1_dft.wgsl");
const V2: Shader = shader!("fft/fft_v2_stockham.wgsl");
const V3: Shader = shader!("fft/fft_v3_private.wgsl");
const RE_PRODUCT: Shader = shader!("fft/re_product.wgsl");

/// Complex elements in one Stockham workgroup buffer (`SLOTS` in fft_v2_stockham.wgsl): the longest line it takes.
const SLOTS: usize = 1024;
/// Complex elements a Stockham workgroup takes by default: one butterfly per thread (256) per stage.
const STOCKHAM_ELEMS: usize = 512;
/// The longest line the private rung holds (`MAXN` in fft_v3_private.wgsl); longer lines take Stockham.
const PRIVATE_MAX: usize = 64;
/// Lines (invocations) per private-rung workgroup (`WG` in fft_v3_private.wgsl).
const PRIVATE_WG: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FftKernel {
    Dft,
    Stockham,
    Private,
}

impl FftKernel {
    pub const ALL: [FftKernel; 3] = [FftKernel::Dft, FftKernel::Stockham, FftKernel::Private];

    /// The rung the taped ops use: `Private` on a CPU adapter, `Stockham` elsewhere (see the module doc).
    pub fn pick() -> FftKernel {
        if crate::gpu::gpu().info.device_type == wgpu::DeviceType::Cpu {
            FftKernel::Private
        } else {
            FftKernel::Stockham
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FftKernel::Dft => "v1_dft",
            FftKernel::Stockham => "v2_stockham",
            FftKernel::Private => "v3_private",
        }
    }

    /// The rung that actually runs a line of length `n`: Private takes powers of two up to `PRIVATE_MAX` and
    /// hands longer ones to Stockham; Stockham takes powers of two up to `SLOTS`; everything else runs Dft.
    fn for_len(self, n: usize) -> FftKernel {
        let pow2 = n.is_power_of_two();
        match self {
            FftKernel::Private if pow2 && n <= PRIVATE_MAX => FftKernel::Private,
            FftKernel::Stockham | FftKernel::Private if pow2 && n <= SLOTS => FftKernel::Stockham,
            _ => FftKernel::Dft,
        }
    }
}

thread_local! {
    /// tw[j] = exp(−2πi·j/n), j < n/2, per line length n, for the private rung (computed once, in f64).
    static TWIDDLES: std::cell::RefCell<std::collections::HashMap<usize, Tensor>> = Default::default();
}

fn twiddles(n: usize) -> Tensor {
    TWIDDLES.with(|t| {
        t.borrow_mut()
            .entry(n)
            .or_insert_with(|| {
                let v: Vec<f32> = (0..n.div_ceil(2).max(1))
                    .flat_map(|j| {
                        let (s, c) = (-2.0 * std::f64::consts::PI * j as f64 / n as f64).sin_cos();
                        [c as f32, s as f32]
                    })
                    .collect();
                let len = v.len();
                Tensor::from_slice(&v, &[len]).expect("length matches")
            })
            .clone()
    })
}

/// Mirrors `struct Params` in fft_v1_dft.wgsl and fft_v2_stockham.wgsl.
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
    _p0: u32,
    _p1: u32,
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
enum Layout {
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
struct Dims {
    images: usize,
    h: usize,
    w: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Axis {
    Rows,
    Cols,
}

/// What one pass (or a 2-D transform) computes: `scale` · Σ x·exp(`sign`·2πi·…), read in `input` layout and
/// written in `output` layout.
#[derive(Clone, Copy, Debug)]
struct Transform {
    input: Layout,
    output: Layout,
    sign: f32,
    scale: f32,
}

impl Transform {
    /// F: the unnormalised forward transform (sign −1).
    fn forward(input: Layout, output: Layout) -> Transform {
        Transform { input, output, sign: -1.0, scale: 1.0 }
    }

    /// Fᴴ = H·W · F⁻¹: the unnormalised inverse-sign transform (sign +1).
    fn adjoint(input: Layout, output: Layout) -> Transform {
        Transform { input, output, sign: 1.0, scale: 1.0 }
    }

    fn scaled(self, scale: f32) -> Transform {
        Transform { scale, ..self }
    }
}

/// One 1-D pass along `axis` with the rung `kernel.for_len(n)`, not taped. `map` = (M, map_images) multiplies
/// the transformed lines by M; with the Stockham rung the same launch then transforms back with the opposite
/// sign, unscaled (see the shader headers). `pack` overrides the lines per Stockham workgroup (tests only).
/// The result is flat; callers reshape it.
fn line_pass(
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
        FftKernel::Private => PRIVATE_WG,
        // a power of two (the shader splits slot indices with shifts): `pack` rounds down to one
        FftKernel::Stockham => {
            let l = pack.unwrap_or((STOCKHAM_ELEMS / n).max(1)).clamp(1, SLOTS / n);
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
        _p0: 0,
        _p1: 0,
    };
    let out = Tensor::uninit(&[d.images * hw * t.output.floats_per_elem()]);
    let m = map.map_or(x, |m| m.0); // an unused map binding gets x
    let groups = lines.div_ceil(lines_per_wg) as u32; // one workgroup per lines_per_wg lines
    match rung {
        FftKernel::Dft => launch(V1, "main", &[], &p, &[x, m], &[&out], groups),
        FftKernel::Stockham => launch(V2, "main", &[], &p, &[x, m], &[&out], groups),
        FftKernel::Private => {
            let ov = [("N", n as f64), ("LOG2N", n.trailing_zeros() as f64)];
            launch(V3, "main", &ov, &p, &[x, m, &twiddles(n)], &[&out], groups);
        }
    }
    out
}

/// A 2-D transform: rows (into interleaved scratch), then columns (into `t.output`, with `t.scale`), not taped.
/// The result is flat; callers reshape it.
fn transform2d(kernel: FftKernel, x: &Tensor, d: Dims, t: Transform, pack: Option<usize>) -> Tensor {
    let rows_t = Transform { output: Layout::Interleaved, scale: 1.0, ..t };
    let rows = line_pass(kernel, Axis::Rows, x, d, rows_t, None, pack);
    line_pass(kernel, Axis::Cols, &rows, d, Transform { input: Layout::Interleaved, ..t }, None, pack)
}

/// Re(ifft2(M ⊙ fft2(x))) for real x, not taped. `map_images` = C (shared map) or B·C (per sample).
fn ff_parser_raw(kernel: FftKernel, x: &Tensor, map: &Tensor, map_images: usize, d: Dims) -> Tensor {
    let hw = (d.h * d.w) as f32;
    let c2c = Transform::forward(Layout::Interleaved, Layout::Interleaved);
    // rows: forward from the real x
    let spec = line_pass(kernel, Axis::Rows, x, d, Transform::forward(Layout::Real, Layout::Interleaved), None, None);
    // columns: forward, ⊙ M, inverse (one launch on the Stockham rung, two on the DFT rung)
    let filtered = match kernel.for_len(d.h) {
        FftKernel::Stockham | FftKernel::Private => {
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
fn re_product(xs: &Tensor, gs: &Tensor, n_out: usize, batches: usize) -> Tensor {
    let out = Tensor::uninit(&[n_out]);
    let p = ReProductParams { n_out: n_out as u32, batches: batches as u32, _p0: 0, _p1: 0 };
    launch(RE_PRODUCT, "main", &[], &p, &[xs, gs], &[&out], groups_1d(n_out));
    out
}

/// Shape checks shared by the ops: a 4-D (B, C, H, W) shape with no empty axis, small enough for u32 indices.
fn image_dims(op: &'static str, what: &str, shape: &[usize]) -> Result<Dims> {
    if shape.len() != 4 {
        return shape_err!(op, "{what} must be 4-D (B, C, H, W), got {shape:?}");
    }
    if shape.contains(&0) {
        return shape_err!(op, "{what} {shape:?} has an empty axis");
    }
    if shape.iter().product::<usize>() * 2 > u32::MAX as usize {
        return shape_err!(op, "{what} {shape:?} is too large (complex words must fit u32 indices)");
    }
    Ok(Dims { images: shape[0] * shape[1], h: shape[2], w: shape[3] })
}

fn complex_dims(op: &'static str, shape: &[usize]) -> Result<Dims> {
    if shape.len() != 5 || shape[4] != 2 {
        return shape_err!(op, "complex input must be (B, C, H, W, 2) with interleaved (re, im), got {shape:?}");
    }
    image_dims(op, "complex input", &shape[..4])
}

/// fft2 of a real (B, C, H, W) tensor with a chosen rung: complex (B, C, H, W, 2), not taped.
pub fn fft2_with(kernel: FftKernel, x: &Tensor) -> Result<Tensor> {
    let d = image_dims("fft2", "input", x.shape())?;
    let s = x.shape();
    transform2d(kernel, x, d, Transform::forward(Layout::Real, Layout::Interleaved), None)
        .detach()
        .reshape(&[s[0], s[1], s[2], s[3], 2])
}

/// fft2 (or ifft2, with its 1/(H·W)) of a complex (B, C, H, W, 2) tensor with a chosen rung, not taped.
pub fn fft2_complex_with(kernel: FftKernel, z: &Tensor, inverse: bool) -> Result<Tensor> {
    let d = complex_dims("fft2_complex", z.shape())?;
    let t = if inverse {
        Transform::adjoint(Layout::Interleaved, Layout::Interleaved).scaled(1.0 / (d.h * d.w) as f32)
    } else {
        Transform::forward(Layout::Interleaved, Layout::Interleaved)
    };
    transform2d(kernel, z, d, t, None).detach().reshape(z.shape())
}

/// fft2 of real (B, C, H, W) into (B, 2C, H, W) channels (2c = Re, 2c+1 = Im) with a chosen rung, not taped.
pub fn fft2_channels_with(kernel: FftKernel, x: &Tensor) -> Result<Tensor> {
    let d = image_dims("fft2_channels", "input", x.shape())?;
    let s = x.shape();
    let out_shape = [s[0], 2 * s[1], s[2], s[3]];
    transform2d(kernel, x, d, Transform::forward(Layout::Real, Layout::Planar), None).detach().reshape(&out_shape)
}

/// Checks x (B, C, H, W) against a map (C, H, W) or (B, C, H, W); returns the dims and the map's image count.
fn ff_parser_dims(x: &[usize], map: &[usize]) -> Result<(Dims, usize)> {
    let d = image_dims("ff_parser", "input", x)?;
    let shared = map.len() == 3 && map == &x[1..];
    let per_sample = map == x;
    if !shared && !per_sample {
        return shape_err!(
            "ff_parser",
            "map {map:?} must be (C, H, W) = {:?} (shared) or {x:?} (per sample) for input {x:?}",
            &x[1..]
        );
    }
    Ok((d, if shared { x[1] } else { d.images }))
}

/// FF-Parser Re(ifft2(fft2(x) ⊙ M)) with a chosen rung, not taped.
pub fn ff_parser_with(kernel: FftKernel, x: &Tensor, map: &Tensor) -> Result<Tensor> {
    let (d, map_images) = ff_parser_dims(x.shape(), map.shape())?;
    ff_parser_raw(kernel, x, map, map_images, d).detach().reshape(x.shape())
}

/// fft2 of a real (B, C, H, W) tensor: complex (B, C, H, W, 2), unnormalised. Taped: dx = Re(H·W·ifft2(g)).
pub fn fft2(x: &Tensor) -> Result<Tensor> {
    let y = fft2_with(FftKernel::pick(), x)?;
    let d = image_dims("fft2", "input", x.shape())?;
    let shape = x.shape().to_vec();
    autograd::record("fft2", &[x], &y, move |g, _| {
        // dx = Re(Fᴴ g): the unscaled inverse-sign transform, keeping the real part
        let dx = transform2d(FftKernel::pick(), g, d, Transform::adjoint(Layout::Interleaved, Layout::Real), None);
        Ok(vec![Some(dx.detach().reshape(&shape)?)])
    });
    Ok(y)
}

/// fft2 (`inverse` = false) or ifft2 (true, with 1/(H·W)) of a complex (B, C, H, W, 2) tensor. Taped:
/// forward dz = H·W·ifft2(g) (= Fᴴ g); inverse dz = fft2(g)/(H·W).
pub fn fft2_complex(z: &Tensor, inverse: bool) -> Result<Tensor> {
    let y = fft2_complex_with(FftKernel::pick(), z, inverse)?;
    let d = complex_dims("fft2_complex", z.shape())?;
    let shape = z.shape().to_vec();
    autograd::record("fft2_complex", &[z], &y, move |g, _| {
        // the adjoint: the opposite-sign transform; scale 1 for Fᴴ, 1/(H·W) for F/(H·W)
        let t = if inverse {
            Transform::forward(Layout::Interleaved, Layout::Interleaved).scaled(1.0 / (d.h * d.w) as f32)
        } else {
            Transform::adjoint(Layout::Interleaved, Layout::Interleaved)
        };
        let dz = transform2d(FftKernel::pick(), g, d, t, None);
        Ok(vec![Some(dz.detach().reshape(&shape)?)])
    });
    Ok(y)
}

/// fft2 of real (B, C, H, W) as (B, 2C, H, W) channels, 2c = Re and 2c+1 = Im (the dynamic FF-Parser's input).
/// Taped with the `fft2` rule: dx = Re(H·W·ifft2(g_{2c} + i·g_{2c+1})).
pub fn fft2_channels(x: &Tensor) -> Result<Tensor> {
    let y = fft2_channels_with(FftKernel::pick(), x)?;
    let d = image_dims("fft2_channels", "input", x.shape())?;
    let shape = x.shape().to_vec();
    autograd::record("fft2_channels", &[x], &y, move |g, _| {
        // dx = Re(Fᴴ g) with g = g_{2c} + i·g_{2c+1} read from the channel pairs
        let dx = transform2d(FftKernel::pick(), g, d, Transform::adjoint(Layout::Planar, Layout::Real), None);
        Ok(vec![Some(dx.detach().reshape(&shape)?)])
    });
    Ok(y)
}

/// The FF-Parser of MedSegDiff: y = Re(ifft2(fft2(x) ⊙ M)) for real x (B, C, H, W) and a real map M, either
/// (C, H, W) shared by the batch or (B, C, H, W) per sample (the dynamic FF-Parser). Taped:
/// dx = Re(ifft2(M ⊙ fft2(g))), dM = Σ_batch Re(fft2(x) ⊙ ifft2(g)) (no sum for a per-sample map).
pub fn ff_parser(x: &Tensor, map: &Tensor) -> Result<Tensor> {
    let (d, map_images) = ff_parser_dims(x.shape(), map.shape())?;
    let y = ff_parser_raw(FftKernel::pick(), x, map, map_images, d).detach().reshape(x.shape())?;
    let (x2, m2) = (x.detach(), map.detach());
    autograd::record("ff_parser", &[x, map], &y, move |g, needs| {
        // term 1: the operator is self-adjoint on real tensors, so dx is the forward applied to g
        let dx = if needs[0] {
            Some(ff_parser_raw(FftKernel::pick(), g, &m2, map_images, d).detach().reshape(x2.shape())?)
        } else {
            None
        };
        // term 2: dM = Σ_b Re(fft2(x) ⊙ ifft2(g))
        let dm = if needs[1] {
            let hw = d.h * d.w;
            let xf =
                transform2d(FftKernel::pick(), &x2, d, Transform::forward(Layout::Real, Layout::Interleaved), None);
            let ifft2 = Transform::adjoint(Layout::Real, Layout::Interleaved).scaled(1.0 / hw as f32);
            let gi = transform2d(FftKernel::pick(), g, d, ifft2, None);
            let n_out = map_images * hw;
            Some(re_product(&xf, &gi, n_out, d.images / map_images).detach().reshape(m2.shape())?)
        } else {
            None
        };
        Ok(vec![dx, dm])
    });
    Ok(y)
}

pub mod cpu {
    //! The spec, in f64: a direct 2-D DFT (O((H·W)²) per image) and the ops composed from it.
    use std::f64::consts::PI;

    /// exp(sign·2πi·k/n) for k < n: the table every DFT below indexes with (index product) mod n.
    fn roots(n: usize, sign: f64) -> Vec<(f64, f64)> {
        (0..n).map(|k| (sign * 2.0 * PI * k as f64 / n as f64).sin_cos()).map(|(s, c)| (c, s)).collect()
    }

    /// Z[u, v] = scale · Σ_{h,w} z[h, w]·exp(sign·2πi(u·h/H + v·w/W)) for each of `images` interleaved images;
    /// sign −1, scale 1 for fft2; sign +1, scale 1/(H·W) for ifft2.
    pub fn dft2(z: &[f64], images: usize, h: usize, w: usize, inverse: bool) -> Vec<f64> {
        let (sign, scale) = if inverse { (1.0, 1.0 / (h * w) as f64) } else { (-1.0, 1.0) };
        let (rh, rw) = (roots(h, sign), roots(w, sign));
        let mut out = vec![0.0; z.len()];
        for n in 0..images {
            let img = &z[n * h * w * 2..(n + 1) * h * w * 2];
            for u in 0..h {
                for v in 0..w {
                    let (mut re, mut im) = (0.0, 0.0);
                    for hh in 0..h {
                        for ww in 0..w {
                            // twiddle exp(sign·2πi(u·h/H + v·w/W)) = rh[u·h mod H] · rw[v·w mod W]
                            let (a, b) = rh[u * hh % h];
                            let (c, d) = rw[v * ww % w];
                            let (tr, ti) = (a * c - b * d, a * d + b * c);
                            let (xr, xi) = (img[2 * (hh * w + ww)], img[2 * (hh * w + ww) + 1]);
                            re += xr * tr - xi * ti;
                            im += xr * ti + xi * tr;
                        }
                    }
                    let o = 2 * ((n * h + u) * w + v);
                    out[o] = re * scale;
                    out[o + 1] = im * scale;
                }
            }
        }
        out
    }

    /// Real values as interleaved complex with zero imaginary parts.
    pub fn complex(x: &[f64]) -> Vec<f64> {
        x.iter().flat_map(|&v| [v, 0.0]).collect()
    }

    /// fft2 of real (B, C, H, W) given as `images` = B·C images: interleaved (…, H, W, 2).
    pub fn fft2(x: &[f64], images: usize, h: usize, w: usize) -> Vec<f64> {
        dft2(&complex(x), images, h, w, false)
    }

    /// fft2 as channels: (B, 2C, H, W) with 2c = Re, 2c+1 = Im; channel c of sample b is image b·C + c.
    pub fn fft2_channels(x: &[f64], b: usize, c: usize, h: usize, w: usize) -> Vec<f64> {
        let z = fft2(x, b * c, h, w);
        let hw = h * w;
        let mut out = vec![0.0; 2 * b * c * hw];
        for n in 0..b * c {
            for p in 0..hw {
                out[2 * n * hw + p] = z[2 * (n * hw + p)]; // channel 2c: Re
                out[(2 * n + 1) * hw + p] = z[2 * (n * hw + p) + 1]; // channel 2c+1: Im
            }
        }
        out
    }

    /// y = Re(ifft2(fft2(x) ⊙ M)); M has `map_images` images (C shared, or B·C per sample): image n uses n mod that.
    pub fn ff_parser(x: &[f64], map: &[f64], images: usize, map_images: usize, h: usize, w: usize) -> Vec<f64> {
        let hw = h * w;
        let mut z = fft2(x, images, h, w);
        for n in 0..images {
            for p in 0..hw {
                let m = map[(n % map_images) * hw + p];
                z[2 * (n * hw + p)] *= m;
                z[2 * (n * hw + p) + 1] *= m;
            }
        }
        dft2(&z, images, h, w, true).iter().step_by(2).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, check_grads, random, to_f64, Input};

    /// An (B, C, H, W) problem.
    struct Problem {
        shape: [usize; 4],
    }

    const PROBLEMS: &[Problem] = &[
        Problem { shape: [1, 1, 8, 8] },
        Problem { shape: [1, 2, 12, 12] }, // not a power of two: DFT fallback on both axes
        Problem { shape: [2, 1, 16, 16] },
        Problem { shape: [1, 1, 30, 30] },
        Problem { shape: [1, 1, 64, 64] },
        Problem { shape: [1, 1, 8, 12] }, // mixed: rows (W = 12) on the DFT, columns (H = 8) on Stockham
        Problem { shape: [1, 1, 12, 8] }, // and the other way round
        Problem { shape: [1, 1, 1, 16] }, // 1×N
        Problem { shape: [1, 1, 16, 1] }, // N×1
        Problem { shape: [1, 1, 1, 1] },
        Problem { shape: [2, 3, 4, 2] },   // several tiny images per Stockham workgroup
        Problem { shape: [1, 1, 2, 256] }, // long rows
        Problem { shape: [1, 1, 256, 2] }, // long columns
    ];

    /// Tolerance for a transform whose outputs reach `max`: f32 sums lose about 1e-6 of the largest term.
    fn tol(want: &[f64]) -> f64 {
        2e-6 * want.iter().fold(1.0f64, |m, v| m.max(v.abs()))
    }

    #[test]
    fn every_rung_fft2_matches_naive_dft_on_pow2_odd_and_nonsquare_sizes() {
        for (i, pr) in PROBLEMS.iter().enumerate() {
            let [b, c, h, w] = pr.shape;
            let (v, x) = random(&pr.shape, i as u64);
            let want = cpu::fft2(&to_f64(&v), b * c, h, w);
            for k in FftKernel::ALL {
                let got = fft2_with(k, &x).unwrap();
                assert_eq!(got.shape(), &[b, c, h, w, 2]);
                assert_close(&got.to_vec(), &want, tol(&want), 1e-5, &format!("fft2 {} {:?}", k.name(), pr.shape));
            }
        }
    }

    #[test]
    fn every_rung_fft2_complex_matches_naive_dft_both_directions() {
        for (i, pr) in PROBLEMS.iter().enumerate() {
            let [b, c, h, w] = pr.shape;
            let shape = [b, c, h, w, 2];
            let (v, z) = random(&shape, 100 + i as u64);
            for inverse in [false, true] {
                let want = cpu::dft2(&to_f64(&v), b * c, h, w, inverse);
                for k in FftKernel::ALL {
                    let got = fft2_complex_with(k, &z, inverse).unwrap().to_vec();
                    assert_close(
                        &got,
                        &want,
                        tol(&want),
                        1e-5,
                        &format!("fft2_complex {} {:?} inverse={inverse}", k.name(), shape),
                    );
                }
            }
        }
    }

    #[test]
    fn every_rung_round_trip_ifft2_of_fft2_gives_back_x() {
        for shape in [[2, 2, 16, 16], [1, 3, 12, 30], [1, 1, 1, 64]] {
            let (v, x) = random(&shape, 7);
            for k in FftKernel::ALL {
                let back = fft2_complex_with(k, &fft2_with(k, &x).unwrap(), true).unwrap().to_vec();
                assert_close(
                    &back,
                    &cpu::complex(&to_f64(&v)),
                    2e-6,
                    0.0,
                    &format!("round trip {} {shape:?}", k.name()),
                );
            }
        }
    }

    #[test]
    fn every_rung_satisfies_parseval() {
        // Σ|x|² = Σ|X|² / (H·W) per image
        let shape = [2, 1, 32, 12];
        let (v, x) = random(&shape, 11);
        let hw = (32 * 12) as f64;
        for k in FftKernel::ALL {
            let xf = fft2_with(k, &x).unwrap().to_vec();
            for n in 0..2 {
                let e_x: f64 = v[n * 384..(n + 1) * 384].iter().map(|&a| (a as f64).powi(2)).sum();
                let e_f: f64 = xf[n * 768..(n + 1) * 768].iter().map(|&a| (a as f64).powi(2)).sum::<f64>() / hw;
                assert!((e_x - e_f).abs() <= 1e-5 * e_x, "{} image {n}: Σ|x|² = {e_x}, Σ|X|²/HW = {e_f}", k.name());
            }
        }
    }

    #[test]
    fn every_rung_fft2_channels_matches_cpu() {
        for (i, pr) in PROBLEMS.iter().enumerate().take(8) {
            let [b, c, h, w] = pr.shape;
            let (v, x) = random(&pr.shape, 200 + i as u64);
            let want = cpu::fft2_channels(&to_f64(&v), b, c, h, w);
            for k in FftKernel::ALL {
                let got = fft2_channels_with(k, &x).unwrap();
                assert_eq!(got.shape(), &[b, 2 * c, h, w]);
                assert_close(
                    &got.to_vec(),
                    &want,
                    tol(&want),
                    1e-5,
                    &format!("fft2_channels {} {:?}", k.name(), pr.shape),
                );
            }
        }
    }

    #[test]
    fn every_rung_ff_parser_matches_cpu_with_shared_and_per_sample_maps() {
        for shape in
            [[2, 3, 8, 8], [2, 2, 12, 12], [1, 2, 8, 12], [2, 1, 30, 16], [3, 1, 1, 16], [2, 1, 16, 1], [1, 1, 64, 64]]
        {
            let [b, c, h, w] = shape;
            let (v, x) = random(&shape, 21);
            for per_sample in [false, true] {
                let mshape: Vec<usize> = if per_sample { shape.to_vec() } else { vec![c, h, w] };
                let (mv, m) = random(&mshape, 22);
                let map_images = if per_sample { b * c } else { c };
                let want = cpu::ff_parser(&to_f64(&v), &to_f64(&mv), b * c, map_images, h, w);
                for k in FftKernel::ALL {
                    let got = ff_parser_with(k, &x, &m).unwrap();
                    assert_eq!(got.shape(), &shape);
                    assert_close(
                        &got.to_vec(),
                        &want,
                        5e-6,
                        1e-5,
                        &format!("ff_parser {} {shape:?} per_sample={per_sample}", k.name()),
                    );
                }
            }
        }
    }

    #[test]
    fn ff_parser_with_a_map_of_ones_is_the_identity() {
        // the MedSegDiff initialisation: ff_parser_attn_map = ones
        let (v, x) = random(&[2, 4, 16, 16], 5);
        let y = ff_parser(&x, &Tensor::ones(&[4, 16, 16])).unwrap().to_vec();
        assert_close(&y, &to_f64(&v), 2e-6, 0.0, "ff_parser with M = 1");
    }

    #[test]
    fn fft2_gradient_matches_finite_differences() {
        for shape in [[2, 1, 4, 6], [1, 2, 8, 1]] {
            let [b, c, h, w] = shape;
            check_grads(
                &format!("fft2 {shape:?}"),
                &[Input::uniform(&shape, -1.0, 1.0, 31)],
                |x| fft2(&x[0]),
                |x| cpu::fft2(&x[0], b * c, h, w),
            );
        }
    }

    #[test]
    fn fft2_complex_gradients_match_finite_differences_both_directions() {
        for shape in [[1, 2, 4, 6, 2], [2, 1, 8, 4, 2]] {
            let [b, c, h, w, _] = shape;
            for inverse in [false, true] {
                check_grads(
                    &format!("fft2_complex {shape:?} inverse={inverse}"),
                    &[Input::uniform(&shape, -1.0, 1.0, 32)],
                    |x| fft2_complex(&x[0], inverse),
                    |x| cpu::dft2(&x[0], b * c, h, w, inverse),
                );
            }
        }
    }

    #[test]
    fn fft2_channels_gradient_matches_finite_differences() {
        for shape in [[2, 2, 4, 6], [1, 1, 8, 8]] {
            let [b, c, h, w] = shape;
            check_grads(
                &format!("fft2_channels {shape:?}"),
                &[Input::uniform(&shape, -1.0, 1.0, 33)],
                |x| fft2_channels(&x[0]),
                |x| cpu::fft2_channels(&x[0], b, c, h, w),
            );
        }
    }

    #[test]
    fn ff_parser_gradients_match_finite_differences_for_x_and_shared_map() {
        for shape in [[2, 2, 4, 8], [3, 1, 6, 5]] {
            let [b, c, h, w] = shape;
            check_grads(
                &format!("ff_parser shared map {shape:?}"),
                &[Input::uniform(&shape, -1.0, 1.0, 34), Input::uniform(&[c, h, w], 0.0, 2.0, 35)],
                |x| ff_parser(&x[0], &x[1]),
                |x| cpu::ff_parser(&x[0], &x[1], b * c, c, h, w),
            );
        }
    }

    #[test]
    fn ff_parser_gradients_match_finite_differences_for_x_and_per_sample_map() {
        for shape in [[2, 2, 4, 8], [2, 1, 6, 5]] {
            let [b, c, h, w] = shape;
            check_grads(
                &format!("ff_parser per-sample map {shape:?}"),
                &[Input::uniform(&shape, -1.0, 1.0, 36), Input::uniform(&shape, 0.0, 2.0, 37)],
                |x| ff_parser(&x[0], &x[1]),
                |x| cpu::ff_parser(&x[0], &x[1], b * c, b * c, h, w),
            );
        }
    }

    #[test]
    fn every_rung_handles_more_than_65535_workgroups() {
        // 40,000 2×2 images: 80,000 row lines and 80,000 column lines, one workgroup each
        // (the Stockham rung normally packs 256 such lines per workgroup; `pack` forces one).
        let shape = [40_000, 1, 2, 2];
        let (v, x) = random(&shape, 41);
        let want = cpu::fft2(&to_f64(&v), 40_000, 2, 2);
        let d = Dims { images: 40_000, h: 2, w: 2 };
        for k in FftKernel::ALL {
            let got = transform2d(k, &x, d, Transform::forward(Layout::Real, Layout::Interleaved), Some(1)).to_vec();
            assert_close(&got, &want, 1e-5, 1e-5, &format!("fft2 {} 40,000 × 2×2", k.name()));
        }
        // the private rung always takes 64 lines per workgroup: 2,100,000 images of 1×2 give 4,200,000 column
        // lines (n = 1), 65,625 workgroups
        let shape = [2_100_000, 1, 1, 2];
        let (v, x) = random(&shape, 42);
        let want = cpu::fft2(&to_f64(&v), 2_100_000, 1, 2);
        let got = fft2_with(FftKernel::Private, &x).unwrap().to_vec();
        assert_close(&got, &want, 1e-5, 1e-5, "fft2 v3_private 2,100,000 × 1×2");
    }

    #[test]
    fn shape_errors_name_the_shapes() {
        let e = fft2(&Tensor::zeros(&[2, 8, 8])).unwrap_err().to_string();
        assert!(e.contains("fft2") && e.contains("[2, 8, 8]"), "{e}");
        let e = fft2(&Tensor::zeros(&[1, 1, 0, 8])).unwrap_err().to_string();
        assert!(e.contains("empty") && e.contains("[1, 1, 0, 8]"), "{e}");
        let e = fft2_complex(&Tensor::zeros(&[1, 1, 4, 4, 3]), false).unwrap_err().to_string();
        assert!(e.contains("fft2_complex") && e.contains("[1, 1, 4, 4, 3]"), "{e}");
        let e = fft2_channels(&Tensor::zeros(&[4, 4])).unwrap_err().to_string();
        assert!(e.contains("fft2_channels") && e.contains("[4, 4]"), "{e}");
        let e = ff_parser(&Tensor::zeros(&[2, 3, 8, 8]), &Tensor::zeros(&[3, 8, 4])).unwrap_err().to_string();
        assert!(e.contains("ff_parser") && e.contains("[3, 8, 4]") && e.contains("[2, 3, 8, 8]"), "{e}");
        let e = ff_parser(&Tensor::zeros(&[2, 3, 8, 8]), &Tensor::zeros(&[1, 3, 8, 8])).unwrap_err().to_string();
        assert!(e.contains("[1, 3, 8, 8]"), "{e}");
    }

    #[test]
    fn debug_fft2_of_a_2x4_ramp() {
        let v: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let x = Tensor::from_slice(&v, &[1, 1, 2, 4]).unwrap();
        let want = cpu::fft2(&to_f64(&v), 1, 2, 4);
        for k in FftKernel::ALL {
            let got = fft2_with(k, &x).unwrap().to_vec();
            println!("{}: x = {v:?}", k.name());
            for (i, pair) in got.chunks(2).enumerate() {
                println!(
                    "  X[{}, {}] = {:+.5} {:+.5}i   (cpu {:+.5} {:+.5}i)",
                    i / 4,
                    i % 4,
                    pair[0],
                    pair[1],
                    want[2 * i],
                    want[2 * i + 1]
                );
            }
            assert_close(&got, &want, 1e-5, 1e-5, k.name());
        }
    }
}
