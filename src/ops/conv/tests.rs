//! The conv ladder's tests: every rung against the f64 reference, gradients by finite differences, edge
//! shapes and the rung-specific paths (uniform windows, Winograd fallbacks, split-K).

use super::dw::DwV9Plan;
use super::forward::TileShape;
use super::winograd::WinogradTile;
use super::*;
use crate::testing::{assert_close, check_grads, to_f64, Input};

/// A conv2d problem: input and weight shapes, padding, and whether it has a bias.
struct Problem {
    x: [usize; 4],
    w: [usize; 4],
    pad: usize,
    bias: bool,
}

const PROBLEMS: &[Problem] = &[
    Problem { x: [1, 1, 1, 1], w: [1, 1, 1, 1], pad: 0, bias: true }, // all size 1, k = 1
    Problem { x: [3, 5, 5, 7], w: [6, 5, 3, 3], pad: 1, bias: true }, // 5×7 "same", N = 3
    Problem { x: [1, 3, 9, 6], w: [7, 3, 7, 7], pad: 3, bias: true }, // 9×6, k = 7 (init_conv)
    Problem { x: [2, 4, 5, 7], w: [3, 4, 1, 1], pad: 0, bias: false }, // 1×1 conv, no bias: v7 forward
    Problem { x: [2, 4, 4, 4], w: [130, 4, 1, 1], pad: 0, bias: false }, // v7 dw as a GEMM (Cout ≥ 128)
    Problem { x: [1, 2, 4, 3], w: [3, 2, 1, 1], pad: 1, bias: true }, // k = 1 with padding: dx pad < 0
    Problem { x: [3, 2, 6, 5], w: [5, 2, 3, 3], pad: 0, bias: true }, // valid conv: output shrinks
    Problem { x: [2, 3, 8, 6], w: [2, 3, 3, 5], pad: 2, bias: false }, // KH ≠ KW
    Problem { x: [1, 13, 9, 11], w: [70, 13, 3, 3], pad: 1, bias: true }, // Cout > 64, K = 117, 99 pixels
    Problem { x: [2, 17, 10, 9], w: [9, 17, 7, 7], pad: 3, bias: true }, // K = 833: many K steps
    Problem { x: [1, 1, 3, 3], w: [1, 1, 7, 7], pad: 3, bias: false }, // kernel larger than the image
    Problem { x: [2, 6, 9, 10], w: [60, 6, 3, 3], pad: 1, bias: true }, // v4 picks 64×64 tiles (Cout 60)
    // widths that are multiples of 4 take v5's own kernel (others fall back to v4) for the forward, dx or both
    Problem { x: [2, 3, 5, 8], w: [11, 3, 3, 3], pad: 1, bias: true }, // v5 fwd + dx, Cout not a multiple of 8
    Problem { x: [1, 2, 4, 12], w: [3, 2, 7, 7], pad: 3, bias: true }, // v5 k = 7, a partial 8-pixel block
    Problem { x: [2, 5, 3, 4], w: [9, 5, 1, 1], pad: 2, bias: false }, // v5 fwd pad 2, dx pad −2
    Problem { x: [1, 3, 6, 10], w: [4, 3, 3, 3], pad: 0, bias: true }, // v5 dx only, at pad 2
    Problem { x: [2, 3, 5, 8], w: [2, 3, 3, 5], pad: 2, bias: false }, // v5 KH ≠ KW
    Problem { x: [2, 7, 3, 12], w: [10, 7, 1, 1], pad: 0, bias: true }, // dw v5 1×1: K = 7, half block
    Problem { x: [3, 4, 6, 12], w: [9, 4, 3, 3], pad: 1, bias: false }, // dw v5 3×3, Cout = 9
    Problem { x: [1, 2, 3, 4], w: [3, 2, 3, 1], pad: 2, bias: false }, // dw v5 KW = 1, KH = 3, pad 2
    Problem { x: [2, 3, 8, 16], w: [5, 3, 5, 5], pad: 2, bias: false }, // dw v10 5×5: a row of taps a thread
    Problem { x: [1, 2, 9, 8], w: [9, 2, 7, 7], pad: 1, bias: true },  // dw v10 7×7: 5-vec4 windows, Cout 9
    // v9: K = 900 fits 2 of its 3 weight blocks per uniform window (2 dispatches; dx: 13 blocks, 11 a window)
    Problem { x: [1, 100, 4, 8], w: [20, 100, 3, 3], pad: 1, bias: true },
    // v9: one block of K = 2,070 is more than a uniform window: the forward falls back to v5
    Problem { x: [1, 230, 2, 4], w: [3, 230, 3, 3], pad: 1, bias: true },
    // dw v9: 320 pixel blocks = 2 windows of g (one partial), 2 channel blocks (Cout = 10)
    Problem { x: [2, 3, 20, 64], w: [10, 3, 3, 3], pad: 1, bias: false },
    // dw v10 at pad 3: window alignment r = 1 (the shapes above with whole vec4 rows all have r = 3), and
    // Cin = 9 past one workgroup of 8 input channels
    Problem { x: [1, 9, 4, 8], w: [3, 9, 3, 3], pad: 3, bias: false },
];

