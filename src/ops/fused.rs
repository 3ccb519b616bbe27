//! Fused chains: several taped ops as one kernel forward and one backward, where the chain is memory-bound and
//! each op's pass over the activation costs as much as the arithmetic of all of them.
//!
//! [`group_norm_silu`]: the ResnetBlock's `Block` tail, y = SiLU(GroupNorm(x; γ, β)·(1 + s) + t), with s, t the
//! time embedding's per-(n, c) scale and shift (optional). The unfused chain (group_norm, mul, add, silu) reads
//! and writes the activation four times forward and about five times backward; the fused kernels read x once
//! per pass (3 forward: mean, variance, output) and 2 + 2 backward, and keep everything else in registers. The
//! math and its derivative are in `shaders/fused/group_norm_silu.wgsl`. Shapes the vec4 kernels cannot take
//! (H·W not a multiple of 4) run the composed chain, which is also the reference the tests compare with.

use super::{elementwise as ew, launch, norm};
use crate::gpu::{gpu, Shader};
use crate::ops::reduce::sum_to_shape;
use crate::tensor::Tensor;
use crate::{autograd, shader, shape_err, Result};

const FORWARD: Shader = shader!("fused/group_norm_silu.wgsl");
const BACKWARD: Shader = shader!("fused/group_norm_silu_backward.wgsl");

/// The composed chain: the taped ops the fused kernels replace (and their reference).
pub fn group_norm_silu_composed(
    x: &Tensor,
    groups: usize,
    gamma: &Tensor,
    beta: &Tensor,
    scale_shift: Option<(&Tensor, &Tensor)>,
    eps: f32,
) -> Result<Tensor> {
    let mut h = norm::group_norm(x, groups, Some(gamma), Some(beta), eps)?;
    if let Some((scale, shift)) = scale_shift {
        h = ew::add(&ew::mul(&h, &ew::affine(scale, 1.0, 1.0))?, shift)?;
    }
    Ok(ew::silu(&h))
}

