//! Pipeline cache: one `ComputePipeline` per (shader file, entry point, override constants).
//!
//! Every cached object comes from `get_or_create(key)` with a plain hashable key, and the key's text is the
//! wgpu label, so a validation error names the kernel (ratchet's `KernelKey`). Bind group layouts are explicit
//! and shared by all kernels with the same binding shape: binding 0 is the `Params` uniform, then the inputs
//! (`var<storage, read>`), then the outputs (`var<storage, read_write>`), then the uniform blocks
//! (`var<uniform>`, [`super::UNIFORM_BLOCK_BYTES`] each), in that order. A shader that marks loops
//! `// unroll` is compiled once per override values, specialised first (`super::specialize`); others once.

use std::collections::HashMap;
use std::sync::Arc;

/// A WGSL file compiled into the binary: `name` is its path under `shaders/`, `source` its text.
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

/// `shader!("elementwise/binary.wgsl")` embeds `shaders/elementwise/binary.wgsl`; `shader!("fft/fft_v4_mixed.wgsl",
/// "fft/common.wgsl")` appends the shared file(s) after it (WGSL declarations may come in any order), so a
/// family's rungs can share helpers while each file starts with its own header. Line numbers in a compile error
/// count from the first file's top.
#[macro_export]
macro_rules! shader {
    ($path:literal $(, $shared:literal)*) => {
        $crate::gpu::Shader {
            name: $path,
            source: concat!(
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $path))
                $(, "\n", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $shared)))*
            ),
        }
    };
}

/// What identifies a pipeline. Override constants are WGSL `override` values, e.g. `("OP", 3.0)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelKey {
    pub shader: &'static str,
    pub entry: &'static str,
    pub overrides: Vec<(&'static str, u64)>, // (name, f64 bits): f64 is not Hash
    pub n_in: u32,
    pub n_out: u32,
    pub n_uniform: u32,
}

impl KernelKey {
    pub fn label(&self) -> String {
        kernel_label(self.shader, self.entry, self.overrides.iter().map(|(k, v)| (*k, f64::from_bits(*v))))
    }
}

/// "shader:entry K=v ...": how a kernel is named in labels, errors, profiles and the workload bench.
pub fn kernel_label<'a>(shader: &str, entry: &str, overrides: impl IntoIterator<Item = (&'a str, f64)>) -> String {
    let mut s = format!("{shader}:{entry}");
    for (k, v) in overrides {
        s.push_str(&format!(" {k}={v}"));
    }
    s
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    /// by shader name, or by kernel label for a specialised shader (one module per override values)
    modules: HashMap<String, wgpu::ShaderModule>,
    layouts: HashMap<(u32, u32, u32), (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: HashMap<KernelKey, Arc<(wgpu::ComputePipeline, wgpu::BindGroupLayout)>>,
}

fn buffer_entry(binding: u32, ty: wgpu::BufferBindingType, min_bytes: u64) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: std::num::NonZeroU64::new(min_bytes),
        },
        count: None,
    }
}

fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    buffer_entry(binding, wgpu::BufferBindingType::Storage { read_only }, 0)
}

impl PipelineCache {
    pub(crate) fn get_or_create(
        &mut self,
        device: &wgpu::Device,
        shader: Shader,
        key: &KernelKey,
    ) -> Arc<(wgpu::ComputePipeline, wgpu::BindGroupLayout)> {
        if let Some(p) = self.pipelines.get(key) {
            return p.clone();
        }
        let label = key.label();
        let constants: Vec<(&str, f64)> = key.overrides.iter().map(|(k, v)| (*k, f64::from_bits(*v))).collect();
        // a shader that marks loops to unroll is compiled once per override values, its overrides written in
        let specialised = super::specialize::wants_specialising(shader.source);
        let module_key = if specialised { label.clone() } else { shader.name.to_string() };
        let module = self.modules.entry(module_key).or_insert_with(|| {
            let source = if specialised {
                super::specialize::specialize(shader.source, &constants)
                    .unwrap_or_else(|e| panic!("cannot specialise shaders/{} for {label}: {e}", shader.name))
            } else {
                shader.source.to_string()
            };
            // Compile inside an error scope so a WGSL error names the file (tinygrad: "Shader compilation failed").
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let m = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader.name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            if let Some(err) = pollster::block_on(scope.pop()) {
                let what = if specialised { " (specialised: line numbers count in the expanded source)" } else { "" };
                panic!("shader compilation failed for shaders/{}{what}:\n{err}", shader.name);
            }
            m
        });
        let (bgl, pl) = self.layouts.entry((key.n_in, key.n_out, key.n_uniform)).or_insert_with(|| {
            // binding 0: the Params uniform (any size)
            let mut entries = vec![buffer_entry(0, wgpu::BufferBindingType::Uniform, 0)];
            for i in 0..key.n_in {
                entries.push(storage_entry(1 + i, true));
            }
            for i in 0..key.n_out {
                entries.push(storage_entry(1 + key.n_in + i, false));
            }
            for i in 0..key.n_uniform {
                let binding = 1 + key.n_in + key.n_out + i;
                entries.push(buffer_entry(binding, wgpu::BufferBindingType::Uniform, super::UNIFORM_BLOCK_BYTES));
            }
            let label = format!("layout in={} out={} uniform={}", key.n_in, key.n_out, key.n_uniform);
            let bgl = device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(&label), entries: &entries });
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&label),
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            });
            (bgl, pl)
        });
        let constants = if specialised { Vec::new() } else { constants };
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(pl),
            module,
            entry_point: Some(key.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(err) = pollster::block_on(scope.pop()) {
            panic!("pipeline creation failed for {label}:\n{err}");
        }
        let entry = Arc::new((pipeline, bgl.clone()));
        self.pipelines.insert(key.clone(), entry.clone());
        entry
    }

    pub(crate) fn len(&self) -> usize {
        self.pipelines.len()
    }
}
