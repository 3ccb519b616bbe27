//! Optimizer kernels: the global gradient norm, torch's clip coefficient, and the AdamW update. Not taped.
//!
//! Gradient norm: ‖g‖ = sqrt(Σ_tensors Σ_i g_i²). Each tensor's squares are summed into its own slots of one
//! shared buffer (`grad_norm.wgsl` `partials`), and one `finish` dispatch adds every slot and takes the root,
//! so the norm stays on the GPU. Clipping: c = min(1, max_norm/(‖g‖ + 1e-6)) (`clip_coefficient`), which the
//! AdamW kernel multiplies into the gradient as it reads it: clip_grad_norm_ without a host round trip.
//! AdamW (torch.optim.AdamW): p ← p − lr·wd·p; m ← β1 m + (1−β1) ĝ; v ← β2 v + (1−β2) ĝ²;
//! p ← p − lr·m̂/(sqrt(v̂) + eps) with m̂ = m/(1−β1^t), v̂ = v/(1−β2^t) (`adamw.wgsl`, in place on p, m, v).

use bytemuck::{Pod, Zeroable};

use super::{groups_1d, launch};
use crate::gpu::{Shader, WG_1D};
use crate::tensor::Tensor;
use crate::{shader, shape_err, Result};

const GRAD_NORM: Shader = shader!("optim/grad_norm.wgsl");
const ADAMW: Shader = shader!("optim/adamw.wgsl");
const EMA: Shader = shader!("optim/ema.wgsl");

/// Mirrors `struct Params` in ema.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct EmaParams {
    n: u32,
    decay: f32,
    _pad: [u32; 2],
}

/// shadow ← decay·shadow + (1 − decay)·param, in place on `shadow` (one fused kernel).
pub fn ema_update(shadow: &Tensor, param: &Tensor, decay: f32) -> Result<()> {
    if shadow.shape() != param.shape() {
        return shape_err!(
            "ema_update",
            "shadow has shape {:?} but the parameter is {:?}",
            shadow.shape(),
            param.shape()
        );
    }
    if shadow.same_storage(param) {
        return shape_err!("ema_update", "shadow and parameter share one buffer; the shadow needs its own");
    }
    let n = element_count("ema_update", param)?;
    launch(EMA, "main", &[], &EmaParams { n, decay, _pad: [0; 2] }, &[param], &[shadow], groups_1d(n as usize));
    Ok(())
}

/// At most this many partial sums per tensor (the `partials` workgroup count); longer tensors grid-stride.
const MAX_PARTIALS: usize = 256;

/// Mirrors `struct Params` in grad_norm.wgsl (all three entry points).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GradNormParams {
    n: u32,
    offset: u32,
    n_partials: u32,
    max_norm: f32,
}

/// Mirrors `struct Params` in adamw.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AdamWParams {
    n: u32,
    step_size: f32,
    bc2_sqrt: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,
    _pad: u32,
}

/// AdamW hyper-parameters, as torch.optim.AdamW takes them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    /// torch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2.
    fn default() -> Self {
        AdamWConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-2 }
    }
}

fn element_count(op: &'static str, t: &Tensor) -> Result<u32> {
    match u32::try_from(t.numel()) {
        Ok(n) => Ok(n),
        Err(_) => shape_err!(op, "tensor {:?} has more than {} elements", t.shape(), u32::MAX),
    }
}

/// Partial sums per tensor: ceil(n / 256) capped at MAX_PARTIALS (at least one slot, even when empty).
fn n_partials(n: usize) -> usize {
    n.div_ceil(WG_1D as usize).clamp(1, MAX_PARTIALS)
}

/// Record the `partials` dispatch of `t` into `slots[offset .. offset + n_partials(t)]`.
fn launch_partials(t: &Tensor, slots: &Tensor, offset: usize) -> Result<()> {
    let n = element_count("sum_of_squares", t)?;
    let k = n_partials(t.numel());
    let p = GradNormParams { n, offset: offset as u32, n_partials: k as u32, max_norm: 0.0 };
    let workgroups = k as u32; // one per partial sum
    launch(GRAD_NORM, "partials", &[], &p, &[t], &[slots], workgroups);
    Ok(())
}

