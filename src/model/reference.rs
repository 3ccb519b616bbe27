//! `check-reference` (SPEC §6): run our forward and backward on a fixture written by
//! `tools/export_reference.py` from the PyTorch package, and compare the output and every parameter gradient.
//!
//! Relative error of a tensor = max|ours − ref| / max(max|ref| of that tensor, 1e-2 × the largest max|ref| over all
//! gradients): some gradients are zero in theory (a conv bias followed by a one-channel-per-group GroupNorm) and
//! their float noise must not count as failure.

use std::path::Path;

use super::weights::TensorFile;
use super::{Unet, UnetConfig};
use crate::ops::{elementwise as ew, reduce};
use crate::{autograd, Error, Result, Tensor};

#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub max_abs: f64,
    pub max_rel: f64,
    pub ok: bool,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub config: UnetConfig,
    pub num_params: usize,
    /// `output.pred` first, then one row per gradient.
    pub rows: Vec<Row>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.ok)
    }

    pub fn worst_grad_rel(&self) -> f64 {
        self.rows.iter().skip(1).map(|r| r.max_rel).fold(0.0, f64::max)
    }

    pub fn table(&self) -> String {
        let mut s = format!("{:<64} {:>12} {:>12}  {}\n", "tensor", "max abs", "max rel", "");
        for r in &self.rows {
            s.push_str(&format!(
                "{:<64} {:>12.3e} {:>12.3e}  {}\n",
                r.name,
                r.max_abs,
                r.max_rel,
                if r.ok { "ok" } else { "FAIL" }
            ));
        }
        s
    }
}

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0.0f64, |m, &x| m.max((x as f64).abs()))
}

/// Largest |a − b|; infinite when the lengths differ or any value is not finite (so NaN can never pass).
fn max_diff(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter().zip(b).fold(0.0f64, |m, (&x, &y)| {
        let d = (x as f64 - y as f64).abs();
        if d.is_finite() {
            m.max(d)
        } else {
            f64::INFINITY
        }
    })
}

/// Build the fixture's network, load its weights, and return its config and the network.
pub fn load_fixture_model(path: &Path, file: &TensorFile) -> Result<Unet> {
    let cfg_text = file
        .metadata
        .get("config")
        .ok_or_else(|| Error::format(path, "no `config` entry in the safetensors metadata"))?;
    let cfg = UnetConfig::from_json(cfg_text).map_err(|e| Error::format(path, e.to_string()))?;
    let unet = Unet::new(&cfg, 0)?;
    super::weights::load_into(&unet.vars, file, "param.", path)?;
    Ok(unet)
}

pub fn check_reference(path: &Path, tol_out: f64, tol_grad: f64) -> Result<Report> {
    let file = TensorFile::read(path)?;
    let unet = load_fixture_model(path, &file)?;
    let get = |n: &str| -> Result<Tensor> {
        let h = file.require(n, path)?;
        Tensor::from_slice(&h.data, &h.shape)
    };
    let (x, cond, upstream) = (get("input.x")?, get("input.cond")?, get("input.upstream")?);
    let times = file.require("input.time", path)?.data.clone();
    let want = file.require("output.pred", path)?;

    autograd::clear();
    let pred = unet.forward(&x, &times, &cond)?;
    let loss = reduce::sum_all(&ew::mul(&pred, &upstream)?)?;
    let grads = autograd::backward(&loss)?;

    if pred.shape() != want.shape {
        return Err(Error::format(
            path,
            format!("output.pred has shape {:?} but ours is {:?}", want.shape, pred.shape()),
        ));
    }
    let ours = pred.to_vec();
    let mut rows = Vec::new();
    let d = max_diff(&ours, &want.data);
    let rel = d / max_abs(&want.data).max(1e-12);
    rows.push(Row { name: "output.pred".into(), max_abs: d, max_rel: rel, ok: rel <= tol_out });

    let mut pairs = Vec::new();
    for (name, p) in unet.params() {
        let r = file.require(&format!("grad.{name}"), path)?;
        if r.shape.iter().product::<usize>() != p.numel() {
            return Err(Error::format(
                path,
                format!("grad.{name} has shape {:?}, the parameter {:?}", r.shape, p.shape()),
            ));
        }
        let g = grads.get(p).map(|t| t.to_vec()).unwrap_or_else(|| vec![0.0; p.numel()]);
        pairs.push((name.clone(), g, r.data.clone()));
    }
    let global = pairs.iter().map(|(_, _, r)| max_abs(r)).fold(0.0, f64::max);
    for (name, g, r) in pairs {
        let d = max_diff(&g, &r);
        let rel = d / max_abs(&r).max(1e-2 * global).max(1e-30);
        rows.push(Row { name: format!("grad.{name}"), max_abs: d, max_rel: rel, ok: rel <= tol_grad });
    }
    Ok(Report { config: unet.cfg.clone(), num_params: unet.num_params(), rows })
}

#[cfg(test)]
mod tests {
    use super::max_diff;

    #[test]
    fn nan_and_length_mismatch_never_pass() {
        assert_eq!(max_diff(&[1.0, 2.0], &[1.0, 2.5]), 0.5);
        assert!(max_diff(&[f32::NAN], &[1.0]).is_infinite());
        assert!(max_diff(&[1.0], &[f32::INFINITY]).is_infinite());
        assert!(max_diff(&[1.0], &[1.0, 2.0]).is_infinite());
    }
}