fn data(pr: &Problem, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut rng = crate::rng::Rng::new(seed);
    let x = rng.uniform_vec(numel(&pr.x), -1.0, 1.0);
    let w = rng.uniform_vec(numel(&pr.w), -1.0, 1.0);
    let b = rng.uniform_vec(pr.w[0], -1.0, 1.0);
    (x, w, b)
}

fn out_shape(pr: &Problem) -> [usize; 4] {
    [pr.x[0], pr.w[0], pr.x[2] + 2 * pr.pad + 1 - pr.w[2], pr.x[3] + 2 * pr.pad + 1 - pr.w[3]]
}

#[test]
fn debug_conv2d_3x3_ones_prints_values() {
    // 3×3 ones kernel on 1..9 with padding 1: each output is the sum of its 3×3 neighbourhood, plus 0.5
    let x = Tensor::from_slice(&[1., 2., 3., 4., 5., 6., 7., 8., 9.], &[1, 1, 3, 3]).unwrap();
    let w = Tensor::full(&[1, 1, 3, 3], 1.0);
    let b = Tensor::full(&[1], 0.5);
    let want = [12.5, 21.5, 16.5, 27.5, 45.5, 33.5, 24.5, 39.5, 28.5];
    for kernel in ConvKernel::ALL {
        let y = conv2d_with(kernel, &x, &w, Some(&b), 1).unwrap().to_vec();
        println!("{}: {y:?}", kernel.name());
        if kernel == ConvKernel::Winograd4 {
            // v8's transform constants (1/6, 1/24) are not exact in binary: close, not equal
            let (atol, rtol) = forward_tolerance(kernel, &want.map(f64::from));
            assert_close(&y, &want.map(f64::from), atol, rtol, "v8 on 1..9");
        } else {
            assert_eq!(y, want);
        }
    }
}

/// (atol, rtol) for a rung's forward and dx against the f64 reference. Every rung but v8 sums exactly what
/// the direct convolution sums, in another order: 1e-5. v8's F(4×4, 3×3) transforms multiply by up to 8
/// and by 1/6 and 1/24, so its error grows with the magnitude of what it sums rather than with each output:
/// 3e-5 of the largest |output|. Worst seen over PROBLEMS: 4.5e-6 of it (dx of x [1, 13, 9, 11], w [70, 13,
/// 3, 3]: |err| 1.3e-4 where max |dx| is 28.7), forward 3.0e-6.
fn forward_tolerance(kernel: ConvKernel, want: &[f64]) -> (f64, f64) {
    if kernel == ConvKernel::Winograd4 {
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        (3e-5 * scale.max(1.0), 1e-5)
    } else {
        (1e-5, 1e-5)
    }
}

