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

/// Per-class [`scores`] of two label maps (h, w) with values 0..=classes: class k compares the pixels labelled k.
pub fn class_scores(pred: &[f32], truth: &[f32], classes: usize, h: usize, w: usize) -> Vec<Scores> {
    let plane = crate::data::labels::class_plane;
    (1..=classes.max(1)).map(|k| scores(&plane(pred, k), &plane(truth, k), h, w)).collect()
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

impl std::ops::Add for Overlap {
    type Output = Overlap;
    fn add(self, o: Overlap) -> Overlap {
        Overlap { tp: self.tp + o.tp, fp: self.fp + o.fp, fn_: self.fn_ + o.fn_ }
    }
}

/// Pixel counts of a prediction against the truth (binarised at ½): what per-volume scores sum over slices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overlap {
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
}

impl Overlap {
    pub fn of(pred: &[f32], truth: &[f32]) -> Overlap {
        let mut o = Overlap::default();
        for (&p, &t) in pred.iter().zip(truth) {
            match (p >= 0.5, t >= 0.5) {
                (true, true) => o.tp += 1,
                (true, false) => o.fp += 1,
                (false, true) => o.fn_ += 1,
                _ => {}
            }
        }
        o
    }

    /// 2TP / (2TP + FP + FN); 1 when both are empty.
    pub fn dice(&self) -> f64 {
        let d = 2 * self.tp + self.fp + self.fn_;
        if d == 0 {
            1.0
        } else {
            2.0 * self.tp as f64 / d as f64
        }
    }

    pub fn iou(&self) -> f64 {
        let d = self.tp + self.fp + self.fn_;
        if d == 0 {
            1.0
        } else {
            self.tp as f64 / d as f64
        }
    }
}

/// HD95 with pixels `spacing` = (row, column) apart, in the spacing's units (millimetres for a NIfTI slice);
/// the same conventions for empty masks as [`scores`] (the diagonal in those units when exactly one is empty).
pub fn hd95_spaced(pred: &[f32], truth: &[f32], h: usize, w: usize, spacing: [f64; 2]) -> f64 {
    let a: Vec<bool> = pred.iter().map(|&v| v >= 0.5).collect();
    let b: Vec<bool> = truth.iter().map(|&v| v >= 0.5).collect();
    let (ea, eb) = (!a.contains(&true), !b.contains(&true));
    if ea && eb {
        return 0.0;
    }
    let [dy, dx] = spacing;
    if ea || eb {
        return ((h as f64 * dy).powi(2) + (w as f64 * dx).powi(2)).sqrt();
    }
    let scale = |v: Vec<(f64, f64)>| v.into_iter().map(|(y, x)| (y * dy, x * dx)).collect::<Vec<_>>();
    let (ba, bb) = (scale(boundary(&a, h, w)), scale(boundary(&b, h, w)));
    let mut d: Vec<f64> = ba.iter().map(|&p| nearest(p, &bb)).chain(bb.iter().map(|&p| nearest(p, &ba))).collect();
    percentile(&mut d, 95.0)
}

/// One scored image of `eval`: its scores, HD95 in millimetres when the spacing is known, its pixel counts
/// (known for rows this version wrote), for a slice of a volume the slice's index (the volume is the name
/// without its `_sNNN` suffix), and for a multi-class model the class (1-based) the row scores.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub image: String,
    pub scores: Scores,
    pub hd95_mm: Option<f64>,
    pub overlap: Option<Overlap>,
    pub slice: Option<usize>,
    pub class: Option<usize>,
}

/// The header of `eval --csv` files; files with the earlier headers (no class; no counts) still merge.
pub const CSV_HEADER: &str = "image,dice,iou,hd95,hd95_mm,tp,fp,fn,slice,class";
pub const OLD_CSV_HEADERS: [&str; 2] = ["image,dice,iou,hd95,hd95_mm,tp,fp,fn,slice", "image,dice,iou,hd95"];

impl Row {
    pub fn csv(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_default();
        let o = self.overlap;
        format!(
            "{},{},{},{},{},{},{},{},{},{}",
            self.image,
            self.scores.dice,
            self.scores.iou,
            self.scores.hd95,
            opt(self.hd95_mm.map(|v| v.to_string())),
            opt(o.map(|o| o.tp.to_string())),
            opt(o.map(|o| o.fp.to_string())),
            opt(o.map(|o| o.fn_.to_string())),
            opt(self.slice.map(|v| v.to_string())),
            opt(self.class.map(|v| v.to_string()))
        )
    }

