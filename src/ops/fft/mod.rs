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
//!   workgroup, a twiddle table per workgroup. Powers of two up to 1024; other lengths take v4 for that axis.
//!   **Default on GPUs.**
//! - `Private`  (v3): one whole line per invocation in a private array (radix-2 with constant geometry, so
//!   that every stage has the same constant indices): no workgroup memory, no barrier, host-computed
//!   twiddles in a uniform block. Powers of two up to 256; other 2-3-5 lengths up to 256 take v5, longer
//!   powers of two v2, other lengths v4. **Default on CPU adapters** ([`FftKernel::pick`]).
//! - `Mixed`    (v4): v2 generalised to any length: mixed-radix 4/2/3/5 Stockham stages for lengths whose prime
//!   factors are 2, 3 and 5 (up to 1024), Bluestein's chirp-z (a power-of-two circular convolution run by the
//!   same stages) for every other length up to 512; host-computed f64 tables. Both other fast rungs hand their
//!   non-power-of-two lengths to it, so the training path has no O(n²) sum below 513 px (BraTS's 240, 120,
//!   60, 30 are 2-3-5 lengths). Lines longer than that run v1.
//! - `PrivateMixed` (v5): v3's one line per invocation with v4's mixed-radix stages, the length a runtime
//!   value (so llvmpipe compiles one pipeline, not a fully unrolled one per length), twiddles read from a
//!   uniform window. 2-3-5 lengths up to 256; others as `Private`. What the CPU default runs at BraTS's 240 px
//!   (fft2 of (2, 16, 240, 240): v4 745 ms, v5 126 ms, AVX-512 llvmpipe); powers of two go to v3 (fft2 of
//!   (1, 16, 256, 256): v5 90 ms, v3 27 ms, same run; its first compile at 256 takes llvmpipe ~27 s).
//!
//! v2–v5 share `shaders/fft/common.wgsl` (the uniform block, the layout's loads and stores) and v4–v5
//! `shaders/fft/radix.wgsl` (the radix-2/3/4/5 butterflies), which `shader!` appends to each; v1 stays one
//! self-contained file, the baseline to read first.
//!
//! The FF-Parser is three launches with every rung but `Dft` (rows forward from the real x;
//! columns forward, ⊙ M and inverse in one kernel; rows inverse writing the real part and 1/(H·W)), four with
//! `Dft`. Napkin math: a complex 1-D FFT of length N costs 5·N·log2 N flops, so a 2-D FFT of an H×W image
//! costs 5·H·W·log2(H·W); the naive DFT costs 8·N² per line; Bluestein costs about three FFTs of length
//! L ≥ 2N − 1. Bytes: each pass reads and writes the tensor once.
//!
//! Why two defaults: on llvmpipe a workgroup is a set of SIMD coroutines, so a barrier per stage is a switch
//! through all of them and every workgroup-memory access with per-lane addresses is a loop over the lanes;
//! v3 has neither (fft2 of (8, 64, 64, 64), `bench`: v2 278 ms, v3 41 ms, AVX-512 llvmpipe; the history is in
//! docs/bench-history.md).
//! On a GPU, one 64-element line per thread is the wrong shape (registers, occupancy).

use crate::tensor::Tensor;
use crate::{autograd, shape_err, Result};
use pass::{ff_parser_raw, re_product, transform2d, Dims, Layout, Transform};

/// Complex elements in one Stockham workgroup buffer (`SLOTS` in fft_v2_stockham.wgsl): the longest line it takes.
const SLOTS: usize = 1024;
/// Complex elements a Stockham workgroup takes by default: one butterfly per thread (256) per stage.
const STOCKHAM_ELEMS: usize = 512;
/// The longest line the private rung holds (`MAXN` in fft_v3_private.wgsl); longer lines take Stockham.
/// (At 256 llvmpipe takes ~27 s to compile the line's pipeline once, ~7 s at 128, ~1 s at 64: the butterfly
/// loop is expanded, N/2 butterflies, forward and inverse.)
const PRIVATE_MAX: usize = 256;
/// The longest line the private mixed-radix rung holds (`MAXN` in fft_v5_private_mixed.wgsl).
const PRIVATE_MIXED_MAX: usize = 256;
/// Lines (invocations) per private-rung workgroup (`WG` in fft_v3_private.wgsl).
const PRIVATE_WG: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FftKernel {
    Dft,
    Stockham,
    Private,
    Mixed,
    PrivateMixed,
}

