//! Shared by the integration tests that train: a micro model and config that run in about a second.

use medsegdiff::model::UnetConfig;
use medsegdiff::train::TrainConfig;

pub fn micro() -> (UnetConfig, TrainConfig) {
    let model = UnetConfig {
        dim: 8,
        image_size: 16,
        input_img_channels: 1,
        dim_mults: vec![1, 2],
        full_self_attn: vec![false, true],
        attn_heads: 2,
        attn_dim_head: 8,
        resnet_block_groups: 4,
        ..Default::default()
    };
    let train = TrainConfig {
        steps: 6,
        batch_size: 2,
        lr: 1e-3,
        warmup: 2,
        val_every: 0,
        sampling_steps: 2,
        val_count: 2,
        ..Default::default()
    };
    (model, train)
}
