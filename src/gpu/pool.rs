//! Size-bucketed buffer pool: a tensor's buffer goes back here when the tensor drops, and the next
//! allocation of the same bucket reuses it, so a training step allocates nothing new after the first.
//!
//! Buckets are powers of two split into four steps (1, 1.25, 1.5, 1.75 × 2^k bytes), so a buffer is at most
//! 25% larger than asked for. Reuse is safe while dispatches that used the old owner are still only
//! recorded: see rule 1 in the [module doc](super).

use std::collections::HashMap;

use super::gpu;

/// Every buffer is usable as input, output, uniform block ([`super::UniformBlock`]), copy source (readback) and
/// copy destination.
pub(crate) const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::UNIFORM)
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Allocation counters, for tests and `medsegdiff profile`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers created on the device so far.
    pub created: u64,
    /// Allocations served from the free lists.
    pub reused: u64,
    /// Bytes held by created buffers (live + free).
    pub bytes_created: u64,
}

#[derive(Default)]
pub(crate) struct BufferPool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    pub(crate) stats: PoolStats,
}

/// Round `bytes` up to its bucket: the next of 1, 1.25, 1.5, 1.75 × 2^k, at least 256 bytes.
pub(crate) fn bucket(bytes: u64) -> u64 {
    let b = bytes.max(256);
    let p = 63 - (b.leading_zeros() as u64); // 2^p <= b < 2^(p+1)
    let base = 1u64 << p;
    if b == base {
        return b;
    }
    let quarter = (base >> 2).max(1);
    base + b.saturating_sub(base).div_ceil(quarter) * quarter
}

impl BufferPool {
    pub(crate) fn take(&mut self, device: &wgpu::Device, bytes: u64) -> wgpu::Buffer {
        let size = bucket(bytes);
        if let Some(buf) = self.free.get_mut(&size).and_then(Vec::pop) {
            self.stats.reused += 1;
            return buf;
        }
        self.stats.created += 1;
        self.stats.bytes_created += size;
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pool"),
            size,
            usage: STORAGE_USAGE,
            mapped_at_creation: false,
        })
    }

    pub(crate) fn give(&mut self, buf: wgpu::Buffer) {
        self.free.entry(buf.size()).or_default().push(buf);
    }

    /// Drop every free buffer (memory pressure, or between benchmarks).
    pub(crate) fn trim(&mut self) {
        self.free.clear();
    }
}

fn poison_requested() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("MEDSEGDIFF_POISON_UNINIT").is_ok_and(|v| v == "1"))
}

/// A storage buffer owned by one tensor, returned to the pool on drop; or a **view**: `len` values at an aligned
/// `offset` of a slab (a buffer made for many tensors, e.g. every parameter of a model), which lives until its
/// last view drops and never enters the pool. `len` is the number of f32 elements the owner uses (a pooled
/// buffer may be larger: its bucket).
pub struct GpuBuffer {
    buf: Option<wgpu::Buffer>,
    /// bytes from the start of the wgpu buffer (0 unless a view)
    offset: u64,
    len: usize,
    /// the slab's id, for views and slabs; None for pooled buffers
    slab: Option<u64>,
}

