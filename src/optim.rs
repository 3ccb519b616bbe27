//! The optimizer side of training: AdamW over every parameter (GPU kernels in `ops::optim`), global
//! gradient-norm clipping without a host round trip, a warmup + cosine learning-rate schedule, and an
//! exponential moving average (EMA) of the weights, used for sampling by default.
//!
//! **Flat state.** When the parameters are views into slabs (as `nn::VarBuilder` makes them), the moments,
//! the gradients and the EMA copy live in slabs of the same layout, and a step is per slab: the gradients are
//! copied into the gradient slab (copy commands, not kernels), then one grad-norm pass, one clip coefficient, one
//! AdamW and one EMA dispatch cover every parameter of the slab (the tiny preset: 764 dispatches -> 5). The
//! per-tensor path remains for parameters that are not views (and is the reference the flat one is tested
//! against). Parameters without a gradient are left alone on both paths: the flat one updates the runs of
//! consecutive parameters that have one.

use crate::ops::optim as kern;
use crate::{Result, Tensor};

pub use kern::AdamWConfig;

/// Linear warmup to `base` over `warmup` steps, then cosine decay to `base · min_ratio` at `total`.
#[derive(Clone, Copy, Debug)]
pub struct LrSchedule {
    pub base: f32,
    pub warmup: u64,
    pub total: u64,
    pub min_ratio: f32,
    /// (step k, rate r): from step k on, a half cosine from r down to the floor at `total` (what a run resumed
    /// with a new total follows, so the rate stays continuous at the resume step).
    pub restart: Option<(u64, f32)>,
}

impl LrSchedule {
    pub fn at(&self, step: u64) -> f32 {
        let floor = self.base as f64 * self.min_ratio as f64;
        if let Some((k, r)) = self.restart.filter(|&(k, _)| step >= k) {
            let p = ((step - k) as f64 / self.total.saturating_sub(k).max(1) as f64).min(1.0);
            return (floor + (r as f64 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())) as f32;
        }
        if step < self.warmup {
            return self.base * (step + 1) as f32 / self.warmup as f32;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let p = ((step - self.warmup) as f64 / span).min(1.0);
        let cos = 0.5 * (1.0 + (std::f64::consts::PI * p).cos());
        (self.base as f64 * (self.min_ratio as f64 + (1.0 - self.min_ratio as f64) * cos)) as f32
    }
}

/// A parameter's place in its slab: its index in the parameter list, first value and length.
#[derive(Clone, Copy)]
struct Member {
    index: usize,
    start: usize,
    len: usize,
}

/// The parameters of one slab: a view of the extent they use (a multiple of the view alignment) and the
/// members in slab order.
struct SlabGroup {
    params: Tensor,
    extent: usize,
    members: Vec<Member>,
}

/// One slab of parameters and the optimizer's slabs of the same layout.
struct FlatSlab {
    group: SlabGroup,
    m: Tensor,
    v: Tensor,
    grads: Tensor,
    /// per member, its view of `grads`
    grad_views: Vec<Tensor>,
}

/// Group `params` by slab: None unless every one is a slab view.
fn slab_layout(params: &[&Tensor]) -> Option<Vec<SlabGroup>> {
    let mut slabs: Vec<(u64, &Tensor, Vec<Member>)> = Vec::new();
    for (index, p) in params.iter().enumerate() {
        let (id, start) = p.slab_slot()?;
        let member = Member { index, start, len: p.numel() };
        match slabs.iter_mut().find(|s| s.0 == id) {
            Some(s) => s.2.push(member),
            None => slabs.push((id, p, vec![member])),
        }
    }
    let align = crate::gpu::VIEW_ALIGN;
    slabs
        .into_iter()
        .map(|(_, any, mut members)| {
            members.sort_by_key(|m| m.start);
            let extent = members.iter().map(|m| m.start + m.len).max().unwrap_or(0).max(1).div_ceil(align) * align;
            Some(SlabGroup { params: any.view(0, &[extent]).ok()?, extent, members })
        })
        .collect()
}

/// `member`'s view of a slab laid out like its parameter slab.
fn member_view(t: &Tensor, member: Member, params: &[&Tensor]) -> Tensor {
    t.view(member.start, params[member.index].shape()).expect("inside the extent")
}

/// AdamW state: first and second moments per parameter, and the step count (for bias correction).
pub struct AdamW {
    pub cfg: AdamWConfig,
    /// per parameter (views of the flat slabs when the parameters are slab views)
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
    pub step: u32,
    flat: Option<Vec<FlatSlab>>,
}

impl AdamW {
    pub fn new(params: &[&Tensor], cfg: AdamWConfig) -> AdamW {
        let Some(layout) = slab_layout(params) else {
            return AdamW {
                cfg,
                m: params.iter().map(|p| Tensor::zeros(p.shape())).collect(),
                v: params.iter().map(|p| Tensor::zeros(p.shape())).collect(),
                step: 0,
                flat: None,
            };
        };
        let (mut m, mut v) = (vec![None; params.len()], vec![None; params.len()]);
        let flat = layout
            .into_iter()
            .map(|group| {
                let e = group.extent;
                let (fm, fv, fg) = (Tensor::slab(e), Tensor::slab(e), Tensor::slab(e));
                for &mem in &group.members {
                    m[mem.index] = Some(member_view(&fm, mem, params));
                    v[mem.index] = Some(member_view(&fv, mem, params));
                }
                let grad_views = group.members.iter().map(|&mem| member_view(&fg, mem, params)).collect();
                FlatSlab { group, m: fm, v: fv, grads: fg, grad_views }
            })
            .collect();
        AdamW {
            cfg,
            m: m.into_iter().map(|t| t.expect("every parameter is in a slab")).collect(),
            v: v.into_iter().map(|t| t.expect("every parameter is in a slab")).collect(),
            step: 0,
            flat: Some(flat),
        }
    }

