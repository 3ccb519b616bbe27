//! The spec, in f64: a direct 2-D DFT (O((H·W)²) per image) and the ops composed from it.
use std::f64::consts::PI;

/// exp(sign·2πi·k/n) for k < n: the table every DFT below indexes with (index product) mod n.
fn roots(n: usize, sign: f64) -> Vec<(f64, f64)> {
    (0..n).map(|k| (sign * 2.0 * PI * k as f64 / n as f64).sin_cos()).map(|(s, c)| (c, s)).collect()
}

/// Z[u, v] = scale · Σ_{h,w} z[h, w]·exp(sign·2πi(u·h/H + v·w/W)) for each of `images` interleaved images;
/// sign −1, scale 1 for fft2; sign +1, scale 1/(H·W) for ifft2.
pub fn dft2(z: &[f64], images: usize, h: usize, w: usize, inverse: bool) -> Vec<f64> {
    let (sign, scale) = if inverse { (1.0, 1.0 / (h * w) as f64) } else { (-1.0, 1.0) };
    let (rh, rw) = (roots(h, sign), roots(w, sign));
    let mut out = vec![0.0; z.len()];
    for n in 0..images {
        let img = &z[n * h * w * 2..(n + 1) * h * w * 2];
        for u in 0..h {
            for v in 0..w {
                let (mut re, mut im) = (0.0, 0.0);
                for hh in 0..h {
                    for ww in 0..w {
                        // twiddle exp(sign·2πi(u·h/H + v·w/W)) = rh[u·h mod H] · rw[v·w mod W]
                        let (a, b) = rh[u * hh % h];
                        let (c, d) = rw[v * ww % w];
                        let (tr, ti) = (a * c - b * d, a * d + b * c);
                        let (xr, xi) = (img[2 * (hh * w + ww)], img[2 * (hh * w + ww) + 1]);
                        re += xr * tr - xi * ti;
                        im += xr * ti + xi * tr;
                    }
                }
                let o = 2 * ((n * h + u) * w + v);
                out[o] = re * scale;
                out[o + 1] = im * scale;
            }
        }
    }
    out
}

/// Real values as interleaved complex with zero imaginary parts.
pub fn complex(x: &[f64]) -> Vec<f64> {
    x.iter().flat_map(|&v| [v, 0.0]).collect()
}

/// fft2 of real (B, C, H, W) given as `images` = B·C images: interleaved (…, H, W, 2).
pub fn fft2(x: &[f64], images: usize, h: usize, w: usize) -> Vec<f64> {
    dft2(&complex(x), images, h, w, false)
}

/// fft2 as channels: (B, 2C, H, W) with 2c = Re, 2c+1 = Im; channel c of sample b is image b·C + c.
pub fn fft2_channels(x: &[f64], b: usize, c: usize, h: usize, w: usize) -> Vec<f64> {
    let z = fft2(x, b * c, h, w);
    let hw = h * w;
    let mut out = vec![0.0; 2 * b * c * hw];
    for n in 0..b * c {
        for p in 0..hw {
            out[2 * n * hw + p] = z[2 * (n * hw + p)]; // channel 2c: Re
            out[(2 * n + 1) * hw + p] = z[2 * (n * hw + p) + 1]; // channel 2c+1: Im
        }
    }
    out
}

/// y = Re(ifft2(fft2(x) ⊙ M)); M has `map_images` images (C shared, or B·C per sample): image n uses n mod that.
pub fn ff_parser(x: &[f64], map: &[f64], images: usize, map_images: usize, h: usize, w: usize) -> Vec<f64> {
    let hw = h * w;
    let mut z = fft2(x, images, h, w);
    for n in 0..images {
        for p in 0..hw {
            let m = map[(n % map_images) * hw + p];
            z[2 * (n * hw + p)] *= m;
            z[2 * (n * hw + p) + 1] *= m;
        }
    }
    dft2(&z, images, h, w, true).iter().step_by(2).copied().collect()
}
