//! The `medsegdiff` binary: `info`, and the message when no adapter exists.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_medsegdiff"))
}

#[test]
fn info_prints_adapter_and_limits() {
    let out = bin().arg("info").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "info failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("using:") && stdout.contains("max_compute_workgroups_per_dimension"), "{stdout}");
}

#[test]
fn no_adapter_fails_with_install_hint() {
    // Point the Vulkan loader at a driver list that does not exist: wgpu then sees no adapter.
    let out = bin()
        .arg("info")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "info must fail without an adapter");
    assert!(
        stderr.contains("no GPU adapter found") && stderr.contains("apt-get install -y mesa-vulkan-drivers"),
        "{stderr}"
    );
}

#[test]
fn unknown_adapter_lists_the_ones_found() {
    let out = bin().args(["--adapter", "no-such-gpu", "info"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no-such-gpu") && stderr.contains("adapters found"), "{stderr}");
}