static NEXT_SLAB: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Views start on multiples of this many f32 values (256 bytes: every adapter's storage offset alignment).
pub const VIEW_ALIGN: usize = 64;

impl GpuBuffer {
    /// A pooled buffer for `len` f32 values. Contents are undefined: kernels must write every element.
    pub fn uninit(len: usize) -> GpuBuffer {
        let g = gpu();
        let bytes = (len.max(1) * 4) as u64;
        let buf = g.pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take(&g.device, bytes);
        let out = GpuBuffer { buf: Some(buf), offset: 0, len, slab: None };
        // In unit tests (or with MEDSEGDIFF_POISON_UNINIT=1) fill new outputs with NaN, so a kernel that skips
        // elements cannot pass by finding the right answer left in a recycled buffer by an earlier run. A buffer
        // over the binding limit cannot be bound by any kernel (the fill included), so it is left as it is.
        if (cfg!(test) || poison_requested()) && bytes <= g.limits.max_storage_buffer_binding_size {
            g.poison(&out);
        }
        out
    }

    /// A slab of `len` f32 values, zeroed (wgpu zero-initialises new buffers), not pooled: [`GpuBuffer::view`]s
    /// of it share its memory.
    pub fn slab(len: usize) -> GpuBuffer {
        let g = gpu();
        let buf = g.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("slab"),
            size: (len.max(1) * 4).div_ceil(256) as u64 * 256,
            usage: STORAGE_USAGE,
            mapped_at_creation: false,
        });
        let id = NEXT_SLAB.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        GpuBuffer { buf: Some(buf), offset: 0, len, slab: Some(id) }
    }

    /// `len` values of this slab (or of the slab this view is in) from value `start` of the slab, a multiple
    /// of [`VIEW_ALIGN`]. None for a pooled buffer, a misaligned start, or a range past the slab's end.
    pub fn view(&self, start: usize, len: usize) -> Option<GpuBuffer> {
        let slab = self.slab?;
        let raw = self.raw();
        let offset = (start * 4) as u64;
        if !start.is_multiple_of(VIEW_ALIGN) || offset + (len.max(1) * 4) as u64 > raw.size() {
            return None;
        }
        Some(GpuBuffer { buf: Some(raw.clone()), offset, len, slab: Some(slab) })
    }

    /// (slab id, first value) when this is a slab or a view of one.
    pub fn slab_slot(&self) -> Option<(u64, usize)> {
        self.slab.map(|id| (id, (self.offset / 4) as usize))
    }

    /// A pooled buffer holding `data`. The values travel through a small staging buffer and a copy recorded in
    /// the shared encoder, so the write is ordered after every dispatch already recorded (rule 3 of the module
    /// doc: `queue.write_buffer` into a pooled buffer could overwrite values a recorded dispatch still reads).
    pub fn from_slice(data: &[f32]) -> GpuBuffer {
        let buf = GpuBuffer::uninit(data.len());
        buf.upload(data);
        buf
    }

    /// Record "write `data` into this buffer (or view)", ordered with every recorded dispatch, as `from_slice`.
    pub fn upload(&self, data: &[f32]) {
        assert!(data.len() <= self.len, "upload of {} values into a buffer of {}", data.len(), self.len);
        if !data.is_empty() {
            gpu().record_upload(self.raw(), self.offset, data);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn raw(&self) -> &wgpu::Buffer {
        self.buf.as_ref().expect("buffer present until drop")
    }

    /// Where the owner's values start in [`GpuBuffer::raw`], in bytes (0 unless a view).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes the owner uses (not the bucket size).
    pub fn bytes(&self) -> u64 {
        (self.len.max(1) * 4) as u64
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if self.slab.is_some() {
            return; // a slab's memory goes when its last view's handle does
        }
        if let Some(b) = self.buf.take() {
            if let Ok(mut p) = gpu().pool.lock() {
                p.give(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn uninit_buffers_are_nan_in_tests() {
        let t = crate::Tensor::uninit(&[300]);
        assert!(t.to_vec().iter().all(|v| v.is_nan()), "unit tests rely on poisoned outputs");
    }

    #[test]
    fn buckets_round_up_by_at_most_a_quarter() {
        assert_eq!(bucket(1), 256);
        assert_eq!(bucket(256), 256);
        assert_eq!(bucket(257), 320);
        assert_eq!(bucket(1024), 1024);
        assert_eq!(bucket(1025), 1280);
        assert_eq!(bucket(1800), 2048);
        for n in [300u64, 5_000, 123_457, 9_999_999] {
            let b = bucket(n);
            assert!(b >= n && (b as f64) <= n as f64 * 1.25 + 64.0, "{n} -> {b}");
        }
    }
}
