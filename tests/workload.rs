//! The workload bench on a real (small) model: alone in its own test binary, because it switches the process-wide
//! profiler on and joins the log with the dispatch counter, which tests on other threads would advance.

use medsegdiff::bench::workload::{run, trainer_for};
use medsegdiff::model::UnetConfig;
use medsegdiff::train::TrainConfig;

#[test]
fn a_real_step_is_fully_attributed() {
    // a 2-level model at 16 px: every dispatch of the step belongs to a row, FLOPs are those of its convs
    // and matmuls, and the sum of row times is the step's GPU time
    let model = UnetConfig {
        dim: 8,
        image_size: 16,
        dim_mults: vec![1, 2],
        full_self_attn: vec![false, true],
        attn_heads: 2,
        attn_dim_head: 8,
        input_img_channels: 1,
        ..UnetConfig::default()
    };
    let mut t = trainer_for(&model, 2, TrainConfig::default()).unwrap();
    // two wall-clock steps per phase (the fastest kept), then the profiled one
    let w = run("unit", &mut t, 2).unwrap();
    for ph in &w.phases {
        assert!(ph.wall_s.is_finite() && ph.wall_s > 0.0, "{}: wall {} s", ph.name, ph.wall_s);
        let claimed: u64 = ph.rows.iter().map(|r| r.dispatches).sum();
        assert!(claimed > 50, "{}: {claimed} dispatches", ph.name);
        assert!(ph.rows.iter().any(|r| r.op == "conv2d") && ph.rows.iter().any(|r| r.op == "matmul"));
        let row_flop: f64 = ph.rows.iter().map(|r| r.flop).sum();
        assert!(ph.flop > 0.0 && (ph.flop - row_flop).abs() <= 1e-9 * ph.flop);
        if w.timestamps {
            let ms: f64 = ph.rows.iter().map(|r| r.ms).sum();
            assert!((ms - ph.gpu_ms).abs() <= 1e-6 * ph.gpu_ms.max(1.0), "{ms} vs {}", ph.gpu_ms);
        }
    }
    assert!(w.phases[0].rows.iter().any(|r| r.op == "conv2d.dw"), "the training step has weight gradients");
    // flat optimizer state: grad norm, clip, AdamW and EMA over the one parameter slab, not per tensor
    let optim: u64 = w.phases[0].rows.iter().filter(|r| r.op.starts_with("optim/")).map(|r| r.dispatches).sum();
    assert!((4..=5).contains(&optim), "{optim} optimizer dispatches for {} parameter tensors", t.unet.params().len());
    assert!(!w.phases[1].rows.iter().any(|r| r.op.starts_with("conv2d.d")), "sampling has no backward");
}
