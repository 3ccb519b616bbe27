//! The norm family's tests: GroupNorm (both kernels) and the channel LayerNorm (scalar and vec4 twins) against
//! the CPU reference, finite-difference gradients, bad shapes.

use super::*;
use crate::rng::Rng;
use crate::testing::{assert_close, check_grads, to_f64, Input};

/// One group norm problem: x (n, c, h, w) with `groups` groups.
#[derive(Clone, Copy, Debug)]
struct GnCase {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    groups: usize,
}

/// groups = 1, = C and in between; odd H and W; N = 1 and 3; a group larger than one workgroup (8·9·11).
const GN_CASES: &[GnCase] = &[
    GnCase { n: 1, c: 8, h: 3, w: 5, groups: 1 },
    GnCase { n: 3, c: 8, h: 3, w: 5, groups: 8 },
    GnCase { n: 3, c: 16, h: 5, w: 7, groups: 4 },
    GnCase { n: 1, c: 32, h: 9, w: 11, groups: 8 },
    GnCase { n: 3, c: 24, h: 1, w: 1, groups: 8 },
    GnCase { n: 2, c: 8, h: 17, w: 19, groups: 2 },
    // H·W a multiple of 4: the vec4 kernels, with fewer and with more vec4s per channel than threads (64)
    GnCase { n: 2, c: 8, h: 4, w: 6, groups: 4 },
    GnCase { n: 1, c: 12, h: 16, w: 20, groups: 3 },
];

fn gn_inputs(k: &GnCase, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    // an offset mean makes the variance pass matter (x − mean is not x)
    let x = rng.uniform_vec(k.n * k.c * k.h * k.w, -1.0, 3.0);
    let gamma = rng.uniform_vec(k.c, 0.5, 1.5);
    let beta = rng.uniform_vec(k.c, -0.5, 0.5);
    (x, gamma, beta)
}

#[test]
fn debug_group_norm_prints_values() {
    let x = Tensor::from_slice(&[1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0], &[1, 2, 2, 2]).unwrap();
    let y = group_norm(&x, 2, None, None, 1e-5).unwrap().to_vec();
    println!("group_norm of [1, 2, 3, 4 | 10, 20, 30, 40] with 2 groups = {y:?}");
    // each group is a, 2a, 3a, 4a: normalised to ±1.3416, ±0.4472 whatever a is
    assert_close(&y[..4], &[-1.3416, -0.4472, 0.4472, 1.3416], 1e-4, 0.0, "group 0");
    assert_close(&y[4..], &[-1.3416, -0.4472, 0.4472, 1.3416], 1e-4, 0.0, "group 1");
}

#[test]
fn group_norm_matches_cpu_forward_and_backward() {
    for (seed, k) in GN_CASES.iter().enumerate() {
        let (xv, gv, bv) = gn_inputs(k, seed as u64);
        let hw = k.h * k.w;
        let x = Tensor::from_slice(&xv, &[k.n, k.c, k.h, k.w]).unwrap().with_grad();
        let gamma = Tensor::from_slice(&gv, &[k.c]).unwrap().with_grad();
        let beta = Tensor::from_slice(&bv, &[k.c]).unwrap().with_grad();
        let y = group_norm(&x, k.groups, Some(&gamma), Some(&beta), 1e-5).unwrap();
        let want = cpu::group_norm(&to_f64(&xv), k.n, k.c, hw, k.groups, &to_f64(&gv), &to_f64(&bv), 1e-5);
        assert_close(&y.to_vec(), &want, 1e-5, 1e-5, &format!("{k:?} forward"));

        // backward with a random upstream: L = Σ y ⊙ u
        let uv = Rng::new(100 + seed as u64).uniform_vec(xv.len(), -1.0, 1.0);
        let u = Tensor::from_slice(&uv, y.shape()).unwrap();
        let loss = crate::ops::reduce::sum_all(&crate::ops::elementwise::mul(&y, &u).unwrap()).unwrap();
        let grads = autograd::backward(&loss).unwrap();
        let (dx, dg, db) =
            cpu::group_norm_backward(&to_f64(&xv), &to_f64(&uv), k.n, k.c, hw, k.groups, &to_f64(&gv), 1e-5);
        assert_close(&grads.get(&x).unwrap().to_vec(), &dx, 1e-4, 1e-4, &format!("{k:?} dx"));
        assert_close(&grads.get(&gamma).unwrap().to_vec(), &dg, 1e-4, 1e-4, &format!("{k:?} dgamma"));
        assert_close(&grads.get(&beta).unwrap().to_vec(), &db, 1e-4, 1e-4, &format!("{k:?} dbeta"));
    }
}

