//! Kernel benchmarks: a measured peak for this adapter, a tiny timing harness, the standard suite, and the
//! table / JSON that `benches/*.rs` and `medsegdiff bench --json FILE` print (SPEC §6 "Bench JSON").
//!
//! **Peak probe.** Two kernels of our own (shaders/bench/): `peak_fma.wgsl` runs long unrolled chains of
//! independent `fma()` per thread (2 flops per lane per FMA) and `copy_vec4.wgsl` copies 64 MiB as vec4
//! (GB/s = bytes read + written over time). Their numbers are the ceilings in the "% of peak" column: compute
//! kernels are compared with the FMA peak, memory kernels with the copy bandwidth.
//!
//! **Timing.** Wall clock around [`Gpu::sync`](crate::gpu::Gpu::sync): one warm-up call (pipeline compiles,
//! pool fills), then `reps` samples, each running the case enough times to take ≳ 20 ms, and the **median**
//! per call. The peak probes keep the best of three such medians (a ceiling should not be lowered by a burst
//! of other load on a shared machine). The ms include the per-dispatch cost (20–70 µs on llvmpipe), which is
//! part of what a kernel costs in a real step. GPU timestamps ([`Gpu::set_profiling`](crate::gpu::Gpu::set_profiling)) are
//! not used here: they put every dispatch in its own pass, which changes what is measured.
//!
//! **Napkin math.** Every case states its FLOP and byte counts as formulas in a comment (llm.c's habit): bytes
//! are the compulsory traffic (every input read once, every output written once), so GB/s is a lower bound on
//! what the kernel really moves.

use std::time::Instant;

use bytemuck::{Pod, Zeroable};

use crate::gpu::{gpu, Shader};
use crate::ops::launch;
use crate::ops::matmul::{matmul_with, MatmulKernel};
use crate::rng::Rng;
use crate::tensor::Tensor;

pub mod workload;

const PEAK_FMA: Shader = crate::shader!("bench/peak_fma.wgsl");
const COPY_VEC4: Shader = crate::shader!("bench/copy_vec4.wgsl");

/// One timed case. `flop` and `bytes` are per call; `ms` is the median time of one call.
#[derive(Clone, Debug)]
pub struct BenchResult {
    pub kernel: String,
    pub shape: String,
    pub ms: f64,
    pub flop: f64,
    pub bytes: f64,
}

impl BenchResult {
    pub fn gflops(&self) -> f64 {
        self.flop / (self.ms * 1e6)
    }

    pub fn gbps(&self) -> f64 {
        self.bytes / (self.ms * 1e6)
    }

    /// Whether the case is compute-bound on paper: more than ~4 flops per byte (a CPU/GPU machine balance is
    /// well above that, so these kernels are compared with the FMA peak, the others with copy bandwidth).
    pub fn compute_bound(&self) -> bool {
        self.flop > 4.0 * self.bytes
    }

    /// Percentage of the measured ceiling that applies (FMA peak or copy bandwidth).
    pub fn pct_of_peak(&self, peak: &Peak) -> f64 {
        if self.compute_bound() {
            100.0 * self.gflops() / peak.fma_gflops
        } else {
            100.0 * self.gbps() / peak.copy_gbps
        }
    }
}

/// The measured ceilings of this adapter.
#[derive(Clone, Copy, Debug)]
pub struct Peak {
    pub fma_gflops: f64,
    pub copy_gbps: f64,
}

/// Median of a non-empty list.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Time `f` (which records GPU work): one warm-up call, then `reps` samples of `inner` calls each, with `inner`
/// chosen so a sample takes about 20 ms; returns the median per-call time.
pub fn run_case(name: &str, shape: &str, flop: f64, bytes: f64, reps: usize, mut f: impl FnMut()) -> BenchResult {
    let g = gpu();
    g.sync();
    let t0 = Instant::now();
    f();
    g.sync();
    let warm = t0.elapsed().as_secs_f64();
    let inner = ((0.02 / warm.max(1e-6)) as usize).clamp(1, 64);
    let mut samples = Vec::with_capacity(reps.max(1));
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        for _ in 0..inner {
            f();
        }
        g.sync();
        samples.push(t.elapsed().as_secs_f64() / inner as f64);
    }
    BenchResult { kernel: name.to_string(), shape: shape.to_string(), ms: 1e3 * median(samples), flop, bytes }
}

