#!/usr/bin/env python3
"""Score predicted masks against ground truth, independently of medsegdiff's own metrics.

    python3 tools/score_masks.py PRED_DIR TRUTH_DIR [--images IMAGE_DIR] [--suffix _mask]

PRED_DIR holds `<stem><suffix>.png` (what `medsegdiff sample` writes), TRUTH_DIR `<stem>.png` label maps
(0 = background, anything else foreground). Masks are compared at the truth's resolution; a prediction of
another size is an error, not resized. Prints per-image Dice and the mean, and, with --images, two baselines
on the same images: the all-foreground mask and Otsu's threshold of the image.

Needs numpy and Pillow.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image


def dice(a, b):
    a, b = a.astype(bool), b.astype(bool)
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else 2.0 * (a & b).sum() / s


def otsu(img):
    hist = np.bincount(img.ravel(), minlength=256).astype(np.float64)
    p = hist / hist.sum()
    omega, mu = np.cumsum(p), np.cumsum(p * np.arange(256))
    between = (mu[-1] * omega - mu) ** 2 / np.maximum(omega * (1 - omega), 1e-12)
    return img > np.argmax(between)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pred")
    ap.add_argument("truth")
    ap.add_argument("--images")
    ap.add_argument("--suffix", default="_mask")
    a = ap.parse_args()
    stems = sorted(os.path.splitext(f)[0] for f in os.listdir(a.truth) if f.endswith(".png"))
    if not stems:
        sys.exit(f"{a.truth}: no .png masks")
    rows = []
    for s in stems:
        truth = np.array(Image.open(os.path.join(a.truth, s + ".png")).convert("L")) > 0
        path = os.path.join(a.pred, s + a.suffix + ".png")
        if not os.path.exists(path):
            sys.exit(f"{path}: missing prediction for {s}")
        pred = np.array(Image.open(path).convert("L")) > 127
        if pred.shape != truth.shape:
            sys.exit(f"{path}: prediction is {pred.shape[::-1]} but the truth is {truth.shape[::-1]} (w x h)")
        row = [s, dice(pred, truth)]
        if a.images:
            img = np.array(Image.open(os.path.join(a.images, s + ".png")).convert("L"))
            row += [dice(np.ones_like(truth), truth), dice(otsu(img), truth)]
        rows.append(row)
        print(f"{s}: Dice {row[1]:.4f}" + (f"  (all-foreground {row[2]:.4f}, Otsu {row[3]:.4f})" if a.images else ""))
    m = np.mean([r[1] for r in rows])
    print(f"mean Dice over {len(rows)} images: {m:.4f}")
    if a.images:
        print(f"baselines: all-foreground {np.mean([r[2] for r in rows]):.4f}, Otsu {np.mean([r[3] for r in rows]):.4f}")


if __name__ == "__main__":
    main()
