//! The planner (`medsegdiff::plan`): its rules with made-up timings, and `train --plan-only` end to end.

use std::process::Command;

use medsegdiff::model::UnetConfig;
use medsegdiff::plan::{self, architecture, parse_duration, Fingerprint, Fixed, Timing};

fn brain() -> Fingerprint {
    // Colin27-like: big foreground objects in 181x217 slices
    Fingerprint {
        count: 61,
        channels: 1,
        classes: 1,
        median_height: 217,
        median_width: 181,
        smallest_side: 181,
        largest_side: 217,
        foreground_fraction: 0.31,
        empty_fraction: 0.0,
        object_extent: 0.58,
    }
}

fn lesion() -> Fingerprint {
    // small lesions in 240x240 slices (BraTS-like)
    Fingerprint { median_height: 240, median_width: 240, object_extent: 0.08, ..brain() }
}

/// A step costs `per_px_dim` seconds per pixel per unit of width; a forward a third of it.
fn timer(
    per_px_dim: f64,
    log: &mut Vec<(usize, usize)>,
) -> impl FnMut(&UnetConfig, usize) -> medsegdiff::Result<Timing> + '_ {
    move |m, _| {
        log.push((m.image_size, m.dim));
        let step_s = per_px_dim * (m.image_size * m.image_size * m.dim) as f64;
        Ok(Timing { step_s, forward_s: step_s / 3.0 })
    }
}

#[test]
fn resolution_comes_from_the_objects_and_width_from_the_measured_speed() {
    // 1 s per step for 32 px dim 16: 20 minutes fit ~1100 steps of it, ~550 of dim 32
    let k = 1.0 / (32.0 * 32.0 * 16.0);
    let mut log = Vec::new();
    let p = plan::plan(&brain(), &Fixed::default(), 1200.0, 5.0, "test", timer(k, &mut log)).unwrap();
    assert_eq!(brain().needed_size(), 28);
    assert_eq!((p.model.image_size, p.model.dim), (32, 16), "{}", p.summary());
    assert_eq!(log, vec![(32, 16), (32, 32)]);
    assert!(p.train.steps >= plan::ENOUGH_STEPS && p.train.steps < 1200, "{} steps", p.train.steps);
    assert!(p.estimated_total_s <= 1200.0, "estimate {} s over the budget", p.estimated_total_s);
    assert_eq!(p.train.val_every, p.train.steps.div_ceil(5), "five validations");
    // an hour: the wider network gets enough steps and wins
    let mut log = Vec::new();
    let p = plan::plan(&brain(), &Fixed::default(), 3600.0, 5.0, "test", timer(k, &mut log)).unwrap();
    assert_eq!((p.model.image_size, p.model.dim), (32, 32), "{}", p.summary());
    assert_eq!(log, vec![(32, 16), (32, 32)]);
    assert!(p.train.steps >= plan::ENOUGH_STEPS);
    // the narrow network at 64 px already gets too few steps: neither the wider one nor 128 px is timed
    let mut log = Vec::new();
    let p = plan::plan(&lesion(), &Fixed::default(), 1200.0, 0.0, "test", timer(k, &mut log)).unwrap();
    assert_eq!(log, vec![(32, 16), (32, 32), (64, 16)], "{}", p.summary());
}

#[test]
fn small_objects_ask_for_resolution_and_too_slow_an_adapter_gets_less_with_a_warning() {
    assert_eq!(lesion().needed_size(), 200);
    // fast adapter: 128 px (the largest ladder size under the 240 px scans) gets enough steps
    let mut log = Vec::new();
    let p = plan::plan(&lesion(), &Fixed::default(), 1200.0, 0.0, "fast", timer(1e-7, &mut log)).unwrap();
    assert_eq!(p.model.image_size, 128, "{}", p.summary());
    assert_eq!(p.model.dim_mults, vec![1, 2, 4, 8], "bottleneck 16 px");
    assert_eq!(p.model.full_self_attn, vec![false, false, false, true]);
    assert_eq!(p.train.schedule, medsegdiff::diffusion::ScheduleKind::ShiftedCosine);
    assert!(p.reasons.iter().any(|r| r.contains("would need 200 px")), "capped at the data: {:?}", p.reasons);
    // slow adapter: 128 px would get too few steps, so a lower size, said so
    let k = 1.0 / (32.0 * 32.0 * 16.0);
    let mut log = Vec::new();
    let p = plan::plan(&lesion(), &Fixed::default(), 1200.0, 0.0, "slow", timer(k, &mut log)).unwrap();
    assert_eq!(p.model.image_size, 32, "{}", p.summary());
    assert!(log.iter().all(|&(s, _)| s <= 128));
    assert!(p.reasons.iter().any(|r| r.starts_with("warning: 32 px is below")), "{:?}", p.reasons);
}

