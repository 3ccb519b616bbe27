//! The blocks of the MedSegDiff U-Net (SPEC §4), each named as in the PyTorch package so the parameter
//! paths match its `state_dict()`.

use super::{Conv2d, GroupNorm, LayerNorm, Linear, VarBuilder};
use crate::ops::{attention, elementwise as ew, layout};
use crate::{Result, Tensor};

/// `Block`: conv3x3 -> GroupNorm -> optional x·(scale + 1) + shift -> SiLU.  Names: `proj`, `norm`.
pub struct Block {
    pub proj: Conv2d,
    pub norm: GroupNorm,
}

impl Block {
    pub fn new(vb: &VarBuilder, cin: usize, cout: usize, groups: usize) -> Block {
        Block {
            proj: Conv2d::new(&vb.pp("proj"), cin, cout, 3, 1, true),
            norm: GroupNorm::new(&vb.pp("norm"), groups, cout),
        }
    }

    /// `scale_shift`: two (B, C, 1, 1) tensors.
    /// SiLU(GroupNorm(proj(x))·(scale + 1) + shift), the norm, modulation and activation as one fused op.
    pub fn forward(&self, x: &Tensor, scale_shift: Option<(&Tensor, &Tensor)>) -> Result<Tensor> {
        let h = self.proj.forward(x)?;
        let n = &self.norm;
        crate::ops::fused::group_norm_silu(&h, n.groups, &n.weight, &n.bias, scale_shift, 1e-5)
    }
}

/// `ResnetBlock(dim, dim_out, time_emb_dim, groups)`: h = block2(block1(x, scale_shift(t))) + res_conv(x).
/// Names: `mlp.1` (SiLU -> Linear(time_dim, 2·dim_out)), `block1`, `block2`, `res_conv` (1x1, when dims differ).
pub struct ResnetBlock {
    pub mlp: Option<Linear>,
    pub block1: Block,
    pub block2: Block,
    pub res_conv: Option<Conv2d>,
    pub dim_out: usize,
}

impl ResnetBlock {
    pub fn new(vb: &VarBuilder, cin: usize, cout: usize, time_dim: Option<usize>, groups: usize) -> ResnetBlock {
        ResnetBlock {
            mlp: time_dim.map(|td| Linear::new(&vb.pp("mlp").pp(1), td, 2 * cout)),
            block1: Block::new(&vb.pp("block1"), cin, cout, groups),
            block2: Block::new(&vb.pp("block2"), cout, cout, groups),
            res_conv: (cin != cout).then(|| Conv2d::new(&vb.pp("res_conv"), cin, cout, 1, 0, true)),
            dim_out: cout,
        }
    }

    /// x (B, cin, H, W); t (B, time_dim) or None.
    pub fn forward(&self, x: &Tensor, t: Option<&Tensor>) -> Result<Tensor> {
        let ss = match (&self.mlp, t) {
            (Some(mlp), Some(t)) => {
                let e = mlp.forward(&ew::silu(t))?; // (B, 2·dim_out)
                let e = e.reshape(&[e.dim(0), 2 * self.dim_out, 1, 1])?;
                let mut parts = layout::chunk(&e, 2, 1)?;
                let shift = parts.pop().expect("two chunks");
                let scale = parts.pop().expect("two chunks");
                Some((scale, shift))
            }
            _ => None,
        };
        let h = self.block1.forward(x, ss.as_ref().map(|(a, b)| (a, b)))?;
        let h = self.block2.forward(&h, None)?;
        let res = match &self.res_conv {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        ew::add(&h, &res)
    }
}

/// Full or linear self-attention, chosen per level by `full_self_attn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionKind {
    Full,
    Linear,
}

/// `Attention(dim, heads, dim_head)`: prenorm LayerNorm -> to_qkv (1x1, no bias) -> softmax(q·k) attention -> to_out (1x1).
/// Names: `prenorm.g`, `to_qkv.weight`, `to_out.weight`, `to_out.bias`.
pub struct Attention {
    pub prenorm: LayerNorm,
    pub to_qkv: Conv2d,
    pub to_out: Conv2d,
    pub heads: usize,
    pub dim_head: usize,
}

