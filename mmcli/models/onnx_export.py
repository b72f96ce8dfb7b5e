"""Exporting a model's text or image tower to ONNX (needs torch), once per model.

One export at a time per tower (a flock in the cache folder; a second process waits, then finds it
done). The tower is traced to ONNX in memory, then ONNX Runtime optimises it and writes the graph
and, beside it, the weights (``.onnx.data``, read by memory mapping) under names no sidecar uses
yet; the files are checked against the torch model on a few inputs (cosine >= ``AGREE``), and
only then does the sidecar that names them replace the old one (fault point ``onnx.export`` just
before). A text tower that is causal and pooled at the end-of-text token (``text_prefix``) is
exported with a sequence axis of any length; if that does not reproduce ``encode_text``, the full
context is exported instead.

Only a failure that will recur is recorded as a refusal (the model keeps torch, and nobody tries
again until mmcli's tower format changes): a tokenizer that is not open_clip's plain BPE, a tracer
or ONNX Runtime that cannot handle the architecture, an export that does not reproduce the model.
A failure to write (a full disk, a read-only or unwritable cache), a model that cannot be loaded,
a lack of memory or a killed export is not: it is tried again the next time.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmcli.faults import fault_point
from mmcli.models.onnx_towers import OnnxImageEncoder, OnnxTextEncoder
from mmcli.models.spec import ModelSpec
from mmcli.models.tower_files import (
    TowerDamaged,
    TowerPaths,
    file_record,
    lock,
    named_files,
    remove_leftovers,
    tower_paths,
    tower_state,
    write_sidecar,
)

if TYPE_CHECKING:
    from mmcli.models.encoder import Encoder

OPSET = 17
AGREE = 0.9999  # the exported tower's vectors against torch's, minimum cosine
CHECK_TEXTS = (
    "a photo of a cat.",
    "",
    "日本語のテキスト 中文 emoji 🚗🔥👍🏽 Ελληνικά",
    "a long caption " * 40,  # past any context: truncated, the end-of-text token at the last position
)


@dataclass(frozen=True)
class Outcome:
    done: bool
    reason: str | None = None  # why not, for people
    recorded: bool = False  # a refusal that will recur, recorded in the sidecar


class _Refusal(Exception):
    """A failure that will recur: recorded."""


def export_tower(
    spec: ModelSpec,
    tower: str = "text",
    encoder: Encoder | None = None,
    stale: dict[str, Any] | None = None,
    on_start: Callable[[], None] | None = None,
) -> Outcome:
    """Export one of ``spec``'s towers (fp32, CPU), unless it is already there. ``encoder``: the torch
    model already loaded, used when it is on the CPU in fp32 (else one is loaded). ``stale``: the
    sidecar of an export found damaged, replaced (unless another process replaced it meanwhile).
    ``on_start``: called once the model is there and the export itself begins (seconds, for people)."""
    paths = tower_paths(spec, tower)
    try:
        held = lock(paths)
    except OSError as exc:
        return Outcome(False, f"the cache folder {paths.folder} is not writable ({exc.strerror or exc})")
    try:
        state = tower_state(spec, tower)
        if state.refused:
            return Outcome(False, state.refused, recorded=True)
        if state.ready and state.meta is not None:
            if stale is None or state.meta.get("model") != stale.get("model"):
                return Outcome(True)  # there, or done meanwhile by another process
            with contextlib.suppress(OSError):
                paths.sidecar.unlink()  # the damaged export goes (its files with the leftovers below)
            state = tower_state(spec, tower)
        remove_leftovers(paths, named_files(state.meta))
        try:
            return _export(spec, tower, paths, encoder, on_start)
        except _Refusal as exc:
            reason = str(exc)
            try:
                write_sidecar(paths, {"refused": reason})
            except OSError:
                return Outcome(False, reason)
            return Outcome(False, reason, recorded=True)
        except OSError as exc:
            return Outcome(False, f"the ONNX towers could not be written to {paths.folder} ({exc.strerror or exc})")
        except MemoryError:
            return Outcome(False, "not enough memory to export the ONNX towers")
        except ImportError as exc:  # torch or onnx missing: installing it fixes that
            return Outcome(False, f"the ONNX export needs {exc.name or exc}, which is not installed")
        except Exception as exc:  # noqa: BLE001 - not known to recur: not recorded, and never the command's end
            return Outcome(False, f"the ONNX export failed ({_first_line(exc)})")
    finally:
        os.close(held)  # (releases the flock)


def _export(
    spec: ModelSpec, tower: str, paths: TowerPaths, encoder: Encoder | None, on_start: Callable[[], None] | None
) -> Outcome:
    from mmcli.errors import MmcliError

    try:
        encoder = _fp32_cpu(spec, encoder)
    except MmcliError as exc:  # the torch path will say it again, as the error it is
        return Outcome(False, f"the model could not be loaded ({exc.message})")
    if on_start is not None:
        on_start()
    meta: dict[str, Any] = {
        "tower": tower,
        "spec": spec.canonical,
        "logit_scale": encoder.logit_scale,
        "logit_bias": encoder.logit_bias,
        "dim": encoder.dim,
    }
    if tower == "text":
        try:
            tokenizer = encoder.tokenizer
        except (MmcliError, OSError):  # a Hugging Face tokenizer that cannot be had: not open_clip's BPE either
            tokenizer = None
        clean = _clean_mode(tokenizer)
        if clean is None:
            raise _Refusal("its tokenizer is not open_clip's plain BPE tokenizer")
        meta |= {"context_length": encoder.context_length, "clean": clean}
    else:
        meta["preprocess"] = asdict(encoder.preprocess)
    last = ""
    for lengths, module, example, name, axes in _candidates(encoder, tower):  # (the prefix-cut text tower first)
        try:
            names = _store(_convert(module, example, name, axes, paths), paths)
        except _Refusal as exc:
            last = str(exc)
            continue
        meta |= {"lengths": lengths, "model": names[0], "files": {n: file_record(paths.folder / n) for n in names}}
        agree = _agreement(spec, tower, meta, encoder)
        if agree >= AGREE:
            fault_point("onnx.export")
            write_sidecar(paths, meta)
            remove_leftovers(paths, set(names))
            return Outcome(True)
        last = f"the exported {tower} tower does not reproduce the model's vectors (cosine {agree:.5f})"
        remove_leftovers(paths, set())
    raise _Refusal(last)


def _fp32_cpu(spec: ModelSpec, encoder: Encoder | None) -> Encoder:
    if encoder is not None:
        import torch  # (loaded already, with the encoder)

        if encoder.device == "cpu" and encoder.dtype == torch.float32:
            return encoder
    from mmcli.models import load_encoder  # (which says before importing torch when the weights cannot be had)

    return load_encoder(spec, device="cpu", precision="fp32")


def _candidates(encoder: Encoder, tower: str) -> Iterator[tuple[str, Any, Any, str, dict[str, Any]]]:
    """(lengths, module, example input, input name, dynamic axes) to try in turn."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self, model: Any, method: str) -> None:
            super().__init__()
            self.model, self.method = model, method

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return getattr(self.model, self.method)(x)

    if tower == "image":
        height, width = encoder.preprocess.size
        example = torch.zeros(2, 3, height, width)
        yield "full", Tower(encoder.model, "encode_image").eval(), example, "pixels", {"pixels": {0: "n"}}
        return
    from mmcli.models.text_prefix import prefix_module

    ids = encoder.tokenizer(["a photo of a cat.", "two"]).to(torch.long)
    prefix = prefix_module(encoder.model)
    if prefix is not None and _same_in_torch(prefix, encoder, ids):
        end = int(ids.argmax(dim=1).max()) + 1
        yield "prefix", prefix, ids[:, :end], "ids", {"ids": {0: "n", 1: "length"}}
    yield "full", Tower(encoder.model, "encode_text").eval(), ids, "ids", {"ids": {0: "n"}}


