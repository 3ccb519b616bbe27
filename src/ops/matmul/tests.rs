//! The matmul family's tests: every rung against the CPU reference, gradients, v6's window layouts, edges.

use super::*;
use crate::testing::{assert_close, check_grads, to_f64, Input};

/// A matmul problem: a and b shapes (as stored) and transposes.
struct Problem {
    a: &'static [usize],
    ta: bool,
    b: &'static [usize],
    tb: bool,
}

const PROBLEMS: &[Problem] = &[
    Problem { a: &[1, 1], ta: false, b: &[1, 1], tb: false },
    Problem { a: &[3, 5], ta: false, b: &[5, 7], tb: false },
    Problem { a: &[17, 33], ta: false, b: &[33, 65], tb: false }, // not multiples of 16 or 64
    Problem { a: &[64, 64], ta: false, b: &[64, 64], tb: false }, // exact tiles
    Problem { a: &[2, 3, 9, 4], ta: false, b: &[2, 3, 4, 70], tb: false },
    Problem { a: &[4, 19, 6], ta: false, b: &[6, 5], tb: false }, // shared B (linear layer)
    Problem { a: &[6, 9], ta: true, b: &[3, 11, 6], tb: true },   // shared A, both transposed
    Problem { a: &[2, 31, 8], ta: true, b: &[2, 31, 10], tb: false }, // Aᵀ·B (attention context)
    Problem { a: &[2, 13, 8], ta: false, b: &[2, 8, 36], tb: false }, // v5 vec4 path: M, N/4 partial tiles
    Problem { a: &[3, 9, 12], ta: false, b: &[12, 132], tb: false }, // v5 with shared B, 33 column quads
    Problem { a: &[5, 4], ta: false, b: &[4, 4], tb: false },     // v5, one quad, K = 4
    // v5 on transposed operands (K, N multiples of 4): the operand is copied into its transpose first
    Problem { a: &[2, 12, 7], ta: true, b: &[2, 12, 20], tb: false }, // Aᵀ·B, M = 7 (odd)
    Problem { a: &[3, 5, 8], ta: false, b: &[3, 12, 8], tb: true },   // A·Bᵀ (attention scores · V)
    Problem { a: &[8, 6], ta: true, b: &[2, 12, 8], tb: true },       // shared A, both transposed
    // v6: several batches' A in one uniform window (M = 13: a partial row tile)
    Problem { a: &[3, 13, 64], ta: false, b: &[3, 64, 44], tb: false },
    // v6: A matrices larger than a window: 5 row tiles in windows of 3, per batch
    Problem { a: &[2, 40, 520], ta: false, b: &[2, 520, 36], tb: false },
    // v6: a shared A of 3 row tiles, one per window (K = 1,032)
    Problem { a: &[20, 1032], ta: false, b: &[2, 1032, 36], tb: false },
];
/// The problems above that take v6's three window layouts.
const V6: std::ops::Range<usize> = 14..17;
/// The problems above that take v5's transposed path (their gradients do too).
const TRANSPOSED_V5: std::ops::Range<usize> = 11..14;
/// v5's `main_rows16` (N ≤ 32) on more than one 16-row tile with a partial last one, and 7 column quads.
const ROWS16: Problem = Problem { a: &[2, 37, 12], ta: false, b: &[2, 12, 28], tb: false };