#[test]
fn group_norm_rank3_input_treats_length_as_pixels() {
    let k = GnCase { n: 3, c: 8, h: 1, w: 13, groups: 4 };
    let (xv, gv, bv) = gn_inputs(&k, 7);
    let x = Tensor::from_slice(&xv, &[3, 8, 13]).unwrap();
    let (g, b) = (Tensor::from_slice(&gv, &[8]).unwrap(), Tensor::from_slice(&bv, &[8]).unwrap());
    let y = group_norm(&x, 4, Some(&g), Some(&b), 1e-5).unwrap();
    assert_eq!(y.shape(), &[3, 8, 13]);
    let want = cpu::group_norm(&to_f64(&xv), 3, 8, 13, 4, &to_f64(&gv), &to_f64(&bv), 1e-5);
    assert_close(&y.to_vec(), &want, 1e-5, 1e-5, "rank 3");
}

#[test]
fn group_norm_gradients_match_finite_differences() {
    for k in [GN_CASES[0], GN_CASES[1], GN_CASES[2], GN_CASES[6]] {
        let (n, c, hw, groups) = (k.n, k.c, k.h * k.w, k.groups);
        let ins = [
            Input::uniform(&[n, c, k.h, k.w], -1.0, 3.0, 21),
            Input::uniform(&[c], 0.5, 1.5, 22),
            Input::uniform(&[c], -0.5, 0.5, 23),
        ];
        check_grads(
            &format!("group_norm {k:?}"),
            &ins,
            |t| group_norm(&t[0], groups, Some(&t[1]), Some(&t[2]), 1e-5),
            |v| cpu::group_norm(&v[0], n, c, hw, groups, &v[1], &v[2], 1e-5),
        );
    }
}

#[test]
fn group_norm_without_affine_equals_ones_and_zeros() {
    let k = GN_CASES[2];
    let (xv, _, _) = gn_inputs(&k, 3);
    let x = Tensor::from_slice(&xv, &[k.n, k.c, k.h, k.w]).unwrap();
    let y = group_norm(&x, k.groups, None, None, 1e-5).unwrap().to_vec();
    let want = cpu::group_norm(&to_f64(&xv), k.n, k.c, k.h * k.w, k.groups, &vec![1.0; k.c], &vec![0.0; k.c], 1e-5);
    assert_close(&y, &want, 1e-5, 1e-5, "no affine");
}

#[test]
fn group_norm_over_65535_workgroups() {
    // N·G = 16,400·4 = 65,600 tiny groups of 2 channels × 2 positions: 65,600 workgroups, folded into y;
    // then 4 positions, the vec4 kernel
    for l in [2, 4] {
        let (n, c, groups) = (16_400, 8, 4);
        let xv = Rng::new(9).uniform_vec(n * c * l, -2.0, 2.0);
        let gv: Vec<f32> = (0..c).map(|i| 0.5 + 0.1 * i as f32).collect();
        let bv: Vec<f32> = (0..c).map(|i| 0.05 * i as f32).collect();
        let x = Tensor::from_slice(&xv, &[n, c, l]).unwrap();
        let (g, b) = (Tensor::from_slice(&gv, &[c]).unwrap(), Tensor::from_slice(&bv, &[c]).unwrap());
        let y = group_norm(&x, groups, Some(&g), Some(&b), 1e-5).unwrap().to_vec();
        let want = cpu::group_norm(&to_f64(&xv), n, c, l, groups, &to_f64(&gv), &to_f64(&bv), 1e-5);
        assert_close(&y, &want, 1e-4, 1e-4, &format!("65,600 groups of 2 channels × {l}"));
    }
}

#[test]
fn group_norm_rejects_indivisible_channels_and_bad_shapes() {
    let x = Tensor::zeros(&[2, 30, 4, 4]);
    let err = group_norm(&x, 8, None, None, 1e-5).unwrap_err().to_string();
    assert_eq!(err, "group_norm: 30 channels are not divisible by 8 groups");
    let err =
        group_norm(&Tensor::zeros(&[2, 8, 4, 4]), 4, Some(&Tensor::zeros(&[7])), None, 1e-5).unwrap_err().to_string();
    assert!(err.contains("gamma") && err.contains("[7]") && err.contains("[2, 8, 4, 4]"), "{err}");
    let err = group_norm(&Tensor::zeros(&[8, 4]), 4, None, None, 1e-5).unwrap_err().to_string();
    assert!(err.contains("[8, 4]"), "{err}");
    assert!(group_norm(&Tensor::zeros(&[2, 8, 4]), 0, None, None, 1e-5).is_err());
}

// ---- channel LayerNorm ----

#[test]
fn debug_layer_norm_channels_prints_values() {
    // one pixel with channels (1, 2, 3): mean 2, var 2/3 -> (−1.2247, 0, 1.2247)
    let x = Tensor::from_slice(&[1.0, 2.0, 3.0], &[1, 3, 1, 1]).unwrap();
    let g = Tensor::from_slice(&[1.0, 1.0, 2.0], &[1, 3, 1, 1]).unwrap();
    let y = layer_norm_channels(&x, &g, None, 1e-5).unwrap().to_vec();
    println!("layer_norm_channels of (1, 2, 3) with g = (1, 1, 2) = {y:?}");
    assert_close(&y, &[-1.22473, 0.0, 2.0 * 1.22473], 1e-4, 0.0, "one pixel");
}

