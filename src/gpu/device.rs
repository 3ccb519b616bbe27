//! Adapter selection, device creation and the process-wide [`Gpu`] value.

use std::sync::{Mutex, OnceLock};

use super::launch::Recorder;
use super::pipeline::PipelineCache;
use super::pool::BufferPool;
use super::profiler::Profiler;

/// What can go wrong before the first kernel runs.
#[derive(Debug, thiserror::Error, Clone)]
pub enum GpuError {
    #[error(
        "no GPU adapter found (wgpu saw no Vulkan/Metal/DX12 device).\n\
         ---> HINT: on Debian/Ubuntu install the software Vulkan driver: \
         `sudo apt-get install -y mesa-vulkan-drivers`, or install your GPU's Vulkan driver."
    )]
    NoAdapter,
    #[error("no adapter matches {selector:?} (from --adapter or MEDSEGDIFF_ADAPTER); adapters found:\n{found}")]
    NoMatch { selector: String, found: String },
    #[error("request_device failed on {adapter}: {msg}")]
    Device { adapter: String, msg: String },
    #[error("the GPU was already initialised with adapter {current:?}; cannot switch to {requested:?}")]
    AlreadyInitialised { current: String, requested: String },
    /// A launch would have bound a buffer larger than the adapter allows; the launch was skipped (see
    /// [`Gpu::check`]).
    #[error(
        "{kernel}: a tensor of {bytes} bytes ({mib:.2} MiB) is larger than this adapter's storage-binding \
         limit of {limit} bytes ({limit_mib} MiB) on {adapter}; use a smaller --batch-size or image size, or \
         an adapter with a larger limit (`medsegdiff info` lists them)",
        mib = *bytes as f64 / 1048576.0, limit_mib = limit >> 20
    )]
    BindingTooLarge { kernel: String, bytes: u64, limit: u64, adapter: String },
    /// A tensor larger than the adapter's largest buffer; a stand-in was made instead and every launch that
    /// binds it is skipped (see [`Gpu::check`]).
    #[error(
        "a tensor of shape {shape:?} needs {bytes} bytes ({mib:.2} MiB), more than this adapter's max_buffer_size \
         of {limit} bytes ({limit_mib} MiB) on {adapter}; use a smaller --batch-size or image size, or an adapter \
         with a larger limit (`medsegdiff info` lists them)",
        mib = *bytes as f64 / 1048576.0, limit_mib = limit >> 20
    )]
    BufferTooLarge { shape: Vec<usize>, bytes: u64, limit: u64, adapter: String },
    /// The driver ran out of memory (wgpu's uncaptured out-of-memory error).
    #[error(
        "the GPU ran out of memory on {adapter}: {msg}\n---> HINT: use a smaller --batch-size or image size, or \
         close other programs that use the GPU"
    )]
    OutOfMemory { adapter: String, msg: String },
    /// wgpu rejected a command (a validation or internal error): a bug here, not in the user's input.
    #[error("wgpu reported an error on {adapter} (a bug in medsegdiff; please report it with this message): {msg}")]
    Runtime { adapter: String, msg: String },
    /// The device was lost (driver reset, GPU removed, a hang the OS killed).
    #[error(
        "the GPU device {adapter} was lost ({msg}): the driver reset or the GPU went away. Results since the last \
         check are gone; checkpoints already written are whole: continue with --resume"
    )]
    Lost { adapter: String, msg: String },
}

/// Name, backend, type and the limits that matter for compute, as `medsegdiff info` prints them.
#[derive(Debug, Clone)]
pub struct AdapterSummary {
    pub index: usize,
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

/// The device, its queue, and the three caches every op goes through (pool, pipelines, recorder).
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub(crate) pool: Mutex<BufferPool>,
    pub(crate) pipelines: Mutex<PipelineCache>,
    pub(crate) rec: Mutex<Recorder>,
    pub(crate) profiler: Mutex<Profiler>,
    /// Index in [`Gpu::list_adapters`] when chosen by selector.
    index: Option<usize>,
}