    /// The volume a slice row belongs to.
    pub fn volume(&self) -> Option<&str> {
        self.slice?;
        self.image.rsplit_once("_s").map(|(v, _)| v)
    }
}

/// A volume's scores summed over its slices.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeScores {
    pub volume: String,
    pub overlap: Overlap,
    pub slices: usize,
    /// Slices whose truth is empty but whose prediction is not.
    pub false_positive_slices: usize,
    /// Whether the slices are 0, 1, … without a gap (a shard's share of a volume, or a merge that misses a
    /// shard, is not; the last slices missing cannot be seen).
    pub complete: bool,
}

impl Row {
    /// Whether the row is a slice whose truth has no foreground (known when its counts are).
    pub fn empty_truth_slice(&self) -> bool {
        self.slice.is_some() && self.overlap.is_some_and(|o| o.tp + o.fn_ == 0)
    }
}

/// Per-volume (3-D) scores of the slice rows that carry counts, volumes in name order.
/// A multi-class model's volumes are scored per class, named `<volume> class <k>`.
pub fn per_volume(rows: &[Row]) -> Vec<VolumeScores> {
    // (volume, class) -> its sums and the slice indices seen
    type Key<'a> = (&'a str, Option<usize>);
    let mut by: std::collections::BTreeMap<Key, (VolumeScores, Vec<usize>)> = Default::default();
    for r in rows {
        let (Some(v), Some(o), Some(k)) = (r.volume(), r.overlap, r.slice) else { continue };
        let (e, seen) = by.entry((v, r.class)).or_insert_with(|| {
            let s = VolumeScores {
                volume: r.class.map_or_else(|| v.to_string(), |c| format!("{v} class {c}")),
                overlap: Overlap::default(),
                slices: 0,
                false_positive_slices: 0,
                complete: false,
            };
            (s, Vec::new())
        });
        e.overlap = e.overlap + o;
        e.slices += 1;
        e.false_positive_slices += usize::from(o.tp + o.fn_ == 0 && o.fp > 0);
        seen.push(k);
    }
    by.into_values()
        .map(|(mut v, mut seen)| {
            seen.sort_unstable();
            v.complete = seen.iter().enumerate().all(|(i, &k)| i == k);
            v
        })
        .collect()
}