#[test]
fn flags_fix_their_choices() {
    let k = 1.0 / (32.0 * 32.0 * 16.0);
    let fixed = Fixed { image_size: Some(64), batch_size: Some(4), steps: Some(50), model: None };
    let mut log = Vec::new();
    let p = plan::plan(&brain(), &fixed, 1200.0, 0.0, "test", timer(k, &mut log)).unwrap();
    assert!(log.iter().all(|&(s, _)| s == 64), "{log:?}");
    assert_eq!((p.model.image_size, p.train.batch_size, p.train.steps), (64, 4, 50));
    assert_eq!(p.model.dim, 32, "50 steps fit the wider network too: {}", p.summary());
    // a fixed network keeps its shape; only its size and channels follow the data and flags
    let mine = UnetConfig {
        dim: 24,
        image_size: 32,
        dim_mults: vec![1, 3],
        full_self_attn: vec![false, true],
        input_img_channels: 1,
        ..UnetConfig::default()
    };
    let fixed = Fixed { model: Some(mine.clone()), ..Fixed::default() };
    let mut log = Vec::new();
    let p = plan::plan(&brain(), &fixed, 1200.0, 0.0, "test", timer(k, &mut log)).unwrap();
    assert_eq!((p.model.dim, &p.model.dim_mults, p.model.image_size), (24, &mine.dim_mults, mine.image_size));
    assert_eq!(p.fixed_by_flags, vec!["--preset/--config"]);
}