static GPU: OnceLock<Result<Gpu, GpuError>> = OnceLock::new();

/// Environment variable naming the adapter: an index from `medsegdiff info`, or part of its name.
pub const ADAPTER_ENV: &str = "MEDSEGDIFF_ADAPTER";

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn summarize(i: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let info = a.get_info();
    AdapterSummary {
        index: i,
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
    }
}

impl Gpu {
    /// Every adapter wgpu can see, in the order `--adapter N` indexes them.
    pub fn list_adapters() -> Vec<AdapterSummary> {
        let inst = instance();
        let adapters = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
        adapters.iter().enumerate().map(|(i, a)| summarize(i, a)).collect()
    }

    /// Initialise the process-wide GPU once. `selector` (or else `MEDSEGDIFF_ADAPTER`) picks an adapter by
    /// index or by a case-insensitive part of its name; without one, wgpu's high-performance choice is used.
    pub fn init(selector: Option<&str>) -> Result<&'static Gpu, GpuError> {
        let requested = selector.map(str::to_string);
        let res = GPU.get_or_init(|| {
            let sel = requested.clone().or_else(|| std::env::var(ADAPTER_ENV).ok()).filter(|s| !s.is_empty());
            Self::create(sel.as_deref())
        });
        match res {
            // A later call may name the adapter already in use (by index or name), but not another one.
            Ok(g) => match selector {
                Some(r) if !g.matches(r) => {
                    Err(GpuError::AlreadyInitialised { current: g.info.name.clone(), requested: r.into() })
                }
                _ => Ok(g),
            },
            Err(e) => Err(e.clone()),
        }
    }

    fn matches(&self, sel: &str) -> bool {
        match sel.parse::<usize>() {
            Ok(i) => self.index == Some(i),
            Err(_) => self.info.name.to_lowercase().contains(&sel.to_lowercase()),
        }
    }

    fn create(selector: Option<&str>) -> Result<Gpu, GpuError> {
        let inst = instance();
        let adapters = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
        if adapters.is_empty() {
            return Err(GpuError::NoAdapter);
        }
        let mut index = None;
        let adapter = match selector {
            None => pollster::block_on(inst.request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            }))
            .map_err(|_| GpuError::NoAdapter)?,
            Some(sel) => {
                let found = adapters
                    .iter()
                    .enumerate()
                    .map(|(i, a)| format_summary(&summarize(i, a)))
                    .collect::<Vec<_>>()
                    .join("\n");
                let idx = match sel.parse::<usize>() {
                    Ok(i) if i < adapters.len() => Some(i),
                    _ => adapters.iter().position(|a| a.get_info().name.to_lowercase().contains(&sel.to_lowercase())),
                };
                match idx {
                    Some(i) => {
                        index = Some(i);
                        adapters.into_iter().nth(i).expect("index checked above")
                    }
                    None => return Err(GpuError::NoMatch { selector: sel.into(), found }),
                }
            }
        };
        let info = adapter.get_info();
        let alimits = adapter.limits();
        // Ask for the adapter's own storage/buffer limits (the defaults cap bindings at 128 MiB), for timestamps
        // and for subgroup operations when present, nothing else: every kernel has a core-WGSL path, and the
        // subgroup rungs (matmul v7) run only where SUBGROUP was granted.
        let features = adapter.features()
            & (wgpu::Features::TIMESTAMP_QUERY
                | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
                | wgpu::Features::SUBGROUP);
        let mut limits = wgpu::Limits::default().using_resolution(alimits.clone());
        limits.max_storage_buffer_binding_size = alimits.max_storage_buffer_binding_size;
        limits.max_buffer_size = alimits.max_buffer_size;
        limits.max_storage_buffers_per_shader_stage = alimits.max_storage_buffers_per_shader_stage.min(16);
        limits.max_compute_workgroup_storage_size = alimits.max_compute_workgroup_storage_size;
        limits.max_compute_invocations_per_workgroup = alimits.max_compute_invocations_per_workgroup;
        limits.max_compute_workgroup_size_x = alimits.max_compute_workgroup_size_x;
        limits.max_compute_workgroup_size_y = alimits.max_compute_workgroup_size_y;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("medsegdiff"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device { adapter: info.name.clone(), msg: e.to_string() })?;
        // wgpu's default for errors it cannot return (out of memory, validation, a lost device) is a panic: keep
        // the first one for `Gpu::check` instead, which turns it into an error the user can act on
        let name = info.name.clone();
        device.on_uncaptured_error(std::sync::Arc::new(move |e: wgpu::Error| {
            let adapter = name.clone();
            super::launch::record_device_error(match e {
                wgpu::Error::OutOfMemory { source } => GpuError::OutOfMemory { adapter, msg: source.to_string() },
                other => GpuError::Runtime { adapter, msg: error_chain(&other) },
            })
        }));
        let name = info.name.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                super::launch::record_device_error(GpuError::Lost { adapter: name.clone(), msg });
            }
        });
        let align = limits.min_uniform_buffer_offset_alignment as u64;
        let rec = Recorder::new(&device, align);
        let profiler =
            Profiler::new(&device, features.contains(wgpu::Features::TIMESTAMP_QUERY), queue.get_timestamp_period());
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            features,
            pool: Mutex::new(BufferPool::default()),
            pipelines: Mutex::new(PipelineCache::default()),
            rec: Mutex::new(rec),
            profiler: Mutex::new(profiler),
            index,
        })
    }

    /// One line: name, backend, type, driver.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?}, driver {} {})",
            self.info.name, self.info.backend, self.info.device_type, self.info.driver, self.info.driver_info
        )
    }

    /// The limits and features that matter for compute, one per line.
    pub fn describe_limits(&self) -> String {
        let l = &self.limits;
        let mut s = String::new();
        let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<42} {v}\n"));
        line("max_compute_workgroups_per_dimension", l.max_compute_workgroups_per_dimension.to_string());
        line("max_compute_invocations_per_workgroup", l.max_compute_invocations_per_workgroup.to_string());
        line(
            "max_compute_workgroup_size (x, y, z)",
            format!(
                "({}, {}, {})",
                l.max_compute_workgroup_size_x, l.max_compute_workgroup_size_y, l.max_compute_workgroup_size_z
            ),
        );
        line("max_compute_workgroup_storage_size", format!("{} B", l.max_compute_workgroup_storage_size));
        line("max_storage_buffer_binding_size", format!("{} MiB", l.max_storage_buffer_binding_size >> 20));
        line("max_buffer_size", format!("{} MiB", l.max_buffer_size >> 20));
        line("max_storage_buffers_per_shader_stage", l.max_storage_buffers_per_shader_stage.to_string());
        line("min_uniform_buffer_offset_alignment", l.min_uniform_buffer_offset_alignment.to_string());
        line("timestamp queries", self.features.contains(wgpu::Features::TIMESTAMP_QUERY).to_string());
        let sg = match self.subgroup_lanes() {
            Some(_) => format!("yes, {}..{} lanes", self.info.subgroup_min_size, self.info.subgroup_max_size),
            None => "no".to_string(),
        };
        line("subgroup operations", sg);
        s
    }

    /// The lanes a subgroup kernel may count on (the adapter's smallest subgroup), or None where the device has
    /// no subgroup operations: kernels that need them fall back to their core-WGSL twins.
    pub fn subgroup_lanes(&self) -> Option<u32> {
        self.features.contains(wgpu::Features::SUBGROUP).then_some(self.info.subgroup_min_size.max(1))
    }
}

/// An error and its sources, one line ("Validation Error" alone says nothing).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// One adapter as a line of `medsegdiff info`.
pub fn format_summary(s: &AdapterSummary) -> String {
    format!("  [{}] {} ({}, {}, driver {})", s.index, s.name, s.backend, s.device_type, s.driver)
}