/// Whether n's only prime factors are 2, 3 and 5 (v4's mixed-radix stages take it as it is).
fn smooth(mut n: usize) -> bool {
    for f in [2, 3, 5] {
        while n.is_multiple_of(f) {
            n /= f;
        }
    }
    n == 1
}

/// The length v4 transforms a line of length n at: n itself for a 2-3-5 length, else Bluestein's power of
/// two ≥ 2n − 1.
fn mixed_len(n: usize) -> usize {
    if smooth(n) {
        n
    } else {
        (2 * n - 1).next_power_of_two()
    }
}

impl FftKernel {
    pub const ALL: [FftKernel; 5] =
        [FftKernel::Dft, FftKernel::Stockham, FftKernel::Private, FftKernel::Mixed, FftKernel::PrivateMixed];

    /// The rung the taped ops use: `Private` on a CPU adapter, `Stockham` elsewhere (see the module doc).
    pub fn pick() -> FftKernel {
        if crate::gpu::gpu().info.device_type == wgpu::DeviceType::Cpu {
            FftKernel::Private
        } else {
            FftKernel::Stockham
        }
    }

    /// The rung the taped ops run on a (B, C, H, W) image stack: the tune table's entry for the shape
    /// (`medsegdiff tune` times the fast rungs on the FF-Parser), else [`FftKernel::pick`]. A shape of rank < 4
    /// gets the rule (the op's shape check then reports it).
    pub fn pick_for(shape: &[usize]) -> FftKernel {
        let Some(x) = shape.get(..4) else { return FftKernel::pick() };
        let key = crate::ops::tune::Key::Fft { x: x.to_vec() };
        crate::ops::tune::lookup(key).and_then(|n| FftKernel::named(&n)).unwrap_or_else(FftKernel::pick)
    }

    /// The rung with this name.
    pub fn named(name: &str) -> Option<FftKernel> {
        FftKernel::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            FftKernel::Dft => "v1_dft",
            FftKernel::Stockham => "v2_stockham",
            FftKernel::Private => "v3_private",
            FftKernel::Mixed => "v4_mixed",
            FftKernel::PrivateMixed => "v5_private_mixed",
        }
    }

    /// The rung that actually runs a line of length `n`: Private takes powers of two up to `PRIVATE_MAX`,
    /// hands other 2-3-5 lengths up to `PRIVATE_MIXED_MAX` to PrivateMixed (which takes all of those) and
    /// longer powers of two to Stockham; Stockham takes powers of two up to `SLOTS`; every other length of any
    /// fast rung runs Mixed while its transform length fits `SLOTS`; the rest runs Dft.
    fn for_len(self, n: usize) -> FftKernel {
        use FftKernel::*;
        let pow2 = n.is_power_of_two();
        match self {
            Private if pow2 && n <= PRIVATE_MAX => Private,
            Private | PrivateMixed if smooth(n) && n <= PRIVATE_MIXED_MAX => PrivateMixed,
            Stockham | Private | PrivateMixed if pow2 && n <= SLOTS => Stockham,
            Stockham | Private | Mixed | PrivateMixed if mixed_len(n) <= SLOTS => Mixed,
            _ => Dft,
        }
    }
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
    let kernel = FftKernel::pick_for(x.shape());
    let y = fft2_with(kernel, x)?;
    let d = image_dims("fft2", "input", x.shape())?;
    let shape = x.shape().to_vec();
    autograd::record("fft2", &[x], &y, move |g, _| {
        // dx = Re(Fᴴ g): the unscaled inverse-sign transform, keeping the real part
        let dx = transform2d(kernel, g, d, Transform::adjoint(Layout::Interleaved, Layout::Real), None);
        Ok(vec![Some(dx.detach().reshape(&shape)?)])
    });
    Ok(y)
}