#[test]
fn v9_splits_weights_over_uniform_windows_and_falls_back_past_one_block() {
    // which kernels a v9 forward runs: the packing, then one dispatch per 64 KiB window of weight blocks
    let kernels = |x: [usize; 4], w: [usize; 4]| {
        let (x, w) = (Tensor::zeros(&x), Tensor::zeros(&w));
        crate::ops::work::start();
        conv2d_with(ConvKernel::Uniform, &x, &w, None, 1).unwrap();
        let calls = crate::ops::work::stop();
        (calls[0].kernels.clone(), calls[0].launches)
    };
    let (k, n) = kernels([1, 100, 4, 8], [20, 100, 3, 3]); // 3 blocks of 904·8 values, 2 to a window
    assert!(k[0].contains("pack_weights_v5.wgsl:blocked") && k[1].starts_with("conv/conv_v9_uniform"), "{k:?}");
    assert_eq!(n, 3, "pack + 2 windows");
    let (k, n) = kernels([1, 16, 8, 8], [16, 16, 3, 3]); // the model's thin layer: one window
    assert_eq!((k.len(), n), (2, 2), "{k:?}");
    let (k, _) = kernels([1, 230, 2, 4], [3, 230, 3, 3]); // one block is more than a window
    assert!(k.iter().all(|k| !k.contains("v9")) && k.iter().any(|k| k.contains("conv_v5_vec4")), "{k:?}");
    // dw: g packed once, then one dispatch per (channel block, window), then the sum of the splits
    let (g, x) = (Tensor::zeros(&[2, 10, 20, 64]), Tensor::zeros(&[2, 3, 20, 64]));
    crate::ops::work::start();
    conv2d_backward_weight(ConvKernel::Uniform, &g, &x, 1, &[10, 3, 3, 3]).unwrap();
    let calls = crate::ops::work::stop();
    let (k, n) = (&calls[0].kernels, calls[0].launches);
    assert!(k[0].contains("grad_blocks") && k[1].starts_with("conv/dw_v9_uniform"), "{k:?}");
    assert!(k[2].starts_with("reduce/"), "{k:?}");
    assert_eq!(n, 1 + 2 * 2 + 1, "pack + 2 channel blocks × 2 windows + sum");
}

#[test]
fn every_rung_forward_matches_cpu_on_odd_shapes() {
    for (i, pr) in PROBLEMS.iter().enumerate() {
        let (xv, wv, bv) = data(pr, 10 + i as u64);
        let x = Tensor::from_slice(&xv, &pr.x).unwrap();
        let w = Tensor::from_slice(&wv, &pr.w).unwrap();
        let b = Tensor::from_slice(&bv, &[pr.w[0]]).unwrap();
        let b64 = to_f64(&bv);
        let want = cpu::conv2d(&to_f64(&xv), pr.x, &to_f64(&wv), pr.w, pr.bias.then_some(&b64[..]), pr.pad);
        for kernel in ConvKernel::ALL {
            let y = conv2d_with(kernel, &x, &w, pr.bias.then_some(&b), pr.pad).unwrap();
            assert_eq!(y.shape(), out_shape(pr));
            let what = format!("{} forward x {:?} w {:?} pad {}", kernel.name(), pr.x, pr.w, pr.pad);
            let (atol, rtol) = forward_tolerance(kernel, &want);
            assert_close(&y.to_vec(), &want, atol, rtol, &what);
        }
    }
}

#[test]
fn every_rung_backward_matches_cpu_on_odd_shapes() {
    for (i, pr) in PROBLEMS.iter().enumerate() {
        let (xv, wv, _) = data(pr, 30 + i as u64);
        let gv = crate::rng::Rng::new(50 + i as u64).uniform_vec(numel(&out_shape(pr)), -1.0, 1.0);
        let x = Tensor::from_slice(&xv, &pr.x).unwrap();
        let w = Tensor::from_slice(&wv, &pr.w).unwrap();
        let g = Tensor::from_slice(&gv, &out_shape(pr)).unwrap();
        let (x64, w64, g64) = (to_f64(&xv), to_f64(&wv), to_f64(&gv));
        let want_dx = cpu::conv2d_backward_input(&g64, &w64, pr.x, pr.w, pr.pad);
        let want_dw = cpu::conv2d_backward_weight(&g64, &x64, pr.x, pr.w, pr.pad);
        for kernel in ConvKernel::ALL {
            let what = format!("{} x {:?} w {:?} pad {}", kernel.name(), pr.x, pr.w, pr.pad);
            let dx = conv2d_backward_input(kernel, &g, &w, pr.pad, &pr.x).unwrap();
            assert_eq!(dx.shape(), pr.x);
            let (atol, rtol) = forward_tolerance(kernel, &want_dx); // dx runs the forward kernel
            assert_close(&dx.to_vec(), &want_dx, atol, rtol, &format!("{what}: dx"));
            let dw = conv2d_backward_weight(kernel, &g, &x, pr.pad, &pr.w).unwrap();
            assert_eq!(dw.shape(), pr.w);
            // f32 sums over N·H·W pixels: the absolute error grows with the largest gradient
            let big = want_dw.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            assert_close(&dw.to_vec(), &want_dw, 1e-5 * big, 1e-5, &format!("{what}: dw"));
        }
    }
}

