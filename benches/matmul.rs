//! Every matmul rung on the same shapes: `cargo bench --bench matmul [-- FILTER]`.
//!
//! Napkin math per case: flop = 2·batch·M·N·K; bytes = 4·(|A| + |B| + |C|) (each operand read or written once).
//! Matmul is compute-bound at these sizes, so "% peak" is against the measured FMA peak (shaders/bench/).
//! The naive rung (v1) is skipped at 1024² (seconds per call on llvmpipe).

use medsegdiff::bench::{matmul_case, peak, table};
use medsegdiff::ops::matmul::MatmulKernel;

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    println!("adapter: {}", medsegdiff::gpu::gpu().describe());
    let pk = peak();
    let mut results = Vec::new();
    // (batch, M, N, K, B transposed): squares, then attention scores Q·Kᵀ (8 × 4 heads, L 256, head dim 32)
    let shapes =
        [(1, 256, 256, 256, false), (1, 512, 512, 512, false), (1, 1024, 1024, 1024, false), (32, 256, 256, 32, true)];
    for (batch, m, n, k, tb) in shapes {
        for kernel in MatmulKernel::ALL {
            if kernel == MatmulKernel::Naive && m > 512 {
                continue;
            }
            if filter.as_deref().is_some_and(|f| !kernel.name().contains(f)) {
                continue;
            }
            results.push(matmul_case(kernel, batch, m, n, k, tb, 3));
        }
    }
    print!("{}", table(&results, &pk));
}
