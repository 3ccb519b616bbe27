//! Losses: the mean squared error of the diffusion objective.
//!
//! Forward: loss = mean((pred − target)²) = Σ_i (pred_i − target_i)² / n, a `[1]` tensor.
//! Backward (g = upstream gradient of the loss): d/dpred = 2(pred − target)/n · g, d/dtarget = −d/dpred.
//! Forward saves pred and target (the backward recomputes the difference rather than storing it).
//!
//! Shaders (shaders/loss/): `mse_forward` fuses the difference, the square and a workgroup reduction into
//! at most 1024 partial sums (already divided by n); reduce/sum.wgsl adds those up. `mse_backward` is one
//! thread per element, with an override constant for the sign.

use bytemuck::{Pod, Zeroable};

use super::{groups_1d, launch};
use crate::gpu::{Shader, WG_1D};
use crate::ops::reduce;
use crate::tensor::Tensor;
use crate::{autograd, shader, shape_err, Result};

const MSE_FORWARD: Shader = shader!("loss/mse_forward.wgsl");
const MSE_BACKWARD: Shader = shader!("loss/mse_backward.wgsl");

/// At most this many partial sums from `mse_forward` (its workgroup count); more elements are grid-strided.
const MAX_PARTIALS: usize = 1024;

/// Mirrors `struct Params` in mse_forward.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MseForwardParams {
    n: u32,
    n_partials: u32,
    inv_n: f32,
    _pad: u32,
}

/// Mirrors `struct Params` in mse_backward.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MseBackwardParams {
    n: u32,
    scale: f32,
    _pad: [u32; 2],
}

/// Backward launch: `sign` · 2(pred − target)/n · g[0], the gradient for pred (+1) or target (−1).
fn mse_backward(pred: &Tensor, target: &Tensor, g: &Tensor, sign: f32) -> Tensor {
    let n = pred.numel();
    let d = Tensor::uninit(pred.shape());
    let p = MseBackwardParams { n: n as u32, scale: (2.0 / n as f64) as f32, _pad: [0; 2] };
    let workgroups = groups_1d(n); // one thread per element
    launch(MSE_BACKWARD, "main", &[("SIGN", sign as f64)], &p, &[pred, target, g], &[&d], workgroups);
    d
}

/// mean((pred − target)²) over every element, as a `[1]` tensor (torch's `F.mse_loss` with reduction "mean").
pub fn mse_loss(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    if pred.shape() != target.shape() {
        return shape_err!(
            "mse_loss",
            "prediction {:?} and target {:?} must have the same shape",
            pred.shape(),
            target.shape()
        );
    }
    let n = pred.numel();
    if n == 0 {
        return shape_err!("mse_loss", "the mean of an empty prediction {:?} is undefined", pred.shape());
    }
    if u32::try_from(n).is_err() {
        return shape_err!("mse_loss", "prediction {:?} has more than {} elements", pred.shape(), u32::MAX);
    }
    let n_partials = n.div_ceil(WG_1D as usize).min(MAX_PARTIALS);
    let partials = Tensor::uninit(&[n_partials]);
    let p = MseForwardParams { n: n as u32, n_partials: n_partials as u32, inv_n: (1.0 / n as f64) as f32, _pad: 0 };
    let workgroups = n_partials as u32; // one per partial sum
    launch(MSE_FORWARD, "main", &[], &p, &[pred, target], &[&partials], workgroups);
    // Σ of the partials: `partials` needs no gradient, so this adds nothing to the tape
    let loss = reduce::sum_all(&partials)?;

    let (pred2, target2) = (pred.clone(), target.clone());
    autograd::record("mse_loss", &[pred, target], &loss, move |g, needs| {
        Ok(vec![
            needs[0].then(|| mse_backward(&pred2, &target2, g, 1.0)),
            needs[1].then(|| mse_backward(&pred2, &target2, g, -1.0)),
        ])
    });
    Ok(loss)
}

/// The f64 reference.
pub mod cpu {
    /// mean((pred − target)²)
    pub fn mse_loss(pred: &[f64], target: &[f64]) -> f64 {
        pred.iter().zip(target).map(|(p, t)| (p - t) * (p - t)).sum::<f64>() / pred.len() as f64
    }

