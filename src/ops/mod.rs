//! The op set: one family per file. Each file holds, top to bottom, the math (module doc), the `Params`
//! structs that mirror the WGSL ones field for field, the shaders (`shader!` = `include_str!` of
//! `shaders/<family>/*.wgsl`), the forward and backward launches, the public taped op, a `cpu` module with
//! the f64 reference that serves as the spec, and the unit tests.

pub mod attention;
pub mod conv;
pub mod elementwise;
pub mod fft;
pub mod fused;
pub mod index;
pub mod layout;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod reduce;
pub mod softmax;
pub mod tune;
pub mod work;

use crate::gpu::{gpu, Dispatch, Shader, UniformBlock};
use crate::tensor::Tensor;

/// Record one kernel launch over tensors. `workgroups` is a linear count (see [`Dispatch`]).
pub(crate) fn launch<P: bytemuck::Pod>(
    shader: Shader,
    entry: &'static str,
    overrides: &[(&'static str, f64)],
    params: &P,
    inputs: &[&Tensor],
    outputs: &[&Tensor],
    workgroups: u32,
) {
    launch_with_uniforms(shader, entry, overrides, params, inputs, outputs, &[], workgroups);
}

/// [`launch`] with uniform-block operands after the outputs: (tensor, offset in f32 elements), each a 64 KiB
/// window (see [`UniformBlock`]); the tensor must hold `offset` + 16,384 values.
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch_with_uniforms<P: bytemuck::Pod>(
    shader: Shader,
    entry: &'static str,
    overrides: &[(&'static str, f64)],
    params: &P,
    inputs: &[&Tensor],
    outputs: &[&Tensor],
    uniforms: &[(&Tensor, usize)],
    workgroups: u32,
) {
    let blocks: Vec<UniformBlock> =
        uniforms.iter().map(|(t, off)| UniformBlock { buffer: t.buf(), offset: 4 * *off as u64 }).collect();
    let ins: Vec<_> = inputs.iter().map(|t| t.buf()).collect();
    let outs: Vec<_> = outputs.iter().map(|t| t.buf()).collect();
    let logged = work::active().then(|| gpu().counters().0);
    gpu().launch(&Dispatch {
        shader,
        entry,
        overrides,
        params: bytemuck::bytes_of(params),
        inputs: &ins,
        outputs: &outs,
        uniforms: &blocks,
        workgroups,
    });
    if let Some(before) = logged {
        let name = crate::gpu::kernel_label(shader.name, entry, []);
        let kernel = crate::gpu::kernel_label(shader.name, entry, overrides.iter().copied());
        let all: Vec<&Tensor> = inputs.iter().copied().chain(uniforms.iter().map(|u| u.0)).collect();
        work::on_launch(name, kernel, &all, outputs, before);
    }
}

/// A kernel that reads a workgroup-shared operand (from a uniform window, or dw v10's g), with its two pieces
/// (`shaders/window/`, `shaders/conv/dw_v10_g_*.wgsl`): `[plain, subgroup]`.
pub(crate) type WindowKernel = [Shader; 2];

/// The piece a window kernel of `wg` invocations a workgroup runs, reading `rowv` shared vec4 a call of its piece
/// (`win_rows`, `g_block`), and
/// `ov` with the piece's overrides added: the subgroup piece (each vec4 read once a subgroup and broadcast, the
/// same bits) on a CPU adapter with subgroups that `wg` holds whole where the caller measured that it pays
/// (`subgroups_pay`), else the plain piece. Only CPU adapters: there the plain piece's shared-index reads are
/// gathers of 8 scalar loads per component; on a GPU they are the constant cache's broadcast, which lanes reading
/// different addresses would serialise (unmeasured: no GPU has run this). The two pieces share
/// the kernel's file name; the subgroup piece's SG and WJ keep its pipelines (and profile rows) apart.
pub(crate) fn window_piece(
    kernel: WindowKernel,
    rowv: usize,
    wg: u32,
    subgroups_pay: bool,
    ov: &mut Vec<(&'static str, f64)>,
) -> Shader {
    ov.push(("ROWV", rowv as f64));
    match window_subgroup_lanes(wg).filter(|_| subgroups_pay) {
        Some(l) => {
            ov.extend([("SG", l as f64), ("WJ", rowv.div_ceil(l as usize) as f64)]);
            kernel[1]
        }
        None => kernel[0],
    }
}

/// The lanes of the subgroup piece for window kernels of `wg` invocations on this device,
/// if it may run (see [`window_piece`]): a CPU adapter with subgroups that `wg` holds whole.
pub(crate) fn window_subgroup_lanes(wg: u32) -> Option<u32> {
    #[cfg(test)]
    if PLAIN_WINDOWS.with(|p| p.get()) {
        return None;
    }
    let cpu = gpu().info.device_type == wgpu::DeviceType::Cpu;
    gpu().subgroup_lanes().filter(|l| cpu && wg.is_multiple_of(*l))
}

#[cfg(test)]
thread_local! {
    /// Tests: run the plain window pieces on this thread even where the device has subgroups.
    pub(crate) static PLAIN_WINDOWS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// f32 values in one uniform block (64 KiB).
pub(crate) const UNIFORM_BLOCK_F32: usize = (crate::gpu::UNIFORM_BLOCK_BYTES / 4) as usize;

/// Workgroup count for a 1-D kernel of `n` threads at 256 per workgroup, checked against u32.
pub(crate) fn groups_1d(n: usize) -> u32 {
    u32::try_from(n.div_ceil(crate::gpu::WG_1D as usize)).expect("tensor too large for one dispatch")
}
