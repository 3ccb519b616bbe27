#!/usr/bin/env python3
"""Time a training step and a sampling step of the same MedSegDiff config in the PyTorch package (same machine,
same thread count) and in ours (`medsegdiff bench --workload ... --json`), print the ratios, and check that our
FLOP count of a training step (matmul + conv + attention) agrees with PyTorch's FlopCounterMode within 5%.

Usage:  OMP_NUM_THREADS=2 python3 tools/compare_torch.py --preset tiny [--image-size 64] [--batch 8]
        python3 tools/compare_torch.py --config my_unet.json --device cuda --bin ''

The presets mirror `preset()` in src/train.rs. A training step is: q_sample at random t, Unet forward, MSE,
backward, AdamW step. A sampling step is one Unet forward under no_grad (the DDIM update is negligible).
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode
from med_seg_diff_pytorch import Unet, MedSegDiff

PRESETS = {
    "tiny": dict(dim=16, image_size=32, dim_mults=(1, 2), full_self_attn=(False, True), attn_heads=2, attn_dim_head=16),
    "small": dict(dim=32, image_size=64, dim_mults=(1, 2, 4), full_self_attn=(False, False, True)),
    "paper": dict(dim=64, image_size=256, dim_mults=(1, 2, 4, 8), full_self_attn=(False, False, False, True)),
}


def best_of(fn, reps, sync):
    fn()  # warm-up
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny", choices=PRESETS)
    ap.add_argument("--config", help="JSON of the package's Unet kwargs instead of a preset")
    ap.add_argument("--image-size", type=int)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--bin", default="target/release/medsegdiff", help="our binary ('' to skip)")
    a = ap.parse_args()
    if a.config:
        with open(a.config) as f:
            cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in json.load(f).items()}
        name = os.path.splitext(os.path.basename(a.config))[0]
    else:
        cfg = dict(PRESETS[a.preset], mask_channels=1, input_img_channels=1)
        name = a.preset
    if a.image_size:
        cfg["image_size"] = a.image_size
    # ours first, before PyTorch has started its OpenMP workers: run second, our tiny-at-64-px train step read
    # 7.3-8.5 s against 6.3 s alone, and 6.6 s with OMP_WAIT_POLICY=PASSIVE (workers that keep spinning after a
    # parallel region are the likely cause; 2-core VM, 2026-12-03)
    ours = None
    if a.bin:
        with tempfile.TemporaryDirectory() as tmp:
            out_json = os.path.join(tmp, "w.json")
            # both sides the best of --reps steps
            cmd = [a.bin, "bench", "--batch-size", str(a.batch), "--json", out_json, "--top", "0"]
            cmd += ["--reps", str(a.reps)]
            cmd += ["--config", a.config] if a.config else ["--workload", a.preset]
            if a.image_size:
                cmd += ["--image-size", str(a.image_size)]
            text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            with open(out_json) as f:
                w = json.load(f)
        ours = (w, text)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    torch.manual_seed(0)
    unet = Unet(**cfg).to(dev)
    diff = MedSegDiff(unet, timesteps=1000).to(dev)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    s, mc, ic = cfg["image_size"], cfg.get("mask_channels", 1), cfg["input_img_channels"]
    mask = torch.rand(a.batch, mc, s, s, device=dev).round()
    img = torch.rand(a.batch, ic, s, s, device=dev)

    def train_step():
        opt.zero_grad(set_to_none=True)
        diff(mask, img).backward()
        opt.step()

    def sample_step():
        with torch.no_grad():
            unet(torch.randn(a.batch, mc, s, s, device=dev), torch.full((a.batch,), 500.0, device=dev), img)

    with FlopCounterMode(display=False) as fc:
        train_step()
    torch_flop = fc.get_total_flops()
    tt, ts = best_of(train_step, a.reps, sync), best_of(sample_step, a.reps, sync)
    where = torch.cuda.get_device_name() if a.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"PyTorch {torch.__version__} {where}, {name} at {s}px, batch {a.batch}, "
          f"{sum(p.numel() for p in unet.parameters())} parameters; train step {torch_flop / 1e9:.2f} GFLOP")
    print(f"  PyTorch train step {tt * 1e3:9.1f} ms   sampling step {ts * 1e3:9.1f} ms")
    if not a.bin:
        return
    w, text = ours
    phases = {p["name"]: p for p in w["workload"]["phases"]}
    ours_t, ours_s = phases["train_step"]["wall_s"], phases["sample_step"]["wall_s"]
    ours_flop = phases["train_step"]["flop"]
    adapter = text.splitlines()[0].removeprefix("adapter: ")
    print(f"  ours    train step {ours_t * 1e3:9.1f} ms   sampling step {ours_s * 1e3:9.1f} ms   ({adapter})")
    print(f"  ratio ours/PyTorch: train {ours_t / tt:.2f}x, sampling {ours_s / ts:.2f}x")
    dev_pct = 100.0 * (ours_flop - torch_flop) / torch_flop
    ok = abs(dev_pct) <= 5.0
    print(f"  FLOPs of a train step: ours {ours_flop / 1e9:.3f} G, PyTorch {torch_flop / 1e9:.3f} G "
          f"({dev_pct:+.1f}%: {'within' if ok else 'OUTSIDE'} 5%)")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
