//! Batched matrix multiply, the kernel under `linear`, attention and (later) implicit-GEMM convolution.
//!
//! Forward: C = op(A) · op(B), op = identity or transpose, over a batch. A transposed or batch-shared
//! operand is just other strides in the kernel's `Params` for rungs v1–v4. The vec4 rung (v5) reads
//! untransposed rows, so it first copies a transposed operand into its transpose (one strided copy), which on
//! llvmpipe costs far less than the scalar loads of v4 it replaces (docs/bench-history.md).
//! Backward (G = dC):  d op(A) = G · op(B)ᵀ,  d op(B) = op(A)ᵀ · G, each re-expressed as one more
//! `matmul_t` on the stored (untransposed) A and B; a batch-shared operand's gradient is summed over the batch.
//! Forward saves A and B.
//!
//! The kernel ladder (shaders/matmul/), every rung tested by the same tests and timed by `benches/matmul.rs`:
//! - `Naive`    (v1): one thread per C element, all operands from global memory.
//! - `Tiled`    (v2): 16×16 tiles of A and B staged in workgroup memory.
//! - `Blocked`  (v3): 64×64 C tile per workgroup, 4×4 per thread in registers (the rung a real GPU likes).
//! - `RegBlock` (v4): 4×4 per thread in registers, no workgroup memory, no barrier; any strides.
//! - `Vec4`     (v5): like v4 with vec4 loads and 8×8 per thread, for K and N multiples of 4 (a transposed
//!   operand is materialised first); other shapes fall back to v4.
//! - `Uniform`  (v6): v5's `main` with A read from 64 KiB uniform windows (`matmul_v6_uniform.wgsl`): half of
//!   v5's storage loads are A rows that the whole workgroup shares, and on llvmpipe a storage read costs ~9× a
//!   uniform one (docs/llvmpipe-stores.md). Needs K % 8 == 0, N > 32, 8·K ≤ 16,384 and, for a per-batch A,
//!   matrices of a multiple of 64 values (`v6_applies`); else v5.
//! - `UniformR16`, `UniformR32` (v6 with 16 / 32 rows a thread): each B quad loaded serves 16 / 32 rows of C,
//!   so half / a quarter of v6's storage loads per FMA, past the registers (the accumulators spill to the stack,
//!   which llvmpipe reads as whole vectors, unlike its per-lane storage loads). Need 16·K / 32·K ≤ 16,384; else
//!   v6. [`rule`], the untuned choice, takes the most rows that M fills and a window holds: on the Winograd
//!   planes and 1×1 convs of the small preset 1.1–1.4× v6, 512³ 2.8× (docs/bench-history.md).
//! - `Subgroup`, `SubgroupR16`, `SubgroupR32` (v7: `matmul_v6_uniform.wgsl` with `a_subgroup.wgsl`, where the device granted
//!   SUBGROUP): v6 with 8 / 16 / 32 rows, but each A quad is read by one lane of a subgroup and reaches the
//!   others by `subgroupBroadcast`. v6's A reads, a gather of 8 scalar loads per component on llvmpipe, were
//!   30–60% of its time on thin-K shapes; v7 is v6's bits 1.4–1.75× faster there. Same windows and fallbacks as
//!   v6; on a device without subgroups a v7 rung runs its v6 twin. [`rule`] takes v7 on CPU adapters.
//!
//! The measurements that chose v5 and then v6: docs/bench-history.md ("Matmul ladder").
//!
//! What decided it: on llvmpipe a workgroup runs on one CPU thread, 8 invocations per 256-bit register, and
//! in Mesa 22.3 a storage load whose address differs per invocation is a loop over the lanes, so the cost is
//! the number of loads per FMA: v4's 4×4 block does 16 FMAs per 8 scalar loads, v5's 8×8 block 256 FMAs per
//! 16 vec4 loads. Workgroup memory (v2, v3) only adds loads and barriers there. With A from storage (v5),
//! blocks bigger than 8×8 (12×8, 16×8) were within noise of it; with A from a window (v6) 16 and 32 rows pay.
//! A loop-over-arrays form of v5 ran 2× slower than the hand-unrolled one; v6's loops are expanded by the
//! specialiser (`// unroll`), the same code as the hand-unrolled form.
//! Real GPUs prefer v3's shared-memory tiles; re-measure there before changing the default.

