#!/usr/bin/env python3
"""Build a real 2-D MRI segmentation dataset folder offline, from Debian's `mricron-data` package.

The package ships the Colin27 T1 template (ch2.nii.gz) and its brain-extracted version (ch2bet.nii.gz).
Each axial slice becomes a pair: image = the T1 slice (8-bit PNG, scaled between the volume's 1st and 99th
percentile), mask = the brain region (ch2bet > 0). Slices with less than 1% brain are skipped.

Usage:  python3 tools/make_colin27_dataset.py OUT_DIR [--axis 2] [--every 2]
Then:   medsegdiff train --data OUT_DIR --image-size 64 --preset small

Needs numpy and Pillow. Fetches the .deb with `apt-get download` (no root needed) unless --deb is given.
"""
import argparse
import gzip
import os
import struct
import subprocess
import tempfile

import numpy as np
from PIL import Image


def read_nifti(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    endian = "<" if struct.unpack("<i", raw[:4])[0] == 348 else ">"
    dims = struct.unpack(endian + "8h", raw[40:56])
    datatype = struct.unpack(endian + "h", raw[70:72])[0]
    vox_offset = int(struct.unpack(endian + "f", raw[108:112])[0])
    slope, inter = struct.unpack(endian + "2f", raw[112:120])
    dtype = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4"}[datatype]
    shape = dims[1:1 + dims[0]]
    n = int(np.prod(shape))
    data = np.frombuffer(raw, dtype=np.dtype(endian + dtype), count=n, offset=vox_offset).astype(np.float32)
    if slope not in (0.0, 1.0) or inter != 0.0:
        data = data * (slope if slope != 0 else 1.0) + inter
    return data.reshape(shape[::-1]).transpose()  # (x, y, z), x fastest on disk


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--deb", help="path to mricron-data_*.deb (default: apt-get download it)")
    ap.add_argument("--axis", type=int, default=2)
    ap.add_argument("--every", type=int, default=2, help="keep every N-th slice")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        deb = a.deb
        if deb is None:
            subprocess.run(["apt-get", "download", "mricron-data"], cwd=tmp, check=True)
            deb = os.path.join(tmp, [f for f in os.listdir(tmp) if f.endswith(".deb")][0])
        subprocess.run(["dpkg-deb", "-x", deb, os.path.join(tmp, "x")], check=True)
        tdir = os.path.join(tmp, "x", "usr", "share", "mricron", "templates")
        t1 = read_nifti(os.path.join(tdir, "ch2.nii.gz"))
        bet = read_nifti(os.path.join(tdir, "ch2bet.nii.gz"))
    if t1.shape != bet.shape:
        raise SystemExit(f"ch2 {t1.shape} and ch2bet {bet.shape} differ")
    lo, hi = np.percentile(t1, [1, 99])
    os.makedirs(os.path.join(a.out, "images"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "masks"), exist_ok=True)
    kept = 0
    for k in range(0, t1.shape[a.axis], a.every):
        img = np.take(t1, k, axis=a.axis)
        mask = np.take(bet, k, axis=a.axis) > 0
        if mask.mean() < 0.01:
            continue
        img8 = (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
        # rotate so anterior is up in axial views
        Image.fromarray(np.rot90(img8)).save(os.path.join(a.out, "images", f"colin27_{k:03d}.png"))
        Image.fromarray(np.rot90(mask.astype(np.uint8) * 255)).save(os.path.join(a.out, "masks", f"colin27_{k:03d}.png"))
        kept += 1
    print(f"{a.out}: {kept} slice pairs from Colin27 (volume {t1.shape}, axis {a.axis})")


if __name__ == "__main__":
    main()