    /// (d/dpred, d/dtarget) = (2(pred − target)/n, −2(pred − target)/n) for an upstream gradient of 1.
    pub fn mse_loss_backward(pred: &[f64], target: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let n = pred.len() as f64;
        let dp: Vec<f64> = pred.iter().zip(target).map(|(p, t)| 2.0 * (p - t) / n).collect();
        let dt = dp.iter().map(|v| -v).collect();
        (dp, dt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::testing::{assert_close, check_grads, to_f64, Input};

    #[test]
    fn debug_mse_loss_prints_values() {
        let pred = Tensor::from_slice(&[1.0, 2.0, 3.0], &[3]).unwrap();
        let target = Tensor::from_slice(&[1.0, 0.0, 0.0], &[3]).unwrap();
        let l = mse_loss(&pred, &target).unwrap();
        println!("mse([1, 2, 3], [1, 0, 0]) = {:?} (shape {:?})", l.to_vec(), l.shape());
        assert_eq!(l.shape(), &[1]);
        assert!((l.item() - 13.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn mse_loss_matches_cpu_on_odd_sizes() {
        // 1 element, under one workgroup, not a multiple of 256, and past 1024·256 (grid-stride loop)
        for (seed, shape) in [vec![1], vec![3, 5, 7], vec![2, 1, 33, 31], vec![5, 1, 257, 211]].into_iter().enumerate()
        {
            let n: usize = shape.iter().product();
            let mut rng = Rng::new(seed as u64);
            let (pv, tv) = (rng.uniform_vec(n, -1.0, 1.0), rng.uniform_vec(n, -1.0, 1.0));
            let pred = Tensor::from_slice(&pv, &shape).unwrap().with_grad();
            let target = Tensor::from_slice(&tv, &shape).unwrap().with_grad();
            let l = mse_loss(&pred, &target).unwrap();
            let want = cpu::mse_loss(&to_f64(&pv), &to_f64(&tv));
            assert_close(&l.to_vec(), &[want], 1e-6, 1e-5, &format!("{shape:?} forward"));
            let grads = autograd::backward(&l).unwrap();
            let (dp, dt) = cpu::mse_loss_backward(&to_f64(&pv), &to_f64(&tv));
            let tol = 1e-6 * dp.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert_close(&grads.get(&pred).unwrap().to_vec(), &dp, tol, 1e-5, &format!("{shape:?} d/dpred"));
            assert_close(&grads.get(&target).unwrap().to_vec(), &dt, tol, 1e-5, &format!("{shape:?} d/dtarget"));
        }
    }

    #[test]
    fn mse_loss_gradients_match_finite_differences() {
        let ins = [Input::uniform(&[2, 1, 5, 7], -1.0, 1.0, 3), Input::uniform(&[2, 1, 5, 7], -1.0, 1.0, 4)];
        check_grads("mse_loss", &ins, |t| mse_loss(&t[0], &t[1]), |v| vec![cpu::mse_loss(&v[0], &v[1])]);
    }

    #[test]
    fn mse_loss_backward_over_65535_workgroups() {
        // 256·65,536 + 1 elements: the backward has 65,537 workgroups, folded into y by the launcher
        let n = 256 * 65_536 + 1;
        let pred = Tensor::full(&[n], 1.5).with_grad();
        let target = Tensor::full(&[n], 0.5);
        let l = mse_loss(&pred, &target).unwrap();
        assert!((l.item() - 1.0).abs() < 1e-5, "loss {}", l.item());
        let d = autograd::backward(&l).unwrap().get(&pred).unwrap().to_vec();
        let want = (2.0 / n as f64) as f32;
        let bad = d.iter().position(|&v| (v - want).abs() > 1e-6 * want);
        assert!(bad.is_none(), "d/dpred[{bad:?}] = {} want {want}", d[bad.unwrap()]);
    }

    #[test]
    fn mse_loss_rejects_mismatched_shapes() {
        let err = mse_loss(&Tensor::zeros(&[2, 1, 4, 4]), &Tensor::zeros(&[2, 1, 4, 5])).unwrap_err().to_string();
        assert!(err.contains("[2, 1, 4, 4]") && err.contains("[2, 1, 4, 5]"), "{err}");
    }
}