/// Mirrors `struct Params` in shaders/bench/peak_fma.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct FmaParams {
    threads: u32,
    iters: u32,
    _p0: u32,
    _p1: u32,
}

/// Mirrors `struct Params` in shaders/bench/copy_vec4.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CopyParams {
    n4: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

/// The FMA probe: both entry points (4 and 8 vec4 accumulators), the faster one wins.
pub fn peak_fma() -> BenchResult {
    // 16,384 threads × 512 iterations × UNROLL 8 × ACC vec4 × 4 lanes × 2 flops: 2.1 GFLOP (fma8) per call,
    // ~0.1 s on llvmpipe, so the 20–70 µs dispatch cost is noise
    let (threads, iters) = (16_384u32, 512u32);
    let out = Tensor::uninit(&[threads as usize]);
    let p = FmaParams { threads, iters, _p0: 0, _p1: 0 };
    let mut best: Option<BenchResult> = None;
    for (entry, acc) in [("fma4", 4.0), ("fma8", 8.0)] {
        let flop = threads as f64 * iters as f64 * 8.0 * acc * 4.0 * 2.0;
        for _ in 0..3 {
            // a ceiling: the best of three medians, so a burst of other load on a shared machine counts less
            let r =
                run_case(&format!("peak_{entry}"), &format!("{threads} threads x {iters} iters"), flop, 0.0, 3, || {
                    launch(PEAK_FMA, entry, &[], &p, &[], &[&out], threads.div_ceil(256));
                });
            if best.as_ref().is_none_or(|b| r.gflops() > b.gflops()) {
                best = Some(r);
            }
        }
    }
    best.expect("two probes ran")
}

/// The copy probe: 64 MiB read + 64 MiB written per call.
pub fn peak_copy() -> BenchResult {
    let n = 16 << 20; // f32 elements = 64 MiB
    let src = Tensor::full(&[n], 1.0);
    let dst = Tensor::uninit(&[n]);
    let p = CopyParams { n4: (n / 4) as u32, _p0: 0, _p1: 0, _p2: 0 };
    // bytes = 4·n read + 4·n written
    (0..3)
        .map(|_| {
            run_case("peak_copy_vec4", "64 MiB", 0.0, 8.0 * n as f64, 5, || {
                launch(COPY_VEC4, "main", &[], &p, &[&src], &[&dst], (n as u32 / 4).div_ceil(256));
            })
        })
        .min_by(|a, b| a.ms.total_cmp(&b.ms))
        .expect("three runs") // best of three medians, as for the FMA probe
}

/// Measure both ceilings.
pub fn peak() -> Peak {
    Peak { fma_gflops: peak_fma().gflops(), copy_gbps: peak_copy().gbps() }
}

/// Time one matmul rung on C = op(A)·op(B) with random operands. flop = 2·batch·M·N·K;
/// bytes = 4·(|A| + |B| + |C|) (each operand once: the compulsory traffic).
pub fn matmul_case(
    kernel: MatmulKernel,
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    tb: bool,
    reps: usize,
) -> BenchResult {
    let mut rng = Rng::new(7);
    let lead = if batch > 1 { vec![batch] } else { vec![] };
    let shape = |r: usize, c: usize| [lead.clone(), vec![r, c]].concat();
    let a = Tensor::rand_uniform(&shape(m, k), -1.0, 1.0, &mut rng);
    let b = if tb {
        Tensor::rand_uniform(&shape(n, k), -1.0, 1.0, &mut rng)
    } else {
        Tensor::rand_uniform(&shape(k, n), -1.0, 1.0, &mut rng)
    };
    let flop = 2.0 * (batch * m * n * k) as f64;
    let bytes = 4.0 * (batch * (m * k + k * n + m * n)) as f64;
    let desc =
        if batch > 1 { format!("{batch}x{m}x{n}x{k}{}", if tb { " Bt" } else { "" }) } else { format!("{m}x{n}x{k}") };
    run_case(&format!("matmul_{}", kernel.name()), &desc, flop, bytes, reps, || {
        matmul_with(kernel, &a, false, &b, tb).expect("bench shapes are valid");
    })
}