use bytemuck::{Pod, Zeroable};

use super::launch;
use crate::gpu::Shader;
use crate::tensor::{numel, Tensor};
use crate::{autograd, shader, shape_err, Result};
use windows::{launch_v6, v6_applies};

const V1: Shader = shader!("matmul/matmul_v1_naive.wgsl");
const V2: Shader = shader!("matmul/matmul_v2_tiled.wgsl");
const V3: Shader = shader!("matmul/matmul_v3_blocked.wgsl");
const V4: Shader = shader!("matmul/matmul_v4_regblock.wgsl");
const V5: Shader = shader!("matmul/matmul_v5_vec4.wgsl");
/// v6 and v7: one kernel, two pieces (how a lane's A quads become the tile's rows). They share the kernel's file
/// name; v7's SG override keeps its pipelines (and profile rows) apart from v6's.
const V6: Shader = shader!("matmul/matmul_v6_uniform.wgsl", "matmul/a_plain.wgsl");
const V7: Shader = shader!("matmul/matmul_v6_uniform.wgsl", "matmul/a_subgroup.wgsl");
/// v5 takes its `main_rows16` entry for C at most this wide (8 column quads: one per thread of 8).
const V5_ROWS16_MAX_N: u32 = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernel {
    Naive,
    Tiled,
    Blocked,
    RegBlock,
    Vec4,
    Uniform,
    UniformR16,
    UniformR32,
    Subgroup,
    SubgroupR16,
    SubgroupR32,
}

impl MatmulKernel {
    pub const ALL: [MatmulKernel; 11] = [
        MatmulKernel::Naive,
        MatmulKernel::Tiled,
        MatmulKernel::Blocked,
        MatmulKernel::RegBlock,
        MatmulKernel::Vec4,
        MatmulKernel::Uniform,
        MatmulKernel::UniformR16,
        MatmulKernel::UniformR32,
        MatmulKernel::Subgroup,
        MatmulKernel::SubgroupR16,
        MatmulKernel::SubgroupR32,
    ];

    /// The longest K one launch of this rung sums whole on llvmpipe, which ends every invocation's loops after
    /// 65,535 iterations in all (gallivm's `LP_MAX_TGSI_LOOP_ITERATIONS`) and goes on with a partial sum: v5's
    /// K loop runs once per 4 of K, v1's and v4's once per K, v2's and v3's ~1.1 and ~1.75 times per K with
    /// their staging loops (v3 measured wrong from K ≈ 37,400). Past it, [`matmul_with`] splits K on CPU
    /// adapters. (v6 takes K ≤ 2,048 only.)
    pub fn max_k_llvmpipe(self) -> usize {
        match self {
            MatmulKernel::Vec4
            | MatmulKernel::Uniform
            | MatmulKernel::UniformR16
            | MatmulKernel::UniformR32
            | MatmulKernel::Subgroup
            | MatmulKernel::SubgroupR16
            | MatmulKernel::SubgroupR32 => 196_608,
            MatmulKernel::Naive | MatmulKernel::RegBlock => 49_152,
            MatmulKernel::Tiled | MatmulKernel::Blocked => 32_768,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MatmulKernel::Naive => "v1_naive",
            MatmulKernel::Tiled => "v2_tiled",
            MatmulKernel::Blocked => "v3_blocked",
            MatmulKernel::RegBlock => "v4_regblock",
            MatmulKernel::Vec4 => "v5_vec4",
            MatmulKernel::Uniform => "v6_uniform",
            MatmulKernel::UniformR16 => "v6_uniform_r16",
            MatmulKernel::UniformR32 => "v6_uniform_r32",
            MatmulKernel::Subgroup => "v7_subgroup",
            MatmulKernel::SubgroupR16 => "v7_subgroup_r16",
            MatmulKernel::SubgroupR32 => "v7_subgroup_r32",
        }
    }

    /// C rows per thread of a v6 or v7 rung (its TM), None for the others.
    fn v6_rows(self) -> Option<usize> {
        match self {
            MatmulKernel::Uniform | MatmulKernel::Subgroup => Some(8),
            MatmulKernel::UniformR16 | MatmulKernel::SubgroupR16 => Some(16),
            MatmulKernel::UniformR32 | MatmulKernel::SubgroupR32 => Some(32),
            _ => None,
        }
    }

