//! The four parametric primitives: Conv2d, Linear, GroupNorm and the channel LayerNorm.

use super::{Init, VarBuilder};
use crate::ops::{conv, elementwise as ew, matmul, norm};
use crate::{Result, Tensor};

/// `nn.Conv2d(cin, cout, k, padding)`, stride 1, NCHW. Parameters `weight` (cout, cin, k, k), `bias` (cout).
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub padding: usize,
}

impl Conv2d {
    pub fn new(vb: &VarBuilder, cin: usize, cout: usize, k: usize, padding: usize, bias: bool) -> Conv2d {
        let bound = 1.0 / ((cin * k * k) as f32).sqrt();
        let weight = vb.var("weight", &[cout, cin, k, k], Init::Uniform(bound));
        let bias = bias.then(|| vb.var("bias", &[cout], Init::Uniform(bound)));
        Conv2d { weight, bias, padding }
    }

    /// Like `new` with weight and bias zero (the dynamic FF-Parser's output conv).
    pub fn zeros(vb: &VarBuilder, cin: usize, cout: usize, k: usize, padding: usize) -> Conv2d {
        let weight = vb.var("weight", &[cout, cin, k, k], Init::Zeros);
        let bias = Some(vb.var("bias", &[cout], Init::Zeros));
        Conv2d { weight, bias, padding }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv::conv2d(x, &self.weight, self.bias.as_ref(), self.padding)
    }
}

/// `nn.Linear(fin, fout)`: y = x·Wᵀ + b with W (fout, fin).
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    pub fn new(vb: &VarBuilder, fin: usize, fout: usize) -> Linear {
        let bound = 1.0 / (fin as f32).sqrt();
        Linear {
            weight: vb.var("weight", &[fout, fin], Init::Uniform(bound)),
            bias: vb.var("bias", &[fout], Init::Uniform(bound)),
        }
    }

    /// x (B, fin) -> (B, fout)
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ew::add(&matmul::matmul_t(x, false, &self.weight, true)?, &self.bias)
    }
}

/// `nn.GroupNorm(groups, c)` with affine `weight`, `bias`; eps 1e-5.
pub struct GroupNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub groups: usize,
}

impl GroupNorm {
    pub fn new(vb: &VarBuilder, groups: usize, c: usize) -> GroupNorm {
        GroupNorm { weight: vb.var("weight", &[c], Init::Ones), bias: vb.var("bias", &[c], Init::Zeros), groups }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        norm::group_norm(x, self.groups, Some(&self.weight), Some(&self.bias), 1e-5)
    }
}

/// The package's channel `LayerNorm(dim, bias)`: per pixel over C, gain `g` (1, C, 1, 1), optional `b`; eps 1e-5.
pub struct LayerNorm {
    pub g: Tensor,
    pub b: Option<Tensor>,
}

impl LayerNorm {
    pub fn new(vb: &VarBuilder, c: usize, bias: bool) -> LayerNorm {
        LayerNorm {
            g: vb.var("g", &[1, c, 1, 1], Init::Ones),
            b: bias.then(|| vb.var("b", &[1, c, 1, 1], Init::Zeros)),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        norm::layer_norm_channels(x, &self.g, self.b.as_ref(), 1e-5)
    }
}
