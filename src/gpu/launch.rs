//! Recording dispatches: the shared encoder and compute pass, the uniform arena, dispatch splitting,
//! submit and readback. See the [module doc](super) for the encoding model.

use std::num::NonZeroU64;

use super::pipeline::KernelKey;
use super::pool::GpuBuffer;
use super::profiler::Profiler;
use super::{Gpu, Shader};

thread_local! {
    /// The first launch this thread skipped because a buffer was over the binding limit, until
    /// [`Gpu::check`] takes it. Per thread, like the autograd tape: the thread that recorded the launch is
    /// the one that uses its results.
    static OVERSIZE: std::cell::RefCell<Option<super::GpuError>> = const { std::cell::RefCell::new(None) };
}

/// The first error wgpu reported outside any call that could return it (out of memory, a lost device, a
/// rejected command), until [`Gpu::check`] takes it. Process-wide: wgpu reports on whichever thread it likes.
static DEVICE_ERROR: std::sync::Mutex<Option<super::GpuError>> = std::sync::Mutex::new(None);

pub(crate) fn record_device_error(e: super::GpuError) {
    DEVICE_ERROR.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_insert(e);
}

/// Keep `e` for this thread's next [`Gpu::check`] unless an earlier error is waiting.
pub(crate) fn record_skip(e: super::GpuError) {
    OVERSIZE.with(|slot| {
        slot.borrow_mut().get_or_insert(e);
    });
}

/// Bytes of uniform slots one submit can hold before the recorder flushes early (16,384 slots of 256 B).
const ARENA_BYTES: u64 = 4 << 20;

/// One kernel launch: which pipeline, its `Params` bytes, its buffers, and how many workgroups.
///
/// `workgroups` is a *linear* count. Every kernel recovers its linear workgroup index as
/// `wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y` and returns early past its own total, so the launcher may
/// fold any count over the 65,535-per-dimension limit into y and z.
pub struct Dispatch<'a> {
    pub shader: Shader,
    pub entry: &'static str,
    pub overrides: &'a [(&'static str, f64)],
    pub params: &'a [u8],
    pub inputs: &'a [&'a GpuBuffer],
    pub outputs: &'a [&'a GpuBuffer],
    /// Read-only operands bound as uniform blocks, after the outputs (see [`UniformBlock`]).
    pub uniforms: &'a [UniformBlock<'a>],
    pub workgroups: u32,
}

/// A 64 KiB ([`UNIFORM_BLOCK_BYTES`](super::UNIFORM_BLOCK_BYTES)) window of a buffer, from `offset` bytes (a
/// multiple of the adapter's `min_uniform_buffer_offset_alignment`, 256 everywhere we know), bound as a uniform
/// block. Why: on CPU drivers a lane-divergent storage read is a loop over the SIMD lanes and a uniform read a
/// branch-free gather, ~9× cheaper (docs/llvmpipe-stores.md); on GPUs a uniform read with the same index across
/// a subgroup is the constant cache's broadcast. The buffer must hold the whole window.
#[derive(Clone, Copy)]
pub struct UniformBlock<'a> {
    pub buffer: &'a GpuBuffer,
    pub offset: u64,
}

/// Split a linear workgroup count into (x, y, z), each at most `max`.
pub fn split_workgroups(n: u32, max: u32) -> (u32, u32, u32) {
    if n <= max {
        return (n, 1, 1);
    }
    let y = n.div_ceil(max);
    if y <= max {
        return (n.div_ceil(y), y, 1);
    }
    let z = y.div_ceil(max);
    (max, max, z.min(max))
}

pub(crate) struct Recorder {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    arena: Vec<u8>,
    arena_buf: wgpu::Buffer,
    align: u64,
    pub(crate) dispatches: u64,
    pub(crate) submits: u64,
    pub(crate) uploads: u64,
}

impl Recorder {
    pub(crate) fn new(device: &wgpu::Device, align: u64) -> Recorder {
        let arena_buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("uniform arena"),
            size: ARENA_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Recorder {
            encoder: None,
            pass: None,
            arena: Vec::new(),
            arena_buf,
            align,
            dispatches: 0,
            submits: 0,
            uploads: 0,
        }
    }