/// Record the `finish` dispatch: Σ of `slots` (or its square root) into a new `[1]` tensor.
fn launch_finish(slots: &Tensor, sqrt: bool) -> Tensor {
    let out = Tensor::uninit(&[1]);
    let p = GradNormParams { n: slots.numel() as u32, offset: 0, n_partials: 0, max_norm: 0.0 };
    let workgroups = 1; // one workgroup walks all slots
    launch(GRAD_NORM, "finish", &[("SQRT", if sqrt { 1.0 } else { 0.0 })], &p, &[slots], &[&out], workgroups);
    out
}

/// Σ t², as a `[1]` tensor on the GPU.
pub fn sum_of_squares(t: &Tensor) -> Result<Tensor> {
    let slots = Tensor::uninit(&[n_partials(t.numel())]);
    launch_partials(t, &slots, 0)?;
    Ok(launch_finish(&slots, false))
}

/// sqrt(Σ over every tensor Σ g²), as a `[1]` tensor on the GPU (no readback). Zero for no tensors.
pub fn global_grad_norm(grads: &[&Tensor]) -> Result<Tensor> {
    if grads.is_empty() {
        return Ok(Tensor::zeros(&[1]));
    }
    // tensor k owns slots [offsets[k], offsets[k] + n_partials) of one shared buffer
    let counts: Vec<usize> = grads.iter().map(|g| n_partials(g.numel())).collect();
    let total: usize = counts.iter().sum();
    let slots = Tensor::uninit(&[total]);
    let mut offset = 0;
    for (g, k) in grads.iter().zip(counts) {
        launch_partials(g, &slots, offset)?;
        offset += k;
    }
    Ok(launch_finish(&slots, true))
}

/// min(1, max_norm / (norm + 1e-6)) as a `[1]` tensor, as torch.nn.utils.clip_grad_norm_ scales gradients.
/// Reads the first element of `norm` (the `[1]` result of [`global_grad_norm`]).
pub fn clip_coefficient(norm: &Tensor, max_norm: f32) -> Tensor {
    let out = Tensor::uninit(&[1]);
    let p = GradNormParams { n: 1, offset: 0, n_partials: 0, max_norm };
    let workgroups = 1; // a single thread
    launch(GRAD_NORM, "clip_coefficient", &[], &p, &[norm], &[&out], workgroups);
    out
}

/// One AdamW step at step number `step` (1 for the first update), in place on `param`, `m` and `v`.
/// With `grad_scale` (a `[1]` tensor, e.g. [`clip_coefficient`]), the gradient is multiplied by it first.
pub fn adamw_step(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    step: u32,
    cfg: &AdamWConfig,
    grad_scale: Option<&Tensor>,
) -> Result<()> {
    for (name, t) in [("gradient", grad), ("m", m), ("v", v)] {
        if t.shape() != param.shape() {
            return shape_err!(
                "adamw_step",
                "{name} has shape {:?} but the parameter is {:?}",
                t.shape(),
                param.shape()
            );
        }
    }
    let named = [("param", param), ("gradient", grad), ("m", m), ("v", v)];
    for (i, (a, ta)) in named.iter().enumerate() {
        for (b, tb) in &named[i + 1..] {
            if ta.same_storage(tb) {
                return shape_err!("adamw_step", "{a} and {b} share one buffer; each needs its own");
            }
        }
    }
    if step == 0 {
        return shape_err!("adamw_step", "step numbers start at 1 (the bias corrections 1 − β^t are 0 at t = 0)");
    }
    if let Some(s) = grad_scale {
        if s.numel() != 1 {
            return shape_err!("adamw_step", "grad_scale must hold one value, got shape {:?}", s.shape());
        }
    }
    let n = element_count("adamw_step", param)?;
    let ones;
    let scale = match grad_scale {
        Some(s) => s,
        None => {
            ones = Tensor::ones(&[1]);
            &ones
        }
    };
    // bias corrections in f64 on the host, as torch computes them in Python floats
    let (b1, b2, t) = (cfg.beta1 as f64, cfg.beta2 as f64, step as i32);
    let p = AdamWParams {
        n,
        step_size: (cfg.lr as f64 / (1.0 - b1.powi(t))) as f32,
        bc2_sqrt: (1.0 - b2.powi(t)).sqrt() as f32,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.eps,
        decay: (1.0 - cfg.lr as f64 * cfg.weight_decay as f64) as f32,
        _pad: 0,
    };
    let workgroups = groups_1d(param.numel()); // one thread per element
    launch(ADAMW, "main", &[], &p, &[grad, scale], &[param, m, v], workgroups);
    Ok(())
}

