//! Buffer reuse, counted exactly (its own test binary, one test, so nothing else allocates meanwhile): dropped
//! tensors' buffers are reused, and after its first step a training step takes every storage buffer from the
//! pool and is one submit. (Host data still travels through short-lived staging buffers: the batch upload and
//! the loss readback; those are freed after the copy and never enter the pool.)

mod common;

use medsegdiff::data::synthetic;
use medsegdiff::gpu::gpu;
use medsegdiff::train::{TrainConfig, Trainer};

#[test]
fn pool_reuse_and_training_step_steady_state() {
    let g = gpu();
    // same-size allocations in a loop: one buffer created, then reused every time
    drop(medsegdiff::Tensor::zeros(&[37, 41, 3]));
    let before = g.pool_stats();
    for _ in 0..20 {
        drop(medsegdiff::Tensor::zeros(&[37, 41, 3]));
    }
    let after = g.pool_stats();
    assert_eq!(after.created, before.created, "20 same-size allocations created new buffers");
    assert_eq!(after.reused, before.reused + 20);

    let (model, _) = common::micro();
    let cfg = TrainConfig { steps: 3, batch_size: 2, val_every: 0, ..Default::default() };
    let mut t = Trainer::new(&model, cfg, synthetic::generate(8, 16, 1, 0)).unwrap();
    t.train_step().unwrap();
    let (created, (_, submits)) = (g.pool_stats().created, g.counters());
    t.train_step().unwrap();
    assert_eq!(g.pool_stats().created, created, "the second step created new buffers");
    assert_eq!(g.counters().1, submits + 1, "a step should be one submit (its loss readback)");
}