impl Attention {
    pub fn new(vb: &VarBuilder, dim: usize, heads: usize, dim_head: usize) -> Attention {
        let hidden = heads * dim_head;
        Attention {
            prenorm: LayerNorm::new(&vb.pp("prenorm"), dim, false),
            to_qkv: Conv2d::new(&vb.pp("to_qkv"), dim, 3 * hidden, 1, 0, false),
            to_out: Conv2d::new(&vb.pp("to_out"), hidden, dim, 1, 0, true),
            heads,
            dim_head,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let qkv = self.to_qkv.forward(&self.prenorm.forward(x)?)?;
        self.to_out.forward(&attention::full_attention(&qkv, self.heads, self.dim_head)?)
    }
}

/// `LinearAttention(dim, heads, dim_head)`: prenorm -> to_qkv -> linear attention -> to_out = (1x1 conv, LayerNorm).
/// Names: `prenorm.g`, `to_qkv.weight`, `to_out.0.{weight,bias}`, `to_out.1.g`.
pub struct LinearAttention {
    pub prenorm: LayerNorm,
    pub to_qkv: Conv2d,
    pub to_out_conv: Conv2d,
    pub to_out_norm: LayerNorm,
    pub heads: usize,
    pub dim_head: usize,
}

impl LinearAttention {
    pub fn new(vb: &VarBuilder, dim: usize, heads: usize, dim_head: usize) -> LinearAttention {
        let hidden = heads * dim_head;
        LinearAttention {
            prenorm: LayerNorm::new(&vb.pp("prenorm"), dim, false),
            to_qkv: Conv2d::new(&vb.pp("to_qkv"), dim, 3 * hidden, 1, 0, false),
            to_out_conv: Conv2d::new(&vb.pp("to_out").pp(0), hidden, dim, 1, 0, true),
            to_out_norm: LayerNorm::new(&vb.pp("to_out").pp(1), dim, false),
            heads,
            dim_head,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let qkv = self.to_qkv.forward(&self.prenorm.forward(x)?)?;
        let out = attention::linear_attention(&qkv, self.heads, self.dim_head)?;
        self.to_out_norm.forward(&self.to_out_conv.forward(&out)?)
    }
}

/// `FeedForward(dim, mult=4)`: LayerNorm -> 1x1 conv to 4·dim -> GELU -> 1x1 conv back. Names `0.g`, `1.*`, `3.*`.
pub struct FeedForward {
    pub norm: LayerNorm,
    pub proj_in: Conv2d,
    pub proj_out: Conv2d,
}

impl FeedForward {
    pub fn new(vb: &VarBuilder, dim: usize) -> FeedForward {
        FeedForward {
            norm: LayerNorm::new(&vb.pp(0), dim, false),
            proj_in: Conv2d::new(&vb.pp(1), dim, 4 * dim, 1, 0, true),
            proj_out: Conv2d::new(&vb.pp(3), 4 * dim, dim, 1, 0, true),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.proj_out.forward(&ew::gelu(&self.proj_in.forward(&self.norm.forward(x)?)?))
    }
}

/// `Transformer(dim, dim_head, heads, depth)`: depth × [x + Attention(x), x + FeedForward(x)].
/// Names: `layers.i.0.fn.*` (attention), `layers.i.1.fn.*` (feed-forward).
pub struct Transformer {
    pub layers: Vec<(Attention, FeedForward)>,
}

impl Transformer {
    pub fn new(vb: &VarBuilder, dim: usize, heads: usize, dim_head: usize, depth: usize) -> Transformer {
        let layers = (0..depth)
            .map(|i| {
                let l = vb.pp("layers").pp(i);
                (Attention::new(&l.pp(0).pp("fn"), dim, heads, dim_head), FeedForward::new(&l.pp(1).pp("fn"), dim))
            })
            .collect();
        Transformer { layers }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (attn, ff) in &self.layers {
            x = ew::add(&attn.forward(&x)?, &x)?;
            x = ew::add(&ff.forward(&x)?, &x)?;
        }
        Ok(x)
    }
}

/// `Downsample(dim, dim_out)`: pixel-unshuffle 2x2 -> 1x1 conv 4·dim -> dim_out. Name `1.*`.
pub struct Downsample {
    pub conv: Conv2d,
}

impl Downsample {
    pub fn new(vb: &VarBuilder, dim: usize, dim_out: usize) -> Downsample {
        Downsample { conv: Conv2d::new(&vb.pp(1), 4 * dim, dim_out, 1, 0, true) }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(&layout::pixel_unshuffle(x, 2)?)
    }
}

/// `Upsample(dim, dim_out)`: nearest 2x -> 3x3 conv. Name `1.*`.
pub struct Upsample {
    pub conv: Conv2d,
}

impl Upsample {
    pub fn new(vb: &VarBuilder, dim: usize, dim_out: usize) -> Upsample {
        Upsample { conv: Conv2d::new(&vb.pp(1), dim, dim_out, 3, 1, true) }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(&layout::upsample_nearest2x(x)?)
    }
}

/// `time_mlp`: sinusoidal(dim) -> Linear(dim, 4·dim) -> GELU -> Linear(4·dim, 4·dim). Names `1.*`, `3.*`.
pub struct TimeMlp {
    pub lin1: Linear,
    pub lin2: Linear,
    pub dim: usize,
}

impl TimeMlp {
    pub fn new(vb: &VarBuilder, dim: usize) -> TimeMlp {
        TimeMlp { lin1: Linear::new(&vb.pp(1), dim, 4 * dim), lin2: Linear::new(&vb.pp(3), 4 * dim, 4 * dim), dim }
    }

    /// The sinusoidal embedding, on the host in f64 (the times are host values):
    /// half = dim/2, freq_k = exp(−k·ln(10000)/(half − 1)), emb = cat(sin(t·freq), cos(t·freq)).
    pub fn sinusoidal(times: &[f32], dim: usize) -> Vec<f32> {
        let half = dim / 2;
        let step = (10000f64).ln() / (half as f64 - 1.0).max(1.0);
        let mut out = Vec::with_capacity(times.len() * dim);
        for &t in times {
            // torch computes the frequencies and products in f32; match that rounding before sin/cos
            let args: Vec<f32> = (0..half).map(|k| t * ((-(k as f64) * step).exp() as f32)).collect();
            out.extend(args.iter().map(|&a| (a as f64).sin() as f32));
            out.extend(args.iter().map(|&a| (a as f64).cos() as f32));
        }
        out
    }

    pub fn forward(&self, times: &[f32]) -> Result<Tensor> {
        let emb = Tensor::from_slice(&Self::sinusoidal(times, self.dim), &[times.len(), self.dim])?;
        self.lin2.forward(&ew::gelu(&self.lin1.forward(&emb)?))
    }
}
