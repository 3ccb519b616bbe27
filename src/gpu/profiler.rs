//! Per-kernel GPU time from timestamp queries (ratchet's `profiler.rs`): when profiling is on, each dispatch
//! runs in its own compute pass with a timestamp at the start and end; after each submit the pairs are
//! resolved, read back and summed per kernel label.

use std::collections::HashMap;

const QUERIES: u32 = 4096; // 2048 dispatches per submit while profiling

/// Total GPU time of one kernel label.
#[derive(Debug, Clone, Default)]
pub struct KernelTime {
    pub label: String,
    pub count: u64,
    pub total_ns: f64,
}

/// Per-kernel table, sorted by total time (largest first).
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub kernels: Vec<KernelTime>,
}

impl Profile {
    pub fn total_ns(&self) -> f64 {
        self.kernels.iter().map(|k| k.total_ns).sum()
    }

    /// The table `medsegdiff profile` prints: count, total, average, share.
    pub fn table(&self) -> String {
        let total = self.total_ns().max(1.0);
        let mut s = format!("{:<64} {:>6} {:>11} {:>10} {:>6}\n", "kernel", "count", "total ms", "avg us", "share");
        for k in &self.kernels {
            s.push_str(&format!(
                "{:<64} {:>6} {:>11.3} {:>10.1} {:>5.1}%\n",
                k.label,
                k.count,
                k.total_ns / 1e6,
                k.total_ns / 1e3 / k.count as f64,
                100.0 * k.total_ns / total
            ));
        }
        s.push_str(&format!(
            "{:<64} {:>6} {:>11.3}\n",
            "total",
            self.kernels.iter().map(|k| k.count).sum::<u64>(),
            total / 1e6
        ));
        s
    }
}

pub(crate) struct Profiler {
    supported: bool,
    on: bool,
    period_ns: f64,
    set: Option<wgpu::QuerySet>,
    resolve_buf: Option<wgpu::Buffer>,
    read_buf: Option<wgpu::Buffer>,
    pending: Vec<String>,
    resolved: bool,
    acc: HashMap<String, (u64, f64)>,
    /// GPU time of every profiled dispatch, in recording order (for `medsegdiff trace`).
    timeline: Vec<f64>,
}

impl Profiler {
    pub(crate) fn new(device: &wgpu::Device, supported: bool, period_ns: f32) -> Profiler {
        let (set, resolve_buf, read_buf) = if supported {
            let set = device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: QUERIES,
            });
            let size = QUERIES as u64 * 8;
            let r = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps resolve"),
                size,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let m = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps read"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (Some(set), Some(r), Some(m))
        } else {
            (None, None, None)
        };
        Profiler {
            supported,
            on: false,
            period_ns: period_ns as f64,
            set,
            resolve_buf,
            read_buf,
            pending: Vec::new(),
            resolved: false,
            acc: HashMap::new(),
            timeline: Vec::new(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.on
    }

    pub(crate) fn full(&self) -> bool {
        self.on && (self.pending.len() as u32 + 1) * 2 > QUERIES
    }

    pub(crate) fn next_pair(&mut self, label: String) -> (&wgpu::QuerySet, u32) {
        let i = self.pending.len() as u32 * 2;
        self.pending.push(label);
        (self.set.as_ref().expect("profiling only when supported"), i)
    }

    pub(crate) fn resolve(&mut self, enc: &mut wgpu::CommandEncoder) {
        if self.pending.is_empty() {
            return;
        }
        let n = self.pending.len() as u32 * 2;
        let (set, rb, mb) =
            (self.set.as_ref().unwrap(), self.resolve_buf.as_ref().unwrap(), self.read_buf.as_ref().unwrap());
        enc.resolve_query_set(set, 0..n, rb, 0);
        enc.copy_buffer_to_buffer(rb, 0, mb, 0, n as u64 * 8);
        self.resolved = true;
    }

    pub(crate) fn collect(&mut self, device: &wgpu::Device) {
        if !self.resolved {
            return;
        }
        self.resolved = false;
        let mb = self.read_buf.as_ref().unwrap();
        let n = self.pending.len() * 2;
        let slice = mb.slice(..(n as u64 * 8));
        slice.map_async(wgpu::MapMode::Read, |r| r.expect("map timestamps"));
        device.poll(wgpu::PollType::wait_indefinitely()).expect("device lost");
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&slice.get_mapped_range().expect("mapped"));
        mb.unmap();
        for (i, label) in self.pending.drain(..).enumerate() {
            let dt = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * self.period_ns;
            self.timeline.push(dt);
            let e = self.acc.entry(label).or_default();
            e.0 += 1;
            e.1 += dt;
        }
    }
}

impl super::Gpu {
    /// Whether this adapter can time kernels (`TIMESTAMP_QUERY`).
    pub fn has_timestamps(&self) -> bool {
        self.profiler.lock().unwrap_or_else(std::sync::PoisonError::into_inner).supported
    }

    /// Turn per-kernel timing on or off (flushes first). Returns false when the adapter has no timestamps.
    pub fn set_profiling(&self, on: bool) -> bool {
        self.flush();
        let mut p = self.profiler.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        p.on = on && p.supported;
        p.on == on
    }

    /// Per-kernel times gathered since the last call (flushes first).
    pub fn take_profile(&self) -> Profile {
        self.flush();
        let mut p = self.profiler.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut kernels: Vec<KernelTime> =
            p.acc.drain().map(|(label, (count, total_ns))| KernelTime { label, count, total_ns }).collect();
        kernels.sort_by(|a, b| b.total_ns.total_cmp(&a.total_ns));
        Profile { kernels }
    }

    /// GPU time (ns) of each dispatch profiled since the last call, in recording order (flushes first).
    pub fn take_timeline(&self) -> Vec<f64> {
        self.flush();
        std::mem::take(&mut self.profiler.lock().unwrap_or_else(std::sync::PoisonError::into_inner).timeline)
    }
}
