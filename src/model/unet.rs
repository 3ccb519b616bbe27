//! The MedSegDiff U-Net (SPEC §4): two encoders (mask path `downs`, image path `cond_downs`) joined per level
//! by a [`Conditioning`] block, a bottleneck where the two paths are summed, a transformer, and a decoder
//! with skip connections.

use super::conditioning::Conditioning;
use super::config::UnetConfig;
use crate::nn::{
    Attention, Conv2d, Downsample, LinearAttention, ResnetBlock, TimeMlp, Transformer, Upsample, VarBuilder, VarStore,
};
use crate::ops::{elementwise as ew, layout};
use crate::{shape_err, Result, Tensor};

/// `Residual(Attention)` or `Residual(LinearAttention)`.
pub enum AnyAttention {
    Full(Attention),
    Linear(LinearAttention),
}

impl AnyAttention {
    fn new(vb: &VarBuilder, full: bool, dim: usize, heads: usize, dim_head: usize) -> AnyAttention {
        let vb = vb.pp("fn");
        if full {
            AnyAttention::Full(Attention::new(&vb, dim, heads, dim_head))
        } else {
            AnyAttention::Linear(LinearAttention::new(&vb, dim, heads, dim_head))
        }
    }

    /// x + attn(x)
    fn forward_residual(&self, x: &Tensor) -> Result<Tensor> {
        let y = match self {
            AnyAttention::Full(a) => a.forward(x)?,
            AnyAttention::Linear(a) => a.forward(x)?,
        };
        ew::add(&y, x)
    }
}

/// Downsample at inner levels, a 3x3 conv at the last.
pub enum Down {
    Pixel(Downsample),
    Conv(Conv2d),
}

/// Upsample at inner levels, a 3x3 conv at the last.
pub enum Up {
    Nearest(Upsample),
    Conv(Conv2d),
}

/// One encoder level: `block1, block2, Residual(attn), downsample` (names `.0` .. `.3`).
pub struct EncoderLevel {
    pub block1: ResnetBlock,
    pub block2: ResnetBlock,
    pub attn: AnyAttention,
    pub down: Down,
}

impl EncoderLevel {
    fn new(vb: &VarBuilder, cfg: &UnetConfig, dim_in: usize, dim_out: usize, full: bool, last: bool) -> EncoderLevel {
        let (td, g) = (Some(cfg.time_dim()), cfg.resnet_block_groups);
        EncoderLevel {
            block1: ResnetBlock::new(&vb.pp(0), dim_in, dim_in, td, g),
            block2: ResnetBlock::new(&vb.pp(1), dim_in, dim_in, td, g),
            attn: AnyAttention::new(&vb.pp(2), full, dim_in, cfg.attn_heads, cfg.attn_dim_head),
            down: if last {
                Down::Conv(Conv2d::new(&vb.pp(3), dim_in, dim_out, 3, 1, true))
            } else {
                Down::Pixel(Downsample::new(&vb.pp(3), dim_in, dim_out))
            },
        }
    }

    fn downsample(&self, x: &Tensor) -> Result<Tensor> {
        match &self.down {
            Down::Pixel(d) => d.forward(x),
            Down::Conv(c) => c.forward(x),
        }
    }
}

/// One decoder level: `block1, block2, Residual(attn), upsample`.
pub struct DecoderLevel {
    pub block1: ResnetBlock,
    pub block2: ResnetBlock,
    pub attn: AnyAttention,
    pub up: Up,
}

pub struct Unet {
    pub cfg: UnetConfig,
    pub vars: VarStore,
    time_mlp: TimeMlp,
    init_conv: Conv2d,
    cond_init_conv: Conv2d,
    downs: Vec<EncoderLevel>,
    cond_downs: Vec<EncoderLevel>,
    conditioners: Vec<Conditioning>,
    mid_block1: ResnetBlock,
    cond_mid_block1: ResnetBlock,
    mid_transformer: Transformer,
    mid_block2: ResnetBlock,
    ups: Vec<DecoderLevel>,
    final_res_block: ResnetBlock,
    final_conv: Conv2d,
}

