//! `Conditioning`: MedSegDiff's FF-Parser followed by attentive fusion (SPEC §4), and the small ViT that
//! predicts a per-sample FF-Parser map when `dynamic_ff_parser_attn_map` is on.
//!
//! FF-Parser: x' = Re(ifft2(fft2(x) ⊙ M)) with M = `ff_parser_attn_map` (C, H, W) — a learned filter on the
//! feature map's spectrum (the paper uses it to damp high-frequency noise in the noisy-mask features).
//! Attentive fusion (eq. 3 of the paper): c ← LN_in(x') ⊙ LN_cond(c) ⊙ c, then one ResnetBlock(dim, dim).

use crate::nn::{Conv2d, Init, LayerNorm, ResnetBlock, Transformer, VarBuilder};
use crate::ops::{elementwise as ew, fft, layout};
use crate::{Result, Tensor};

use super::config::CONDITIONER_GROUPS;

/// `ViT(depth=4)`: `Conditioning` builds its ViT without passing `depth`, so the default always applies.
pub const VIT_DEPTH: usize = 4;

/// The dynamic FF-Parser's ViT: patches of the 4·dim-channel spectrum -> tokens -> Transformer -> a (dim, H, W) map.
/// Names: `pos_emb`, `to_tokens.1.*` (1x1 conv), `to_tokens.2.g`, `transformer.*`, `to_patches.0.g`, `to_patches.1.*`.
pub struct Vit {
    pub pos_emb: Tensor,
    pub tok_conv: Conv2d,
    pub tok_norm: LayerNorm,
    pub transformer: Transformer,
    pub patch_norm: LayerNorm,
    pub patch_conv: Conv2d,
    pub patch: usize,
}

impl Vit {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vb: &VarBuilder,
        dim: usize,
        image_size: usize,
        patch: usize,
        channels: usize,
        channels_out: usize,
        dim_head: usize,
        depth: usize,
    ) -> Vit {
        let np = image_size / patch;
        Vit {
            pos_emb: vb.var("pos_emb", &[dim, np, np], Init::Zeros),
            tok_conv: Conv2d::new(&vb.pp("to_tokens").pp(1), channels * patch * patch, dim, 1, 0, true),
            tok_norm: LayerNorm::new(&vb.pp("to_tokens").pp(2), dim, false),
            // the package passes no `heads` to this Transformer, so it gets the default of 4
            transformer: Transformer::new(&vb.pp("transformer"), dim, 4, dim_head, depth),
            patch_norm: LayerNorm::new(&vb.pp("to_patches").pp(0), dim, false),
            patch_conv: Conv2d::zeros(&vb.pp("to_patches").pp(1), dim, channels_out * patch * patch, 1, 0),
            patch,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let t = self.tok_norm.forward(&self.tok_conv.forward(&layout::pixel_unshuffle(x, self.patch)?)?)?;
        let t = self.transformer.forward(&ew::add(&t, &self.pos_emb)?)?;
        layout::pixel_shuffle(&self.patch_conv.forward(&self.patch_norm.forward(&t)?)?, self.patch)
    }
}

/// Names: `ff_parser_attn_map`, `norm_input.{g,b}`, `norm_condition.{g,b}`, `block.*`, `to_dynamic_ff_parser_attn_map.*`.
pub struct Conditioning {
    pub ff_parser_attn_map: Tensor,
    pub norm_input: LayerNorm,
    pub norm_condition: LayerNorm,
    pub block: ResnetBlock,
    pub dynamic: Option<Vit>,
}

impl Conditioning {
    pub fn new(
        vb: &VarBuilder,
        fmap: usize,
        dim: usize,
        dynamic: Option<&super::config::ConditioningKwargs>,
    ) -> Conditioning {
        let ff_parser_attn_map = vb.var("ff_parser_attn_map", &[dim, fmap, fmap], Init::Ones);
        let dynamic = dynamic.map(|k| {
            // the package does not pass conditioning_kwargs' depth (nor heads) on to the ViT: it is always 4 deep
            Vit::new(
                &vb.pp("to_dynamic_ff_parser_attn_map"),
                dim,
                fmap,
                k.patch_size,
                4 * dim,
                dim,
                k.dim_head,
                VIT_DEPTH,
            )
        });
        Conditioning {
            ff_parser_attn_map,
            norm_input: LayerNorm::new(&vb.pp("norm_input"), dim, true),
            norm_condition: LayerNorm::new(&vb.pp("norm_condition"), dim, true),
            block: ResnetBlock::new(&vb.pp("block"), dim, dim, None, CONDITIONER_GROUPS),
            dynamic,
        }
    }

    /// x: mask features, c: image features, both (B, dim, H, W). Returns the new image features.
    pub fn forward(&self, x: &Tensor, c: &Tensor) -> Result<Tensor> {
        let map = match &self.dynamic {
            // per-sample map = learned map + ViT(spectra of x and c as (re, im) channels)
            Some(vit) => {
                let spec = layout::concat(&[&fft::fft2_channels(x)?, &fft::fft2_channels(c)?], 1)?;
                ew::add(&self.ff_parser_attn_map, &vit.forward(&spec)?)?
            }
            None => self.ff_parser_attn_map.clone(),
        };
        let xp = fft::ff_parser(x, &map)?;
        let fused = ew::mul(&ew::mul(&self.norm_input.forward(&xp)?, &self.norm_condition.forward(c)?)?, c)?;
        self.block.forward(&fused, None)
    }
}
