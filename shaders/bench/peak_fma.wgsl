// peak_fma.wgsl: FMA throughput probe. Each thread runs `iters` rounds of a block of independent fma() chains on
// vec4 accumulators (the block's UNROLL repeats expanded by src/gpu/specialize.rs, `// unroll`) and writes one
// value, so the compiler can neither drop nor fold the work. Why expanded: llvmpipe keeps a constant-trip loop a
// loop, and the loop's per-pass cost (exec mask, the 65,535-pass counter) halved what the probe read: 43.0 ->
// 83.9 GFLOP/s on the AVX-512 VM (2026-12-04, same run; docs/bench-history.md).
//
// math:   per round and accumulator: acc = fma(acc, x, y) (4 lanes); flop = 2 · 4 · ACC · UNROLL · iters per thread
// layout: out: (threads) f32, one value per thread (the sum of its accumulators)
// grid:   @workgroup_size(256), one thread per output value, linear workgroup id over (x, y, z)
// binds:  @group(0) 0 params (uniform), 1 out (rw)
// entry:  `fma4` (4 vec4 accumulators = 16 independent scalar chains) and `fma8` (8 vec4 = 32 chains). On
//         llvmpipe one vec4 per invocation is 4 SIMD registers (8 invocations per register), so fma8 may spill;
//         the probe reports the faster entry.

struct Params {
    threads: u32,
    iters: u32,
    _p0: u32,
    _p1: u32,
}

const UNROLL: u32 = 8u; // rounds of the accumulator block per loop iteration

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn fma4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 256u + li;
    // guard: the last workgroup (and any split padding) runs past the thread count
    if i >= p.threads { return; }
    // operands that depend on the thread id, so nothing is a compile-time constant
    let s = f32(i) * 1e-9;
    let x = vec4<f32>(0.999, 0.998, 0.997, 0.996) + s;
    let y = vec4<f32>(1e-4, 2e-4, 3e-4, 4e-4);
    var a0 = vec4<f32>(s); var a1 = a0 + 1.0; var a2 = a0 + 2.0; var a3 = a0 + 3.0;
    for (var t = 0u; t < p.iters; t++) {
        // unroll
        for (var u = 0u; u < UNROLL; u++) {
            a0 = fma(a0, x, y); a1 = fma(a1, x, y); a2 = fma(a2, x, y); a3 = fma(a3, x, y);
        }
    }
    let r = a0 + a1 + a2 + a3;
    out[i] = r.x + r.y + r.z + r.w;
}

@compute @workgroup_size(256)
fn fma8(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 256u + li;
    // guard: the last workgroup (and any split padding) runs past the thread count
    if i >= p.threads { return; }
    let s = f32(i) * 1e-9;
    let x = vec4<f32>(0.999, 0.998, 0.997, 0.996) + s;
    let y = vec4<f32>(1e-4, 2e-4, 3e-4, 4e-4);
    var a0 = vec4<f32>(s); var a1 = a0 + 1.0; var a2 = a0 + 2.0; var a3 = a0 + 3.0;
    var a4 = a0 + 4.0; var a5 = a0 + 5.0; var a6 = a0 + 6.0; var a7 = a0 + 7.0;
    for (var t = 0u; t < p.iters; t++) {
        // unroll
        for (var u = 0u; u < UNROLL; u++) {
            a0 = fma(a0, x, y); a1 = fma(a1, x, y); a2 = fma(a2, x, y); a3 = fma(a3, x, y);
            a4 = fma(a4, x, y); a5 = fma(a5, x, y); a6 = fma(a6, x, y); a7 = fma(a7, x, y);
        }
    }
    let r = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    out[i] = r.x + r.y + r.z + r.w;
}
