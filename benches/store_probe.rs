//! Memory-access probes for CPU Vulkan drivers: `cargo bench --bench store_probe`. Times the entries of
//! `shaders/bench/store_probe*.wgsl` (vec4 vs scalar stores, one vs several elements per invocation,
//! contiguous-per-invocation vs lane-interleaved, loads only vs stores only, workgroup sizes, uniform vs storage
//! reads) on 64 MiB and prints GB/s and nanoseconds per 32-bit component accessed. docs/llvmpipe-stores.md says
//! what the numbers showed and why (Mesa's per-lane SSBO access loop).

use medsegdiff::bench::run_case;
use medsegdiff::gpu::{gpu, Dispatch, Shader};
use medsegdiff::Tensor;

const VEC4: Shader =
    Shader { name: "bench/store_probe.wgsl", source: include_str!("../shaders/bench/store_probe.wgsl") };
const UNIFORM: Shader = Shader {
    name: "bench/store_probe_uniform.wgsl",
    source: include_str!("../shaders/bench/store_probe_uniform.wgsl"),
};
const SCALAR: Shader =
    Shader { name: "bench/store_probe_scalar.wgsl", source: include_str!("../shaders/bench/store_probe_scalar.wgsl") };

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n4: u32,
    threads: u32,
    _p: [u32; 2],
}

fn main() {
    let g = gpu();
    println!("adapter: {}", g.describe());
    let n4: u32 = 4 << 20; // 4M vec4 = 64 MiB per direction
    let src = Tensor::full(&[4 * n4 as usize], 1.0);
    let dst = Tensor::zeros(&[4 * n4 as usize]);
    // (name, shader, entry, workgroup size, vec4s per invocation, scalar loads, scalar stores per vec4 moved)
    let mut cases: Vec<(String, Shader, &'static str, u32, u32, f64, f64)> = Vec::new();
    for wg in [64u32, 256, 1024] {
        cases.push((format!("copy vec4 wg{wg}"), VEC4, "copy_vec4", wg, 1, 4.0, 4.0));
    }
    cases.push(("copy vec4 as 4 scalar stores".into(), VEC4, "copy_vec4_by_lane", 256, 1, 4.0, 4.0));
    cases.push(("copy f32 (1 per inv)".into(), SCALAR, "copy", 256, 1, 4.0, 4.0));
    cases.push(("copy f32 x4 strided".into(), SCALAR, "copy_strided", 256, 4, 4.0, 4.0));
    for per in [4u32, 16] {
        cases.push((format!("copy vec4 x{per} blocked"), VEC4, "copy_blocked", 256, per, 4.0, 4.0));
        cases.push((format!("copy vec4 x{per} strided"), VEC4, "copy_strided", 256, per, 4.0, 4.0));
    }
    cases.push(("fill vec4 x16 strided (stores)".into(), VEC4, "fill_strided", 256, 16, 0.0, 4.0));
    cases.push(("read vec4 x16 strided (loads)".into(), VEC4, "read_strided", 256, 16, 4.0, 4.0 / 16.0));
    cases.push(("read vec4 x16 blocked (loads)".into(), VEC4, "read_blocked", 256, 16, 4.0, 4.0 / 16.0));
    println!("{:<34} {:>9} {:>8} {:>14}", "probe", "ms", "GB/s", "ns/component");
    for (name, shader, entry, wg, per, loads, stores) in cases {
        // the scalar shader's `copy` has one f32 per invocation: 4·n4 invocations
        let invocations = if shader.name.ends_with("scalar.wgsl") { 4 * n4 / per } else { n4 / per };
        let p = Params { n4, threads: invocations, _p: [0; 2] };
        let ov = [("WG", wg as f64), ("PER", per as f64)];
        // bytes: what the entry reads plus what it writes
        let bytes = 16.0 * n4 as f64 * (loads + stores) / 4.0;
        let r = run_case(&name, "64 MiB", 0.0, bytes, 3, || {
            g.launch(&Dispatch {
                shader,
                entry,
                overrides: &ov,
                params: bytemuck::bytes_of(&p),
                inputs: &[src.buf()],
                outputs: &[dst.buf()],
                uniforms: &[],
                workgroups: invocations.div_ceil(wg),
            });
        });
        let components = n4 as f64 * (loads + stores);
        println!("{:<34} {:>9.2} {:>8.2} {:>14.3}", name, r.ms, r.gbps(), r.ms * 1e6 / components);
    }
    // reads of a 16 KiB table: from the params uniform or from a storage buffer, with lane-divergent or
    // lane-uniform indices; 16 vec4 reads and one vec4 store per invocation, 1M invocations
    #[repr(C)]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct TableParams {
        n4: u32,
        threads: u32,
        offset: u32,
        trips: u32,
        table: [[f32; 4]; 1024],
    }
    let threads = 1u32 << 20;
    let tp = TableParams { n4: threads, threads, offset: 0, trips: 16, table: [[0.5; 4]; 1024] };
    println!("{:<34} {:>9} {:>22}", "table reads (16 per invocation)", "ms", "ns per vec4 read");
    for entry in ["ubo_divergent", "ssbo_divergent", "ubo_uniform", "ssbo_uniform", "ssbo_uniform_runtime_loop"] {
        let r = run_case(entry, "1M x 16", 0.0, 0.0, 3, || {
            g.launch(&Dispatch {
                shader: UNIFORM,
                entry,
                overrides: &[("PER", 16.0)],
                params: bytemuck::bytes_of(&tp),
                inputs: &[src.buf()],
                outputs: &[dst.buf()],
                uniforms: &[],
                workgroups: threads.div_ceil(256),
            });
        });
        println!("{:<34} {:>9.2} {:>22.3}", entry, r.ms, r.ms * 1e6 / (16.0 * threads as f64));
    }
}