/// fft2 (`inverse` = false) or ifft2 (true, with 1/(H·W)) of a complex (B, C, H, W, 2) tensor. Taped:
/// forward dz = H·W·ifft2(g) (= Fᴴ g); inverse dz = fft2(g)/(H·W).
pub fn fft2_complex(z: &Tensor, inverse: bool) -> Result<Tensor> {
    let kernel = FftKernel::pick_for(z.shape());
    let y = fft2_complex_with(kernel, z, inverse)?;
    let d = complex_dims("fft2_complex", z.shape())?;
    let shape = z.shape().to_vec();
    autograd::record("fft2_complex", &[z], &y, move |g, _| {
        // the adjoint: the opposite-sign transform; scale 1 for Fᴴ, 1/(H·W) for F/(H·W)
        let t = if inverse {
            Transform::forward(Layout::Interleaved, Layout::Interleaved).scaled(1.0 / (d.h * d.w) as f32)
        } else {
            Transform::adjoint(Layout::Interleaved, Layout::Interleaved)
        };
        let dz = transform2d(kernel, g, d, t, None);
        Ok(vec![Some(dz.detach().reshape(&shape)?)])
    });
    Ok(y)
}

/// fft2 of real (B, C, H, W) as (B, 2C, H, W) channels, 2c = Re and 2c+1 = Im (the dynamic FF-Parser's input).
/// Taped with the `fft2` rule: dx = Re(H·W·ifft2(g_{2c} + i·g_{2c+1})).
pub fn fft2_channels(x: &Tensor) -> Result<Tensor> {
    let kernel = FftKernel::pick_for(x.shape());
    let y = fft2_channels_with(kernel, x)?;
    let d = image_dims("fft2_channels", "input", x.shape())?;
    let shape = x.shape().to_vec();
    autograd::record("fft2_channels", &[x], &y, move |g, _| {
        // dx = Re(Fᴴ g) with g = g_{2c} + i·g_{2c+1} read from the channel pairs
        let dx = transform2d(kernel, g, d, Transform::adjoint(Layout::Planar, Layout::Real), None);
        Ok(vec![Some(dx.detach().reshape(&shape)?)])
    });
    Ok(y)
}

/// The FF-Parser of MedSegDiff: y = Re(ifft2(fft2(x) ⊙ M)) for real x (B, C, H, W) and a real map M, either
/// (C, H, W) shared by the batch or (B, C, H, W) per sample (the dynamic FF-Parser). Taped:
/// dx = Re(ifft2(M ⊙ fft2(g))), dM = Σ_batch Re(fft2(x) ⊙ ifft2(g)) (no sum for a per-sample map).
pub fn ff_parser(x: &Tensor, map: &Tensor) -> Result<Tensor> {
    let (d, map_images) = ff_parser_dims(x.shape(), map.shape())?;
    let kernel = FftKernel::pick_for(x.shape());
    let y = ff_parser_raw(kernel, x, map, map_images, d).detach().reshape(x.shape())?;
    let (x2, m2) = (x.detach(), map.detach());
    autograd::record("ff_parser", &[x, map], &y, move |g, needs| {
        // term 1: the operator is self-adjoint on real tensors, so dx is the forward applied to g
        let dx = if needs[0] {
            Some(ff_parser_raw(kernel, g, &m2, map_images, d).detach().reshape(x2.shape())?)
        } else {
            None
        };
        // term 2: dM = Σ_b Re(fft2(x) ⊙ ifft2(g))
        let dm = if needs[1] {
            let hw = d.h * d.w;
            let xf = transform2d(kernel, &x2, d, Transform::forward(Layout::Real, Layout::Interleaved), None);
            let ifft2 = Transform::adjoint(Layout::Real, Layout::Interleaved).scaled(1.0 / hw as f32);
            let gi = transform2d(kernel, g, d, ifft2, None);
            let n_out = map_images * hw;
            Some(re_product(&xf, &gi, n_out, d.images / map_images).detach().reshape(m2.shape())?)
        } else {
            None
        };
        Ok(vec![dx, dm])
    });
    Ok(y)
}

pub mod cpu;
mod pass;
#[cfg(test)]
mod tests;