#[test]
fn layer_norm_channels_matches_cpu() {
    // (n, c, h, w): C = 1, small, 16, odd; odd pixel counts (the scalar kernel) and H·W % 4 == 0 (the vec4
    // twin, 4 pixels a thread, with a partial last workgroup); a (1, C, 1, 1) and a (C) parameter each
    let cases: &[(usize, usize, usize, usize)] = &[
        (1, 1, 3, 3),
        (3, 5, 7, 9),
        (2, 16, 5, 3),
        (1, 48, 17, 15),
        (1, 1, 2, 2),
        (2, 16, 4, 4),
        (3, 5, 8, 12),
        (2, 3, 36, 36),
    ];
    for (seed, &(n, c, h, w)) in cases.iter().enumerate() {
        let mut rng = Rng::new(40 + seed as u64);
        let xv = rng.uniform_vec(n * c * h * w, -1.0, 3.0);
        let gv = rng.uniform_vec(c, 0.5, 1.5);
        let bv = rng.uniform_vec(c, -0.5, 0.5);
        let x = Tensor::from_slice(&xv, &[n, c, h, w]).unwrap();
        let g = Tensor::from_slice(&gv, &[1, c, 1, 1]).unwrap();
        let b = Tensor::from_slice(&bv, &[c]).unwrap();
        let got = layer_norm_channels(&x, &g, Some(&b), 1e-5).unwrap().to_vec();
        let want = cpu::layer_norm_channels(&to_f64(&xv), n, c, h * w, &to_f64(&gv), &to_f64(&bv), 1e-5);
        assert_close(&got, &want, 1e-5, 1e-5, &format!("({n}, {c}, {h}, {w})"));
        let got = layer_norm_channels(&x, &g, None, 1e-5).unwrap().to_vec();
        let want = cpu::layer_norm_channels(&to_f64(&xv), n, c, h * w, &to_f64(&gv), &vec![0.0; c], 1e-5);
        assert_close(&got, &want, 1e-5, 1e-5, &format!("({n}, {c}, {h}, {w}) no bias"));
    }
}

#[test]
fn layer_norm_channels_gradients_match_finite_differences() {
    // odd H·W (the scalar kernels) and H·W % 4 == 0 (the vec4 twins)
    for &(n, c, h, w) in &[(1usize, 3usize, 3usize, 5usize), (3, 16, 3, 3), (2, 8, 1, 7), (2, 8, 4, 4), (1, 3, 2, 6)] {
        let hw = h * w;
        let ins = [
            Input::uniform(&[n, c, h, w], -1.0, 3.0, 31),
            Input::uniform(&[1, c, 1, 1], 0.5, 1.5, 32),
            Input::uniform(&[c], -0.5, 0.5, 33),
        ];
        check_grads(
            &format!("layer_norm_channels ({n}, {c}, {h}, {w})"),
            &ins,
            |t| layer_norm_channels(&t[0], &t[1], Some(&t[2]), 1e-5),
            |v| cpu::layer_norm_channels(&v[0], n, c, hw, &v[1], &v[2], 1e-5),
        );
    }
    // without a bias, only x and g get gradients
    let ins = [Input::uniform(&[2, 4, 3, 3], -1.0, 1.0, 34), Input::uniform(&[1, 4, 1, 1], 0.5, 1.5, 35)];
    check_grads(
        "layer_norm_channels no bias",
        &ins,
        |t| layer_norm_channels(&t[0], &t[1], None, 1e-5),
        |v| cpu::layer_norm_channels(&v[0], 2, 4, 9, &v[1], &[0.0; 4], 1e-5),
    );
}

#[test]
fn layer_norm_channels_rejects_bad_parameter_shapes() {
    let x = Tensor::zeros(&[2, 16, 4, 4]);
    let err = layer_norm_channels(&x, &Tensor::ones(&[1, 8, 1, 1]), None, 1e-5).unwrap_err().to_string();
    assert!(err.contains("[1, 8, 1, 1]") && err.contains("[2, 16, 4, 4]") && err.contains("[1, 16, 1, 1]"), "{err}");
    let err =
        layer_norm_channels(&x, &Tensor::ones(&[16]), Some(&Tensor::ones(&[4, 4])), 1e-5).unwrap_err().to_string();
    assert!(err.contains("bias") && err.contains("[4, 4]"), "{err}");
    let err = layer_norm_channels(&Tensor::zeros(&[16]), &Tensor::ones(&[16]), None, 1e-5).unwrap_err().to_string();
    assert!(err.contains("[16]"), "{err}");
}