/// Whether a case name passes the filter (a substring of "kernel shape").
fn wanted(filter: Option<&str>, name: &str) -> bool {
    filter.is_none_or(|f| name.contains(f))
}

/// The standard suite (about 1–2 minutes on llvmpipe). `filter` keeps cases whose name contains it
/// ("matmul", "conv", "v4", ...). The naive matmul rung (v1) is skipped at 1024² (seconds per call on llvmpipe).
pub fn suite(filter: Option<&str>) -> Vec<BenchResult> {
    use crate::ops::{conv, elementwise, fft, norm, optim, softmax};
    let mut out = Vec::new();
    let mut rng = Rng::new(11);

    // matmul: square problems, every rung
    for s in [256, 512, 1024] {
        for kernel in MatmulKernel::ALL {
            if kernel == MatmulKernel::Naive && s > 512 {
                continue; // v1 reads 2·K values per output: seconds per call at 1024² on a CPU driver
            }
            if wanted(filter, &format!("matmul_{} {s}", kernel.name())) {
                out.push(matmul_case(kernel, 1, s, s, s, false, 3));
            }
        }
    }
    // attention scores Q·Kᵀ: batch 8 × 4 heads, L = 256 tokens, head dim 32 (Kᵀ is a strided operand)
    for kernel in MatmulKernel::ALL {
        if wanted(filter, &format!("matmul_{} attention", kernel.name())) {
            out.push(matmul_case(kernel, 32, 256, 256, 32, true, 3));
        }
    }

    // elementwise add, 16M f32: flop = n; bytes = 3·4·n (two reads, one write)
    if wanted(filter, "add 16M") {
        let n = 16 << 20;
        let (a, b) = (Tensor::full(&[n], 1.0), Tensor::full(&[n], 2.0));
        out.push(run_case("add", "16M f32", n as f64, 12.0 * n as f64, 5, || {
            elementwise::add_untaped(&a, &b).expect("same shapes");
        }));
    }

    // the cost of one dispatch: 256 adds of 64 floats recorded back to back (each reads what the previous
    // wrote, as a step's chains do), per call of the case; ms / 256 is one dispatch, recording and barrier
    // included. bytes = 256·3·4·64
    if wanted(filter, "dispatch 256") {
        let (mut a, b) = (Tensor::full(&[64], 1.0), Tensor::full(&[64], 0.0));
        out.push(run_case("dispatch", "256 x add 64 f32", 256.0 * 64.0, 256.0 * 768.0, 5, || {
            for _ in 0..256 {
                a = elementwise::add_untaped(&a, &b).expect("same shapes");
            }
        }));
    }

    // conv2d forward (the rung `ConvKernel::pick` takes): flop = 2·N·Cout·H·W·Cin·kh·kw; bytes = 4·(|x| + |w| +
    // |y|). A Winograd pick is marked `*` (effective rate, see EFFECTIVE_NOTE).
    for (n, ci, co, hw, ks) in [(8, 64, 64, 64, 3), (8, 1, 32, 64, 7)] {
        let picked = conv::ConvKernel::pick(&[co, ci, ks, ks]);
        let winograd = matches!(picked, conv::ConvKernel::Winograd | conv::ConvKernel::Winograd4);
        let star = if winograd { "*" } else { "" };
        let (name, name_dx, name_dw) =
            (format!("conv2d {ks}x{ks}{star}"), format!("conv2d 3x3 dx{star}"), format!("conv2d 3x3 dw{star}"));
        // both backward passes (3×3 only) have the forward's FLOPs: dx (the forward kernel on flipped weights)
        // and dw (its own kernel)
        let (want_dx, want_dw) = (ks == 3 && wanted(filter, &name_dx), ks == 3 && wanted(filter, &name_dw));
        if !(wanted(filter, &name) || want_dx || want_dw) {
            continue;
        }
        let x = Tensor::rand_uniform(&[n, ci, hw, hw], -1.0, 1.0, &mut rng);
        let w = Tensor::rand_uniform(&[co, ci, ks, ks], -0.1, 0.1, &mut rng);
        let flop = 2.0 * (n * co * hw * hw * ci * ks * ks) as f64;
        let bytes = 4.0 * (n * ci * hw * hw + co * ci * ks * ks + n * co * hw * hw) as f64;
        let shape = format!("{n}x{ci}->{co}x{hw}x{hw}");
        if wanted(filter, &name) {
            out.push(run_case(&name, &shape, flop, bytes, 3, || {
                conv::conv2d(&x, &w, None, ks / 2).expect("bench shapes are valid");
            }));
        }
        if want_dx || want_dw {
            let g = Tensor::rand_uniform(&[n, co, hw, hw], -1.0, 1.0, &mut rng);
            if want_dx {
                out.push(run_case(&name_dx, &shape, flop, bytes, 3, || {
                    conv::conv2d_backward_input(picked, &g, &w, 1, x.shape()).expect("valid");
                }));
            }
            if want_dw {
                out.push(run_case(&name_dw, &shape, flop, bytes, 3, || {
                    conv::conv2d_backward_weight(picked, &g, &x, 1, w.shape()).expect("valid");
                }));
            }
        }
    }

    // the 3×3 forward rungs v5 (direct, vec4), v9 (v5 with uniform-block weights), v6 (Winograd F(2×2)) and v8
    // (Winograd F(4×4)) at the tiny and small presets' shapes (batch 8): FLOPs counted as the direct
    // convolution's, so GFLOP/s compare time
    for (ci, co, hw) in [(16, 16, 32), (16, 16, 64), (32, 32, 64), (64, 64, 32), (128, 128, 16)] {
        let k3 = [
            conv::ConvKernel::Vec4,
            conv::ConvKernel::Uniform,
            conv::ConvKernel::Winograd,
            conv::ConvKernel::Winograd4,
        ];
        let dws = [conv::ConvKernel::Vec4, conv::ConvKernel::Uniform, conv::ConvKernel::Reuse];
        if !k3.iter().any(|k| wanted(filter, &format!("conv2d 3x3 {}", k.name())))
            && !dws.iter().any(|k| wanted(filter, &format!("conv2d 3x3 dw {}", k.name())))
        {
            continue;
        }
        let x = Tensor::rand_uniform(&[8, ci, hw, hw], -1.0, 1.0, &mut rng);
        let w = Tensor::rand_uniform(&[co, ci, 3, 3], -0.1, 0.1, &mut rng);
        let flop = 2.0 * (8 * co * hw * hw * ci * 9) as f64;
        let bytes = 4.0 * (8 * ci * hw * hw + co * ci * 9 + 8 * co * hw * hw) as f64;
        // the weight gradient of v5, v9 and v10 (the direct rungs' dw), same FLOPs
        for k in dws {
            let name = format!("conv2d 3x3 dw {}", k.name());
            if wanted(filter, &name) {
                let g = Tensor::rand_uniform(&[8, co, hw, hw], -1.0, 1.0, &mut rng);
                out.push(run_case(&name, &format!("8x{ci}->{co}x{hw}x{hw}"), flop, bytes, 3, || {
                    conv::conv2d_backward_weight(k, &g, &x, 1, w.shape()).expect("bench shapes are valid");
                }));
            }
        }
        for k in k3 {
            let star = if matches!(k, conv::ConvKernel::Vec4 | conv::ConvKernel::Uniform) { "" } else { "*" };
            let name = format!("conv2d 3x3 {}{star}", k.name());
            if wanted(filter, &name) {
                out.push(run_case(&name, &format!("8x{ci}->{co}x{hw}x{hw}"), flop, bytes, 3, || {
                    conv::conv2d_with(k, &x, &w, None, 1).expect("bench shapes are valid");
                }));
            }
        }
    }

    // norms on a UNet-like activation (8, 64, 64, 64) = 2M values: bytes = 2·4·n (read x, write y; the
    // statistics pass re-reads x, which this lower bound leaves out); flop ≈ 8·n (mean, var, normalise, affine)
    let (nb, c, hw) = (8, 64, 64);
    let numel = nb * c * hw * hw;
    let shape = format!("{nb}x{c}x{hw}x{hw}");
    if wanted(filter, "group_norm") || wanted(filter, "group_norm_silu") || wanted(filter, "layer_norm") {
        let x = Tensor::rand_uniform(&[nb, c, hw, hw], -1.0, 1.0, &mut rng);
        let (gm, bt) = (Tensor::ones(&[c]), Tensor::zeros(&[c]));
        if wanted(filter, "group_norm") {
            out.push(run_case("group_norm g=32", &shape, 8.0 * numel as f64, 8.0 * numel as f64, 3, || {
                norm::group_norm(&x, 32, Some(&gm), Some(&bt), 1e-5).expect("valid");
            }));
        }
        // the ResnetBlock tail (GroupNorm with affine, time modulation, SiLU) fused: bytes = the 3 reads of x
        // (mean, variance, normalise) and the write of y the kernel does
        if wanted(filter, "group_norm_silu") {
            let (sc, sh) = (Tensor::zeros(&[nb, c, 1, 1]), Tensor::zeros(&[nb, c, 1, 1]));
            out.push(run_case("group_norm_silu g=8", &shape, 12.0 * numel as f64, 16.0 * numel as f64, 3, || {
                crate::ops::fused::group_norm_silu(&x, 8, &gm, &bt, Some((&sc, &sh)), 1e-5).expect("valid");
            }));
        }
        if wanted(filter, "layer_norm") {
            out.push(run_case("layer_norm_channels", &shape, 8.0 * numel as f64, 8.0 * numel as f64, 3, || {
                norm::layer_norm_channels(&x, &gm, Some(&bt), 1e-5).expect("valid");
            }));
        }
    }

    // a bias gradient: Σ over (N, H, W) of (8, 64, 64, 64) into 64 channels: bytes = 4·n read; flop = n adds
    if wanted(filter, "sum_bias") {
        let g = Tensor::rand_uniform(&[nb, c, hw, hw], -1.0, 1.0, &mut rng);
        out.push(run_case("sum_bias_grad", &shape, numel as f64, 4.0 * numel as f64, 5, || {
            crate::ops::reduce::sum(&g, &[0, 2, 3], false).expect("valid");
        }));
        // tiny's thin levels: (8, 16, 32, 32) and (8, 16, 64, 64), 16 channels
        for px in [32, 64] {
            let n = nb * 16 * px * px;
            let g = Tensor::rand_uniform(&[nb, 16, px, px], -1.0, 1.0, &mut rng);
            out.push(run_case("sum_bias_grad", &format!("{nb}x16x{px}x{px}"), n as f64, 4.0 * n as f64, 5, || {
                crate::ops::reduce::sum(&g, &[0, 2, 3], false).expect("valid");
            }));
        }
    }

    // softmax over attention scores (32, 256, 256), last axis: bytes = 2·4·n; flop ≈ 5·n (max, sub, exp, sum, div)
    if wanted(filter, "softmax") {
        let s = Tensor::rand_uniform(&[32, 256, 256], -4.0, 4.0, &mut rng);
        let n = 32.0 * 256.0 * 256.0;
        out.push(run_case("softmax", "32x256x256 axis 2", 5.0 * n, 8.0 * n, 3, || {
            softmax::softmax(&s, 2).expect("valid");
        }));
    }

    // full attention at tiny-at-64-px's bottleneck: qkv (8, 3·2·16, 32·32), 2 heads of 16, 1,024 tokens (the
    // fused path when it applies); flop = 4·bh·n²·d forward, twice that for the backward (dq, dk, dv), as the
    // workload bench counts them; bytes = qkv read + out written (+ dqkv for the backward)
    if wanted(filter, "attention") {
        let (b, heads, d, n) = (8, 2, 16, 1024);
        let qkv = Tensor::rand_uniform(&[b, 3 * heads * d, 32, 32], -1.0, 1.0, &mut rng).with_grad();
        let fwd = 4.0 * (b * heads) as f64 * (n * n * d) as f64;
        let io = 4.0 * (b * 4 * heads * d * n) as f64;
        let shape = format!("b{b} h{heads} d{d} n{n}");
        out.push(run_case("attention_fwd", &shape, fwd, io, 5, || {
            let _ng = crate::autograd::no_grad();
            crate::ops::attention::full_attention(&qkv, heads, d).expect("valid");
        }));
        out.push(run_case("attention_fwd_bwd", &shape, 3.0 * fwd, 2.0 * io, 5, || {
            crate::autograd::clear();
            let o = crate::ops::attention::full_attention(&qkv, heads, d).expect("valid");
            let loss = crate::ops::reduce::sum(&o, &[0, 1, 2, 3], false).expect("valid");
            crate::autograd::backward(&loss).expect("backward");
        }));
    }

    // linear attention of tiny (qkv (8, 3·2·16, S, S), 2 heads of 16) at 32 and 64 px and of small's outer level
    // (4 heads of 32 at 64 px), fused and composed; flop = 4·bh·d²·n forward (the two einsums), 3× that with the
    // backward; bytes as for attention
    if filter.is_none_or(|f| f.starts_with("linear_attention") || "linear_attention".contains(f)) {
        type Attn = fn(&Tensor, usize, usize) -> crate::Result<Tensor>;
        let b = 8;
        let paths: [(&str, Attn); 2] = [
            ("linear_attention", crate::ops::attention::linear_attention),
            ("linear_attention_composed", crate::ops::attention::linear_attention_composed),
        ];
        for (heads, d, side) in [(2, 16, 32), (2, 16, 64), (4, 32, 64)] {
            let n = side * side;
            let shape = format!("b{b} h{heads} d{d} n{n}");
            let case = |name: &str, pass: &str| wanted(filter, &format!("{name}_{pass} {shape}"));
            if !paths.iter().any(|(name, _)| case(name, "fwd") || case(name, "fwd_bwd")) {
                continue;
            }
            let qkv = Tensor::rand_uniform(&[b, 3 * heads * d, side, side], -1.0, 1.0, &mut rng).with_grad();
            let fwd = 4.0 * (b * heads * d * d * n) as f64;
            let io = 4.0 * (b * 4 * heads * d * n) as f64;
            for (name, f) in paths {
                if case(name, "fwd") {
                    out.push(run_case(&format!("{name}_fwd"), &shape, fwd, io, 5, || {
                        let _ng = crate::autograd::no_grad();
                        f(&qkv, heads, d).expect("valid");
                    }));
                }
                if case(name, "fwd_bwd") {
                    out.push(run_case(&format!("{name}_fwd_bwd"), &shape, 3.0 * fwd, 2.0 * io, 5, || {
                        crate::autograd::clear();
                        let loss = crate::ops::reduce::sum(&f(&qkv, heads, d).expect("valid"), &[0, 1, 2, 3], false);
                        crate::autograd::backward(&loss.expect("valid")).expect("backward");
                    }));
                }
            }
        }
    }

    // fft2 of real (8, 64, 64, 64) → complex: flop ≈ 5·P·log2(P) per image of P = H·W points (the radix-2
    // count); bytes = 4·n read + 8·n written
    if wanted(filter, "fft2") {
        let x = Tensor::rand_uniform(&[nb, c, hw, hw], -1.0, 1.0, &mut rng);
        let pts = (hw * hw) as f64;
        let flop = (nb * c) as f64 * 5.0 * pts * pts.log2();
        for kernel in
            [fft::FftKernel::Stockham, fft::FftKernel::Private, fft::FftKernel::Mixed, fft::FftKernel::PrivateMixed]
        {
            out.push(run_case(&format!("fft2_{}", kernel.name()), &shape, flop, 12.0 * numel as f64, 3, || {
                fft::fft2_with(kernel, &x).expect("valid");
            }));
        }
        // BraTS's 240 px (240 = 4·4·3·5), (2, 16, 240, 240): the mixed radix against the O(n²) sum it replaced
        let (b2, c2, n2) = (2, 16, 240);
        let x = Tensor::rand_uniform(&[b2, c2, n2, n2], -1.0, 1.0, &mut rng);
        let pts = (n2 * n2) as f64;
        let flop = (b2 * c2) as f64 * 5.0 * pts * pts.log2();
        let numel2 = b2 * c2 * n2 * n2;
        for kernel in [fft::FftKernel::Dft, fft::FftKernel::Mixed, fft::FftKernel::PrivateMixed] {
            let shape = format!("[{b2}, {c2}, {n2}, {n2}]");
            out.push(run_case(&format!("fft2_240_{}", kernel.name()), &shape, flop, 12.0 * numel2 as f64, 3, || {
                fft::fft2_with(kernel, &x).expect("valid");
            }));
        }
    }

    // the paper's 256 px, (1, 16, 256, 256): the GPU default's radix-2 Stockham against the private radix-2
    // that the CPU default runs there and the private mixed radix that it ran before
    if wanted(filter, "fft2_256") {
        let (b2, c2, n2) = (1, 16, 256);
        let x = Tensor::rand_uniform(&[b2, c2, n2, n2], -1.0, 1.0, &mut rng);
        let pts = (n2 * n2) as f64;
        let flop = (b2 * c2) as f64 * 5.0 * pts * pts.log2();
        for kernel in [fft::FftKernel::Stockham, fft::FftKernel::Private, fft::FftKernel::PrivateMixed] {
            let shape = format!("[{b2}, {c2}, {n2}, {n2}]");
            let bytes = 12.0 * (b2 * c2 * n2 * n2) as f64;
            out.push(run_case(&format!("fft2_256_{}", kernel.name()), &shape, flop, bytes, 3, || {
                fft::fft2_with(kernel, &x).expect("valid");
            }));
        }
    }

    // AdamW over 4M parameters, in place: reads p, g, m, v and writes p, m, v: bytes = 7·4·n; flop ≈ 14·n
    if wanted(filter, "adamw") {
        let n = 4 << 20;
        let (p, g, m, v) =
            (Tensor::full(&[n], 0.5), Tensor::full(&[n], 0.01), Tensor::zeros(&[n]), Tensor::zeros(&[n]));
        let cfg = optim::AdamWConfig::default();
        let mut step = 0;
        out.push(run_case("adamw_step", "4M params", 14.0 * n as f64, 28.0 * n as f64, 3, || {
            step += 1;
            optim::adamw_step(&p, &g, &m, &v, step, &cfg, None).expect("valid");
        }));
    }

    // whole steps of each preset (batch 8): one training step (forward, backward, AdamW, EMA, loss readback)
    // and one sampling step (a forward pass under no_grad). No FLOP count: only the time is reported.
    // `paper` (256², dim 64) runs only when the filter names it: minutes per step on a software adapter.
    for name in ["tiny", "small", "paper"] {
        let (train_case, sample_case) = (format!("train_step {name}"), format!("sample_step {name}"));
        let explicit = filter.is_some_and(|f| f.contains(name));
        if (name == "paper" && !explicit) || !(wanted(filter, &train_case) || wanted(filter, &sample_case)) {
            continue;
        }
        let mut t = crate::train::preset_trainer(name, 8).expect("preset is valid");
        let model = t.unet.cfg.clone();
        let shape = format!("b8 {}px dim{}", model.image_size, model.dim);
        if wanted(filter, &train_case) {
            out.push(run_case(&train_case, &shape, 0.0, 0.0, 2, || {
                t.train_step().expect("training step");
            }));
        }
        if wanted(filter, &sample_case) {
            let (images, _) = t.data.batch(&(0..8).collect::<Vec<_>>(), None).expect("batch");
            let x = Tensor::randn(&[8, model.mask_channels, model.image_size, model.image_size], &mut rng);
            // a sampler's steady-state step: the weights packed once for the sampling call (the warm-up run)
            let _kp = crate::ops::conv::keep_packed_weights();
            out.push(run_case(&sample_case, &shape, 0.0, 0.0, 2, || {
                let _ng = crate::autograd::no_grad();
                t.diffusion.predict(&t.unet, &x, 500, &images, true).expect("forward");
            }));
        }
    }
    out
}