#[test]
fn dw_split_k_sums_partial_chunks() {
    // 3 images of 23×21 = 1,449 pixels: 4,347 pixels in several 256+ pixel chunks, the last one partial;
    // 23×24 reaches dw v5: 207 8-pixel blocks in 13 splits of 16, the last one partial
    for (i, xs) in [[3, 2, 23, 21], [3, 2, 23, 24]].into_iter().enumerate() {
        let pr = Problem { x: xs, w: [3, 2, 3, 3], pad: 1, bias: false };
        let (xv, _, _) = data(&pr, 70 + i as u64);
        let gv = crate::rng::Rng::new(71).uniform_vec(numel(&out_shape(&pr)), -1.0, 1.0);
        let x = Tensor::from_slice(&xv, &pr.x).unwrap();
        let g = Tensor::from_slice(&gv, &out_shape(&pr)).unwrap();
        let want = cpu::conv2d_backward_weight(&to_f64(&gv), &to_f64(&xv), pr.x, pr.w, pr.pad);
        for kernel in ConvKernel::ALL {
            let dw = conv2d_backward_weight(kernel, &g, &x, pr.pad, &pr.w).unwrap();
            assert_close(&dw.to_vec(), &want, 1e-4, 1e-5, &format!("{} dw over {xs:?}", kernel.name()));
        }
    }
}

#[test]
fn conv2d_gradients_match_finite_differences_for_k_1_3_7() {
    let cases = [
        Problem { x: [2, 3, 4, 5], w: [2, 3, 1, 1], pad: 0, bias: true },
        Problem { x: [2, 3, 5, 4], w: [4, 3, 3, 3], pad: 1, bias: true },
        Problem { x: [1, 2, 6, 5], w: [3, 2, 7, 7], pad: 3, bias: true },
        Problem { x: [1, 2, 5, 6], w: [2, 2, 3, 3], pad: 0, bias: false },
    ];
    for (i, pr) in cases.iter().enumerate() {
        let name = format!("conv2d x {:?} w {:?} pad {} bias {}", pr.x, pr.w, pr.pad, pr.bias);
        let seed = 80 + 3 * i as u64;
        let mut ins = vec![Input::uniform(&pr.x, -1.0, 1.0, seed), Input::uniform(&pr.w, -1.0, 1.0, seed + 1)];
        if pr.bias {
            ins.push(Input::uniform(&[pr.w[0]], -1.0, 1.0, seed + 2));
        }
        check_grads(
            &name,
            &ins,
            |t| conv2d(&t[0], &t[1], t.get(2), pr.pad),
            |v| cpu::conv2d(&v[0], pr.x, &v[1], pr.w, v.get(2).map(|b| &b[..]), pr.pad),
        );
    }
}

#[test]
fn conv2d_bias_gradient_is_the_sum_of_g() {
    let pr = Problem { x: [3, 2, 5, 7], w: [5, 2, 3, 3], pad: 1, bias: true };
    let x = Tensor::from_slice(&data(&pr, 5).0, &pr.x).unwrap();
    let w = Tensor::from_slice(&data(&pr, 5).1, &pr.w).unwrap();
    let b = Tensor::zeros(&[5]).with_grad();
    let gv = crate::rng::Rng::new(6).uniform_vec(numel(&out_shape(&pr)), -1.0, 1.0);
    let g = Tensor::from_slice(&gv, &out_shape(&pr)).unwrap();
    let y = conv2d(&x, &w, Some(&b), 1).unwrap();
    let loss = crate::ops::reduce::sum_all(&crate::ops::elementwise::mul(&y, &g).unwrap()).unwrap();
    let grads = autograd::backward(&loss).unwrap();
    let want = cpu::conv2d_backward_bias(&to_f64(&gv), out_shape(&pr));
    assert_close(&grads.get(&b).unwrap().to_vec(), &want, 1e-5, 1e-5, "db");
}

#[test]
fn conv2d_over_65535_workgroups() {
    // one pixel, 4,259,840 output channels, 1×1 kernel: 66,560 workgroups for every rung: v1 has 64 threads
    // each, v2/v3 64 channels per tile, and v4 picks 64×64 tiles (its 16×256 tiles would need 4× the
    // pixels for the same count on a many-pixel problem). dx runs the same forward kernels.
    let (xs, ws) = ([1, 1, 1, 1], [4_259_840, 1, 1, 1]);
    let x = Tensor::full(&xs, 2.0);
    let w = Tensor::full(&ws, 3.0);
    let b = Tensor::full(&[ws[0]], 1.0);
    assert_eq!(TileShape::pick(ws[0], 1).tiles(ws[0], 1), 66_560);
    for kernel in ConvKernel::ALL {
        let y = conv2d_with(kernel, &x, &w, Some(&b), 0).unwrap().to_vec();
        assert_eq!(y.len(), ws[0]);
        let bad = y.iter().position(|&v| v != 7.0);
        assert!(bad.is_none(), "{}: first bad at {bad:?}", kernel.name());
    }
}