#[test]
fn every_rung_matches_cpu_on_uneven_and_batched_shapes() {
    let mut rng = crate::rng::Rng::new(3);
    for pr in PROBLEMS {
        let av = rng.uniform_vec(numel(pr.a), -1.0, 1.0);
        let bv = rng.uniform_vec(numel(pr.b), -1.0, 1.0);
        let (a, b) = (Tensor::from_slice(&av, pr.a).unwrap(), Tensor::from_slice(&bv, pr.b).unwrap());
        let want = cpu::matmul(&to_f64(&av), pr.a, pr.ta, &to_f64(&bv), pr.b, pr.tb);
        // f32 sums over K terms: beyond 1e-5 the absolute error grows with the largest output
        let atol = want.iter().fold(1e-5f64, |m, v| m.max(1e-6 * v.abs()));
        for kernel in MatmulKernel::ALL {
            let got = matmul_with(kernel, &a, pr.ta, &b, pr.tb).unwrap();
            assert_close(
                &got.to_vec(),
                &want,
                atol,
                1e-5,
                &format!("{} {:?}ᵀ{} {:?}ᵀ{}", kernel.name(), pr.a, pr.ta, pr.b, pr.tb),
            );
        }
    }
}

#[test]
fn v6_takes_its_window_layouts() {
    // windows per problem with 8, 16 and 32 rows a thread: [2, 40, 520] holds 5, 3 or 2 row tiles per batch,
    // one window each past 8 rows; [20, 1032]'s 16-row tile exceeds a window, so r16 and r32 run 8 rows, as
    // does r32 on [2, 40, 520]
    let expect = [
        (MatmulKernel::Uniform, [1, 4, 3], [8, 8, 8]),
        (MatmulKernel::UniformR16, [1, 6, 3], [16, 16, 8]),
        (MatmulKernel::UniformR32, [1, 4, 3], [32, 8, 8]),
    ];
    for (kernel, windows, rows) in expect {
        for ((pr, windows), rows) in PROBLEMS[V6].iter().zip(windows).zip(rows) {
            let (a, b) = (Tensor::zeros(pr.a), Tensor::zeros(pr.b));
            crate::ops::work::start();
            matmul_with(kernel, &a, pr.ta, &b, pr.tb).unwrap();
            let calls = crate::ops::work::stop();
            let what = format!("{} {:?} · {:?}: {:?}", kernel.name(), pr.a, pr.b, calls[0].kernels);
            let tm = |k: &String| k.starts_with("matmul/matmul_v6_uniform") && (rows == 8) != k.contains("TM=");
            assert!(calls[0].kernels.iter().all(tm), "{what}");
            assert!(rows == 8 || calls[0].kernels.iter().all(|k| k.contains(&format!("TM={rows}"))), "{what}");
            assert_eq!(calls[0].launches, windows, "{what}");
        }
    }
}

#[test]
fn v7_broadcasts_give_v6s_bits_for_any_lane_count_up_to_the_subgroup() {
    // v7 sums in v6's order, so its C must be v6's bit for bit, with the real subgroup and with broadcasts
    // assuming fewer lanes (a larger real subgroup than assumed must still be right); where the device has no
    // subgroups the v7 rungs must run v6's shader
    let mut rng = crate::rng::Rng::new(7);
    for pr in &PROBLEMS[V6] {
        let av = rng.uniform_vec(numel(pr.a), -1.0, 1.0);
        let bv = rng.uniform_vec(numel(pr.b), -1.0, 1.0);
        let (a, b) = (Tensor::from_slice(&av, pr.a).unwrap(), Tensor::from_slice(&bv, pr.b).unwrap());
        for (v7, v6, tm) in [
            (MatmulKernel::Subgroup, MatmulKernel::Uniform, 8),
            (MatmulKernel::SubgroupR16, MatmulKernel::UniformR16, 16),
            (MatmulKernel::SubgroupR32, MatmulKernel::UniformR32, 32),
        ] {
            let want = matmul_with(v6, &a, false, &b, false).unwrap().to_vec();
            crate::ops::work::start();
            let got = matmul_with(v7, &a, false, &b, false).unwrap().to_vec();
            let calls = crate::ops::work::stop();
            let what = format!("{} {:?} · {:?}: {:?}", v7.name(), pr.a, pr.b, calls[0].kernels);
            let sub = crate::gpu::gpu().subgroup_lanes().is_some();
            let ran = |k: &String| k.starts_with("matmul/matmul_v6_uniform") && k.contains("SG=") == sub;
            assert!(calls[0].kernels.iter().all(ran), "{what}");
            assert!(got == want, "{what}: not v6's bits");
            let Some(lanes) = crate::gpu::gpu().subgroup_lanes() else { continue };
            if !super::v6_applies(&super::plan(pr.a, false, pr.b, false).unwrap(), false, false, tm) {
                continue; // matmul_with ran fewer rows; the windows hold no tile of tm rows
            }
            for l in [lanes, lanes / 2, 1].into_iter().filter(|&l| l >= 1) {
                let got = super::windows::matmul_v7_assuming(l, tm, &a, &b).unwrap().to_vec();
                assert!(got == want, "v7 TM={tm} assuming {l} of {lanes} lanes {:?} · {:?}: not v6's bits", pr.a, pr.b);
            }
        }
    }
}