/// The table: ms, GFLOP/s, GB/s and % of the ceiling that applies (FLOP-bound cases against the FMA peak,
/// memory-bound ones against copy bandwidth, marked F or B).
pub fn table(results: &[BenchResult], peak: &Peak) -> String {
    let mut s = format!(
        "peak: {:.1} GFLOP/s fma, {:.1} GB/s copy (wall clock, median)\n{:<24} {:<22} {:>10} {:>9} {:>8} {:>9}\n",
        peak.fma_gflops, peak.copy_gbps, "kernel", "shape", "ms", "GFLOP/s", "GB/s", "% peak"
    );
    for r in results {
        s.push_str(&format!(
            "{:<24} {:<22} {:>10.3} {:>9.2} {:>8.2} {:>7.1}%{}\n",
            r.kernel,
            r.shape,
            r.ms,
            r.gflops(),
            r.gbps(),
            r.pct_of_peak(peak),
            if r.compute_bound() { "F" } else { "B" }
        ));
    }
    if results.iter().any(|r| r.kernel.ends_with('*')) {
        s.push_str(EFFECTIVE_NOTE);
        s.push('\n');
    }
    s
}

/// Footnote for kernels marked `*`: their FLOP count is the direct algorithm's, not the work they do.
pub const EFFECTIVE_NOTE: &str = "* effective rate: FLOPs counted as the direct convolution's 2·N·Cout·H·W·Cin·9; \
     Winograd does 2.25× (v6, and every Winograd dw) or 4× (v8) fewer multiplies, so this is a time \
     comparison, not hardware efficiency";

