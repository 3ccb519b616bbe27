//! `model::memory` estimates a step's largest tensor before anything is allocated; a real training step must
//! ask the pool for nothing larger, and the estimate must not be far above what it asks (or the refusals it
//! drives would turn away sizes that fit).

mod common;

use medsegdiff::data::synthetic;
use medsegdiff::model::{memory, UnetConfig};
use medsegdiff::train::Trainer;

#[test]
fn the_largest_tensor_estimate_bounds_a_real_step() {
    // the estimate models the built-in rung rules: a developer's tune cache (~/.cache/medsegdiff) may pick
    // Winograd F(4×4) for a conv whose 36-plane weights then top it (a tensor over the limit is still caught:
    // it gets a stand-in and Gpu::check names it). Set before this process first reads the table.
    std::env::set_var("MEDSEGDIFF_TUNE", "off");
    let (micro, cfg) = common::micro();
    let cases = [
        ("micro", micro.clone()),
        ("micro, composed attention (dim_head 6)", UnetConfig { attn_dim_head: 6, ..micro.clone() }),
        ("micro, condition skips", UnetConfig { skip_connect_condition_fmaps: true, ..micro.clone() }),
        (
            "micro, 3 levels at 32 px",
            UnetConfig {
                dim_mults: vec![1, 2, 2],
                full_self_attn: vec![false, false, true],
                image_size: 32,
                ..micro.clone()
            },
        ),
        (
            "micro, composed full attention at 16 px (the n×n scores dominate)",
            UnetConfig { attn_dim_head: 6, full_self_attn: vec![true, true], ..micro.clone() },
        ),
        (
            "wide, one small head, condition skips (a decoder conv's Winograd weight gradient dominates)",
            UnetConfig {
                dim: 16,
                attn_heads: 1,
                attn_dim_head: 4,
                skip_connect_condition_fmaps: true,
                ..micro.clone()
            },
        ),
        (
            "micro, dynamic ff-parser",
            UnetConfig {
                dynamic_ff_parser_attn_map: true,
                conditioning_kwargs: medsegdiff::model::config::ConditioningKwargs {
                    patch_size: 4,
                    ..Default::default()
                },
                ..micro.clone()
            },
        ),
    ];
    let g = medsegdiff::gpu::gpu();
    for (name, model) in cases {
        let est = memory::largest(&model, cfg.batch_size);
        let data = synthetic::generate(6, model.image_size, 1, 1);
        let mut t = Trainer::new(&model, cfg.clone(), data).unwrap();
        g.take_largest();
        t.train_step().unwrap();
        let real = g.take_largest();
        println!("{name}: estimate {} ({:?}) {} bytes, step's largest {real}", est.what, est.shape, est.bytes());
        assert!(real <= est.bytes(), "{name}: a step asked for {real} bytes, above the estimate {est:?}");
        assert!(est.bytes() <= 2 * real, "{name}: estimate {est:?} is over twice the step's largest ({real})");
    }
}

#[test]
fn a_config_over_the_binding_limit_names_the_tensor_and_what_fits() {
    let (micro, _) = common::micro();
    let big = UnetConfig { image_size: 2048, ..micro };
    let flags = || memory::Flags { size: Some("--image-size"), batch: "--batch-size" };
    let msg =
        memory::does_not_fit(&big, 8, flags(), 128 << 20, "test adapter").expect("2048 px at batch 8 exceeds 128 MiB");
    assert!(msg.contains("[8, 48, 2048, 2048]") && msg.contains("128 MiB") && msg.contains("test adapter"), "{msg}");
    // the suggested size fits, and the next valid size up does not
    let fit: usize = msg.split("--image-size ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(memory::does_not_fit(&UnetConfig { image_size: fit, ..big.clone() }, 8, flags(), 128 << 20, "x").is_none());
    assert!(
        memory::does_not_fit(&UnetConfig { image_size: fit + 2, ..big.clone() }, 8, flags(), 128 << 20, "x").is_some()
    );
    // sampling cannot change the image size: only the ensemble is suggested
    let msg = memory::does_not_fit(
        &UnetConfig { image_size: 512, ..big },
        8,
        memory::Flags { size: None, batch: "--ensemble" },
        128 << 20,
        "x",
    )
    .unwrap();
    assert!(msg.contains("--ensemble 2 or less") && !msg.contains("--image-size"), "{msg}");
}