/// Rows of CSVs written by `eval --csv`; an image in two files is an error (shards overlap).
pub fn read_score_csvs(paths: &[std::path::PathBuf]) -> crate::Result<Vec<Row>> {
    let mut rows: Vec<Row> = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|e| crate::Error::io(p, e))?;
        let mut lines = text.lines();
        let fields = match lines.next() {
            Some(CSV_HEADER) => 10,
            Some(h) if h == OLD_CSV_HEADERS[0] => 9,
            Some(h) if h == OLD_CSV_HEADERS[1] => 4,
            _ => {
                return Err(crate::Error::format(
                    p,
                    format!("is not a CSV written by `eval --csv` (its header is not {CSV_HEADER})"),
                ))
            }
        };
        for (k, line) in lines.enumerate().filter(|(_, l)| !l.is_empty()) {
            let bad = || crate::Error::format(p, format!("line {}: expected {CSV_HEADER}, got {line:?}", k + 2));
            // from the right, so an image name may hold commas
            let mut f: Vec<&str> = line.rsplitn(fields, ',').collect();
            if f.len() != fields {
                return Err(bad());
            }
            f.reverse();
            let num = |v: &str| v.parse::<f64>().map_err(|_| bad());
            let opt = |v: &str| if v.is_empty() { Ok(None) } else { v.parse::<u64>().map(Some).map_err(|_| bad()) };
            let sc = Scores { dice: num(f[1])?, iou: num(f[2])?, hd95: num(f[3])? };
            let (hd95_mm, overlap, slice) = if fields >= 9 {
                let mm = if f[4].is_empty() { None } else { Some(num(f[4])?) };
                let counts = (opt(f[5])?, opt(f[6])?, opt(f[7])?);
                let overlap = match counts {
                    (Some(tp), Some(fp), Some(fn_)) => Some(Overlap { tp, fp, fn_ }),
                    _ => None,
                };
                (mm, overlap, opt(f[8])?.map(|v| v as usize))
            } else {
                (None, None, None)
            };
            let class = if fields == 10 { opt(f[9])?.map(|v| v as usize) } else { None };
            let name = f[0].to_string();
            if let Some(prev) = seen.insert((name.clone(), class), p.clone()) {
                return Err(crate::Error::format(
                    p,
                    format!("image {name} is also in {}: the shards overlap", prev.display()),
                ));
            }
            rows.push(Row { image: name, scores: sc, hd95_mm, overlap, slice, class });
        }
    }
    rows.sort_by(|a, b| (&a.image, a.class).cmp(&(&b.image, b.class)));
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

    #[test]
    fn spacing_scales_hd95_and_volumes_sum_their_slices() {
        // B is A moved down one row: 1 px apart, 2 mm when rows are 2 mm apart
        let (a, b) = (rect(10, 10, 2, 6, 2, 6), rect(10, 10, 3, 7, 2, 6));
        assert_eq!(scores(&a, &b, 10, 10).hd95, 1.0);
        assert_eq!(hd95_spaced(&a, &b, 10, 10, [2.0, 0.5]), 2.0);
        assert_eq!(hd95_spaced(&a, &vec![0.0; 100], 10, 10, [2.0, 1.0]), (400.0f64 + 100.0).sqrt());
        let o = Overlap::of(&a, &b);
        assert_eq!(o, Overlap { tp: 12, fp: 4, fn_: 4 });
        assert_eq!(o.dice(), scores(&a, &b, 10, 10).dice);
        let empty = vec![0.0; 100];
        let row = |name: &str, slice, p: &[f32], t: &[f32]| Row {
            image: name.into(),
            scores: scores(p, t, 10, 10),
            hd95_mm: Some(1.5),
            overlap: Some(Overlap::of(p, t)),
            slice: Some(slice),
            class: None,
        };
        // case_a: one good slice and one empty-truth slice with a false positive; case_b: both empty
        let rows = vec![
            row("case_a_s000", 0, &a, &b),
            row("case_a_s001", 1, &a, &empty),
            row("case_b_s000", 0, &empty, &empty),
        ];
        let v = per_volume(&rows);
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].volume.as_str(), v[0].slices, v[0].false_positive_slices), ("case_a", 2, 1));
        assert_eq!(v[0].overlap, Overlap { tp: 12, fp: 20, fn_: 4 });
        assert_eq!((v[1].overlap.dice(), v[1].false_positive_slices), (1.0, 0));
        assert!(v[0].complete && v[1].complete);
        assert!(!per_volume(&rows[1..2])[0].complete, "slice 1 without slice 0 is a partial volume");
        assert!(rows[1].empty_truth_slice() && !rows[0].empty_truth_slice());
        // CSV round trip, a name with a comma included
        let d = std::env::temp_dir().join(format!("msd-rows-{}.csv", std::process::id()));
        let mut rows = rows;
        rows.push(Row { image: "x,y".into(), hd95_mm: None, overlap: None, slice: None, ..rows[0].clone() });
        rows.push(Row { class: Some(2), ..rows[0].clone() }); // a multi-class row: the same image, class 2
        assert_eq!(per_volume(&rows).iter().filter(|v| v.volume == "case_a class 2").count(), 1);
        let text: Vec<String> = std::iter::once(CSV_HEADER.to_string()).chain(rows.iter().map(Row::csv)).collect();
        std::fs::write(&d, text.join("\n")).unwrap();
        let mut back = read_score_csvs(std::slice::from_ref(&d)).unwrap();
        back.sort_by(|a, b| a.image.cmp(&b.image));
        rows.sort_by(|a, b| a.image.cmp(&b.image));
        assert_eq!(back, rows);
        std::fs::write(&d, "image,dice,iou,hd95\nold,1,1,0\n").unwrap();
        assert_eq!(read_score_csvs(std::slice::from_ref(&d)).unwrap()[0].overlap, None, "old CSVs still merge");
        std::fs::write(&d, format!("{}\nold,1,1,0,,3,0,0,4\n", OLD_CSV_HEADERS[0])).unwrap();
        let back = read_score_csvs(std::slice::from_ref(&d)).unwrap();
        assert_eq!((back[0].slice, back[0].class), (Some(4), None), "CSVs without a class column still merge");
    }
}
