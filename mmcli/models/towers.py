"""When the ONNX towers are used, exported and checked, and what happens when they cannot be.

``open_tower``: the query path. A recorded export whose files pass their check is opened (no
torch). A tower not exported yet is exported (with torch, once per model); a damaged one (its
files are not those exported, or ONNX Runtime cannot load them) is exported again. When that
cannot be done, the caller keeps torch and says why once (``Opened.note``): a model that cannot
be exported (recorded, said when it was found), an unwritable cache or a full disk (not recorded:
tried again next time). The cache is disposable: nothing here ever fails a command.

``ensure_towers``: what `mmcli index`, `embed` and `classify` call when they had the torch model
loaded anyway, so that the first search afterwards is as fast as any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmcli.models.onnx_towers import TOWERS, OnnxImageEncoder, OnnxTextEncoder, cpu_fp32_ok, runtime_available
from mmcli.models.spec import ModelSpec
from mmcli.models.tower_files import TowerDamaged, check_files, tower_paths, tower_state

if TYPE_CHECKING:
    from mmcli.models.encoder import Encoder

WHAT = {"text": "texts are embedded", "image": "images are embedded"}


@dataclass(frozen=True)
class Opened:
    encoder: OnnxTextEncoder | OnnxImageEncoder | None  # None: use the torch model
    note: str | None = None  # for people, once


def open_tower(
    spec: ModelSpec,
    tower: str = "text",
    encoder: Encoder | None = None,
    export: bool = True,
    warm: bool = False,
    on_start: Callable[[str], None] | None = None,
) -> Opened:
    """``spec``'s ONNX ``tower``, exported first if needed (``export``; ``encoder``: a torch model
    already loaded, used for it when it is a CPU fp32 one; ``on_start``: told, for people, before an
    export begins); Opened(None, why) where torch must do. ``warm``: for a process that runs many
    queries, a server (see ``OnnxTextEncoder``)."""
    if not runtime_available():
        return Opened(None)
    state = tower_state(spec, tower)
    if state.refused:
        return Opened(None)  # (said when the export found it)
    damaged = None
    if state.ready:
        try:
            return Opened(_open(spec, tower, state.meta, warm))
        except TowerDamaged as exc:
            damaged = str(exc)
    where = f"the exported {tower} tower of {spec.name} in {tower_paths(spec, tower).folder}"
    if not export:
        return Opened(None, f"{where} is damaged ({damaged}): {WHAT[tower]} with torch" if damaged else None)
    from mmcli.models.onnx_export import export_tower

    said = (lambda: on_start(starting(spec, [tower]))) if on_start is not None else None
    outcome = export_tower(spec, tower, encoder, stale=state.meta if damaged else None, on_start=said)
    if outcome.done:
        try:
            opened = _open(spec, tower, None, warm)
        except (TowerDamaged, ValueError) as exc:  # (ValueError: removed meanwhile)
            return Opened(None, f"{where} cannot be used ({exc}): {WHAT[tower]} with torch this time")
        return Opened(opened, f"{where} was damaged ({damaged}): exported it again" if damaged else None)
    if damaged:
        return Opened(None, f"{where} is damaged ({damaged}) and could not be exported again: {outcome.reason}")
    if outcome.recorded:
        return Opened(None, f"{WHAT[tower]} with torch for {spec.name}: {outcome.reason}")
    return Opened(None, f"torch is used this time (slower): {outcome.reason}; tried again next time")


def _open(
    spec: ModelSpec, tower: str, meta: dict[str, Any] | None = None, warm: bool = False
) -> OnnxTextEncoder | OnnxImageEncoder:
    return OnnxTextEncoder(spec, meta, warm) if tower == "text" else OnnxImageEncoder(spec, meta)


def towers_used(device: str, precision: str) -> tuple[str, ...]:
    """The towers the query path of a machine and settings uses: the text tower always; the image tower
    where small image jobs run on the CPU in fp32 (with a GPU, torch does them)."""
    return TOWERS if cpu_fp32_ok(device, precision) else ("text",)


def starting(spec: ModelSpec, towers: list[str]) -> str:
    """What people are told when an export begins (it takes seconds, once per model)."""
    return (
        f"writing the ONNX {' and '.join(towers)} tower{'s' if len(towers) > 1 else ''} of {spec.name} (once per model)"
    )


def ensure_towers(
    spec: ModelSpec,
    encoder: Encoder | None = None,
    towers: tuple[str, ...] = TOWERS,
    on_start: Callable[[str], None] | None = None,
) -> tuple[str, ...]:
    """Export those of ``spec``'s towers that are missing or damaged (``encoder``: the torch model in
    use, reused when it is a CPU fp32 one; ``on_start``: told once, for people, before an export
    begins: it takes seconds). Never raises: a failure is a note (and is tried again the next time);
    a model that cannot be exported is recorded once and left alone."""
    if not runtime_available():
        return ()
    failed: dict[str, list[str]] = {}  # why -> the towers it kept from being written
    wanted: list[tuple[str, dict[str, Any] | None]] = []  # (tower, the damaged one's meta)
    for tower in towers:
        try:
            state = tower_state(spec, tower)
            if state.refused:
                continue
            stale = None
            if state.ready and state.meta is not None:
                try:
                    check_files(tower_paths(spec, tower), state.meta)
                    continue
                except TowerDamaged:
                    stale = state.meta
            wanted.append((tower, stale))
        except Exception as exc:  # noqa: BLE001 - the towers are a cache: never the reason a command fails
            failed.setdefault(f"{type(exc).__name__}: {exc}", []).append(tower)
    told: list[bool] = []

    def said() -> None:  # once, naming every tower to be written, when the first export begins
        if on_start is not None and not told:
            told.append(True)
            on_start(starting(spec, [t for t, _ in wanted]))

    for tower, stale in wanted:
        try:
            from mmcli.models.onnx_export import export_tower

            outcome = export_tower(spec, tower, encoder, stale=stale, on_start=said)
            if not outcome.done and not outcome.recorded:
                failed.setdefault(str(outcome.reason), []).append(tower)
        except Exception as exc:  # noqa: BLE001 - the towers are a cache: never the reason a command fails
            failed.setdefault(f"{type(exc).__name__}: {exc}", []).append(tower)
    return tuple(
        f"the ONNX {' and '.join(names)} tower{'s were' if len(names) > 1 else ' was'} not written ({why}): "
        "searches use torch until then; tried again next time"
        for why, names in failed.items()
    )
