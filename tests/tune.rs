//! `medsegdiff tune` writes a rung table for a model's shapes to the cache file, and a run reads it back.

use std::process::Command;

mod common;

#[test]
fn tune_writes_a_table_that_train_then_uses() {
    let dir = std::env::temp_dir().join(format!("msd-tune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("micro.json");
    std::fs::write(&cfg, serde_json::to_string(&common::micro().0).unwrap()).unwrap();
    let cache = dir.join("tune.json");
    let bin = env!("CARGO_BIN_EXE_medsegdiff");
    let out = Command::new(bin)
        .args(["tune", "--config", cfg.to_str().unwrap(), "--batch-size", "2", "--reps", "1"])
        .env("MEDSEGDIFF_TUNE_CACHE", &cache)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    let entries = j["entries"].as_object().unwrap();
    assert!(
        entries.keys().any(|k| k.starts_with("matmul ")) && entries.keys().any(|k| k.starts_with("conv2d ")),
        "{j}"
    );
    assert!(stdout.contains(&format!("chose {} rungs", entries.len())), "{stdout}");
    // the table decides the rung: force every conv shape to v3 (never a rule's choice) and look for it in the
    // kernels a workload step ran, with the table and without it
    let mut forced = j.clone();
    for (k, v) in forced["entries"].as_object_mut().unwrap() {
        if k.starts_with("conv2d ") {
            *v = serde_json::json!("v3_blocked");
        }
    }
    let forced_path = dir.join("forced.json");
    std::fs::write(&forced_path, forced.to_string()).unwrap();
    for (k, v, want) in
        [("MEDSEGDIFF_TUNE_CACHE", forced_path.to_str().unwrap(), true), ("MEDSEGDIFF_TUNE", "off", false)]
    {
        let json = dir.join("workload.json");
        let out = Command::new(bin)
            .args(["bench", "--config", cfg.to_str().unwrap(), "--batch-size", "2", "--top", "0"])
            .args(["--json", json.to_str().unwrap()])
            .env(k, v)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let ran = std::fs::read_to_string(&json).unwrap().contains("conv_v3_blocked");
        assert_eq!(ran, want, "{k}={v}: v3 ran: {ran}");
    }
    // a training run with that table (and one with MEDSEGDIFF_TUNE=off) both train
    for (k, v) in [("MEDSEGDIFF_TUNE_CACHE", cache.to_str().unwrap()), ("MEDSEGDIFF_TUNE", "off")] {
        let out = Command::new(bin)
            .args(["train", "--config", cfg.to_str().unwrap(), "--steps", "1", "--batch-size", "2"])
            .args(["--synthetic-count", "4", "--val-every", "0", "--out", dir.join("run").to_str().unwrap()])
            .env(k, v)
            .output()
            .unwrap();
        assert!(out.status.success(), "{k}={v}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
