"""What runs on Ray's workers for ``--ray`` (``ray_driver`` plans and sends it): decoding tasks and the
model actors, and the model spec as a worker resolves it.

Decoding tasks run the same safe decoder as a local run up to the resize (``images.load_resized``) and
send uint8 pixels (a quarter of float32's bytes through the object store); the actors normalise them
with ``Preprocess.normalise``, the arithmetic of a local run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mmcli.errors import ImageLoadError
from mmcli.faults import fault_point
from mmcli.media.images import load_resized

if TYPE_CHECKING:
    from mmcli.media.preprocess import Preprocess
    from mmcli.models import ModelSpec


def check_model(spec: ModelSpec, device: str, precision: str) -> None:
    """On a worker with an actor's resources: the device, the precision and the weights resolve there
    (else the mmcli error, before any actor starts)."""
    from mmcli.models import resolve_device, resolve_precision
    from mmcli.models.weights import resolve

    resolve_precision(precision, resolve_device(device))
    resolve(worker_spec(spec))


def worker_spec(spec: ModelSpec) -> ModelSpec:
    """``spec`` as this machine resolves it: an alias (``mmcli-tiny``) names a folder inside mmcli's
    installation, which need not be where the driver's is; every other spec is absolute already."""
    from mmcli.models import aliases, parse_model_spec

    if spec.name in aliases():
        return parse_model_spec(spec.name, str(spec.weights) if spec.weights else None)
    return spec


def decode_task(batch: dict[str, np.ndarray], preprocess: Preprocess, max_pixels: int) -> dict[str, np.ndarray]:
    """A Ray Data task: paths (absolute, bytes) -> model-sized uint8 pixels (zeros for a bad file) and
    reasons (b"" if ok); ``i``, the position in the driver's list, goes along."""
    h, w = preprocess.size
    names = [bytes(p) for p in batch["path"]]
    pixels = np.zeros((len(names), h, w, 3), dtype=np.uint8)
    errors = []
    for i, name in enumerate(names):
        try:
            pixels[i] = load_resized(name, preprocess, max_pixels)
            errors.append(b"")
        except ImageLoadError as exc:
            errors.append(exc.reason.encode("utf-8", "surrogateescape"))
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not kill the job
            errors.append(f"unexpected decoder error: {type(exc).__name__}: {exc}".encode("utf-8", "surrogateescape"))
    return {"i": batch["i"], "pixels": pixels, "error": np.array(errors, dtype=object)}


class Embedder:
    """A Ray Data actor: one model, loaded once; decoded batches in, unit vectors out."""

    def __init__(self, spec: ModelSpec, device: str, precision: str, threads: int) -> None:
        from mmcli.models import load_encoder

        if device in ("auto", "cpu"):
            import torch

            torch.set_num_threads(threads)
        self.encoder = load_encoder(worker_spec(spec), device=device, precision=precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        fault_point("ray.embed")  # inside the actor, before its batch is embedded
        errors = batch["error"]
        good = np.array([not e for e in errors], dtype=bool)
        dim = self.encoder.dim
        vectors = np.zeros((len(errors), dim), dtype=np.float32)
        if good.any():
            vectors[good] = self.encoder.encode_images(self.encoder.preprocess.normalise(batch["pixels"][good]))
        return {"i": batch["i"], "vector": vectors, "error": errors}