impl Unet {
    /// Build with PyTorch-style initialisation from `seed`; the image path starts as a copy of the mask path.
    pub fn new(cfg: &UnetConfig, seed: u64) -> Result<Unet> {
        cfg.validate()?;
        let vb = VarBuilder::new(seed);
        let (dim, td, g) = (cfg.dim, cfg.time_dim(), cfg.resnet_block_groups);
        let in_out = cfg.in_out();
        let levels = in_out.len();
        let fmaps = cfg.fmap_sizes();
        let time_mlp = TimeMlp::new(&vb.pp("time_mlp"), dim);
        let init_conv = Conv2d::new(&vb.pp("init_conv"), cfg.mask_channels, dim, 7, 3, true);
        let cond_init_conv = Conv2d::new(&vb.pp("cond_init_conv"), cfg.input_img_channels, dim, 7, 3, true);
        let dynamic = cfg.dynamic_ff_parser_attn_map.then_some(&cfg.conditioning_kwargs);
        let mut conditioners = Vec::new();
        let mut downs = Vec::new();
        for (i, &(din, dout)) in in_out.iter().enumerate() {
            conditioners.push(Conditioning::new(&vb.pp("conditioners").pp(i), fmaps[i], din, dynamic));
            downs.push(EncoderLevel::new(
                &vb.pp("downs").pp(i),
                cfg,
                din,
                dout,
                cfg.full_self_attn[i],
                i + 1 == levels,
            ));
        }
        let mid = *cfg.dims().last().expect("at least one level");
        let mid_block1 = ResnetBlock::new(&vb.pp("mid_block1"), mid, mid, Some(td), g);
        let mid_transformer = Transformer::new(
            &vb.pp("mid_transformer"),
            mid,
            cfg.attn_heads,
            cfg.attn_dim_head,
            cfg.mid_transformer_depth,
        );
        let mid_block2 = ResnetBlock::new(&vb.pp("mid_block2"), mid, mid, Some(td), g);
        let cond_downs: Vec<EncoderLevel> = in_out
            .iter()
            .enumerate()
            .map(|(i, &(din, dout))| {
                EncoderLevel::new(&vb.pp("cond_downs").pp(i), cfg, din, dout, cfg.full_self_attn[i], i + 1 == levels)
            })
            .collect();
        let cond_mid_block1 = ResnetBlock::new(&vb.pp("cond_mid_block1"), mid, mid, Some(td), g);
        let mut ups = Vec::new();
        for (i, (&(din, dout), &full)) in in_out.iter().rev().zip(cfg.full_self_attn.iter().rev()).enumerate() {
            let last = i + 1 == levels;
            let skip = din * if cfg.skip_connect_condition_fmaps { 2 } else { 1 };
            let l = vb.pp("ups").pp(i);
            ups.push(DecoderLevel {
                block1: ResnetBlock::new(&l.pp(0), dout + skip, dout, Some(td), g),
                block2: ResnetBlock::new(&l.pp(1), dout + skip, dout, Some(td), g),
                attn: AnyAttention::new(&l.pp(2), full, dout, cfg.attn_heads, cfg.attn_dim_head),
                up: if last {
                    Up::Conv(Conv2d::new(&l.pp(3), dout, din, 3, 1, true))
                } else {
                    Up::Nearest(Upsample::new(&l.pp(3), dout, din))
                },
            });
        }
        let final_res_block = ResnetBlock::new(&vb.pp("final_res_block"), 2 * dim, dim, Some(td), g);
        let final_conv = Conv2d::new(&vb.pp("final_conv"), dim, cfg.mask_channels, 1, 0, true);

        let store = vb.store();
        let vars = std::mem::take(&mut *store.borrow_mut());
        let mut unet = Unet {
            cfg: cfg.clone(),
            vars,
            time_mlp,
            init_conv,
            cond_init_conv,
            downs,
            cond_downs,
            conditioners,
            mid_block1,
            cond_mid_block1,
            mid_transformer,
            mid_block2,
            ups,
            final_res_block,
            final_conv,
        };
        unet.copy_mask_path_to_image_path()?;
        Ok(unet)
    }