#[test]
fn conv2d_v5_over_65535_workgroups() {
    // v5 needs an input width that is a multiple of 4 (the test above falls back to v4): 4 pixels in one
    // row, 524,296 channels = 65,537 blocks of 8, one workgroup each
    let (xs, ws) = ([1, 1, 1, 4], [524_296, 1, 1, 1]);
    let x = Tensor::full(&xs, 2.0);
    let w = Tensor::full(&ws, 3.0);
    let b = Tensor::full(&[ws[0]], 1.0);
    let y = conv2d_with(ConvKernel::Vec4, &x, &w, Some(&b), 0).unwrap().to_vec();
    assert_eq!(y.len(), ws[0] * 4);
    let bad = y.iter().position(|&v| v != 7.0);
    assert!(bad.is_none(), "first bad at {bad:?}");
}

#[test]
fn dw_v10_over_65535_workgroups() {
    // one row of 4 pixels, 524,296 input channels = 65,537 workgroups of 8, one output channel, one split.
    // x = 2, g = 3 at pad 1: only ky = 1 meets the image, and tap kx sees 3, 4, 3 of the 4 pixels
    let (xs, ws) = ([1, 524_296, 1, 4], [1, 524_296, 3, 3]);
    let x = Tensor::full(&xs, 2.0);
    let g = Tensor::full(&[1, 1, 1, 4], 3.0);
    let dw = conv2d_backward_weight(ConvKernel::Reuse, &g, &x, 1, &ws).unwrap().to_vec();
    let tap = [0.0, 0.0, 0.0, 18.0, 24.0, 18.0, 0.0, 0.0, 0.0];
    let bad = dw.iter().enumerate().position(|(i, &v)| v != tap[i % 9]);
    assert!(bad.is_none(), "first bad at {bad:?} of {}", dw.len());
}

#[test]
fn dw_block_splits_stay_within_llvmpipes_loop_limit() {
    use super::dw::{block_splits, DW_LOOP_BUDGET};
    // few tiles: many splits; many tiles on a huge image: one split would walk 100,000 blocks, so it is cut
    for (nblk, tiles) in [(4096, 4), (4096, 300), (100_000, 300), (100_000, 1), (1, 1), (17, 1000)] {
        let (chunk, n_split) = block_splits(nblk, tiles);
        assert!((1..=DW_LOOP_BUDGET).contains(&chunk), "{nblk} blocks, {tiles} tiles: chunk {chunk}");
        assert!(chunk * n_split >= nblk && chunk * (n_split - 1) < nblk, "{nblk}, {tiles}: {chunk} × {n_split}");
    }
    assert_eq!(block_splits(100_000, 300), (DW_LOOP_BUDGET, 4));
}