    /// Whether this is a v7 rung (v6 with A shared by subgroup broadcasts).
    fn subgroup(self) -> bool {
        matches!(self, MatmulKernel::Subgroup | MatmulKernel::SubgroupR16 | MatmulKernel::SubgroupR32)
    }

    /// The v6 rung with the same rows a thread: what a v7 rung runs where the device has no subgroups.
    fn without_subgroups(self) -> MatmulKernel {
        match self {
            MatmulKernel::Subgroup => MatmulKernel::Uniform,
            MatmulKernel::SubgroupR16 => MatmulKernel::UniformR16,
            MatmulKernel::SubgroupR32 => MatmulKernel::UniformR32,
            k => k,
        }
    }
}

/// Mirrors `struct Params` in every matmul shader.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_bs: u32,
    a_rs: u32,
    a_cs: u32,
    _p0: u32,
    b_bs: u32,
    b_rs: u32,
    b_cs: u32,
    _p1: u32,
}

/// How C's batch, rows and columns map onto a stored operand.
struct Plan {
    batch_shape: Vec<usize>,
    batch: usize,
    m: usize,
    n: usize,
    a_shared: bool,
    b_shared: bool,
    p: MatmulParams,
}

fn plan(a: &[usize], ta: bool, b: &[usize], tb: bool) -> Result<Plan> {
    if a.len() < 2 || b.len() < 2 {
        return shape_err!("matmul", "operands need at least 2 dims, got {a:?} and {b:?}");
    }
    let (ar, ac) = (a[a.len() - 2], a[a.len() - 1]);
    let (br, bc) = (b[b.len() - 2], b[b.len() - 1]);
    let (m, ka) = if ta { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if tb { (bc, br) } else { (br, bc) };
    if ka != kb {
        return shape_err!(
            "matmul",
            "inner dimensions differ: {a:?}{} has K = {ka} but {b:?}{} has K = {kb}",
            if ta { "ᵀ" } else { "" },
            if tb { "ᵀ" } else { "" }
        );
    }
    let (ba, bb) = (&a[..a.len() - 2], &b[..b.len() - 2]);
    let (na, nb) = (numel(ba), numel(bb));
    let batch_shape = if ba == bb || nb == 1 {
        ba.to_vec()
    } else if na == 1 {
        bb.to_vec()
    } else {
        return shape_err!(
            "matmul",
            "batch dims {ba:?} and {bb:?} differ (only equal batches or a shared matrix are supported)"
        );
    };
    let batch = numel(&batch_shape);
    let (a_shared, b_shared) = (na == 1 && batch > 1, nb == 1 && batch > 1);
    let p = MatmulParams {
        m: m as u32,
        n: n as u32,
        k: ka as u32,
        batch: batch as u32,
        a_bs: if a_shared { 0 } else { (ar * ac) as u32 },
        a_rs: if ta { 1 } else { ac as u32 },
        a_cs: if ta { ac as u32 } else { 1 },
        _p0: 0,
        b_bs: if b_shared { 0 } else { (br * bc) as u32 },
        b_rs: if tb { 1 } else { bc as u32 },
        b_cs: if tb { bc as u32 } else { 1 },
        _p1: 0,
    };
    Ok(Plan { batch_shape, batch, m, n, a_shared, b_shared, p })
}

/// Encode C = op(A)·op(B) with a chosen rung, not taped. C has shape (batch..., M, N).
pub fn matmul_with(kernel: MatmulKernel, a: &Tensor, ta: bool, b: &Tensor, tb: bool) -> Result<Tensor> {
    let pl = plan(a.shape(), ta, b.shape(), tb)?;
    let flops = 2.0 * (pl.batch * pl.m * pl.n) as f64 * pl.p.k as f64;
    let _work = super::work::scope(
        "matmul",
        || {
            let t = |x: bool| if x { "ᵀ" } else { "" };
            format!("b{} {}x{}{}·{}x{}{}", pl.batch, pl.m, pl.p.k, t(ta), pl.p.k, pl.n, t(tb))
        },
        flops,
    );
    let vec4_rung = kernel == MatmulKernel::Vec4 || kernel.v6_rows().is_some();
    if vec4_rung && (ta || tb) && pl.p.k % 4 == 0 && pl.n % 4 == 0 {
        // v5 reads untransposed rows as vec4: copy a transposed operand into its transpose first (one
        // transpose, 4×4 blocks when it can; on llvmpipe far cheaper than v4's scalar loads, see the module doc)
        let at = if ta { super::layout::transpose_last2_raw(a)? } else { a.clone() };
        let bt = if tb { super::layout::transpose_last2_raw(b)? } else { b.clone() };
        return matmul_with(kernel, &at, false, &bt, false);
    }
    let runs = launched(kernel, &pl, ta, tb);
    let step = runs.max_k_llvmpipe();
    if pl.p.k as usize > step && crate::gpu::gpu().info.device_type == wgpu::DeviceType::Cpu {
        return matmul_split_k(kernel, a, ta, b, tb, pl.p.k as usize, step);
    }
    let mut shape = pl.batch_shape.clone();
    shape.extend([pl.m, pl.n]);
    let c = Tensor::uninit(&shape);
    let (m, n, batch) = (pl.m as u32, pl.n as u32, pl.batch as u32);
    match runs {
        MatmulKernel::Naive => {
            let groups = (m * n * batch).div_ceil(64);
            launch(V1, "main", &[], &pl.p, &[a, b], &[&c], groups);
        }
        MatmulKernel::Tiled => {
            let groups = m.div_ceil(16) * n.div_ceil(16) * batch;
            launch(V2, "main", &[], &pl.p, &[a, b], &[&c], groups);
        }
        MatmulKernel::Blocked => {
            let groups = m.div_ceil(64) * n.div_ceil(64) * batch;
            launch(V3, "main", &[], &pl.p, &[a, b], &[&c], groups);
        }
        MatmulKernel::RegBlock => launch_v4(&pl, a, b, &c),
        MatmulKernel::Uniform | MatmulKernel::UniformR16 | MatmulKernel::UniformR32 => {
            launch_v6(&pl, runs.v6_rows().unwrap_or(8), None, a, b, &c)
        }
        MatmulKernel::Subgroup | MatmulKernel::SubgroupR16 | MatmulKernel::SubgroupR32 => {
            let lanes = crate::gpu::gpu().subgroup_lanes().expect("launched() keeps v7 to devices with subgroups");
            launch_v6(&pl, runs.v6_rows().unwrap_or(8), Some(lanes), a, b, &c)
        }
        MatmulKernel::Vec4 if n <= V5_ROWS16_MAX_N => {
            // narrow C: 16 rows × 1 column quad per thread, 8 threads, so no thread is a clamped duplicate
            let groups = m.div_ceil(16) * (n / 4).div_ceil(8) * batch;
            launch(V5, "main_rows16", &[("WG", 8.0)], &pl.p, &[a, b], &[&c], groups);
        }
        MatmulKernel::Vec4 => {
            // threads along N: enough for the column quads at 2 per thread, a power of two in 8..=16
            // (16 threads × 8 columns keep a K×128 panel of B, 512 KiB at K = 1024, in a 1 MiB L2)
            let wg = n.div_ceil(8).next_power_of_two().clamp(8, 16);
            let groups = m.div_ceil(8) * (n / 4).div_ceil(2 * wg) * batch;
            launch(V5, "main", &[("WG", wg as f64)], &pl.p, &[a, b], &[&c], groups);
        }
    }
    Ok(c)
}

/// The rung `kernel` runs on this plan: a v7 rung as its v6 twin where the device has no subgroups; a v6 or v7
/// rung where its windows apply, else the same with 8 rows, else v5; v5 where vec4 loads apply (rows of A along
/// K and rows of B/C along N in whole vec4s, untransposed), else v4's scalar path.
fn launched(kernel: MatmulKernel, pl: &Plan, ta: bool, tb: bool) -> MatmulKernel {
    let kernel = if kernel.subgroup() && crate::gpu::gpu().subgroup_lanes().is_none() {
        kernel.without_subgroups()
    } else {
        kernel
    };
    let eight = if kernel.subgroup() { MatmulKernel::Subgroup } else { MatmulKernel::Uniform };
    let vec4 = !ta && !tb && pl.p.k.is_multiple_of(4) && pl.n.is_multiple_of(4);
    match kernel.v6_rows() {
        Some(tm) if v6_applies(pl, ta, tb, tm) => kernel,
        Some(tm) if tm > 8 && v6_applies(pl, ta, tb, 8) => eight,
        Some(_) if vec4 => MatmulKernel::Vec4,
        Some(_) => MatmulKernel::RegBlock,
        None if kernel == MatmulKernel::Vec4 && !vec4 => MatmulKernel::RegBlock,
        None => kernel,
    }
}

/// C = Σ over K chunks of `step` of op(A)[.., chunk]·op(B)[chunk, ..], not taped: for a K past the rung's
/// loop limit on llvmpipe ([`MatmulKernel::max_k_llvmpipe`]; a 1×1 conv's weight gradient at 240 px sums
/// over 57,600 pixels).
fn matmul_split_k(
    kernel: MatmulKernel,
    a: &Tensor,
    ta: bool,
    b: &Tensor,
    tb: bool,
    k: usize,
    step: usize,
) -> Result<Tensor> {
    use super::layout::narrow_raw;
    let (a_axis, b_axis) = (a.shape().len() - if ta { 2 } else { 1 }, b.shape().len() - if tb { 1 } else { 2 });
    let part = |k0: usize| -> Result<Tensor> {
        let len = step.min(k - k0);
        matmul_with(kernel, &narrow_raw(a, a_axis, k0, len)?, ta, &narrow_raw(b, b_axis, k0, len)?, tb)
    };
    let mut c = part(0)?;
    for k0 in (step..k).step_by(step) {
        c = super::elementwise::binary_raw(super::elementwise::BinaryOp::Add, &c, &part(k0)?)?;
    }
    Ok(c)
}

/// v4: 4×4 per thread, any strides.
fn launch_v4(pl: &Plan, a: &Tensor, b: &Tensor, c: &Tensor) {
    let (m, n, batch) = (pl.m as u32, pl.n as u32, pl.batch as u32);
    // threads along N: enough for the columns at 4 per thread, a power of two in 8..=32
    let wg = n.div_ceil(4).next_power_of_two().clamp(8, 32);
    let groups = m.div_ceil(4) * n.div_ceil(4 * wg) * batch;
    launch(V4, "main", &[("WG", wg as f64)], &pl.p, &[a, b], &[c], groups);
}

/// Sum a (batch, rows, cols) gradient over the batch when the operand was shared, and give it `shape`.
fn fold_batch(g: Tensor, shared: bool, shape: &[usize]) -> Result<Tensor> {
    let g = if shared {
        let r = g.rank();
        super::reduce::sum_to_shape(&g, &[g.shape()[r - 2], g.shape()[r - 1]])?
    } else {
        g
    };
    g.detach().reshape(shape)
}

/// The rung for these operands: the tuned table's ([`super::tune`]) if it holds the shape, else [`rule`]'s.
/// Every matmul the engine runs, taped or inside a conv, picks here.
pub fn pick(a: &Tensor, ta: bool, b: &Tensor, tb: bool) -> MatmulKernel {
    let key = super::tune::Key::Matmul { a: a.shape().to_vec(), ta, b: b.shape().to_vec(), tb };
    super::tune::lookup(key)
        .and_then(|n| MatmulKernel::ALL.into_iter().find(|k| k.name() == n))
        .unwrap_or_else(|| rule(a.shape(), ta, b.shape(), tb))
}

/// The untuned choice, the matmul family's rung table: v6 with the most rows a thread that M fills and a
/// window holds (32, 16, else 8: each B quad loaded serves that many rows; measured in docs/bench-history.md),
/// as its v7 twin on a CPU adapter with subgroups (the A quads read once a subgroup: 1.4–1.75× v6 on the small
/// preset's 1×1 and Winograd shapes on llvmpipe; on a GPU, where v7's lanes read different addresses of the
/// constant cache, it is unmeasured and left to the tuner), and through v6's fallbacks v5 or v4 where no v6
/// applies.
pub fn rule(a: &[usize], ta: bool, b: &[usize], tb: bool) -> MatmulKernel {
    let g = crate::gpu::gpu();
    let sub = g.subgroup_lanes().is_some() && g.info.device_type == wgpu::DeviceType::Cpu;
    let twin = |k: MatmulKernel| match (sub, k) {
        (false, k) => k,
        (true, MatmulKernel::UniformR32) => MatmulKernel::SubgroupR32,
        (true, MatmulKernel::UniformR16) => MatmulKernel::SubgroupR16,
        (true, _) => MatmulKernel::Subgroup,
    };
    let Ok(pl) = plan(a, ta, b, tb) else { return twin(MatmulKernel::Uniform) };
    // a transposed operand is materialised before v6 runs (matmul_with), so v6 sees untransposed ones
    twin(
        [MatmulKernel::UniformR32, MatmulKernel::UniformR16]
            .into_iter()
            .find(|k| k.v6_rows().is_some_and(|tm| pl.m >= tm && v6_applies(&pl, false, false, tm)))
            .unwrap_or(MatmulKernel::Uniform),
    )
}

/// C = op(A) · op(B), untaped, on the rung [`pick`] chooses: what backward passes and the GEMMs inside convs
/// run.
pub fn matmul_picked(a: &Tensor, ta: bool, b: &Tensor, tb: bool) -> Result<Tensor> {
    matmul_with(pick(a, ta, b, tb), a, ta, b, tb)
}

/// C = op(A) · op(B), taped. `ta`/`tb` transpose the last two dims of A/B (as strides for v1–v4; v5 copies the
/// operand, see above).
pub fn matmul_t(a: &Tensor, ta: bool, b: &Tensor, tb: bool) -> Result<Tensor> {
    let c = matmul_picked(a, ta, b, tb)?;
    let pl = plan(a.shape(), ta, b.shape(), tb)?;
    let (a2, b2) = (a.clone(), b.clone());
    autograd::record("matmul", &[a, b], &c, move |g, needs| {
        let da = if needs[0] {
            // d op(A) = G·op(B)ᵀ; if A itself was transposed, dA = (G·op(B)ᵀ)ᵀ = op(B)·Gᵀ
            let d = if ta { matmul_picked(&b2, tb, g, true)? } else { matmul_picked(g, false, &b2, !tb)? };
            Some(fold_batch(d, pl.a_shared, a2.shape())?)
        } else {
            None
        };
        let db = if needs[1] {
            // d op(B) = op(A)ᵀ·G; if B was transposed, dB = Gᵀ·op(A)
            let d = if tb { matmul_picked(g, true, &a2, ta)? } else { matmul_picked(&a2, !ta, g, false)? };
            Some(fold_batch(d, pl.b_shared, b2.shape())?)
        } else {
            None
        };
        Ok(vec![da, db])
    });
    Ok(c)
}

/// C = A · B (batched over leading dims), taped.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    matmul_t(a, false, b, false)
}

