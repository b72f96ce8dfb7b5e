"""Building an open_clip model and loading its checkpoint, without random initialisation.

The model is built on the meta device (shapes only: no memory, no random init, no global state
touched), then the checkpoint's tensors become its parameters (``load_state_dict(assign=True)``).
Buffers that are not in a checkpoint (non-persistent: open_clip's causal ``attn_mask``, Hugging
Face text towers' ``position_ids``) are rebuilt; a model with one mmcli does not know how to
rebuild, or that cannot be built on meta at all, is built the ordinary way instead. No model ever
runs with a tensor left on the meta device.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mmcli.errors import ModelError
from mmcli.models.weights import Resolved

if TYPE_CHECKING:
    import torch

Rebuild = tuple[str, Callable[[], "torch.Tensor"]]  # (qualified buffer name, computes its value)


# What open_clip.create_model warns when it loads no weights itself; mmcli loads them next.
NO_WEIGHTS_WARNINGS = ("Model initialized randomly", "Local config loaded, but no CLIP weights found")


class _NoWeightsWarning(logging.Filter):
    """Drops open_clip's warnings that it loaded no weights; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        message = record.getMessage()
        return not any(text in message for text in NO_WEIGHTS_WARNINGS)


@contextlib.contextmanager
def _no_weights_warning() -> Iterator[None]:
    quiet = _NoWeightsWarning()
    logging.root.addFilter(quiet)  # open_clip logs through the root logger (logging.warning)
    try:
        yield
    finally:
        logging.root.removeFilter(quiet)


def _create(resolved: Resolved, what: str, device: str) -> torch.nn.Module:
    import open_clip

    try:
        with _no_weights_warning():
            return open_clip.create_model(
                resolved.model_name,
                pretrained=None,
                load_weights=False,
                pretrained_text=False,  # no base text-tower weights: the checkpoint holds them all
                device=device,
                force_preprocess_cfg=resolved.preprocess_overrides,
            )
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"cannot build model {what}: {str(exc)[:200]}") from None


def _rebuilder(owner: torch.nn.Module, name: str, meta: torch.Tensor) -> Callable[[], torch.Tensor] | None:
    """How to compute a non-persistent buffer that was built on meta, for the ones mmcli knows."""
    import torch

    package = type(owner).__module__.split(".")[0]
    shape, dtype = tuple(meta.shape), meta.dtype
    if package == "open_clip" and name == "attn_mask" and len(shape) == 2 and shape[0] == shape[1]:
        return lambda: torch.full(shape, float("-inf"), dtype=dtype).triu_(1)  # open_clip's causal mask
    if package == "transformers" and name == "position_ids" and not dtype.is_floating_point:
        return lambda: torch.arange(shape[-1], dtype=dtype).expand(shape)
    if package == "transformers" and name == "token_type_ids" and not dtype.is_floating_point:
        return lambda: torch.zeros(shape, dtype=dtype)
    return None


def _rebuild_plan(model: torch.nn.Module) -> list[Rebuild] | None:
    """The non-persistent buffers of a meta model and how to rebuild each; None if one is unknown."""
    persistent = set(model.state_dict())
    plan = []
    for qualified, buffer in model.named_buffers():
        if qualified in persistent:
            continue
        module_name, _, name = qualified.rpartition(".")
        rebuild = _rebuilder(model.get_submodule(module_name), name, buffer)
        if rebuild is None:
            return None
        plan.append((qualified, rebuild))
    return plan


def _left_on_meta(model: torch.nn.Module) -> list[str]:
    """Parameters, buffers and plain tensor attributes still on the meta device."""
    import torch

    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    for prefix, module in model.named_modules():
        attrs = [k for k, v in vars(module).items() if isinstance(v, torch.Tensor) and v.is_meta]
        left += [f"{prefix}.{k}" if prefix else k for k in attrs]
    return left