#[test]
fn winograd_falls_back_when_a_transformed_tensor_exceeds_a_binding() {
    // The arithmetic, at an explicit 128 MiB limit: F(2×2) takes 64 bytes per tile and channel (V and M), F(4×4)
    // 144 per 4×4 tile, and U takes planes·4 bytes per (Cout, Cin) pair, whichever is larger.
    let limit: u64 = 128 << 20;
    let ws = [1, 1, 3, 3];
    let at = |xs: [usize; 4], w: [usize; 4]| check(&xs, &w, None, 1).unwrap();
    let t2 = (limit / 64) as usize; // tiles that exactly fill the limit at one channel
    assert!(WinogradTile::F2.fits_within(&at([1, 1, 2, 2 * t2], ws), limit));
    assert!(!WinogradTile::F2.fits_within(&at([1, 1, 2, 2 * t2 + 4], ws), limit));
    let t4 = (limit / 144) as usize;
    assert!(WinogradTile::F4.fits_within(&at([1, 1, 4, 4 * t4], ws), limit));
    assert!(!WinogradTile::F4.fits_within(&at([1, 1, 4, 4 * t4 + 4], ws), limit));
    // a wide filter on a small image: V and M are small, U (36 × 1024 × 1024 floats, 151 MB) is not
    let wide = at([8, 1024, 8, 8], [1024, 1024, 3, 3]);
    assert!(!WinogradTile::F4.fits_within(&wide, limit) && WinogradTile::F2.fits_within(&wide, limit));

    // On this adapter: an input just over its own limit must run v5 (in_w a multiple of 4, so v5's own
    // kernel and not v4's) and still be right. (Each Winograd invocation owns ≥ 36 bytes of a bound buffer,
    // so under llvmpipe's 128 MiB limit its launches also stay below 65,536 workgroups.) The run needs an
    // input of limit / 4 bytes, so it is made where that is at most 64 MiB (llvmpipe: 32 MiB); adapters
    // with GiB-sized limits get only the arithmetic above.
    let limit = crate::gpu::gpu().limits.max_storage_buffer_binding_size;
    let tiles = ((limit / 64) as usize + 2) & !1; // even, so in_w = 2·tiles is a multiple of 4
    let (xs, ws) = ([1, 1, 2, 2 * tiles], [1, 1, 3, 3]);
    let geo = check(&xs, &ws, None, 1).unwrap();
    assert!(!WinogradTile::F2.fits(&geo));
    if limit / 4 > 64 << 20 {
        return;
    }
    let mut rng = crate::rng::Rng::new(9);
    let (xv, wv) = (rng.uniform_vec(numel(&xs), -1.0, 1.0), rng.uniform_vec(9, -1.0, 1.0));
    let x = Tensor::from_slice(&xv, &xs).unwrap();
    let w = Tensor::from_slice(&wv, &ws).unwrap();
    let got = conv2d_with(ConvKernel::Winograd, &x, &w, None, 1).unwrap().to_vec();
    let want = cpu::conv2d(&to_f64(&xv), xs, &to_f64(&wv), ws, None, 1);
    assert_close(&got, &want, 1e-5, 1e-5, "v6 fallback 1×1×2×(2·tiles)");
    crate::gpu::gpu().check().expect("nothing was over the limit");
}

#[test]
fn conv2d_with_a_rank_3_weight_is_an_error_not_a_panic() {
    let err = conv2d(&Tensor::zeros(&[1, 3, 5, 5]), &Tensor::zeros(&[4, 3, 3]), None, 1).unwrap_err();
    assert!(err.to_string().contains("[4, 3, 3]"), "{err}");
}

#[test]
fn v4_tile_shape_follows_cout() {
    // forward: M = Cout, N = pixels (8 images of 32×32 here)
    assert_eq!(TileShape::pick(16, 8192), TileShape { bm: 16, bn: 256 });
    assert_eq!(TileShape::pick(32, 8192), TileShape { bm: 32, bn: 128 });
    assert_eq!(TileShape::pick(96, 8192), TileShape { bm: 32, bn: 128 });
    assert_eq!(TileShape::pick(64, 8192), TileShape { bm: 64, bn: 64 });
    // dw: M = Cout, N = Cin·KH·KW (16 -> 16 3×3: 144 k's fit one 256-wide tile)
    assert_eq!(TileShape::pick(16, 144), TileShape { bm: 16, bn: 256 });
}

#[test]
fn conv2d_rejects_channel_mismatch_naming_shapes() {
    let (x, w) = (Tensor::zeros(&[1, 3, 5, 5]), Tensor::zeros(&[8, 4, 3, 3]));
    let err = conv2d(&x, &w, None, 1).unwrap_err().to_string();
    assert_eq!(err, "conv2d: input has 3 channels but weight [8, 4, 3, 3] expects 4");
}

#[test]
fn conv2d_rejects_bias_length_mismatch() {
    let (x, w) = (Tensor::zeros(&[1, 4, 5, 5]), Tensor::zeros(&[8, 4, 3, 3]));
    let err = conv2d(&x, &w, Some(&Tensor::zeros(&[7])), 1).unwrap_err().to_string();
    assert!(err.contains("bias [7]") && err.contains("[8]") && err.contains("[8, 4, 3, 3]"), "{err}");
}

#[test]
fn conv2d_rejects_output_smaller_than_one_pixel() {
    let (x, w) = (Tensor::zeros(&[1, 2, 2, 9]), Tensor::zeros(&[3, 2, 7, 7]));
    let err = conv2d(&x, &w, None, 2).unwrap_err().to_string();
    assert!(err.contains("output would be 0×7"), "{err}");
    assert!(err.contains("7×7 kernel") && err.contains("[1, 2, 2, 9]"), "{err}");
}