    /// One update with learning rate `lr`; gradients are scaled so their global norm is at most `clip` (when
    /// given). Parameters without a gradient are left alone. Returns the global gradient norm (a `[1]` tensor, on the GPU).
    pub fn update(
        &mut self,
        params: &[&Tensor],
        grads: &[Option<&Tensor>],
        lr: f32,
        clip: Option<f32>,
    ) -> Result<Tensor> {
        self.step += 1;
        let cfg = AdamWConfig { lr, ..self.cfg };
        let Some(flat) = &self.flat else {
            let present: Vec<&Tensor> = grads.iter().flatten().copied().collect();
            let norm = kern::global_grad_norm(&present)?;
            let scale = clip.map(|c| kern::clip_coefficient(&norm, c));
            for (i, (p, g)) in params.iter().zip(grads).enumerate() {
                if let Some(g) = g {
                    kern::adamw_step(p, g, &self.m[i], &self.v[i], self.step, &cfg, scale.as_ref())?;
                }
            }
            return Ok(norm);
        };
        // the gradients into their slabs; runs of consecutive parameters that have one, per slab
        let mut runs: Vec<(&FlatSlab, usize, usize)> = Vec::new();
        for fs in flat {
            let mut open: Option<(usize, usize)> = None;
            for (k, &Member { index: i, start, len }) in fs.group.members.iter().enumerate() {
                match grads.get(i).copied().flatten() {
                    Some(g) => {
                        if g.shape() != params[i].shape() {
                            return crate::shape_err!(
                                "adamw",
                                "gradient {:?} for a parameter of shape {:?}",
                                g.shape(),
                                params[i].shape()
                            );
                        }
                        crate::gpu::gpu().record_copy(g.buf(), fs.grad_views[k].buf());
                        open = Some((open.map_or(start, |o| o.0), start + len));
                    }
                    None => {
                        if let Some((a, b)) = open.take() {
                            runs.push((fs, a, b));
                        }
                    }
                }
            }
            if let Some((a, b)) = open {
                runs.push((fs, a, b));
            }
        }
        let view = |t: &Tensor, a: usize, b: usize| t.view(a, &[b - a]).expect("inside the slab");
        let run_grads: Vec<Tensor> = runs.iter().map(|&(fs, a, b)| view(&fs.grads, a, b)).collect();
        let norm = kern::global_grad_norm(&run_grads.iter().collect::<Vec<_>>())?;
        let scale = clip.map(|c| kern::clip_coefficient(&norm, c));
        for (&(fs, a, b), g) in runs.iter().zip(&run_grads) {
            let (p, m, v) = (view(&fs.group.params, a, b), view(&fs.m, a, b), view(&fs.v, a, b));
            kern::adamw_step(&p, g, &m, &v, self.step, &cfg, scale.as_ref())?;
        }
        Ok(norm)
    }
}

/// Exponential moving average of the weights: shadow ← decay·shadow + (1 − decay)·param.
pub struct Ema {
    pub decay: f32,
    /// per parameter (views of flat slabs when the parameters are slab views)
    pub shadow: Vec<Tensor>,
    /// (parameter slab extent, shadow slab) when flat
    flat: Option<Vec<(Tensor, Tensor)>>,
}

impl Ema {
    pub fn new(params: &[&Tensor], decay: f32) -> Result<Ema> {
        let Some(layout) = slab_layout(params) else {
            let shadow = params.iter().map(|p| Tensor::from_slice(&p.to_vec(), p.shape())).collect::<Result<_>>()?;
            return Ok(Ema { decay, shadow, flat: None });
        };
        let mut shadow = vec![None; params.len()];
        let mut flat = Vec::new();
        for group in layout {
            let s = Tensor::slab(group.extent);
            crate::gpu::gpu().record_copy(group.params.buf(), s.buf());
            for &mem in &group.members {
                shadow[mem.index] = Some(member_view(&s, mem, params));
            }
            flat.push((group.params, s));
        }
        let shadow = shadow.into_iter().map(|t| t.expect("every parameter is in a slab")).collect();
        Ok(Ema { decay, shadow, flat: Some(flat) })
    }

