"""A real second model for ``--rerank`` tests: mmcli-tiny with other weights, in a folder of its own."""

from __future__ import annotations

import shutil
from pathlib import Path


def write_second_model(folder: Path, seed: int = 1, amount: float = 0.3) -> str:
    """mmcli-tiny's architecture with its weights moved by ``amount`` of each tensor's spread (seeded
    noise): a model that still knows the shapes but orders them its own way. Returns its ``--model`` spec."""
    import torch
    from safetensors.torch import load_file, save_file

    from mmcli.config import configs_dir

    source = configs_dir() / "mmcli-tiny"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "open_clip_config.json", folder / "open_clip_config.json")
    weights = load_file(source / "open_clip_model.safetensors")
    noise = torch.Generator().manual_seed(seed)
    moved = {
        name: (t + amount * t.std() * torch.randn(t.shape, generator=noise)).contiguous()
        if t.dtype.is_floating_point and t.numel() > 1
        else t.contiguous()
        for name, t in weights.items()
    }
    save_file(moved, str(folder / "open_clip_model.safetensors"))
    return f"local-dir:{folder}"