#[test]
fn conv2d_rejects_wrong_rank_and_bad_gradient_shape() {
    let err = conv2d(&Tensor::zeros(&[2, 5, 5]), &Tensor::zeros(&[1, 2, 3, 3]), None, 1).unwrap_err().to_string();
    assert!(err.contains("(N, Cin, H, W)") && err.contains("[2, 5, 5]"), "{err}");
    let (g, w) = (Tensor::zeros(&[1, 1, 4, 4]), Tensor::zeros(&[1, 2, 3, 3]));
    let err = conv2d_backward_input(ConvKernel::Vec4, &g, &w, 1, &[1, 2, 5, 5]).unwrap_err().to_string();
    assert!(err.contains("[1, 1, 4, 4]") && err.contains("[1, 1, 5, 5]"), "{err}");
}

#[test]
fn dw_v9_splits_stay_bounded_on_large_images() {
    // tiny's 32² layers: 4 windows of 256 pixel blocks, 16 splits each; the paper's 256² level: one split per
    // window, so the partials are 256 windows · Cout · K values, not 4,096
    let tiny = DwV9Plan::new(&check(&[8, 16, 32, 32], &[16, 16, 3, 3], None, 1).unwrap());
    assert_eq!((tiny.chunk, tiny.splits.len(), tiny.splits.iter().sum::<usize>()), (16, 4, 64));
    let paper = DwV9Plan::new(&check(&[8, 64, 256, 256], &[64, 64, 3, 3], None, 1).unwrap());
    assert_eq!((paper.chunk, paper.splits.len(), paper.splits.iter().sum::<usize>()), (256, 256, 256));
    // its packed g is g itself, no padding: 8 channel blocks × 65,536 pixel blocks × 64 values (128 MiB, the
    // largest binding llvmpipe offers; one channel more and dw_v9_reads sends the shape to v5's dw)
    assert_eq!(paper.packed_len(), 8 * 64 * 256 * 256);
}

/// Inside a `keep_packed_weights` scope a parameter's packing (v5, v9) or Winograd transform (v6, v8) runs once:
/// the second forward has one launch fewer and the same bits; a weight that is not a parameter is packed every
/// time, and outside the scope nothing is kept.
#[test]
fn kept_packed_weights_give_the_same_bits_with_one_launch_fewer() {
    let x = Tensor::from_slice(&crate::rng::Rng::new(3).uniform_vec(2 * 8 * 8 * 8, -1.0, 1.0), &[2, 8, 8, 8]).unwrap();
    let wv = crate::rng::Rng::new(4).uniform_vec(16 * 8 * 9, -1.0, 1.0);
    let param = Tensor::from_slice(&wv, &[16, 8, 3, 3]).unwrap().with_grad();
    let plain = Tensor::from_slice(&wv, &[16, 8, 3, 3]).unwrap();
    let run = |k: ConvKernel, w: &Tensor| {
        crate::ops::work::start();
        let y = conv2d_with(k, &x, w, None, 1).unwrap().to_vec();
        let calls = crate::ops::work::stop();
        (y, calls.iter().map(|c| c.launches).sum::<u64>())
    };
    for k in [ConvKernel::Vec4, ConvKernel::Uniform, ConvKernel::Winograd, ConvKernel::Winograd4] {
        let (want, n) = run(k, &param);
        let _kp = keep_packed_weights();
        let (first, n1) = run(k, &param);
        let (second, n2) = run(k, &param);
        assert_eq!((n1, n2), (n, n - 1), "{k:?}: launches outside, first and second inside the scope");
        assert!(want == first && first == second, "{k:?}: kept weights changed the output");
        let (_, m) = run(k, &plain);
        let (_, m2) = run(k, &plain);
        assert_eq!((m, m2), (n, n), "{k:?}: a non-parameter weight is packed every time");
    }
    let (_, n) = run(ConvKernel::Winograd, &param);
    let (_, n2) = run(ConvKernel::Winograd, &param);
    assert_eq!(n, n2, "nothing is kept after the scope");
}