/// The f64 reference.
pub mod cpu {
    use super::AdamWConfig;

    pub fn sum_of_squares(t: &[f64]) -> f64 {
        t.iter().map(|v| v * v).sum()
    }

    /// `sqrt(Σ_k Σ_i t_k[i]²)`
    pub fn global_grad_norm(ts: &[Vec<f64>]) -> f64 {
        ts.iter().map(|t| sum_of_squares(t)).sum::<f64>().sqrt()
    }

    /// min(1, max_norm / (norm + 1e-6))
    pub fn clip_coefficient(norm: f64, max_norm: f64) -> f64 {
        (max_norm / (norm + 1e-6)).min(1.0)
    }

    /// One AdamW step in place, line for line the math of the module doc.
    pub fn adamw_step(
        p: &mut [f64],
        g: &[f64],
        m: &mut [f64],
        v: &mut [f64],
        step: u32,
        cfg: &AdamWConfig,
        scale: f64,
    ) {
        let (lr, b1, b2, eps, wd) =
            (cfg.lr as f64, cfg.beta1 as f64, cfg.beta2 as f64, cfg.eps as f64, cfg.weight_decay as f64);
        let t = step as i32;
        for i in 0..p.len() {
            let gh = g[i] * scale; // ĝ
            p[i] -= lr * wd * p[i]; // decoupled weight decay
            m[i] = b1 * m[i] + (1.0 - b1) * gh;
            v[i] = b2 * v[i] + (1.0 - b2) * gh * gh;
            let m_hat = m[i] / (1.0 - b1.powi(t));
            let v_hat = v[i] / (1.0 - b2.powi(t));
            p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::testing::{assert_close, to_f64};

    #[test]
    fn debug_grad_norm_prints_values() {
        let a = Tensor::from_slice(&[3.0], &[1]).unwrap();
        let b = Tensor::from_slice(&[4.0, 0.0], &[2]).unwrap();
        let norm = global_grad_norm(&[&a, &b]).unwrap();
        let c = clip_coefficient(&norm, 1.0);
        println!("‖(3 | 4, 0)‖ = {:?}; clip coefficient for max_norm 1 = {:?}", norm.to_vec(), c.to_vec());
        assert!((norm.item() - 5.0).abs() < 1e-6);
        assert!((c.item() - 0.2).abs() < 1e-6);
    }

    #[test]
    fn sum_of_squares_matches_cpu_on_odd_sizes() {
        // 1 element, under a workgroup, just past one, and past MAX_PARTIALS·256 (grid-stride)
        for (seed, n) in [1usize, 7, 257, 70_001].into_iter().enumerate() {
            let v = Rng::new(seed as u64).uniform_vec(n, -1.0, 1.0);
            let got = sum_of_squares(&Tensor::from_slice(&v, &[n]).unwrap()).unwrap();
            assert_eq!(got.shape(), &[1]);
            assert_close(&got.to_vec(), &[cpu::sum_of_squares(&to_f64(&v))], 1e-6, 1e-5, &format!("n = {n}"));
        }
    }

    #[test]
    fn global_grad_norm_matches_cpu_over_tensors_of_odd_sizes() {
        let shapes: &[&[usize]] = &[&[1], &[3, 5], &[8, 4, 3, 3], &[257], &[2, 300, 131], &[33, 1, 7]];
        let mut rng = Rng::new(12);
        let vals: Vec<Vec<f32>> = shapes.iter().map(|s| rng.uniform_vec(s.iter().product(), -2.0, 2.0)).collect();
        let ts: Vec<Tensor> = vals.iter().zip(shapes).map(|(v, s)| Tensor::from_slice(v, s).unwrap()).collect();
        let refs: Vec<&Tensor> = ts.iter().collect();
        let got = global_grad_norm(&refs).unwrap();
        let want = cpu::global_grad_norm(&vals.iter().map(|v| to_f64(v)).collect::<Vec<_>>());
        assert_close(&got.to_vec(), &[want], 1e-6, 1e-5, "global norm");
        assert_eq!(global_grad_norm(&[]).unwrap().to_vec(), vec![0.0]);
    }

    #[test]
    fn clip_coefficient_matches_torch_rule() {
        // norm below, at and above max_norm; a zero norm (the 1e-6 guard)
        for (norm, max_norm) in [(0.5f32, 1.0f32), (1.0, 1.0), (4.0, 1.0), (250.0, 0.5), (0.0, 1.0)] {
            let c = clip_coefficient(&Tensor::scalar(norm), max_norm).item();
            let want = cpu::clip_coefficient(norm as f64, max_norm as f64);
            assert_close(&[c], &[want], 1e-7, 1e-6, &format!("norm {norm}, max_norm {max_norm}"));
        }
    }

    #[test]
    fn adamw_matches_cpu_over_several_steps_with_decay_and_clipping() {
        let cfg = AdamWConfig { lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1 };
        let n = 1000; // not a multiple of 256
        let mut rng = Rng::new(77);
        let p0 = rng.uniform_vec(n, -1.0, 1.0);
        let (param, m, v) =
            (Tensor::from_slice(&p0, &[10, 100]).unwrap(), Tensor::zeros(&[10, 100]), Tensor::zeros(&[10, 100]));
        let (mut p64, mut m64, mut v64) = (to_f64(&p0), vec![0.0; n], vec![0.0; n]);
        for step in 1..=6u32 {
            let gv = rng.uniform_vec(n, -1.0, 1.0);
            let grad = Tensor::from_slice(&gv, &[10, 100]).unwrap();
            // odd steps clip by a GPU-side coefficient, even steps use the raw gradient
            let (scale, scale64) = if step % 2 == 1 {
                let norm = global_grad_norm(&[&grad]).unwrap();
                let want = cpu::clip_coefficient(cpu::global_grad_norm(&[to_f64(&gv)]), 5.0);
                (Some(clip_coefficient(&norm, 5.0)), want)
            } else {
                (None, 1.0)
            };
            adamw_step(&param, &grad, &m, &v, step, &cfg, scale.as_ref()).unwrap();
            cpu::adamw_step(&mut p64, &to_f64(&gv), &mut m64, &mut v64, step, &cfg, scale64);
            assert_close(&param.to_vec(), &p64, 1e-6, 1e-5, &format!("param after step {step}"));
            assert_close(&m.to_vec(), &m64, 1e-7, 1e-5, &format!("m after step {step}"));
            assert_close(&v.to_vec(), &v64, 1e-8, 1e-5, &format!("v after step {step}"));
        }
    }

    #[test]
    fn adamw_rejects_mismatched_shapes_shared_buffers_and_step_zero() {
        let cfg = AdamWConfig::default();
        let (p, g) = (Tensor::zeros(&[4, 3]), Tensor::zeros(&[4, 3]));
        let err =
            adamw_step(&p, &g, &Tensor::zeros(&[12]), &Tensor::zeros(&[4, 3]), 1, &cfg, None).unwrap_err().to_string();
        assert!(err.contains("[12]") && err.contains("[4, 3]"), "{err}");
        let m = Tensor::zeros(&[4, 3]);
        let err = adamw_step(&p, &g, &m, &m, 1, &cfg, None).unwrap_err().to_string();
        assert!(err.contains("m and v share"), "{err}");
        let err = adamw_step(&p, &g, &m, &Tensor::zeros(&[4, 3]), 0, &cfg, None).unwrap_err().to_string();
        assert!(err.contains("start at 1"), "{err}");
    }

    #[test]
    fn ema_update_matches_cpu_and_odd_sizes() {
        let mut rng = crate::rng::Rng::new(41);
        for n in [1usize, 255, 257, 70_001] {
            let (sv, pv) = (rng.uniform_vec(n, -1.0, 1.0), rng.uniform_vec(n, -1.0, 1.0));
            let s = Tensor::from_slice(&sv, &[n]).unwrap();
            let p = Tensor::from_slice(&pv, &[n]).unwrap();
            ema_update(&s, &p, 0.9).unwrap();
            ema_update(&s, &p, 0.9).unwrap();
            // two steps toward a constant p: s ← p + 0.81·(s − p)
            let want: Vec<f64> = sv.iter().zip(&pv).map(|(&a, &b)| b as f64 + 0.81 * (a as f64 - b as f64)).collect();
            crate::testing::assert_close(&s.to_vec(), &want, 1e-6, 1e-6, &format!("ema n={n}"));
        }
        let e = ema_update(&Tensor::zeros(&[3]), &Tensor::zeros(&[4]), 0.5).unwrap_err().to_string();
        assert!(e.contains("[3]") && e.contains("[4]"), "{e}");
    }
}