/// SPEC §6 bench JSON: one object per case, then `{"peak": {...}}`.
pub fn to_json(results: &[BenchResult], peak: &Peak) -> serde_json::Value {
    let mut v: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "kernel": r.kernel, "shape": r.shape, "gflops": r.gflops(), "gbps": r.gbps(),
                "ms": r.ms, "flop": r.flop, "bytes": r.bytes,
            })
        })
        .collect();
    v.push(serde_json::json!({ "peak": { "fma_gflops": peak.fma_gflops, "copy_gbps": peak.copy_gbps } }));
    serde_json::Value::Array(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_json_has_spec_fields_and_peak_last() {
        let r = BenchResult { kernel: "k".into(), shape: "s".into(), ms: 2.0, flop: 4e6, bytes: 2e6 };
        assert_eq!(r.gflops(), 2.0);
        assert_eq!(r.gbps(), 1.0);
        let j = to_json(&[r], &Peak { fma_gflops: 10.0, copy_gbps: 5.0 });
        let a = j.as_array().unwrap();
        for key in ["kernel", "shape", "gflops", "gbps", "ms", "flop", "bytes"] {
            assert!(a[0].get(key).is_some(), "missing {key}");
        }
        assert_eq!(a[1]["peak"]["copy_gbps"], 5.0);
    }

    #[test]
    fn median_of_even_and_odd_lists() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