def _on_meta(resolved: Resolved, what: str, dtype: torch.dtype) -> torch.nn.Module | None:
    """The model built on meta and completed from the checkpoint, or None where it cannot be."""
    import torch

    try:
        with torch.device("meta"):
            model = _create(resolved, what, "meta")
    except ModelError:
        return None  # the ordinary build says why (or, for code that needs real tensors, succeeds)
    plan = _rebuild_plan(model)
    if plan is None:
        return None
    load_weights(model, resolved.checkpoint, what, dtype)
    for qualified, rebuild in plan:
        module_name, _, name = qualified.rpartition(".")
        setattr(model.get_submodule(module_name), name, rebuild())
    return None if _left_on_meta(model) else model


def build_shapes(resolved: Resolved, what: str) -> torch.nn.Module:
    """The model of ``resolved`` on the meta device: its configuration and shapes, no weights read."""
    import torch

    with torch.device("meta"):
        return _create(resolved, what, "meta")


def build_model(resolved: Resolved, what: str, dtype: torch.dtype) -> torch.nn.Module:
    """The model of ``resolved`` with its checkpoint loaded, on the CPU; floating weights in ``dtype``
    where they come from a safetensors file that fits as it is (else float32, cast by the caller)."""
    model = _on_meta(resolved, what, dtype)
    if model is None:
        model = _create(resolved, what, "cpu")
        load_weights(model, resolved.checkpoint, what, dtype)
    return model


def _assign_safetensors(model: torch.nn.Module, checkpoint: Path, dtype: torch.dtype) -> bool:
    """Fast path: a safetensors file whose keys and shapes are exactly the model's own.

    The loaded tensors become the parameters (``assign=True``): no second copy of the weights in
    memory, no copy time. Anything else (other key names, resized position embeddings) returns
    False and goes through open_clip's converting loader. Tensors are read one at a time and cast
    to the run's ``dtype`` as they come, so a bf16 run never holds the fp32 weights.
    """
    from safetensors import safe_open

    own = model.state_dict()
    state = {}
    with safe_open(str(checkpoint), framework="pt") as f:
        if set(f.keys()) != set(own):
            return False
        for key, mine in own.items():
            tensor = f.get_tensor(key)
            if tensor.shape != mine.shape:
                return False
            state[key] = tensor.to(dtype if mine.is_floating_point() else mine.dtype)
    model.load_state_dict(state, strict=True, assign=True)
    return True


def load_weights(model: torch.nn.Module, checkpoint: Path, what: str, dtype: torch.dtype) -> None:
    """Load ``checkpoint`` into ``model`` (built on meta or on the CPU), or raise a ModelError."""
    import pickle

    import open_clip

    try:
        if checkpoint.suffix == ".safetensors" and _assign_safetensors(model, checkpoint, dtype):
            return
        # open_clip's loader converts keys and resizes position embeddings, then copies into the
        # model's tensors: a meta model gets uninitialised memory first, all of it overwritten
        # (strict=True) except non-persistent buffers, which the caller rebuilds.
        if any(p.is_meta for p in model.parameters()):
            model.to_empty(device="cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's pickle-protocol chatter
            open_clip.load_checkpoint(model, str(checkpoint), strict=True, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise ModelError(
            f"refusing to load {checkpoint}: it is not a plain tensor state dict ({first})",
            hint="mmcli loads only safetensors or state dicts that torch.load(weights_only=True) accepts",
        ) from None
    except (RuntimeError, AssertionError) as exc:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, AssertionError) or any(
            s in text for s in ("Missing key", "Unexpected key", "size mismatch")
        ):
            raise ModelError(
                f"the weights in {checkpoint} do not fit {what}: {text.splitlines()[0][:200]}",
                hint="check the architecture name given with --model",
            ) from None
        raise ModelError(f"cannot load {checkpoint}: {text.splitlines()[0][:200] if text else exc!r}") from None
    except Exception as exc:  # noqa: BLE001 - safetensors / zip / IO errors
        raise ModelError(f"cannot read weights {checkpoint}: {type(exc).__name__}: {str(exc)[:200]}") from None
