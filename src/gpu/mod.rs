//! The GPU runtime: everything that touches wgpu lives here, and nothing model-specific does.
//!
//! The surface is small on purpose (about as small as tinygrad's WebGPU backend): **alloc** (a size-bucketed
//! `pool`), **copy in / copy out** ([`GpuBuffer::from_slice`], [`Gpu::read`]), **compile** (the `pipeline` cache,
//! keyed by shader + entry point + override constants) and **launch** ([`Gpu::launch`], which binds buffers and
//! a small uniform `Params` block, and splits workgroup counts above 65,535 over y and z).
//!
//! ## The encoding model
//! Ops do not run when they are called: each launch *records* a dispatch into one shared command encoder,
//! inside one open compute pass. Nothing reaches the GPU until [`Gpu::flush`] submits the encoder, which
//! happens when the host must see data ([`Gpu::read`]), when the uniform arena is full, or when a caller
//! (the training loop, once per step) asks for it. So a training step is one `submit`, and the host reads
//! back only the loss. Three rules keep this correct:
//! 1. GPU work runs in recording order. wgpu inserts the barriers between dispatches of one pass that read
//!    what an earlier dispatch wrote, so a buffer handed back to the pool can be reused by the next op
//!    while older dispatches that used it are still only recorded.
//! 2. Per-dispatch uniforms go into a host-side arena (one 256-byte-aligned slot each) that is written to
//!    the GPU with a single `write_buffer` just before the submit. (`queue.write_buffer` is ordered before
//!    the next submit, not between dispatches of one encoder, so one shared uniform buffer rewritten per
//!    dispatch would be wrong.)
//! 3. Uploads never `queue.write_buffer` into a pooled buffer (the write would land before recorded
//!    dispatches that still read the buffer's old contents); they fill a staging buffer mapped at creation and
//!    record a copy into a pooled buffer, in order with everything else.
//!
//! With profiling on ([`Gpu::set_profiling`]) every dispatch gets its own pass with timestamp writes, and
//! [`Gpu::take_profile`] returns per-kernel GPU times (ratchet's profiler, on wgpu query sets).

mod device;
mod launch;
mod pipeline;
mod pool;
mod profiler;
pub(crate) mod specialize;

pub use device::{format_summary, AdapterSummary, Gpu, GpuError, ADAPTER_ENV};
pub use launch::{split_workgroups, Dispatch, UniformBlock};
pub use pipeline::{kernel_label, KernelKey, Shader};
pub use pool::{GpuBuffer, PoolStats, VIEW_ALIGN};
pub use profiler::{KernelTime, Profile};

/// Size of every uniform-block operand ([`UniformBlock`]): 64 KiB, the uniform binding size WebGPU guarantees on
/// every adapter. A shader declares it as `var<uniform> name: array<vec4<f32>, 4096>`.
pub const UNIFORM_BLOCK_BYTES: u64 = 65_536;

/// Threads per workgroup used by the 1-D kernels (elementwise, fills).
pub const WG_1D: u32 = 256;

/// The process-wide GPU. Initialised on first use from `MEDSEGDIFF_ADAPTER` (see [`Gpu::init`]).
///
/// # Panics
/// When no adapter can be found, with the message that says how to install one. The library's tests rely
/// on this: they fail, never skip, on a machine without a Vulkan driver. The CLI calls [`Gpu::init`] first
/// and reports the same message as an error instead.
#[track_caller]
pub fn gpu() -> &'static Gpu {
    match Gpu::init(None) {
        Ok(g) => g,
        Err(e) => panic!("{e}"),
    }
}

/// `ceil(n / d)` for workgroup counts.
pub const fn div_ceil(n: u32, d: u32) -> u32 {
    n.div_ceil(d)
}
