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
    /// Bytes of all buffers created so far (live, parked or since dropped).
    pub bytes_created: u64,
    /// Bytes parked in the free lists now.
    pub bytes_free: u64,
    /// Bytes handed out and not yet returned now, and the most that ever were at once.
    pub bytes_live: u64,
    pub peak_live: u64,
    /// Parked buffers dropped to keep the free lists under their cap ([`BufferPool::cap`]).
    pub evicted: u64,
    /// The largest single tensor asked of the pool so far, in bytes: what `model::memory` estimates ahead of a
    /// run. Slabs and self-sizing scratch (`Tensor::scratch`) are not included.
    pub largest: u64,
}

/// The free lists of one bucket size and when that size was last asked for or returned.
#[derive(Default)]
struct Bucket {
    bufs: Vec<wgpu::Buffer>,
    last_used: u64,
}

/// The free lists never hold more than the peak live working set or this, whichever is larger.
pub(crate) const MIN_FREE_CAP: u64 = 256 << 20;

#[derive(Default)]
pub(crate) struct BufferPool {
    free: HashMap<u64, Bucket>,
    /// ticks once per take or give: buckets are evicted least recently used first
    clock: u64,
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

/// `bytes` rounded up to whole 256-byte blocks (every buffer we make is).
fn blocks(bytes: u64) -> u64 {
    bytes.div_ceil(256) * 256
}

/// The largest buffer the adapter allows, in whole 256-byte blocks.
fn largest_buffer(max_buffer_size: u64) -> u64 {
    max_buffer_size & !255
}

impl BufferPool {
    /// A buffer of at least `bytes` (at most `max`, the adapter's largest buffer, rounded down to 256: a bucket
    /// past it shrinks to it); `counted`: whether it may set [`PoolStats::largest`].
    pub(crate) fn take(&mut self, device: &wgpu::Device, bytes: u64, max: u64, counted: bool) -> wgpu::Buffer {
        let size = bucket(bytes).min(largest_buffer(max)).max(blocks(bytes));
        if counted {
            self.stats.largest = self.stats.largest.max(bytes);
        }
        self.clock += 1;
        self.stats.bytes_live += size;
        self.stats.peak_live = self.stats.peak_live.max(self.stats.bytes_live);
        let b = self.free.entry(size).or_default();
        b.last_used = self.clock;
        if let Some(buf) = b.bufs.pop() {
            self.stats.reused += 1;
            self.stats.bytes_free -= size;
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
        let size = buf.size();
        self.clock += 1;
        self.stats.bytes_live = self.stats.bytes_live.saturating_sub(size);
        self.stats.bytes_free += size;
        let b = self.free.entry(size).or_default();
        b.last_used = self.clock;
        b.bufs.push(buf);
        if self.stats.bytes_free > self.cap() {
            self.evict();
        }
    }

    /// The most the free lists may hold: the peak live working set (so a training step, which frees and
    /// re-takes the same sizes every step, never loses its buffers), at least [`MIN_FREE_CAP`]. A run whose
    /// sizes change (sampling images of many sizes) parks buffers of sizes it no longer asks for; past the
    /// cap they are dropped, least recently used bucket first.
    pub(crate) fn cap(&self) -> u64 {
        self.stats.peak_live.max(MIN_FREE_CAP)
    }

    fn evict(&mut self) {
        let mut order: Vec<(u64, u64)> = self.free.iter().map(|(&size, b)| (b.last_used, size)).collect();
        order.sort_unstable();
        let cap = self.cap();
        for (_, size) in order {
            let b = self.free.get_mut(&size).expect("bucket listed above");
            while self.stats.bytes_free > cap {
                let Some(buf) = b.bufs.pop() else { break };
                self.stats.bytes_free -= size;
                self.stats.evicted += 1;
                drop(buf);
            }
            if b.bufs.is_empty() {
                self.free.remove(&size);
            }
            if self.stats.bytes_free <= cap {
                break;
            }
        }
    }

    /// Drop every free buffer (memory pressure, or between benchmarks).
    pub(crate) fn trim(&mut self) {
        self.free.clear();
        self.stats.bytes_free = 0;
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
        GpuBuffer::uninit_shaped(len, &[len], true)
    }

    /// [`GpuBuffer::uninit`] for a tensor of `shape` (`len` values), which names it if it cannot exist.
    /// `counted`: false for scratch an op sizes to the adapter's limits (see `Tensor::scratch`), which
    /// [`PoolStats::largest`] leaves out.
    pub fn uninit_shaped(len: usize, shape: &[usize], counted: bool) -> GpuBuffer {
        let g = gpu();
        let bytes = (len.max(1) as u64).saturating_mul(4);
        if let Some(b) = GpuBuffer::stand_in(len, bytes, shape) {
            return b;
        }
        let buf = g.pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take(
            &g.device,
            bytes,
            g.limits.max_buffer_size,
            counted,
        );
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
        if let Some(b) = GpuBuffer::stand_in(len, (len.max(1) as u64).saturating_mul(4), &[len]) {
            return b;
        }
        let buf = g.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("slab"),
            size: blocks(len.max(1) as u64 * 4),
            usage: STORAGE_USAGE,
            mapped_at_creation: false,
        });
        let id = NEXT_SLAB.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        GpuBuffer { buf: Some(buf), offset: 0, len, slab: Some(id) }
    }