    fn encoder(&mut self, device: &wgpu::Device) -> &mut wgpu::CommandEncoder {
        self.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step") })
        })
    }

    /// End the open compute pass (needed before copies, timestamps or submit).
    fn end_pass(&mut self) {
        self.pass = None;
    }

    fn pass(&mut self, device: &wgpu::Device) -> &mut wgpu::ComputePass<'static> {
        if self.pass.is_none() {
            let p = self
                .encoder(device)
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("ops"), timestamp_writes: None });
            self.pass = Some(p.forget_lifetime());
        }
        self.pass.as_mut().expect("just created")
    }

    fn slot_size(&self, bytes: usize) -> u64 {
        (bytes.max(16) as u64).div_ceil(self.align) * self.align
    }

    fn arena_has_room(&self, bytes: usize) -> bool {
        self.arena.len() as u64 + self.slot_size(bytes) <= ARENA_BYTES
    }

    fn push_params(&mut self, params: &[u8]) -> (u64, u64) {
        let off = self.arena.len() as u64;
        let size = self.slot_size(params.len());
        self.arena.extend_from_slice(params);
        self.arena.resize((off + size) as usize, 0);
        (off, params.len().max(16) as u64)
    }
}

impl Gpu {
    /// Record one dispatch into the shared encoder (see [`Dispatch`]). Nothing runs until [`Gpu::flush`].
    pub fn launch(&self, d: &Dispatch) {
        let key = KernelKey {
            shader: d.shader.name,
            entry: d.entry,
            overrides: d.overrides.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
            n_in: d.inputs.len() as u32,
            n_out: d.outputs.len() as u32,
            n_uniform: d.uniforms.len() as u32,
        };
        // a stand-in for a tensor over max_buffer_size (its BufferTooLarge error is already recorded): skip
        let mut bound = d.inputs.iter().chain(d.outputs.iter()).copied().chain(d.uniforms.iter().map(|u| u.buffer));
        if let Some(b) = bound.find(|b| b.is_stand_in()) {
            record_skip(super::GpuError::BufferTooLarge {
                shape: vec![b.len()],
                bytes: b.bytes(),
                limit: self.limits.max_buffer_size,
                adapter: self.info.name.clone(),
            });
            return;
        }
        // A uniform window past its buffer's end (or misaligned) is a bug in the op that built it, not user input.
        let (block, align) = (super::UNIFORM_BLOCK_BYTES, self.limits.min_uniform_buffer_offset_alignment as u64);
        for u in d.uniforms {
            assert!(
                (u.buffer.offset() + u.offset) % align == 0
                    && u.buffer.offset() + u.offset + block <= u.buffer.raw().size(),
                "{}: uniform block at byte {} of a {}-byte buffer (needs {block} bytes, offset a multiple of {align})",
                key.label(),
                u.buffer.offset() + u.offset,
                u.buffer.raw().size()
            );
        }
        // A buffer over the binding limit would make wgpu panic in create_bind_group. Skip the launch and keep
        // the first such error for `Gpu::check`, which the model and the trainer call: user input (a batch
        // size, an image size) decides tensor sizes, so this is an error, not a panic.
        let limit = self.limits.max_storage_buffer_binding_size;
        // This comes before the empty-launch return: a workgroup count computed from an element count past u32
        // wraps (to 0 or a small number), and only tensors past every binding limit have such counts.
        if let Some(b) = d.inputs.iter().chain(d.outputs.iter()).find(|b| b.bytes() > limit) {
            record_skip(super::GpuError::BindingTooLarge {
                kernel: key.label(),
                bytes: b.bytes(),
                limit,
                adapter: self.info.name.clone(),
            });
            return;
        }
        if d.workgroups == 0 {
            return;
        }
        let pipe = self.pipelines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_create(
            &self.device,
            d.shader,
            &key,
        );
        let mut rec = self.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut prof = self.profiler.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !rec.arena_has_room(d.params.len()) || prof.full() {
            self.flush_locked(&mut rec, &mut prof);
        }
        let (off, size) = rec.push_params(d.params);
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &rec.arena_buf,
                offset: off,
                size: NonZeroU64::new(size),
            }),
        }];
        for (i, b) in d.inputs.iter().chain(d.outputs.iter()).enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: 1 + i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.raw(),
                    offset: b.offset(),
                    size: NonZeroU64::new(b.bytes()),
                }),
            });
        }
        let first = 1 + d.inputs.len() + d.outputs.len();
        for (i, u) in d.uniforms.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: (first + i) as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: u.buffer.raw(),
                    offset: u.buffer.offset() + u.offset,
                    size: NonZeroU64::new(block),
                }),
            });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipe.1,
            entries: &entries,
        });
        let (x, y, z) = split_workgroups(d.workgroups, self.limits.max_compute_workgroups_per_dimension);
        if prof.enabled() {
            // Profiling: one pass per dispatch, with a timestamp at its start and end.
            rec.end_pass();
            let (qs, begin) = prof.next_pair(key.label());
            let enc = rec.encoder(&self.device);
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("profiled"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: qs,
                    beginning_of_pass_write_index: Some(begin),
                    end_of_pass_write_index: Some(begin + 1),
                }),
            });
            pass.set_pipeline(&pipe.0);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x, y, z);
        } else {
            let pass = rec.pass(&self.device);
            pass.set_pipeline(&pipe.0);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x, y, z);
        }
        rec.dispatches += 1;
    }

    /// Submit everything recorded so far as one command buffer. Cheap when nothing is pending.
    pub fn flush(&self) {
        let mut rec = self.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut prof = self.profiler.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.flush_locked(&mut rec, &mut prof);
    }

    fn flush_locked(&self, rec: &mut Recorder, prof: &mut Profiler) {
        rec.end_pass();
        let Some(mut enc) = rec.encoder.take() else { return };
        prof.resolve(&mut enc);
        if !rec.arena.is_empty() {
            self.queue.write_buffer(&rec.arena_buf, 0, &rec.arena);
            rec.arena.clear();
        }
        self.queue.submit([enc.finish()]);
        rec.submits += 1;
        prof.collect(&self.device);
    }

    /// Fill a buffer with NaN (see `GpuBuffer::uninit`): the `fill` kernel, recorded like any op.
    pub(crate) fn poison(&self, buf: &GpuBuffer) {
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        struct FillParams {
            n: u32,
            value: f32,
            _pad: [u32; 2],
        }
        let n = buf.len() as u32;
        let p = FillParams { n, value: f32::NAN, _pad: [0; 2] };
        self.launch(&Dispatch {
            shader: crate::shader!("elementwise/fill.wgsl"),
            entry: "main",
            overrides: &[],
            params: bytemuck::bytes_of(&p),
            inputs: &[],
            outputs: &[buf],
            uniforms: &[],
            workgroups: n.div_ceil(super::WG_1D),
        });
    }

    /// Record "copy `data` into `dst` from byte `offset`" in the shared encoder, through a staging buffer mapped
    /// at creation.
    pub(crate) fn record_upload(&self, dst: &wgpu::Buffer, offset: u64, data: &[f32]) {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let size = (bytes.len() as u64).div_ceil(4) * 4;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("upload staging"),
            size,
            usage: wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: true,
        });
        staging.slice(..size).get_mapped_range_mut().expect("created mapped").copy_from_slice(bytes);
        staging.unmap();
        let mut rec = self.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        rec.end_pass();
        rec.encoder(&self.device).copy_buffer_to_buffer(&staging, 0, dst, offset, size);
        rec.uploads += 1;
    }

    /// Record "copy `src`'s values into `dst`" (buffers or views, `dst` at least as long) in the shared encoder,
    /// in order with the dispatches: a copy command, not a kernel.
    pub fn record_copy(&self, src: &GpuBuffer, dst: &GpuBuffer) {
        assert!(src.len() <= dst.len(), "copy of {} values into a buffer of {}", src.len(), dst.len());
        if src.is_empty() || src.is_stand_in() || dst.is_stand_in() {
            return;
        }
        let mut rec = self.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        rec.end_pass();
        let bytes = (src.len() * 4) as u64;
        rec.encoder(&self.device).copy_buffer_to_buffer(src.raw(), src.offset(), dst.raw(), dst.offset(), bytes);
    }

    /// Copy `bytes` from byte `offset` of `src` to a fresh `MAP_READ` buffer, submit, wait, and return the bytes.
    fn read_bytes(&self, src: &wgpu::Buffer, offset: u64, bytes: u64) -> Vec<u8> {
        let bytes = bytes.div_ceil(4) * 4;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        {
            let mut rec = self.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut prof = self.profiler.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            rec.end_pass();
            rec.encoder(&self.device).copy_buffer_to_buffer(src, offset, &staging, 0, bytes);
            self.flush_locked(&mut rec, &mut prof);
        }
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait();
        // the work is done once `wait` returns; the callback may still be on its way from another thread's poll
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(Ok(())) => {
                let data = slice.get_mapped_range().expect("readback buffer is mapped").to_vec();
                staging.unmap();
                data
            }
            // the device is lost or the copy was rejected: the error is recorded for `Gpu::check`, and the values
            // read are NaN, which nothing uses unchecked (the trainer checks after its loss readback)
            failed => {
                let msg = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "the readback never completed".into(),
                };
                record_device_error(super::GpuError::Lost { adapter: self.info.name.clone(), msg });
                bytemuck::cast_slice(&vec![f32::NAN; (bytes / 4) as usize]).to_vec()
            }
        }
    }

    /// Block until the queue is idle; a poll error (a lost device) is recorded for [`Gpu::check`].
    fn wait(&self) {
        if let Err(e) = self.device.poll(wgpu::PollType::wait_indefinitely()) {
            record_device_error(super::GpuError::Lost { adapter: self.info.name.clone(), msg: e.to_string() });
        }
    }

    /// Download a buffer's f32 values (flushes pending work first).
    pub fn read(&self, buf: &GpuBuffer) -> Vec<f32> {
        if buf.is_empty() {
            return Vec::new();
        }
        if buf.is_stand_in() {
            // a tensor over max_buffer_size: its error is already recorded; it holds nothing
            return vec![f32::NAN; buf.len()];
        }
        let bytes = self.read_bytes(buf.raw(), buf.offset(), buf.bytes());
        bytemuck::pod_collect_to_vec(&bytes[..buf.len() * 4])
    }

    /// Overwrite a buffer's values in place. Flushes first, so every dispatch recorded so far (which may still
    /// read the old values) is submitted before the write, which lands before the next submit.
    pub fn overwrite(&self, buf: &GpuBuffer, data: &[f32]) {
        assert!(data.len() <= buf.len(), "overwrite of {} values into a buffer of {}", data.len(), buf.len());
        if buf.is_stand_in() {
            return; // over max_buffer_size: the error is recorded
        }
        self.flush();
        self.queue.write_buffer(buf.raw(), buf.offset(), bytemuck::cast_slice(data));
    }

    /// Wait until the GPU has finished everything submitted (for wall-clock timing).
    pub fn sync(&self) {
        self.flush();
        self.wait();
    }

    /// The first launch skipped on this thread since its last check because a buffer was over the binding limit (see
    /// [`GpuError::BindingTooLarge`](super::GpuError::BindingTooLarge)) or a tensor over `max_buffer_size` was
    /// asked for ([`GpuError::BufferTooLarge`](super::GpuError::BufferTooLarge)), else the first error wgpu
    /// reported on its own (out of memory, a lost device, a rejected command), as an error. Results computed after
    /// such a skip are garbage, so callers check before they use them (the UNet after each forward, the
    /// trainer before it updates the weights, `medsegdiff bench` before it prints). An op that fails with its
    /// own error after such a skip leaves the skip recorded: the next check on this thread reports it.
    pub fn check(&self) -> Result<(), super::GpuError> {
        if let Some(e) = OVERSIZE.with(|slot| slot.borrow_mut().take()) {
            return Err(e);
        }
        match DEVICE_ERROR.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// (dispatches recorded, submits) since start: `medsegdiff profile` and tests use these.
    pub fn counters(&self) -> (u64, u64) {
        let r = self.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (r.dispatches, r.submits)
    }

    /// The largest tensor asked of the pool since the last call ([`super::PoolStats::largest`]), then reset.
    pub fn take_largest(&self) -> u64 {
        std::mem::take(&mut self.pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).stats.largest)
    }

    pub fn pool_stats(&self) -> super::PoolStats {
        self.pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).stats
    }

    /// Free every buffer parked in the pool.
    pub fn trim_pool(&self) {
        self.pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).trim();
    }

    pub fn pipelines_cached(&self) -> usize {
        self.pipelines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::split_workgroups;

    #[test]
    fn split_covers_count_within_limits() {
        for n in [1u32, 65_535, 65_536, 70_000, 1 << 20, 5_000_000] {
            let (x, y, z) = split_workgroups(n, 65_535);
            assert!(x <= 65_535 && y <= 65_535 && z <= 65_535);
            assert!(x as u64 * y as u64 * z as u64 >= n as u64, "{n}: {x}x{y}x{z}");
        }
    }
}