#[test]
fn the_rule_takes_the_most_rows_that_m_fills_and_a_window_holds() {
    // as the v7 twin on a CPU adapter with subgroups
    let g = crate::gpu::gpu();
    let twin = |k: MatmulKernel| match (g.subgroup_lanes().is_some() && g.info.device_type == wgpu::DeviceType::Cpu, k)
    {
        (false, k) => k,
        (true, MatmulKernel::UniformR32) => MatmulKernel::SubgroupR32,
        (true, MatmulKernel::UniformR16) => MatmulKernel::SubgroupR16,
        (true, _) => MatmulKernel::Subgroup,
    };
    let rule = |m: usize, k: usize| super::rule(&[36, m, k], false, &[36, k, 2048], false);
    assert_eq!(rule(32, 32), twin(MatmulKernel::UniformR32));
    assert_eq!(rule(128, 512), twin(MatmulKernel::UniformR32)); // 32 rows of 512 fill a window exactly
    assert_eq!(rule(128, 1024), twin(MatmulKernel::UniformR16));
    assert_eq!(rule(16, 64), twin(MatmulKernel::UniformR16));
    assert_eq!(rule(13, 64), twin(MatmulKernel::Uniform));
    assert_eq!(rule(64, 4096), twin(MatmulKernel::Uniform)); // no v6 applies: matmul_with runs v5
    assert_eq!(
        launched(rule(64, 4096), &plan(&[64, 4096], false, &[4096, 64], false).unwrap(), false, false),
        MatmulKernel::Vec4
    );
}

#[test]
fn matmul_gradients_match_finite_differences() {
    for pr in PROBLEMS.iter().skip(1).take(7).filter(|p| numel(p.a) + numel(p.b) < 3000) {
        let ins = [Input::uniform(pr.a, -1.0, 1.0, 21), Input::uniform(pr.b, -1.0, 1.0, 22)];
        check_grads(
            &format!("matmul {:?} {:?}", pr.a, pr.b),
            &ins,
            |x| matmul_t(&x[0], pr.ta, &x[1], pr.tb),
            |x| cpu::matmul(&x[0], pr.a, pr.ta, &x[1], pr.b, pr.tb),
        );
    }
}

#[test]
fn v5_rows16_matches_cpu() {
    let pr = &ROWS16;
    let mut rng = crate::rng::Rng::new(4);
    let (av, bv) = (rng.uniform_vec(numel(pr.a), -1.0, 1.0), rng.uniform_vec(numel(pr.b), -1.0, 1.0));
    let (a, b) = (Tensor::from_slice(&av, pr.a).unwrap(), Tensor::from_slice(&bv, pr.b).unwrap());
    let got = matmul_with(MatmulKernel::Vec4, &a, false, &b, false).unwrap();
    let want = cpu::matmul(&to_f64(&av), pr.a, false, &to_f64(&bv), pr.b, false);
    assert_close(&got.to_vec(), &want, 1e-5, 1e-5, "v5 rows16 [2, 37, 12]·[2, 12, 28]");
}