/// y = SiLU(GroupNorm(x)·(1 + scale) + shift), taped: x (N, C, H, W), gamma and beta (C), scale and shift
/// (N, C, 1, 1) (the Block's time-embedding modulation) or none.
pub fn group_norm_silu(
    x: &Tensor,
    groups: usize,
    gamma: &Tensor,
    beta: &Tensor,
    scale_shift: Option<(&Tensor, &Tensor)>,
    eps: f32,
) -> Result<Tensor> {
    let s = x.shape();
    if s.len() != 4 {
        return shape_err!("group_norm_silu", "input must be (N, C, H, W), got {s:?}");
    }
    let (n, c, hw) = (s[0], s[1], s[2] * s[3]);
    if groups == 0 || c % groups != 0 {
        return shape_err!("group_norm_silu", "{c} channels are not divisible by {groups} groups");
    }
    for (name, t) in [("gamma", gamma), ("beta", beta)] {
        if t.shape() != [c] {
            return shape_err!("group_norm_silu", "{name} {:?} must be [{c}] for input {s:?}", t.shape());
        }
    }
    if let Some((sc, sh)) = scale_shift {
        for (name, t) in [("scale", sc), ("shift", sh)] {
            if t.numel() != n * c {
                return shape_err!("group_norm_silu", "{name} {:?} must hold N·C = {} values", t.shape(), n * c);
            }
        }
    }
    // the backward binds 12 storage buffers; vec4 rows need H·W % 4 == 0
    if !hw.is_multiple_of(4) || gpu().limits.max_storage_buffers_per_shader_stage < 12 {
        return group_norm_silu_composed(x, groups, gamma, beta, scale_shift, eps);
    }
    // both shaders' `struct Params` is GroupNorm's
    let p = norm::gn_params("group_norm_silu", n, c, hw, groups, eps)?;
    let has_mod = scale_shift.is_some();
    let zeros;
    let (sc, sh) = match scale_shift {
        Some((a, b)) => (a, b),
        None => {
            zeros = Tensor::zeros(&[1]);
            (&zeros, &zeros) // never read: MOD = 0
        }
    };
    let overrides = [("MOD", if has_mod { 1.0 } else { 0.0 })];
    let y = Tensor::uninit(s);
    let stats = Tensor::uninit(&[n * groups, 2]);
    launch(FORWARD, "forward", &overrides, &p, &[x, gamma, beta, sc, sh], &[&y, &stats], p.n_sets);
    let (x2, g2, b2, sc2, sh2) = (x.clone(), gamma.clone(), beta.clone(), sc.clone(), sh.clone());
    let (sc_shape, sh_shape) = (sc.shape().to_vec(), sh.shape().to_vec());
    let mut inputs = vec![x, gamma, beta];
    if has_mod {
        inputs.extend([sc, sh]);
    }
    autograd::record("group_norm_silu", &inputs, &y, move |dy, needs| {
        let dx = Tensor::uninit(x2.shape());
        let per = || Tensor::uninit(&[n, c]);
        let (ds, dt, dgp, dbp) = (per(), per(), per(), per());
        launch(
            BACKWARD,
            "main",
            &overrides,
            &p,
            &[&x2, &g2, &b2, &sc2, &sh2, &stats, dy],
            &[&dx, &ds, &dt, &dgp, &dbp],
            p.n_sets,
        );
        let over_n = |t: &Tensor| -> Result<Tensor> { sum_to_shape(t, &[1, c])?.detach().reshape(&[c]) };
        let mut grads = vec![
            needs[0].then_some(dx),
            if needs[1] { Some(over_n(&dgp)?) } else { None },
            if needs[2] { Some(over_n(&dbp)?) } else { None },
        ];
        if has_mod {
            grads.push(if needs[3] { Some(ds.reshape(&sc_shape)?) } else { None });
            grads.push(if needs[4] { Some(dt.reshape(&sh_shape)?) } else { None });
        }
        Ok(grads)
    });
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, check_grads, Input};

    /// The fused op against the composed chain (value and every input's gradient), shapes (N, C, H, W), groups.
    fn agrees(shape: [usize; 4], groups: usize, modulated: bool, seed: u64) {
        let (n, c) = (shape[0], shape[1]);
        let mut rng = crate::rng::Rng::new(seed);
        let xv = rng.uniform_vec(shape.iter().product(), -2.0, 2.0);
        let gv = rng.uniform_vec(c, 0.5, 1.5);
        let bv = rng.uniform_vec(c, -0.5, 0.5);
        let sv = rng.uniform_vec(n * c, -0.5, 0.5);
        let tv = rng.uniform_vec(n * c, -0.5, 0.5);
        let gout = rng.uniform_vec(shape.iter().product(), -1.0, 1.0);
        let run = |fused: bool| -> Vec<Vec<f32>> {
            let x = Tensor::from_slice(&xv, &shape).unwrap().with_grad();
            let g = Tensor::from_slice(&gv, &[c]).unwrap().with_grad();
            let b = Tensor::from_slice(&bv, &[c]).unwrap().with_grad();
            let s = Tensor::from_slice(&sv, &[n, c, 1, 1]).unwrap().with_grad();
            let t = Tensor::from_slice(&tv, &[n, c, 1, 1]).unwrap().with_grad();
            let st = modulated.then_some((&s, &t));
            let y = if fused {
                group_norm_silu(&x, groups, &g, &b, st, 1e-5).unwrap()
            } else {
                group_norm_silu_composed(&x, groups, &g, &b, st, 1e-5).unwrap()
            };
            let go = Tensor::from_slice(&gout, &shape).unwrap();
            let loss = crate::ops::reduce::sum(&ew::mul(&y, &go).unwrap(), &[0, 1, 2, 3], false).unwrap();
            let grads = autograd::backward(&loss).unwrap();
            let mut out = vec![y.to_vec()];
            let mut leaves = vec![&x, &g, &b];
            if modulated {
                leaves.extend([&s, &t]);
            }
            out.extend(leaves.iter().map(|l| grads.get(l).unwrap().to_vec()));
            out
        };
        let (f, r) = (run(true), run(false));
        for (k, (a, b)) in f.iter().zip(&r).enumerate() {
            let want: Vec<f64> = b.iter().map(|&v| v as f64).collect();
            let what = format!("{shape:?} groups {groups} mod {modulated}: {}", ["y", "dx", "dγ", "dβ", "ds", "dt"][k]);
            assert_close(a, &want, 2e-5, 2e-4, &what);
        }
    }

    #[test]
    fn fused_equals_the_composed_chain_values_and_gradients() {
        agrees([2, 16, 8, 8], 8, true, 1); // the Block's shape class: 2 channels per group
        agrees([3, 6, 4, 5], 3, false, 2); // no modulation, odd N
        agrees([1, 4, 1, 4], 1, true, 3); // one group over all channels, 1-pixel-high image
        agrees([2, 5, 3, 3], 5, true, 4); // H·W = 9: the composed fallback takes it
    }

    #[test]
    fn fused_gradients_match_finite_differences() {
        let (n, c, h, w) = (2, 4, 2, 4);
        check_grads(
            "group_norm_silu",
            &[
                Input::uniform(&[n, c, h, w], -1.5, 1.5, 31),
                Input::uniform(&[c], 0.5, 1.5, 32),
                Input::uniform(&[c], -0.5, 0.5, 33),
                Input::uniform(&[n, c, 1, 1], -0.5, 0.5, 34),
                Input::uniform(&[n, c, 1, 1], -0.5, 0.5, 35),
            ],
            |t| group_norm_silu(&t[0], 2, &t[1], &t[2], Some((&t[3], &t[4])), 1e-5),
            |t| {
                // f64 reference: GroupNorm, modulation, SiLU
                let y = norm::cpu::group_norm(&t[0], n, c, h * w, 2, &t[1], &t[2], 1e-5);
                let hw = h * w;
                y.iter()
                    .enumerate()
                    .map(|(i, &u)| {
                        let nc = i / hw;
                        let z = u * (1.0 + t[3][nc]) + t[4][nc];
                        z / (1.0 + (-z).exp())
                    })
                    .collect()
            },
        );
    }

    #[test]
    fn many_groups_over_65535_workgroups_and_bad_shapes() {
        agrees([1100, 64, 1, 4], 64, true, 5); // 70,400 workgroups
        let x = Tensor::zeros(&[2, 6, 4, 4]);
        let (g, b) = (Tensor::ones(&[6]), Tensor::zeros(&[6]));
        let e = group_norm_silu(&x, 4, &g, &b, None, 1e-5).unwrap_err().to_string();
        assert!(e.contains("6 channels") && e.contains("4 groups"), "{e}");
        let e = group_norm_silu(&x, 3, &Tensor::ones(&[5]), &b, None, 1e-5).unwrap_err().to_string();
        assert!(e.contains("gamma") && e.contains("[5]"), "{e}");
    }
}
