//! Segmentation metrics on binarised masks (host side): Dice, IoU and HD95.
//!
//! - Dice = 2|A∩B| / (|A| + |B|),  IoU = |A∩B| / |A∪B|.
//! - HD95 (pixels): the boundary of a mask is its pixels with a 4-neighbour outside it (or on the image edge).
//!   d_AB = distance from each boundary pixel of A to the nearest boundary pixel of B, d_BA likewise; HD95 is the
//!   95th percentile (linear interpolation, as numpy) of d_AB ∪ d_BA — the symmetric definition medpy uses.
//! - Empty masks: both empty -> Dice 1, IoU 1, HD95 0 (nothing to find, nothing found). Exactly one empty ->
//!   Dice 0, IoU 0, HD95 = the image diagonal (the largest distance possible), so averages stay finite.

/// Metrics of one image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    pub dice: f64,
    pub iou: f64,
    pub hd95: f64,
}

/// Compare a prediction with the ground truth, both (h, w) row-major, binarised at 0.5.
pub fn scores(pred: &[f32], truth: &[f32], h: usize, w: usize) -> Scores {
    assert_eq!(pred.len(), h * w, "prediction is not {h}x{w}");
    assert_eq!(truth.len(), h * w, "ground truth is not {h}x{w}");
    let a: Vec<bool> = pred.iter().map(|&v| v >= 0.5).collect();
    let b: Vec<bool> = truth.iter().map(|&v| v >= 0.5).collect();
    let inter = a.iter().zip(&b).filter(|(x, y)| **x && **y).count() as f64;
    let (na, nb) = (a.iter().filter(|x| **x).count() as f64, b.iter().filter(|x| **x).count() as f64);
    if na == 0.0 && nb == 0.0 {
        return Scores { dice: 1.0, iou: 1.0, hd95: 0.0 };
    }
    let diag = ((h * h + w * w) as f64).sqrt();
    if na == 0.0 || nb == 0.0 {
        return Scores { dice: 0.0, iou: 0.0, hd95: diag };
    }
    let dice = 2.0 * inter / (na + nb);
    let iou = inter / (na + nb - inter);
    Scores { dice, iou, hd95: hd95(&a, &b, h, w) }
}

fn boundary(m: &[bool], h: usize, w: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for y in 0..h {
        for x in 0..w {
            if !m[y * w + x] {
                continue;
            }
            let edge = y == 0 || x == 0 || y + 1 == h || x + 1 == w;
            if edge || !m[(y - 1) * w + x] || !m[(y + 1) * w + x] || !m[y * w + x - 1] || !m[y * w + x + 1] {
                out.push((y as f64, x as f64));
            }
        }
    }
    out
}

fn nearest(p: (f64, f64), set: &[(f64, f64)]) -> f64 {
    set.iter().map(|q| ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt()).fold(f64::INFINITY, f64::min)
}

/// numpy.percentile with linear interpolation.
pub fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

fn hd95(a: &[bool], b: &[bool], h: usize, w: usize) -> f64 {
    let (ba, bb) = (boundary(a, h, w), boundary(b, h, w));
    let mut d: Vec<f64> = ba.iter().map(|&p| nearest(p, &bb)).chain(bb.iter().map(|&p| nearest(p, &ba))).collect();
    percentile(&mut d, 95.0)
}

/// Mean of each metric over images.
pub fn mean(scores: &[Scores]) -> Scores {
    let n = scores.len().max(1) as f64;
    Scores {
        dice: scores.iter().map(|s| s.dice).sum::<f64>() / n,
        iou: scores.iter().map(|s| s.iou).sum::<f64>() / n,
        hd95: scores.iter().map(|s| s.hd95).sum::<f64>() / n,
    }
}

/// Per-image rows of CSVs written by `eval --csv`; an image in two files is an error (shards overlap).
pub fn read_score_csvs(paths: &[std::path::PathBuf]) -> crate::Result<Vec<(String, Scores)>> {
    let mut rows: Vec<(String, Scores)> = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|e| crate::Error::io(p, e))?;
        let mut lines = text.lines();
        if lines.next() != Some("image,dice,iou,hd95") {
            return Err(crate::Error::format(
                p,
                "is not a CSV written by `eval --csv` (its header is not image,dice,iou,hd95)",
            ));
        }
        for (k, line) in lines.enumerate().filter(|(_, l)| !l.is_empty()) {
            let bad = || crate::Error::format(p, format!("line {}: expected image,dice,iou,hd95, got {line:?}", k + 2));
            let mut f = line.rsplitn(4, ',');
            let (hd95, iou, dice, name) = (f.next(), f.next(), f.next(), f.next());
            let num = |v: Option<&str>| v.and_then(|x| x.parse::<f64>().ok()).ok_or_else(bad);
            let sc = Scores { dice: num(dice)?, iou: num(iou)?, hd95: num(hd95)? };
            let name = name.ok_or_else(bad)?.to_string();
            if let Some(prev) = seen.insert(name.clone(), p.clone()) {
                return Err(crate::Error::format(
                    p,
                    format!("image {name} is also in {}: the shards overlap", prev.display()),
                ));
            }
            rows.push((name, sc));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(h: usize, w: usize, y0: usize, y1: usize, x0: usize, x1: usize) -> Vec<f32> {
        let mut m = vec![0.0; h * w];
        for y in y0..y1 {
            for x in x0..x1 {
                m[y * w + x] = 1.0;
            }
        }
        m
    }

    #[test]
    fn identical_masks_are_perfect() {
        let m = rect(8, 8, 2, 6, 2, 6);
        assert_eq!(scores(&m, &m, 8, 8), Scores { dice: 1.0, iou: 1.0, hd95: 0.0 });
    }

    #[test]
    fn hand_computed_overlap() {
        // A: 4x4 square (16 px), B: same square shifted right by 2 -> overlap 8 px
        let a = rect(10, 10, 2, 6, 2, 6);
        let b = rect(10, 10, 2, 6, 4, 8);
        let s = scores(&a, &b, 10, 10);
        assert!((s.dice - 0.5).abs() < 1e-12, "dice {}", s.dice); // 2·8 / 32
        assert!((s.iou - 8.0 / 24.0).abs() < 1e-12, "iou {}", s.iou);
        // every boundary point is 0 or 2 away from the other boundary; the largest distances are 2
        assert!((s.hd95 - 2.0).abs() < 1e-12, "hd95 {}", s.hd95);
    }

    #[test]
    fn hd95_single_pixels() {
        // one pixel each, 3-4-5 apart: every distance is 5
        let mut a = vec![0.0; 100];
        let mut b = vec![0.0; 100];
        a[0] = 1.0; // (0, 0)
        b[3 * 10 + 4] = 1.0; // (3, 4)
        assert!((scores(&a, &b, 10, 10).hd95 - 5.0).abs() < 1e-12);
    }

    #[test]
    fn empty_masks_have_defined_scores() {
        let z = vec![0.0; 16];
        let m = rect(4, 4, 1, 2, 1, 2);
        assert_eq!(scores(&z, &z, 4, 4), Scores { dice: 1.0, iou: 1.0, hd95: 0.0 });
        let s = scores(&z, &m, 4, 4);
        assert_eq!((s.dice, s.iou), (0.0, 0.0));
        assert!((s.hd95 - 32f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn percentile_matches_numpy() {
        // numpy.percentile([1, 2, 3, 4, 10], 95) = 8.8
        assert!((percentile(&mut [10.0, 1.0, 3.0, 2.0, 4.0], 95.0) - 8.8).abs() < 1e-12);
    }
}
