//! `UnetConfig`: the keyword arguments of the package's `Unet`, with its defaults, and validation that
//! says what is wrong and how to fix it.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// `conditioning_kwargs` of the package (used by the dynamic FF-Parser's ViT).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConditioningKwargs {
    pub dim_head: usize,
    pub heads: usize,
    pub depth: usize,
    pub patch_size: usize,
}

impl Default for ConditioningKwargs {
    fn default() -> Self {
        ConditioningKwargs { dim_head: 32, heads: 4, depth: 4, patch_size: 16 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UnetConfig {
    pub dim: usize,
    pub image_size: usize,
    pub mask_channels: usize,
    pub input_img_channels: usize,
    pub dim_mults: Vec<usize>,
    pub full_self_attn: Vec<bool>,
    pub attn_dim_head: usize,
    pub attn_heads: usize,
    pub mid_transformer_depth: usize,
    pub resnet_block_groups: usize,
    pub skip_connect_condition_fmaps: bool,
    pub dynamic_ff_parser_attn_map: bool,
    pub conditioning_kwargs: ConditioningKwargs,
    /// The package's self-conditioning option; not supported here (must stay false).
    pub self_condition: bool,
}

impl Default for UnetConfig {
    /// The package's defaults (`image_size` has none there; 128 here).
    fn default() -> Self {
        UnetConfig {
            dim: 64,
            image_size: 128,
            mask_channels: 1,
            input_img_channels: 3,
            dim_mults: vec![1, 2, 4, 8],
            full_self_attn: vec![false, false, false, true],
            attn_dim_head: 32,
            attn_heads: 4,
            mid_transformer_depth: 1,
            resnet_block_groups: 8,
            skip_connect_condition_fmaps: false,
            dynamic_ff_parser_attn_map: false,
            conditioning_kwargs: ConditioningKwargs::default(),
            self_condition: false,
        }
    }
}

/// The conditioner's ResnetBlock always uses the package default of 8 groups.
pub const CONDITIONER_GROUPS: usize = 8;

impl UnetConfig {
    /// dims = [dim, dim·m for m in dim_mults]
    pub fn dims(&self) -> Vec<usize> {
        std::iter::once(self.dim).chain(self.dim_mults.iter().map(|m| self.dim * m)).collect()
    }

    /// Consecutive (dim_in, dim_out) pairs, one per level.
    pub fn in_out(&self) -> Vec<(usize, usize)> {
        let d = self.dims();
        d.windows(2).map(|w| (w[0], w[1])).collect()
    }

    pub fn time_dim(&self) -> usize {
        4 * self.dim
    }

    /// Feature-map size at each encoder level.
    pub fn fmap_sizes(&self) -> Vec<usize> {
        let n = self.dim_mults.len();
        (0..n).map(|i| self.image_size >> i).collect()
    }

    pub fn validate(&self) -> Result<()> {
        let err = |m: String| Err(Error::Config(m));
        let levels = self.dim_mults.len();
        if self.dim == 0 || levels == 0 || self.dim_mults.contains(&0) {
            return err(format!(
                "config: dim ({}) must be > 0 and dim_mults ({:?}) non-empty with no zeros",
                self.dim, self.dim_mults
            ));
        }
        // bounds far above any real model that keep every size computed from the config clear of overflow
        let k = &self.conditioning_kwargs;
        for (name, v, max) in [
            ("dim", self.dim, 1 << 16),
            ("dim_mults (levels)", levels, 16),
            ("dim_mults (largest)", self.dim_mults.iter().copied().max().unwrap_or(1), 1024),
            ("image_size", self.image_size, 1 << 17),
            ("attn_heads", self.attn_heads, 1024),
            ("attn_dim_head", self.attn_dim_head, 4096),
            ("mid_transformer_depth", self.mid_transformer_depth, 64),
            ("resnet_block_groups", self.resnet_block_groups, 1 << 16),
            ("mask_channels", self.mask_channels, 1024),
            ("input_img_channels", self.input_img_channels, 1024),
            ("conditioning_kwargs.dim_head", k.dim_head, 4096),
            ("conditioning_kwargs.heads", k.heads, 1024),
            ("conditioning_kwargs.depth", k.depth, 64),
            ("conditioning_kwargs.patch_size", k.patch_size, 1 << 17),
        ] {
            if v > max {
                return err(format!("config: {name} is {v}; at most {max} is supported"));
            }
        }
        for (name, v) in [
            ("resnet_block_groups", self.resnet_block_groups),
            ("attn_heads", self.attn_heads),
            ("attn_dim_head", self.attn_dim_head),
        ] {
            if v == 0 {
                return err(format!("config: {name} must be at least 1"));
            }
        }
        if self.dynamic_ff_parser_attn_map && self.conditioning_kwargs.dim_head == 0 {
            return err("config: conditioning_kwargs.dim_head must be at least 1".into());
        }
        if self.full_self_attn.len() != levels {
            return err(format!(
                "config: full_self_attn has {} entries but dim_mults {:?} has {levels} levels; give one bool per level",
                self.full_self_attn.len(),
                self.dim_mults
            ));
        }
        let down = 1usize << (levels - 1);
        if self.image_size == 0 || !self.image_size.is_multiple_of(down) {
            return err(format!(
                "config: image_size {} must be divisible by {down} (dim_mults {:?} downsamples {} times)",
                self.image_size,
                self.dim_mults,
                levels - 1
            ));
        }
        if !self.dim.is_multiple_of(2) || self.dim < 4 {
            return err(format!(
                "config: dim {} must be even and at least 4 (the sinusoidal time embedding)",
                self.dim
            ));
        }
        for (i, d) in self.dims().into_iter().enumerate() {
            if d % self.resnet_block_groups != 0 {
                return err(format!(
                    "config: channel count {d} (level {i}) is not divisible by resnet_block_groups {}",
                    self.resnet_block_groups
                ));
            }
            if i < levels && d % CONDITIONER_GROUPS != 0 {
                return err(format!(
                    "config: channel count {d} (level {i}) must be divisible by 8: the package's conditioning block uses GroupNorm(8)"
                ));
            }
        }
        if self.mask_channels == 0 || self.input_img_channels == 0 {
            return err("config: mask_channels and input_img_channels must be at least 1".into());
        }
        if self.self_condition {
            return err("config: self_condition is not supported; set it to false".into());
        }
        if self.dynamic_ff_parser_attn_map {
            let p = self.conditioning_kwargs.patch_size;
            for (i, s) in self.fmap_sizes().into_iter().enumerate() {
                if p == 0 || s % p != 0 {
                    return err(format!(
                        "config: dynamic_ff_parser_attn_map needs every feature map divisible by conditioning_kwargs.patch_size {p}, \
                         but level {i} is {s}x{s}; lower patch_size or raise image_size"
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn from_json(text: &str) -> Result<UnetConfig> {
        let c: UnetConfig = serde_json::from_str(text).map_err(|e| Error::Config(format!("config JSON: {e}")))?;
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> UnetConfig {
        UnetConfig {
            dim: 8,
            image_size: 16,
            input_img_channels: 1,
            dim_mults: vec![1, 2],
            full_self_attn: vec![false, true],
            ..Default::default()
        }
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(tiny().validate().is_ok());
        let e = UnetConfig { image_size: 18, dim_mults: vec![1, 2, 4], full_self_attn: vec![false; 3], ..tiny() }
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("image_size 18 must be divisible by 4"), "{e}");
        let e = UnetConfig { full_self_attn: vec![true], ..tiny() }.validate().unwrap_err();
        assert!(e.to_string().contains("full_self_attn has 1 entries"), "{e}");
        let e = UnetConfig { dim: 12, resnet_block_groups: 8, ..tiny() }.validate().unwrap_err();
        assert!(e.to_string().contains("not divisible by resnet_block_groups 8"), "{e}");
        let e = UnetConfig { resnet_block_groups: 0, ..tiny() }.validate().unwrap_err();
        assert!(e.to_string().contains("resnet_block_groups must be at least 1"), "{e}");
        let e = UnetConfig { dim_mults: vec![1, 0], ..tiny() }.validate().unwrap_err();
        assert!(e.to_string().contains("no zeros"), "{e}");
        let e = UnetConfig { dynamic_ff_parser_attn_map: true, ..tiny() }.validate().unwrap_err();
        assert!(e.to_string().contains("patch_size 16"), "{e}");
    }

    #[test]
    fn json_uses_package_defaults_for_missing_keys() {
        let c = UnetConfig::from_json(
            r#"{"dim": 16, "image_size": 32, "dim_mults": [1, 2], "full_self_attn": [false, true]}"#,
        )
        .unwrap();
        assert_eq!(c.attn_heads, 4);
        assert_eq!(c.input_img_channels, 3);
        assert_eq!(c.in_out(), vec![(16, 16), (16, 32)]);
        assert_eq!(c.fmap_sizes(), vec![32, 16]);
    }
}