def _same_in_torch(prefix: Any, encoder: Encoder, ids: Any) -> bool:
    """Does the prefix module give ``encode_text``'s features on the full-length input? (Cheap, before tracing.)"""
    import torch

    with torch.no_grad():
        full = encoder.model.encode_text(ids)
        try:
            ours = prefix(ids)
        except Exception:  # noqa: BLE001 - a variant of the architecture it does not handle
            return False
    return bool(torch.allclose(ours, full, rtol=1e-4, atol=1e-4 * float(full.abs().max())))


def _convert(module: Any, example: Any, name: str, axes: dict[str, Any], paths: TowerPaths) -> Path:
    """The module traced to ONNX, written to a temporary file in the cache folder (not kept in memory
    while ONNX Runtime optimises it). A failure to trace or convert is the architecture's (a refusal);
    a failure to write is not."""
    import torch

    raw = paths.folder / f".{paths.stem}-{secrets.token_hex(4)}.raw.onnx"
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # its fused attention op has no ONNX form
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(), _silenced():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer chatter
            torch.onnx.export(
                module,
                (example,),
                str(raw),
                input_names=[name],
                output_names=["features"],
                dynamic_axes={**axes, "features": {0: "n"}},
                opset_version=OPSET,
                dynamo=False,
            )
    except BaseException as exc:
        raw.unlink(missing_ok=True)
        if isinstance(exc, (OSError, MemoryError, ImportError)) or not isinstance(exc, Exception):
            raise
        raise _Refusal(f"the ONNX export failed ({_first_line(exc)})") from None
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return raw