    /// `cond_downs` and `cond_mid_block1` start as exact copies of `downs` and `mid_block1` (the package's deepcopy).
    fn copy_mask_path_to_image_path(&mut self) -> Result<()> {
        let pairs: Vec<(String, Vec<f32>)> = self
            .vars
            .params
            .iter()
            .filter_map(|(n, _)| {
                let src = n
                    .strip_prefix("cond_downs.")
                    .map(|r| format!("downs.{r}"))
                    .or_else(|| n.strip_prefix("cond_mid_block1.").map(|r| format!("mid_block1.{r}")))?;
                Some((n.clone(), self.vars.get(&src).expect("mask path mirrors image path").to_vec()))
            })
            .collect();
        for (name, data) in pairs {
            super::weights::write_param(&self.vars, &name, &data)?;
        }
        Ok(())
    }

    /// All parameters, by PyTorch name, in creation order.
    pub fn params(&self) -> &[(String, Tensor)] {
        &self.vars.params
    }

    pub fn num_params(&self) -> usize {
        self.vars.num_params()
    }

    /// pred = Unet(x, time, cond): x (B, mask_ch, S, S) noisy mask, times (B) diffusion steps, cond (B, img_ch, S, S).
    pub fn forward(&self, x: &Tensor, times: &[f32], cond: &Tensor) -> Result<Tensor> {
        let cfg = &self.cfg;
        let s = cfg.image_size;
        let b = x.dim(0);
        if x.shape() != [b, cfg.mask_channels, s, s] {
            return shape_err!("unet", "mask input {:?} should be [{b}, {}, {s}, {s}]", x.shape(), cfg.mask_channels);
        }
        if cond.shape() != [b, cfg.input_img_channels, s, s] {
            return shape_err!(
                "unet",
                "image input {:?} should be [{b}, {}, {s}, {s}]",
                cond.shape(),
                cfg.input_img_channels
            );
        }
        if times.len() != b {
            return shape_err!("unet", "{} times given for a batch of {b}", times.len());
        }
        let skip_c = cfg.skip_connect_condition_fmaps;
        let mut x = self.init_conv.forward(x)?;
        let r = x.clone();
        let mut c = self.cond_init_conv.forward(cond)?;
        let t = self.time_mlp.forward(times)?;
        let mut h: Vec<Vec<Tensor>> = Vec::new();
        for ((lvl, clvl), cond_block) in self.downs.iter().zip(&self.cond_downs).zip(&self.conditioners) {
            x = lvl.block1.forward(&x, Some(&t))?;
            c = clvl.block1.forward(&c, Some(&t))?;
            h.push(if skip_c { vec![x.clone(), c.clone()] } else { vec![x.clone()] });
            x = lvl.block2.forward(&x, Some(&t))?;
            c = clvl.block2.forward(&c, Some(&t))?;
            x = lvl.attn.forward_residual(&x)?;
            c = clvl.attn.forward_residual(&c)?;
            c = cond_block.forward(&x, &c)?;
            h.push(if skip_c { vec![x.clone(), c.clone()] } else { vec![x.clone()] });
            x = lvl.downsample(&x)?;
            c = clvl.downsample(&c)?;
        }
        x = self.mid_block1.forward(&x, Some(&t))?;
        c = self.cond_mid_block1.forward(&c, Some(&t))?;
        x = ew::add(&x, &c)?;
        x = self.mid_transformer.forward(&x)?;
        x = self.mid_block2.forward(&x, Some(&t))?;
        let pop_cat = |x: &Tensor, h: &mut Vec<Vec<Tensor>>| -> Result<Tensor> {
            let skip = h.pop().expect("one skip per encoder push");
            let mut parts = vec![x];
            parts.extend(skip.iter());
            layout::concat(&parts, 1)
        };
        for lvl in &self.ups {
            x = pop_cat(&x, &mut h)?;
            x = lvl.block1.forward(&x, Some(&t))?;
            x = pop_cat(&x, &mut h)?;
            x = lvl.block2.forward(&x, Some(&t))?;
            x = lvl.attn.forward_residual(&x)?;
            x = match &lvl.up {
                Up::Nearest(u) => u.forward(&x)?,
                Up::Conv(cv) => cv.forward(&x)?,
            };
        }
        x = layout::concat(&[&x, &r], 1)?;
        x = self.final_res_block.forward(&x, Some(&t))?;
        let out = self.final_conv.forward(&x)?;
        // a tensor over the adapter's binding limit (batch or image too large) skipped its kernels: say so
        crate::gpu::gpu().check()?;
        Ok(out)
    }
}