pub mod cpu {
    /// C = op(A)·op(B) in f64 for contiguous (batch, rows, cols) operands; `shared` = batch-broadcast.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(a: &[f64], a_shape: &[usize], ta: bool, b: &[f64], b_shape: &[usize], tb: bool) -> Vec<f64> {
        let (ar, ac) = (a_shape[a_shape.len() - 2], a_shape[a_shape.len() - 1]);
        let (br, bc) = (b_shape[b_shape.len() - 2], b_shape[b_shape.len() - 1]);
        let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
        let n = if tb { br } else { bc };
        let (na, nb) = (a.len() / (ar * ac), b.len() / (br * bc));
        let batch = na.max(nb);
        let mut c = vec![0.0; batch * m * n];
        for bi in 0..batch {
            let ao = if na == 1 { 0 } else { bi * ar * ac };
            let bo = if nb == 1 { 0 } else { bi * br * bc };
            for i in 0..m {
                for j in 0..n {
                    let mut acc = 0.0;
                    for kk in 0..k {
                        let av = if ta { a[ao + kk * ac + i] } else { a[ao + i * ac + kk] };
                        let bv = if tb { b[bo + j * bc + kk] } else { b[bo + kk * bc + j] };
                        acc += av * bv;
                    }
                    c[bi * m * n + i * n + j] = acc;
                }
            }
        }
        c
    }
}

#[cfg(test)]
mod tests;
mod windows;
