"""Where a model's weights are: a spec resolved to one checkpoint file (downloaded once if need be).

Every source ends in the same place: an open_clip config and one checkpoint file, which
``mmcli.models.build`` loads (safetensors, or a state dict through ``torch.load(weights_only=True)``,
never arbitrary unpickling). Nothing here imports torch; open_clip and huggingface_hub only inside
the functions that need them.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmcli.errors import ModelError, UnknownModel
from mmcli.models.spec import ModelSpec, find_checkpoint

HF_WEIGHTS = "open_clip_pytorch_model.bin"  # open_clip's default checkpoint name on the hub
UNKNOWN_ARCH_HINT = "`mmcli models --all` lists architectures and tags"


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def offline_hint() -> str:
    """What to do when weights cannot be had (it does not suggest HF_HUB_OFFLINE=1 to whoever set it)."""
    if _hub_offline():
        return (
            "HF_HUB_OFFLINE is set: run once without it, with network access, to download the weights (they are "
            "cached); or pass ARCH --weights FILE, or try --model mmcli-tiny"
        )
    return (
        "download the weights once with network access (they are cached), pass ARCH --weights FILE, "
        "set HF_HUB_OFFLINE=1 to use only the local cache, or try --model mmcli-tiny"
    )


@dataclass(frozen=True)
class Resolved:
    model_name: str  # what open_clip.create_model / get_tokenizer take
    checkpoint: Path
    preprocess_overrides: dict[str, Any]


def _resolve_local_dir(folder: Path, name: str) -> Resolved:
    if not folder.is_dir():
        raise ModelError(f"model folder not found: {folder}")
    if not (folder / "open_clip_config.json").is_file():
        raise ModelError(f"{folder} has no open_clip_config.json", hint="a local-dir: model needs its config")
    checkpoint = find_checkpoint(folder)
    if checkpoint is None:
        raise ModelError(f"{folder} holds no checkpoint (*.safetensors, *.bin, *.pt)")
    return Resolved(name, checkpoint, {})


def _download_failed(what: str, exc: BaseException) -> ModelError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if len(reason) > 200:
        reason = reason[:200] + "..."
    return ModelError(f"cannot get the weights of {what}: {reason}", hint=offline_hint())


def _hub_host() -> str:
    from urllib.parse import urlparse

    return urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"


def _through_proxy(host: str) -> bool:
    """Do requests to ``host`` go through a proxy ($HTTPS_PROXY, $ALL_PROXY, not $NO_PROXY)? The proxy
    then resolves the name: this machine may well not."""
    import urllib.request

    proxies = urllib.request.getproxies()
    if not (proxies.get("https") or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(host)


def _offline_reason() -> str | None:
    """Why the hub cannot be reached right now, or None. Fails in milliseconds, unlike the hub's retries."""
    if _hub_offline():
        return "HF_HUB_OFFLINE is set and they are not in the local cache"
    import socket

    host = _hub_host()
    if _through_proxy(host):
        return None  # (the download itself says so if the proxy cannot reach the hub)
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return f"no network (cannot resolve {host}) and they are not in the local cache"
    return None


def _hub_candidates(filename: str) -> list[str]:
    if filename == HF_WEIGHTS:  # open_clip's own safetensors name for its default checkpoint
        return ["open_clip_model.safetensors", filename]
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors", filename]
    return [filename]


def hub_cached(repo: str, filename: str) -> Path | None:
    """The file from the local Hugging Face cache (safetensors preferred), or None. No network, and
    no import of huggingface_hub (0.13 s): the cache's layout is read directly (``hub_cache_dir``:
    ``models--ORG--NAME/refs/main`` names a commit, ``snapshots/COMMIT/FILE`` is the file)."""
    if not _REPO_ID.match(repo) or "--" in repo or ".." in repo:
        return None  # not a valid repo id: nothing of it can be cached
    folder = hub_cache_dir() / ("models--" + repo.replace("/", "--"))
    if not folder.is_dir():
        return None
    try:
        commit = (folder / "refs" / "main").read_text().strip() or "main"
    except OSError:
        commit = "main"
    for name in _hub_candidates(filename):
        if (folder / ".no_exist" / commit / name).is_file():
            continue  # the hub said this file does not exist at that commit
        found = folder / "snapshots" / commit / name
        if found.is_file():
            return found
    return None


_REPO_ID = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?$")


