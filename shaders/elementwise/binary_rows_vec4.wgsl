// binary_rows_vec4.wgsl: out = a ⊙ b where one operand is full and the other holds one value per row of the
// full one (a per-(sample, channel) scale or shift on (N, C, H, W): shapes (N, C, H, W) and (N, C, 1, 1)),
// four elements per invocation; the fast path of binary.wgsl's broadcasting `main` for this case.
//
// Why: binary.wgsl unravels every element over a 4-D shape (six integer / and %, which llvmpipe runs lane by
// lane: x86 has no SIMD integer division) and loads it as a scalar; here an invocation does one division to
// find its row and moves a vec4.
//
// math:   out[r, j] = full[r, j] ⊙ row[r] (SWAP = false)  or  row[r] ⊙ full[r, j] (SWAP = true, for sub and div
//         when the row operand is the left one); ⊙ ∈ {add, sub, mul, div} (override OP)
// layout: full, out: (rows, L) contiguous, read as vec4 (the host sends only L % 4 == 0); row: (rows) f32
// grid:   @workgroup_size(256), one invocation per vec4 of out; linear workgroup id over (x, y, z) (under
//         llvmpipe's 128 MiB storage-binding limit at most 32,768 workgroups, so the folding past 65,535 is
//         exercised by the scalar kernels' tests only)
// binds:  @group(0) 0 params (uniform), 1 full (as vec4), 2 row, 3 out (rw, as vec4)

struct Params {
    n4: u32, // vec4s in out
    l4: u32, // vec4s per row
    _p0: u32,
    _p1: u32,
}

override OP: u32 = 0u;      // 0 add, 1 sub, 2 mul, 3 div
override SWAP: bool = false; // the row operand is the left one

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> full: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> row: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;

fn apply(x: vec4<f32>, y: vec4<f32>) -> vec4<f32> {
    switch OP {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        default: { return x / y; }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 256u + li;
    // guard: the last workgroup (and any split padding) runs past n4
    if i >= p.n4 { return; }
    let f = full[i];
    let r = vec4<f32>(row[i / p.l4]);
    out[i] = select(apply(f, r), apply(r, f), SWAP);
}
