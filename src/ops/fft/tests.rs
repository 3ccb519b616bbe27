use super::*;
use crate::testing::{assert_close, check_grads, random, to_f64, Input};

/// An (B, C, H, W) problem.
struct Problem {
    shape: [usize; 4],
}

const PROBLEMS: &[Problem] = &[
    Problem { shape: [1, 1, 8, 8] },
    Problem { shape: [1, 2, 12, 12] }, // not a power of two: the mixed radix (12 = 4·3) on both axes
    Problem { shape: [2, 1, 16, 16] },
    Problem { shape: [1, 1, 30, 30] },
    Problem { shape: [1, 1, 64, 64] },
    Problem { shape: [1, 1, 8, 12] }, // rows (W = 12) on the mixed radix, columns (H = 8) on a power-of-two rung
    Problem { shape: [1, 1, 12, 8] }, // and the other way round
    Problem { shape: [1, 1, 1, 16] }, // 1×N
    Problem { shape: [1, 1, 16, 1] }, // N×1
    Problem { shape: [1, 1, 1, 1] },
    Problem { shape: [2, 3, 4, 2] },     // several tiny images per Stockham workgroup
    Problem { shape: [1, 1, 2, 256] },   // long rows
    Problem { shape: [1, 1, 256, 2] },   // long columns
    Problem { shape: [1, 1, 30, 240] },  // BraTS's row length 240 = 4·4·3·5, and 30 = 2·3·5
    Problem { shape: [1, 1, 240, 3] },   // 240 along columns; rows of 3
    Problem { shape: [2, 1, 7, 97] },    // primes: Bluestein at L = 16 and 256
    Problem { shape: [1, 1, 1, 1000] },  // 2³·5³, the longest 2-3-5 stages up to SLOTS
    Problem { shape: [1, 1, 250, 225] }, // 2·5³ and 3²·5² (no radix 4 or 2): odd radices only, private rung
    Problem { shape: [1, 1, 1, 511] },   // 7·73: Bluestein at L = 1024, the largest it takes
    Problem { shape: [1, 1, 513, 1] },   // 3³·19: too long for Bluestein in workgroup memory, so the DFT
];

#[test]
fn lengths_go_to_the_rung_that_takes_them() {
    use FftKernel::*;
    for (n, private, stockham, mixed, private_mixed) in [
        (64, Private, Stockham, Mixed, PrivateMixed),
        (128, Private, Stockham, Mixed, PrivateMixed),
        (240, PrivateMixed, Mixed, Mixed, PrivateMixed),
        (256, Private, Stockham, Mixed, PrivateMixed),
        (270, Mixed, Mixed, Mixed, Mixed),
        (97, Mixed, Mixed, Mixed, Mixed),
        (512, Stockham, Stockham, Mixed, Stockham),
        (1000, Mixed, Mixed, Mixed, Mixed),
        (513, Dft, Dft, Dft, Dft),
        (2048, Dft, Dft, Dft, Dft),
    ] {
        assert_eq!(
            [Private.for_len(n), Stockham.for_len(n), Mixed.for_len(n), PrivateMixed.for_len(n), Dft.for_len(n)],
            [private, stockham, mixed, private_mixed, Dft],
            "n = {n}"
        );
    }
    assert_eq!((mixed_len(240), mixed_len(97), mixed_len(1)), (240, 256, 1));
}

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
            assert_close(&back, &cpu::complex(&to_f64(&v)), 2e-6, 0.0, &format!("round trip {} {shape:?}", k.name()));
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
            assert_close(&got.to_vec(), &want, tol(&want), 1e-5, &format!("fft2_channels {} {:?}", k.name(), pr.shape));
        }
    }
}

#[test]
fn every_rung_ff_parser_matches_cpu_with_shared_and_per_sample_maps() {
    for shape in [
        [2, 3, 8, 8],
        [2, 2, 12, 12],
        [1, 2, 8, 12],
        [2, 1, 30, 16],
        [3, 1, 1, 16],
        [2, 1, 16, 1],
        [1, 1, 64, 64],
        [2, 1, 7, 15],
    ] {
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
    // the private rungs always take 64 lines per workgroup: 2,100,000 images of 1×2 give 4,200,000 column
    // lines (n = 1), 65,625 workgroups
    let shape = [2_100_000, 1, 1, 2];
    let (v, x) = random(&shape, 42);
    let want = cpu::fft2(&to_f64(&v), 2_100_000, 1, 2);
    for k in [FftKernel::Private, FftKernel::PrivateMixed] {
        let got = fft2_with(k, &x).unwrap().to_vec();
        assert_close(&got, &want, 1e-5, 1e-5, &format!("fft2 {} 2,100,000 × 1×2", k.name()));
    }
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
