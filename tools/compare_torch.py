#!/usr/bin/env python3
"""Time a training step and a sampling step of the same MedSegDiff config in the PyTorch package (CPU, same
machine, same thread count) and in ours (`medsegdiff profile`), and print the ratio.

Usage:  OMP_NUM_THREADS=2 python3 tools/compare_torch.py --preset tiny [--batch 8] [--bin target/release/medsegdiff]

The presets mirror `preset()` in src/train.rs. A training step is: q_sample at random t, Unet forward, MSE,
backward, AdamW step. A sampling step is one Unet forward under no_grad (the DDIM update is negligible).
"""
import argparse
import re
import subprocess
import time

import torch
from med_seg_diff_pytorch import Unet, MedSegDiff

PRESETS = {
    "tiny": dict(dim=16, image_size=32, dim_mults=(1, 2), full_self_attn=(False, True), attn_heads=2, attn_dim_head=16),
    "small": dict(dim=32, image_size=64, dim_mults=(1, 2, 4), full_self_attn=(False, False, True)),
    "paper": dict(dim=64, image_size=256, dim_mults=(1, 2, 4, 8), full_self_attn=(False, False, False, True)),
}


def best_of(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny", choices=PRESETS)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--bin", default="target/release/medsegdiff", help="our binary ('' to skip)")
    a = ap.parse_args()
    cfg = PRESETS[a.preset]
    unet = Unet(mask_channels=1, input_img_channels=1, **cfg)
    diff = MedSegDiff(unet, timesteps=1000)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    s = cfg["image_size"]
    mask = torch.rand(a.batch, 1, s, s).round()
    img = torch.rand(a.batch, 1, s, s)

    def train_step():
        opt.zero_grad()
        diff(mask, img).backward()
        opt.step()

    def sample_step():
        with torch.no_grad():
            unet(torch.randn(a.batch, 1, s, s), torch.full((a.batch,), 500.0), img)

    tt, ts = best_of(train_step, a.reps), best_of(sample_step, a.reps)
    print(f"PyTorch {torch.__version__} CPU, {torch.get_num_threads()} threads, preset {a.preset}, batch {a.batch}, "
          f"{sum(p.numel() for p in unet.parameters())} parameters")
    print(f"  PyTorch train step {tt * 1e3:9.1f} ms   sampling step {ts * 1e3:9.1f} ms")
    if a.bin:
        out = subprocess.run([a.bin, "profile", "--preset", a.preset, "--batch-size", str(a.batch)],
                             capture_output=True, text=True, check=True).stdout
        ours_t = float(re.search(r"one step: ([0-9.]+) ms wall", out).group(1)) / 1e3
        ours_s = float(re.search(r"one sampling step .*: ([0-9.]+) ms wall", out).group(1)) / 1e3
        device = re.search(r"^(.*)$", out, re.M).group(1)
        print(f"  ours    train step {ours_t * 1e3:9.1f} ms   sampling step {ours_s * 1e3:9.1f} ms   ({device})")
        print(f"  ratio ours/PyTorch: train {ours_t / tt:.2f}x, sampling {ours_s / ts:.2f}x")


if __name__ == "__main__":
    main()