    pub fn update(&mut self, params: &[&Tensor]) -> Result<()> {
        if let Some(flat) = &self.flat {
            for (p, s) in flat {
                kern::ema_update(s, p, self.decay)?;
            }
            return Ok(());
        }
        for (s, p) in self.shadow.iter().zip(params) {
            kern::ema_update(s, p, self.decay)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_state_updates_exactly_like_the_per_tensor_path() {
        // three parameters in one slab (as VarBuilder lays them out) and the same three as plain tensors; the
        // middle one has no gradient and must not move on either path; EMA alike
        let shapes: [&[usize]; 3] = [&[3, 5], &[70], &[2, 2, 9]];
        let mut rng = crate::rng::Rng::new(5);
        let values: Vec<Vec<f32>> = shapes.iter().map(|s| rng.uniform_vec(s.iter().product(), -1.0, 1.0)).collect();
        let grads: Vec<Tensor> = shapes.iter().map(|s| Tensor::rand_uniform(s, -2.0, 2.0, &mut rng)).collect();
        let slab = Tensor::slab(3 * crate::gpu::VIEW_ALIGN + 64);
        let mut at = 0;
        let flat: Vec<Tensor> = shapes
            .iter()
            .zip(&values)
            .map(|(s, v)| {
                let t = slab.view(at, s).unwrap();
                t.write(v).unwrap();
                at += v.len().div_ceil(crate::gpu::VIEW_ALIGN) * crate::gpu::VIEW_ALIGN;
                t
            })
            .collect();
        let plain: Vec<Tensor> = shapes.iter().zip(&values).map(|(s, v)| Tensor::from_slice(v, s).unwrap()).collect();
        let cfg = AdamWConfig { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1 };
        let g: Vec<Option<&Tensor>> = vec![Some(&grads[0]), None, Some(&grads[2])];
        let run = |ps: &[Tensor]| {
            let refs: Vec<&Tensor> = ps.iter().collect();
            let (mut opt, mut ema) = (AdamW::new(&refs, cfg), Ema::new(&refs, 0.9).unwrap());
            let mut norms = Vec::new();
            for _ in 0..3 {
                norms.push(opt.update(&refs, &g, 1e-2, Some(0.5)).unwrap().item());
                ema.update(&refs).unwrap();
            }
            let vals: Vec<Vec<f32>> = ps.iter().chain(&opt.m).chain(&ema.shadow).map(|t| t.to_vec()).collect();
            (opt.flat.is_some(), norms, vals)
        };
        let (flat_used, norms_f, vals_f) = run(&flat);
        let (plain_flat, norms_p, vals_p) = run(&plain);
        assert!(flat_used && !plain_flat, "slab views take the flat path, plain tensors the per-tensor one");
        for (a, b) in norms_f.iter().zip(&norms_p) {
            assert!((a - b).abs() <= 1e-6 * b.abs(), "grad norm {a} vs {b}");
        }
        for (k, (a, b)) in vals_f.iter().zip(&vals_p).enumerate() {
            let want: Vec<f64> = b.iter().map(|&x| x as f64).collect();
            crate::testing::assert_close(a, &want, 1e-6, 1e-5, &format!("tensor {k} (params, m, shadow)"));
        }
        assert_eq!(vals_f[1], values[1], "the parameter without a gradient did not move");
    }

    #[test]
    fn lr_warms_up_then_decays_to_the_floor() {
        let s = LrSchedule { base: 1e-3, warmup: 10, total: 110, min_ratio: 0.1, restart: None };
        assert!((s.at(0) - 1e-4).abs() < 1e-9);
        assert!((s.at(9) - 1e-3).abs() < 1e-9);
        assert!((s.at(10) - 1e-3).abs() < 1e-9);
        assert!((s.at(60) - 0.55e-3).abs() < 1e-7);
        assert!((s.at(110) - 1e-4).abs() < 1e-9);
        assert!((s.at(500) - 1e-4).abs() < 1e-9);
        // resumed at step 60 with a total of 210: the same rate at 60, then a half cosine to the floor at 210
        let r = LrSchedule { total: 210, restart: Some((60, s.at(60))), ..s };
        assert_eq!(r.at(60), s.at(60), "(steps before 60 ran with the old total and never run again)");
        assert!((r.at(135) - (1e-4 + (0.55e-3 - 1e-4) * 0.5)).abs() < 1e-9);
        assert!((r.at(210) - 1e-4).abs() < 1e-9);
        let rates: Vec<f32> = (60..=210).map(|k| r.at(k)).collect();
        assert!(rates.windows(2).all(|w| w[1] <= w[0]), "decays without a jump");
    }
}
