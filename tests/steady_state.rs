//! After its first step, a training step creates no GPU buffers (everything comes from the pool) and is
//! recorded as exactly one submit. (Its own test binary: other tests allocating concurrently would blur the count.)

use medsegdiff::data::synthetic;
use medsegdiff::gpu::gpu;
use medsegdiff::model::UnetConfig;
use medsegdiff::train::{TrainConfig, Trainer};

#[test]
fn training_step_allocates_nothing_new_and_submits_once() {
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
    let cfg = TrainConfig { steps: 3, batch_size: 2, val_every: 0, ..Default::default() };
    let mut t = Trainer::new(&model, cfg, synthetic::generate(8, 16, 1, 0)).unwrap();
    t.train_step().unwrap();
    let g = gpu();
    let (created, (_, submits)) = (g.pool_stats().created, g.counters());
    t.train_step().unwrap();
    assert_eq!(g.pool_stats().created, created, "the second step created new buffers");
    assert_eq!(g.counters().1, submits + 1, "a step should be one submit (its loss readback)");
}