def _store(raw: Path, paths: TowerPaths) -> list[str]:
    """Optimise the traced graph with ONNX Runtime and write it (graph, then weights beside it) under new
    names; the names, graph first. A failure to write is not a refusal; ONNX Runtime failing on the
    graph itself (also with nothing to write) is."""
    token = secrets.token_hex(4)
    names = [f"{paths.stem}-{token}.onnx", f"{paths.stem}-{token}.onnx.data"]
    try:
        _optimise(raw, paths, names)
    except Exception as exc:  # noqa: BLE001 - OSError, or ONNX Runtime's own types
        transient = isinstance(exc, (OSError, MemoryError)) or _loads(raw)
        for leftover in names:
            (paths.folder / leftover).unlink(missing_ok=True)
        if transient:
            raise OSError(getattr(exc, "errno", None), getattr(exc, "strerror", None) or _first_line(exc)) from None
        raise _Refusal(f"ONNX Runtime cannot run the exported graph ({_first_line(exc)})") from None
    finally:
        raw.unlink(missing_ok=True)
    for name in names:
        os.chmod(paths.folder / name, 0o644)
    return names


def _optimise(raw: Path, paths: TowerPaths, names: list[str]) -> None:
    """Store the graph as ONNX Runtime optimises it (fusions; nothing specific to this CPU), so loading
    it for a query skips that work; tensors of 1 KiB and more go to the weights file."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(paths.folder / names[0])
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", names[1])
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    onnxruntime.InferenceSession(str(raw), options, providers=["CPUExecutionProvider"])
    if not all((paths.folder / n).is_file() for n in names):
        raise OSError(f"ONNX Runtime did not write {' and '.join(names)}")


def _loads(raw: Path) -> bool:
    """Can ONNX Runtime load the traced graph (nothing written)?"""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        onnxruntime.InferenceSession(str(raw), options, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001
        return False
    return True


def _agreement(spec: ModelSpec, tower: str, meta: dict[str, Any], encoder: Encoder) -> float:
    """The minimum cosine between the written tower's vectors and the torch model's on a few inputs."""
    try:
        if tower == "text":
            onnx = OnnxTextEncoder(spec, meta)
            ours, theirs = onnx.encode_texts(list(CHECK_TEXTS)), encoder.encode_texts(list(CHECK_TEXTS))
            one = onnx.encode_texts([CHECK_TEXTS[0]])  # alone: its own, shorter length
            ours, theirs = np.vstack([ours, one]), np.vstack([theirs, theirs[:1]])
        else:
            height, width = encoder.preprocess.size
            pixels = np.random.default_rng(0).normal(size=(2, 3, height, width)).astype(np.float32)
            ours, theirs = OnnxImageEncoder(spec, meta).encode_images(pixels), encoder.encode_images(pixels)
    except TowerDamaged as exc:  # written but unreadable: the disk's doing, not the model's
        raise OSError(None, str(exc)) from None
    return float(np.sum(ours * theirs, axis=1).min())


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """The exporter prints (graphs, diagnostics) on stdout and stderr, from Python and C++: stdout is
    the command's data, so both descriptors point at /dev/null meanwhile."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:160]}" if text else type(exc).__name__


def _clean_mode(tokenizer: Any) -> str | None:
    """ "lower" / "whitespace" for open_clip's SimpleTokenizer with those cleaners and no reduction."""
    from open_clip.tokenizer import SimpleTokenizer

    if type(tokenizer) is not SimpleTokenizer or getattr(tokenizer, "reduction_fn", None) is not None:
        return None
    name = getattr(getattr(tokenizer, "clean_fn", None), "__name__", "")
    return {"_clean_lower": "lower", "_clean_whitespace": "whitespace"}.get(name)
