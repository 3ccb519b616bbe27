//! wgpu's default for an error outside any call that returns it (out of memory, a rejected command, a lost
//! device) is to panic. Ours records the first one for `Gpu::check`, which returns it as an error. (Its own
//! test binary: the recorded error is process-wide, and another test's check could take it.)

#[test]
fn an_error_wgpu_reports_on_its_own_is_an_error_at_check_not_a_panic() {
    let g = medsegdiff::gpu::gpu();
    g.check().expect("nothing recorded yet");
    // a buffer past max_buffer_size made straight on the device (the pool would make a stand-in instead)
    let _ = g.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("deliberately too large"),
        size: g.limits.max_buffer_size + 256,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let err = g.check().expect_err("the error was recorded").to_string();
    assert!(err.contains("wgpu reported an error") && err.contains(&g.info.name), "{err}");
    g.check().expect("reported once");
}