#[test]
fn v9s_subgroup_piece_gives_the_plain_pieces_bits() {
    // v9's forward and dx with each weight row read once a subgroup must equal the plain piece bit for bit: a 3×3
    // over several windows of weight blocks with partial channel and pixel blocks, pad 1 and 0 (window
    // alignments), and a dx (signed pads); where the device has subgroups the 3×3 must run the subgroup piece
    let mut rng = crate::rng::Rng::new(31);
    for (x, w, pad) in
        [([2, 100, 5, 12], [20, 100, 3, 3], 1), ([1, 9, 7, 8], [13, 9, 3, 3], 0), ([3, 5, 9, 4], [7, 5, 3, 3], 2)]
    {
        let xt = Tensor::from_slice(&rng.uniform_vec(numel(&x), -1.0, 1.0), &x).unwrap();
        let wt = Tensor::from_slice(&rng.uniform_vec(numel(&w), -1.0, 1.0), &w).unwrap();
        let run = |plain: bool| {
            crate::ops::PLAIN_WINDOWS.with(|p| p.set(plain));
            crate::ops::work::start();
            let y = conv2d_with(ConvKernel::Uniform, &xt, &wt, None, pad).unwrap();
            let calls = crate::ops::work::stop();
            let dx = conv2d_backward_input(ConvKernel::Uniform, &y, &wt, pad, &x).unwrap();
            crate::ops::PLAIN_WINDOWS.with(|p| p.set(false));
            (y.to_vec(), dx.to_vec(), calls[0].kernels.clone())
        };
        let (y0, dx0, k0) = run(true);
        let (y1, dx1, k1) = run(false);
        let what = format!("x {x:?} w {w:?} pad {pad}");
        let v9 =
            |k: &Vec<String>| k.iter().filter(|k| k.starts_with("conv/conv_v9_uniform")).cloned().collect::<Vec<_>>();
        assert!(!v9(&k0).is_empty() && v9(&k0).iter().all(|k| !k.contains("SG=")), "{what}: {k0:?}");
        if crate::ops::window_subgroup_lanes(16).is_some() {
            assert!(v9(&k1).iter().all(|k| k.contains("SG=")), "{what}: {k1:?}");
        }
        assert!(y0 == y1, "{what}: forward, subgroup piece differs from the plain one");
        assert!(dx0 == dx1, "{what}: dx, subgroup piece differs from the plain one");
    }
}

#[test]
fn dw_v10s_subgroup_piece_gives_the_plain_pieces_bits() {
    // dw v10 with each block's g read once a subgroup must equal the plain piece bit for bit: 3×3 with input
    // channels a multiple of the workgroup (the subgroup piece's condition), output channels past a tile of 8
    // (padding channels), rows of 12 (a block's high half past the row's end); 9 input channels
    // (no piece but the plain one); 7×7 with 8 input channels (7 tap-row invocations each, 56 a channel tile)
    let mut rng = crate::rng::Rng::new(37);
    for (x, cout, pad, k, sub) in [
        ([2, 8, 6, 12], 11, 1, 3, true),
        ([1, 16, 9, 8], 8, 1, 3, true),
        ([2, 9, 5, 8], 5, 1, 3, false),
        ([1, 8, 5, 8], 9, 3, 7, true),
    ] {
        let ws = [cout, x[1], k, k];
        let oshape = [x[0], cout, x[2] + 2 * pad + 1 - k, x[3] + 2 * pad + 1 - k];
        let xt = Tensor::from_slice(&rng.uniform_vec(numel(&x), -1.0, 1.0), &x).unwrap();
        let gt = Tensor::from_slice(&rng.uniform_vec(numel(&oshape), -1.0, 1.0), &oshape).unwrap();
        let run = |plain: bool| {
            crate::ops::PLAIN_WINDOWS.with(|p| p.set(plain));
            crate::ops::work::start();
            let dw = conv2d_backward_weight(ConvKernel::Reuse, &gt, &xt, pad, &ws).unwrap().to_vec();
            let calls = crate::ops::work::stop();
            crate::ops::PLAIN_WINDOWS.with(|p| p.set(false));
            (dw, calls[0].kernels.clone())
        };
        let ((d0, k0), (d1, k1)) = (run(true), run(false));
        let what = format!("x {x:?} w {ws:?} pad {pad}");
        let v10 =
            |k: &Vec<String>| k.iter().filter(|k| k.starts_with("conv/dw_v10_reuse")).cloned().collect::<Vec<_>>();
        assert!(!v10(&k0).is_empty() && v10(&k0).iter().all(|k| !k.contains("SG=")), "{what}: {k0:?}");
        let want_sub = sub && crate::ops::window_subgroup_lanes(8).is_some();
        assert!(!v10(&k1).is_empty() && v10(&k1).iter().all(|k| k.contains("SG=") == want_sub), "{what}: {k1:?}");
        assert!(d0 == d1, "{what}: dw, subgroup piece differs from the plain one");
    }
}
