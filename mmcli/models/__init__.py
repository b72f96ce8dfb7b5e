"""Models: specs (``spec``), checkpoint files (``weights``), model building (``build``), the Encoder
(``encoder``) and what ``mmcli models`` lists (``catalog``).

Importing this package imports neither torch, open_clip, PIL nor faiss. Code that loads a model
calls ``from mmcli.models import load_encoder`` inside the function, so tests can replace
``mmcli.models.load_encoder`` to prove that no model is loaded.
"""

from mmcli.models.encoder import (
    DEVICES,
    PRECISIONS,
    Encoder,
    EncoderShape,
    cpu_has_bf16,
    describe_encoder,
    load_encoder,
    resolve_device,
    resolve_precision,
)
from mmcli.models.spec import ModelSpec, aliases, find_checkpoint, model_fingerprint, parse_model_spec

__all__ = [
    "DEVICES",
    "PRECISIONS",
    "Encoder",
    "EncoderShape",
    "ModelSpec",
    "aliases",
    "cpu_has_bf16",
    "describe_encoder",
    "find_checkpoint",
    "load_encoder",
    "model_fingerprint",
    "parse_model_spec",
    "resolve_device",
    "resolve_precision",
]
