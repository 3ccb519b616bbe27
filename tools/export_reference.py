#!/usr/bin/env python3
"""Write a MedSegDiff reference fixture (SPEC §6) from the PyTorch package med-seg-diff-pytorch 0.3.3.

The fixture is one safetensors file:
  metadata  config  = JSON of the Unet kwargs (plus "batch", "seed", "perturb")
  tensors   param.<state_dict name>   the weights
            input.x (B, mask_ch, H, W), input.time (B,), input.cond (B, img_ch, H, W), input.upstream (like pred)
            output.pred                                  Unet(x, time, cond)
            grad.<state_dict name>                       d sum(pred * upstream) / d param

Usage (see tools/README.md for the Python environment):
  python tools/export_reference.py OUT.safetensors --dim 8 --image-size 16 --dim-mults 1,2 --full-self-attn 0,1

--from-export W.safetensors (what `medsegdiff export` writes) builds the network from the export's config and
loads its weights with load_state_dict(strict=True) instead of random ones: the fixture then checks that PyTorch
runs our trained model exactly as we do (`medsegdiff check-reference` on it).

Everything is float32: the package's LayerNorm uses eps = 1e-5 only for float32 inputs (1e-3 otherwise), so a
float64 fixture would describe a different network. --perturb adds N(0, perturb^2) noise to every parameter so
that no gradient path is trivially zero (the package initialises ff_parser_attn_map to ones, the dynamic
FF-Parser's output conv to zeros, and norms to identity).
"""
import argparse
import json

import torch
from safetensors.torch import save_file
from med_seg_diff_pytorch import Unet


def parse_bools(s):
    return tuple(bool(int(v)) for v in s.split(","))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--dim", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=16)
    ap.add_argument("--mask-channels", type=int, default=1)
    ap.add_argument("--input-img-channels", type=int, default=1)
    ap.add_argument("--dim-mults", default="1,2")
    ap.add_argument("--full-self-attn", default="0,1")
    ap.add_argument("--attn-heads", type=int, default=2)
    ap.add_argument("--attn-dim-head", type=int, default=8)
    ap.add_argument("--mid-transformer-depth", type=int, default=1)
    ap.add_argument("--resnet-block-groups", type=int, default=4)
    ap.add_argument("--skip-connect-condition-fmaps", action="store_true")
    ap.add_argument("--dynamic-ff-parser-attn-map", action="store_true")
    ap.add_argument("--cond-dim-head", type=int, default=32)
    ap.add_argument("--cond-heads", type=int, default=4)
    # recorded in conditioning_kwargs like the package's own, but the package never passes it to the ViT (always 4)
    ap.add_argument("--cond-depth", type=int, default=4)
    ap.add_argument("--cond-patch-size", type=int, default=16)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--perturb", type=float, default=0.1)
    ap.add_argument("--from-export", help="a `medsegdiff export` file: its config and weights, not random ones")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    kwargs = dict(
        dim=a.dim,
        image_size=a.image_size,
        mask_channels=a.mask_channels,
        input_img_channels=a.input_img_channels,
        dim_mults=tuple(int(v) for v in a.dim_mults.split(",")),
        full_self_attn=parse_bools(a.full_self_attn),
        attn_dim_head=a.attn_dim_head,
        attn_heads=a.attn_heads,
        mid_transformer_depth=a.mid_transformer_depth,
        resnet_block_groups=a.resnet_block_groups,
        skip_connect_condition_fmaps=a.skip_connect_condition_fmaps,
        dynamic_ff_parser_attn_map=a.dynamic_ff_parser_attn_map,
        conditioning_kwargs=dict(dim_head=a.cond_dim_head, heads=a.cond_heads, depth=a.cond_depth, patch_size=a.cond_patch_size),
    )
    if a.from_export:
        from safetensors import safe_open
        from safetensors.torch import load_file
        with safe_open(a.from_export, "pt") as f:
            kwargs = json.loads(f.metadata()["config"])
        kwargs.pop("self_condition", None)
        kwargs["dim_mults"] = tuple(kwargs["dim_mults"])
        kwargs["full_self_attn"] = tuple(kwargs["full_self_attn"])
        model = Unet(**kwargs).float()
        model.load_state_dict(load_file(a.from_export), strict=True)
        a.perturb = 0.0
    else:
        model = Unet(**kwargs).float()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * a.perturb)

    b, s = a.batch, kwargs["image_size"]
    a.mask_channels, a.input_img_channels = kwargs["mask_channels"], kwargs["input_img_channels"]
    x = torch.randn(b, a.mask_channels, s, s)
    time = torch.randint(0, 1000, (b,)).float()
    cond = torch.randn(b, a.input_img_channels, s, s)
    pred = model(x, time, cond)
    upstream = torch.randn_like(pred)
    (pred * upstream).sum().backward()

    tensors = {}
    for name, p in model.state_dict().items():
        tensors["param." + name] = p.detach().contiguous()
    for name, p in model.named_parameters():
        tensors["grad." + name] = (p.grad if p.grad is not None else torch.zeros_like(p)).contiguous()
    tensors.update({"input.x": x, "input.time": time, "input.cond": cond, "input.upstream": upstream, "output.pred": pred.detach()})
    config = dict(kwargs, dim_mults=list(kwargs["dim_mults"]), full_self_attn=list(kwargs["full_self_attn"]))
    meta = {"config": json.dumps(config), "batch": str(b), "seed": str(a.seed), "perturb": str(a.perturb),
            "source": "med-seg-diff-pytorch 0.3.3", "param_count": str(sum(p.numel() for p in model.parameters()))}
    save_file(tensors, a.out, metadata=meta)
    print(f"{a.out}: {sum(p.numel() for p in model.parameters())} parameters, pred {tuple(pred.shape)}, "
          f"|pred|max {pred.abs().max().item():.4g}")


if __name__ == "__main__":
    main()
