// linear_pixels.wgsl: the per-pixel kernels' grid and window rows (linear_out, linear_dq, linear_dkv), appended
// to each.

const DMAX4: u32 = 16u;
const PMAX: u32 = 4u;
// the loop bounds are pipeline constants, so that the compiler unrolls the feature and pixel loops and keeps the
// arrays in registers (indexed by a runtime counter they would be memory, read and written lane by lane on
// llvmpipe)
override D: u32 = 16u;   // = p.d
override DP4: u32 = 4u;  // = p.dp / 4
override PIX: u32 = 2u;  // pixels per invocation, 1 ..= PMAX

// the window pieces' contract (shaders/window/): a row of the context (or of its gradient) is DP4 vec4
const WG: u32 = 64u;
override ROWV: u32 = 4u; // DP4 (the host sets it)
const ROW_MAX: u32 = DMAX4;
struct WinRows {
    e: array<vec4<f32>, ROW_MAX>,
}

// This invocation's (head of the window, pixel k's index, whether the workgroup exists): workgroup g (linear id)
// covers
// pixels blk·64·PIX .. + 64·PIX of head lh; invocation li takes blk·64·PIX + li + 64·k, k < PIX.
struct Where {
    lh: u32,
    i0: u32,
    ok: bool,
}

fn where_am_i(g: u32, li: u32) -> Where {
    let nblk = (p.n + 64u * PIX - 1u) / (64u * PIX);
    return Where(g / nblk, g % nblk * 64u * PIX + li, g < p.nbw * nblk);
}

// pixel k of an invocation, clamped into the head (loads); stores check i0 + 64·k < n
fn pix(w: Where, k: u32) -> u32 { return min(w.i0 + 64u * k, p.n - 1u); }