#[test]
fn architecture_keeps_the_bottleneck_small_and_full_attention_where_tokens_are_few() {
    let a = architecture(32, 16, 1, 1);
    assert_eq!((a.dim_mults.clone(), a.full_self_attn.clone()), (vec![1, 2], vec![false, true]));
    let a = architecture(256, 32, 4, 1);
    assert_eq!((a.dim_mults.len(), a.input_img_channels), (5, 4));
    assert_eq!(a.full_self_attn, vec![false, false, false, false, true]);
    // 100 px halves twice (25 px, 625 tokens): linear attention there
    let a = architecture(100, 16, 1, 1);
    assert_eq!((a.dim_mults.len(), a.full_self_attn.clone()), (3, vec![false, false, false]));
    for s in [16, 32, 48, 64, 96, 100, 128, 240, 256] {
        architecture(s, 16, 1, 1).validate().unwrap_or_else(|e| panic!("{s} px: {e}"));
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("20m"), Ok(1200.0));
    assert_eq!(parse_duration("1h30m"), Ok(5400.0));
    assert_eq!(parse_duration("90s"), Ok(90.0));
    assert_eq!(parse_duration("45"), Ok(2700.0));
    for bad in ["", "m", "0", "-5", "20x", "1h30", "nan"] {
        assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn plan_only_writes_plan_json_and_trains_nothing() {
    let dir = std::env::temp_dir().join(format!("msd-plan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["images", "masks"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for i in 0..6 {
        let img = image::GrayImage::from_fn(40, 30, |x, y| image::Luma([((x * 7 + y * 3 + i) % 256) as u8]));
        img.save(dir.join(format!("images/s{i}.png"))).unwrap();
        // a 0/1 mask: a 20x15 block
        let m = image::GrayImage::from_fn(40, 30, |x, y| image::Luma([u8::from((10..30).contains(&x) && y < 15)]));
        m.save(dir.join(format!("masks/s{i}.png"))).unwrap();
    }
    let (run, cache) = (dir.join("run"), dir.join("tune.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_medsegdiff"))
        .env("MEDSEGDIFF_TUNE_CACHE", &cache)
        .env_remove("MEDSEGDIFF_TUNE")
        .args(["train", "--data", dir.to_str().unwrap(), "--plan-only", "--time-budget", "2m"])
        .args(["--image-size", "16", "--batch-size", "2", "--lr", "5e-4", "--out", run.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("plan for a 2-minute budget"), "{stdout}");
    let p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("plan.json")).unwrap()).unwrap();
    assert_eq!(p["fingerprint"]["median_width"], 40, "{p}");
    assert_eq!(p["fingerprint"]["median_height"], 30);
    assert!((p["fingerprint"]["foreground_fraction"].as_f64().unwrap() - 0.25).abs() < 0.05, "{p}");
    assert_eq!(p["model"]["image_size"], 16);
    assert_eq!(p["model"]["input_img_channels"], 1, "gray scans: one channel");
    assert_eq!(p["train"]["batch_size"], 2);
    assert_eq!(p["train"]["lr"], 5e-4, "an explicit --lr overrides the plan's");
    assert!(p["fixed_by_flags"].as_array().unwrap().iter().any(|f| f == "--lr"), "{p}");
    let step_s = p["candidates"][0]["timing"]["step_s"].as_f64().unwrap();
    assert!(step_s > 0.0 && step_s.is_finite(), "a measured step time: {p}");
    assert!(!run.join("last.safetensors").exists(), "--plan-only trained");
    let tuned: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    assert!(!tuned["entries"].as_object().unwrap().is_empty(), "the candidates' shapes were tuned: {tuned}");
    // a preset keeps its own recipe: only planned when asked (--time-budget / --plan-only), and then the plan
    // sets its length, not its learning rate or objective
    let run2 = dir.join("run2");
    let out = Command::new(env!("CARGO_BIN_EXE_medsegdiff"))
        .env("MEDSEGDIFF_TUNE", "off")
        .args(["train", "--data", dir.to_str().unwrap(), "--preset", "tiny", "--plan-only", "--time-budget", "2m"])
        .args(["--image-size", "16", "--batch-size", "2", "--out", run2.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run2.join("plan.json")).unwrap()).unwrap();
    let (tiny_model, tiny) = medsegdiff::train::preset("tiny").unwrap();
    assert_eq!(p["train"]["lr"].as_f64().unwrap() as f32, tiny.lr, "{p}");
    assert_eq!(p["train"]["objective"], "pred_x0");
    assert_eq!(p["model"]["dim"], tiny_model.dim);
    let run3 = dir.join("run3");
    let out = Command::new(env!("CARGO_BIN_EXE_medsegdiff"))
        .env("MEDSEGDIFF_TUNE", "off")
        .args(["train", "--data", dir.to_str().unwrap(), "--preset", "tiny", "--steps", "1", "--val-every", "0"])
        .args(["--image-size", "16", "--batch-size", "2", "--out", run3.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!run3.join("plan.json").exists(), "--preset without --time-budget is not planned");
    // colour images plan a 3-channel network (gray ones, above, one channel)
    let colour = dir.join("colour");
    for sub in ["images", "masks"] {
        std::fs::create_dir_all(colour.join(sub)).unwrap();
        for i in 0..4 {
            let name = format!("s{i}.png");
            std::fs::copy(dir.join(sub).join(&name), colour.join(sub).join(&name)).unwrap();
        }
    }
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 90]))
        .save(colour.join("images/s0.png"))
        .unwrap();
    let run4 = dir.join("run4");
    let out = Command::new(env!("CARGO_BIN_EXE_medsegdiff"))
        .env("MEDSEGDIFF_TUNE", "off")
        .args(["train", "--data", colour.to_str().unwrap(), "--plan-only", "--time-budget", "1m"])
        .args(["--image-size", "16", "--batch-size", "2", "--out", run4.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run4.join("plan.json")).unwrap()).unwrap();
    assert_eq!((p["fingerprint"]["channels"].as_u64(), p["model"]["input_img_channels"].as_u64()), (Some(3), Some(3)));
    // a resumed run keeps its settings: planning flags are refused
    let out = Command::new(env!("CARGO_BIN_EXE_medsegdiff"))
        .args(["train", "--resume", run.join("last.safetensors").to_str().unwrap(), "--time-budget", "5m"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--time-budget"));
}