def hub_cache_dir() -> Path:
    """Where huggingface_hub caches downloads: $HF_HUB_CACHE, else $HF_HOME/hub, else
    $XDG_CACHE_HOME/huggingface/hub (~/.cache/huggingface/hub)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def pretrained_location(arch: str, tag: str) -> tuple[str, str, str] | None:
    """(architecture, hub repo, file) or (architecture, "", url) of an open_clip tag; None if unknown."""
    import open_clip

    if tag == "openai" and not arch.endswith("-quickgelu") and f"{arch}-quickgelu" in open_clip.list_models():
        arch = f"{arch}-quickgelu"  # OpenAI's weights were trained with QuickGELU
    pcfg = open_clip.get_pretrained_cfg(arch, tag)
    if not pcfg:
        return None
    hub = pcfg.get("hf_hub", "")
    if hub:
        repo, _, filename = hub.rstrip("/").rpartition("/") if not hub.endswith("/") else (hub.rstrip("/"), "", "")
        return arch, repo, filename or HF_WEIGHTS
    return arch, "", pcfg.get("url", "")


def _hub_file(repo: str, filename: str, what: str) -> Path:
    """A file of a hub repo: from the local cache when there, else downloaded (quietly)."""
    import logging

    from huggingface_hub import hf_hub_download

    cached = hub_cached(repo, filename)
    if cached is not None:
        return cached
    reason = _offline_reason()
    if reason:
        raise ModelError(f"cannot get the weights of {what}: {reason}", hint=offline_hint())
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)  # no "Retrying in 8s" lines; one error line at the end instead
    try:
        last: Exception | None = None
        for name in _hub_candidates(filename):
            try:
                return Path(hf_hub_download(repo, name))
            except Exception as exc:  # noqa: BLE001 - the hub raises many types
                last = exc
        assert last is not None
        raise _download_failed(what, last)
    finally:
        hub_logger.setLevel(level)


def check_reachable(spec: ModelSpec) -> None:
    """Fail fast where the weights of ``spec`` are in no local cache and cannot be downloaded now
    (HF_HUB_OFFLINE, or no network): the error ``resolve`` would end with, in milliseconds and before
    torch or open_clip is imported (they take seconds). Only specs whose hub repo is known without
    open_clip are checked here (hf-hub: specs, the aliases' ARCH:TAG in models.toml); others go on."""
    from mmcli.models.spec import aliases

    if spec.source and spec.source.startswith("hf-hub:"):
        repo, what = spec.source[len("hf-hub:") :], spec.source
    elif spec.source or spec.weights is not None or not spec.arch or not spec.tag:
        return  # a folder or a file: no hub
    else:
        named = f"{spec.arch}:{spec.tag}"
        hubs = [entry.get("hub") for entry in aliases().values() if entry.get("spec") == named]
        if not hubs or not hubs[0]:
            return
        repo = hubs[0]
        arch = spec.arch
        if spec.tag == "openai" and not arch.endswith("-quickgelu"):
            arch += "-quickgelu"  # (as pretrained_location names it)
        what = f"{arch}:{spec.tag}"
    if hub_cached(repo, HF_WEIGHTS) is not None:
        return
    reason = _offline_reason()
    if reason:
        raise ModelError(f"cannot get the weights of {what}: {reason}", hint=offline_hint())


def _check_arch(arch: str) -> None:
    import open_clip

    if arch not in open_clip.list_models():
        close = difflib.get_close_matches(arch, open_clip.list_models(), n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}? ({UNKNOWN_ARCH_HINT})" if close else UNKNOWN_ARCH_HINT
        raise UnknownModel(f"unknown open_clip architecture {arch!r}", hint=hint)


def _tag_hint(arch: str, tag: str) -> str:
    """The closest known tags of ``arch`` ("did you mean"), else all of them."""
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not tags:
        return "pass --weights FILE"
    close = difflib.get_close_matches(tag, tags, n=3, cutoff=0.6)
    if close:
        return f"did you mean {' or '.join(f'{arch}:{t}' for t in close)}? ({UNKNOWN_ARCH_HINT})"
    return f"known tags: {', '.join(tags)}"


def resolve(spec: ModelSpec) -> Resolved:
    """Find (downloading if need be) the checkpoint and config source for ``spec``."""
    import open_clip

    if spec.source and spec.source.startswith("local-dir:"):
        return _resolve_local_dir(Path(spec.source[10:]), spec.source)
    if spec.source:  # hf-hub
        repo = spec.source[len("hf-hub:") :]
        config = _hub_file(repo, "open_clip_config.json", spec.source)
        weights = _hub_file(repo, HF_WEIGHTS, spec.source)
        if weights.parent != config.parent:
            raise ModelError(f"{spec.source}: config and weights are not in one snapshot folder")
        return Resolved("local-dir:" + str(config.parent), weights, {})

    arch = spec.arch or ""
    if spec.weights is not None:
        _check_arch(arch)
        if not spec.weights.is_file():
            raise ModelError(f"weights file not found: {spec.weights}")
        return Resolved(arch, spec.weights, {})
    location = pretrained_location(arch, spec.tag or "")
    if location is None:
        _check_arch(arch)
        raise UnknownModel(f"unknown pretrained tag {spec.tag!r} for {arch}", hint=_tag_hint(arch, spec.tag or ""))
    arch, repo, filename = location
    pcfg = open_clip.get_pretrained_cfg(arch, spec.tag or "")
    overrides = {k: pcfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in pcfg}
    what = f"{arch}:{spec.tag}"
    if repo:
        return Resolved(arch, _hub_file(repo, filename, what), overrides)
    try:
        checkpoint = Path(open_clip.download_pretrained(pcfg))
    except Exception as exc:  # noqa: BLE001 - urllib / checksum errors
        raise _download_failed(what, exc) from None
    return Resolved(arch, checkpoint, overrides)