    /// A buffer of `bytes` cannot be made when its 256-byte blocks are over the adapter's `max_buffer_size`
    /// (wgpu would panic): record the error for [`crate::gpu::Gpu::check`] and return a small stand-in that every
    /// launch, copy and readback skips. None when the real buffer can be made (the pool's bucket shrinks to the
    /// limit when it would pass it).
    fn stand_in(len: usize, bytes: u64, shape: &[usize]) -> Option<GpuBuffer> {
        let g = gpu();
        let limit = g.limits.max_buffer_size;
        if blocks(bytes) <= largest_buffer(limit) {
            return None;
        }
        super::launch::record_skip(super::GpuError::BufferTooLarge {
            shape: shape.to_vec(),
            bytes,
            limit,
            adapter: g.info.name.clone(),
        });
        let buf = g.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("stand-in for a buffer over max_buffer_size"),
            size: 256,
            usage: STORAGE_USAGE,
            mapped_at_creation: false,
        });
        let id = NEXT_SLAB.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(GpuBuffer { buf: Some(buf), offset: 0, len, slab: Some(id) })
    }

    /// Whether this is a stand-in for a buffer the adapter cannot hold (its error is recorded).
    pub fn is_stand_in(&self) -> bool {
        self.offset + self.bytes() > self.raw().size()
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
        if !data.is_empty() && !self.is_stand_in() {
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
        (self.len.max(1) as u64).saturating_mul(4)
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
    use super::{bucket, BufferPool, MIN_FREE_CAP};

    #[test]
    fn free_lists_stay_under_their_cap_and_a_repeating_working_set_keeps_its_buffers() {
        // a pool of its own (the process-wide one is shared with other tests), buffers never used by a command
        let (dev, max) = (&crate::gpu::gpu().device, crate::gpu::gpu().limits.max_buffer_size);
        let mut pool = BufferPool::default();
        // a training step: the same 12 sizes taken and returned every step; nothing is created after the first
        let step = |pool: &mut BufferPool| {
            let bufs: Vec<_> = (1..=12u64).map(|k| pool.take(dev, (k * (24 << 20)).min(max), max, true)).collect();
            bufs.into_iter().for_each(|b| pool.give(b));
        };
        step(&mut pool);
        let first = pool.stats;
        for _ in 0..5 {
            step(&mut pool);
        }
        assert_eq!((pool.stats.created, pool.stats.evicted), (first.created, 0), "{:?}", pool.stats);
        assert!(first.peak_live > MIN_FREE_CAP, "the working set is over the floor, so the cap is the peak");
        // a sampling run over images of 300 sizes, one at a time: without a cap the free lists would grow to
        // ~45 GB; they stay under the cap, dropping the least recently used sizes
        for k in (1..=300u64).filter(|k| k * (1 << 20) + 4096 <= max) {
            let b = pool.take(dev, k * (1 << 20) + 4096, max, true);
            pool.give(b);
            assert!(pool.stats.bytes_free <= pool.cap(), "after size {k}: {:?}", pool.stats);
        }
        assert!(pool.stats.evicted > 0, "{:?}", pool.stats);
        // the training step's buckets were the least recently used: its next step re-creates buffers, and
        // the free lists still respect the cap
        step(&mut pool);
        assert!(pool.stats.bytes_free <= pool.cap());
    }

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