#[test]
fn transposed_v5_gradients_match_finite_differences() {
    for pr in &PROBLEMS[TRANSPOSED_V5] {
        assert!(pr.ta || pr.tb);
        let ins = [Input::uniform(pr.a, -1.0, 1.0, 23), Input::uniform(pr.b, -1.0, 1.0, 24)];
        check_grads(
            &format!("matmul {:?}ᵀ{} {:?}ᵀ{}", pr.a, pr.ta, pr.b, pr.tb),
            &ins,
            |x| matmul_t(&x[0], pr.ta, &x[1], pr.tb),
            |x| cpu::matmul(&x[0], pr.a, pr.ta, &x[1], pr.b, pr.tb),
        );
    }
}

#[test]
fn matmul_over_65535_workgroups() {
    // 70,000 batches of 1×1·1×2: 70,000 workgroups for the tiled and blocked rungs.
    let batch = 70_000;
    let a = Tensor::full(&[batch, 1, 1], 2.0);
    let b = Tensor::full(&[batch, 1, 2], 3.0);
    for kernel in MatmulKernel::ALL {
        let c = matmul_with(kernel, &a, false, &b, false).unwrap().to_vec();
        assert_eq!(c.len(), batch * 2);
        assert!(c.iter().all(|&v| v == 6.0), "{}: first bad at {:?}", kernel.name(), c.iter().position(|&v| v != 6.0));
    }
    // 70,000 batches of 1×4·4×4 take v5's vec4 path: 70,000 workgroups there too (C = 2·3·4 = 24)
    let a = Tensor::full(&[batch, 1, 4], 2.0);
    let b = Tensor::full(&[batch, 4, 4], 3.0);
    let c = matmul_with(MatmulKernel::Vec4, &a, false, &b, false).unwrap().to_vec();
    assert_eq!(c.len(), batch * 4);
    assert!(c.iter().all(|&v| v == 24.0), "v5: first bad at {:?}", c.iter().position(|&v| v != 24.0));
}

#[test]
fn every_rung_sums_a_k_past_llvmpipes_loop_limit() {
    // K = 70,001 (odd: the vec4 rungs take v4) plain and with both operands transposed, and K = 262,148 on
    // v5's rows16 path (65,537 K-loop iterations): llvmpipe would stop each sum after 65,535 iterations of
    // its loops, so CPU adapters split K (`max_k_llvmpipe`)
    let mut rng = crate::rng::Rng::new(9);
    let problems = [
        Problem { a: &[3, 70_001], ta: false, b: &[70_001, 5], tb: false },
        Problem { a: &[70_001, 3], ta: true, b: &[5, 70_001], tb: true },
        Problem { a: &[4, 262_148], ta: false, b: &[262_148, 4], tb: false },
    ];
    for pr in &problems {
        let av = rng.uniform_vec(numel(pr.a), -1.0, 1.0);
        let bv = rng.uniform_vec(numel(pr.b), -1.0, 1.0);
        let (a, b) = (Tensor::from_slice(&av, pr.a).unwrap(), Tensor::from_slice(&bv, pr.b).unwrap());
        let want = cpu::matmul(&to_f64(&av), pr.a, pr.ta, &to_f64(&bv), pr.b, pr.tb);
        let kernels = if pr.a[1] > 100_000 { &MatmulKernel::ALL[3..] } else { &MatmulKernel::ALL[..] };
        for &kernel in kernels {
            let got = matmul_with(kernel, &a, pr.ta, &b, pr.tb).unwrap();
            let what = format!("{} {:?}ᵀ{} {:?}ᵀ{}", kernel.name(), pr.a, pr.ta, pr.b, pr.tb);
            assert_close(&got.to_vec(), &want, 1e-3, 1e-4, &what);
        }
    }
}

#[test]
fn matmul_rejects_mismatched_inner_dims() {
    let err = matmul(&Tensor::zeros(&[2, 3]), &Tensor::zeros(&[4, 5])).unwrap_err().to_string();
    assert!(err.contains("K = 3") && err.contains("K = 4"), "{err}");
}
