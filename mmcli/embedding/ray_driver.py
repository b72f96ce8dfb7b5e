"""Embedding on a Ray cluster (``--ray``): the same results as ``embed.embed_stream``, from many machines.

The driver (this process) plans; Ray Data does the work in a streaming pipeline:

1. the paths become a dataset of small blocks (``--batch-size`` images each, a video alone): absolute
   (a worker's working folder is not the driver's), as bytes (file names need not be UTF-8), with
   their position in the driver's list, which maps each result back to the path as given;
2. decoding tasks, one CPU each, run the same safe decoder as a local run (``images.load_image``:
   bomb limit, scan bombs, EXIF, every mode; ``video.sample_video`` for a video's moments, a row each)
   and resize to the model's input as uint8 (a quarter of the bytes of float32 through the object
   store); a bad file becomes a row with its reason;
3. an actor pool embeds: one model per actor (``--ray-actors``, ``--ray-gpus-per-actor``), which
   normalises the pixels exactly as ``Preprocess.to_array`` does and skips the failed rows;
4. the driver iterates over the results as they are produced (``iter_batches``: streaming, nothing is
   materialised) and yields ``ImageVector`` / ``VideoVectors`` (a video's moments, put back together)
   / ``FileFailure`` items, in input order when asked.

Ray restarts a dead actor and retries its task (Ray Data's defaults for actor pools), so a worker
that dies loses nothing and duplicates nothing. Every worker must read the files at the paths the
driver sees (a shared filesystem): a tiny task on each node stats a few sample paths first.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mmcli.config import DEFAULT_MAX_PIXELS, install_command
from mmcli.embedding.ray_files import check_shared_files
from mmcli.embedding.ray_workers import Embedder, check_model, decode_task
from mmcli.errors import MmcliError, UsageError
from mmcli.media.video import DEFAULT_EVERY, DEFAULT_MAX_FRAMES, VideoVectors
from mmcli.results import FileFailure, ImageVector, ProgressFn

if TYPE_CHECKING:
    from mmcli.media.preprocess import Preprocess
    from mmcli.models import ModelSpec

INSTALL = install_command("ray")
CPUS_PER_CPU_ACTOR = 8  # on a cluster without GPUs: one model per this many CPUs (at least one)
DECODE_MEMORY = 256 * 2**20  # reserved per decoding task: a large photo decodes to a few hundred MB
MAX_BLOCKS = 20_000  # decoding tasks per job at most
FORWARDED_ENV = ("MMCLI_FAULT", "MMCLI_FAULT_MARKS", "MMCLI_CPU_BF16")  # to the workers, when set here


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a ``--ray`` job runs."""

    address: str | None = None  # None: $RAY_ADDRESS, else a new local instance
    actors: int | None = None  # None: from the cluster's resources
    gpus_per_actor: float | None = None  # None: 1 on a cluster with GPUs, else 0


@dataclass(frozen=True)
class ActorPlan:
    """How many model actors, and what each reserves."""

    actors: int
    gpus: float
    cpus: float
    threads: int  # torch threads per actor on the CPU


def require_ray() -> None:
    """A usage error (one line, with the install command) unless Ray Data can be imported."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError(f"--ray needs Ray Data, which is not installed: {INSTALL}") from None


def plan_actors(resources: dict[str, float], options: RayOptions) -> ActorPlan:
    """The actor pool for a cluster with ``resources`` (``ray.cluster_resources()``)."""
    cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    per = options.gpus_per_actor if options.gpus_per_actor is not None else (1.0 if gpus >= 1 else 0.0)
    if per > 0 and gpus <= 0:
        raise UsageError(f"--ray-gpus-per-actor {per:g}: the Ray cluster has no GPUs")
    if options.actors is not None:
        actors = options.actors
    elif per > 0:
        actors = max(1, int(gpus // per))
    else:
        actors = max(1, int(cpus) // CPUS_PER_CPU_ACTOR)
    if per > 0 and actors * per > gpus + 1e-9:
        raise UsageError(f"{actors} actors x {per:g} GPUs each need more than the cluster's {gpus:g} GPUs")
    if per > 0:
        want = 1.0
    else:
        want = float(max(1, int(cpus) // (2 * actors)))  # the model's threads; the rest decodes
    if actors * want > cpus - 1:  # leave at least one CPU to the decoding tasks, or nothing decodes
        want = max(0.1, (cpus - 1) / actors) if cpus > 1 else 0.1
    return ActorPlan(actors, per, round(want, 3), max(1, int(want)))


@contextlib.contextmanager
def ray_session(options: RayOptions) -> Iterator[None]:
    """Ray, connected: the cluster at ``options.address`` (or $RAY_ADDRESS), else a new local instance,
    shut down afterwards. A Ray already initialised in this process (a script, a notebook) is used as is
    (an address that answers is then not used: one process, one Ray)."""
    require_ray()
    import ray

    address = options.address or os.environ.get("RAY_ADDRESS") or "local"
    _check_reachable(address)
    if ray.is_initialized():
        yield
        return
    local = address == "local"
    try:
        ray.init(
            address=address,
            include_dashboard=False if local else None,
            logging_level=logging.ERROR,
            log_to_driver=False,
            configure_logging=True,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise MmcliError(
            f"cannot connect to the Ray cluster at {address}: {first}",
            hint="start one with `ray start --head`, or leave out the address for a local instance",
        ) from None
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """A HOST:PORT that does not answer is an error in seconds (Ray itself retries for minutes)."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit() or not host:
        return  # local, auto, ray://...: Ray's own resolution
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        raise MmcliError(
            f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc}",
            hint="start one with `ray start --head`, or leave out the address for a local instance",
        ) from None


def embed_files_on_ray(
    spec: ModelSpec,
    paths: Sequence[str],
    options: RayOptions,
    *,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_progress: ProgressFn | None = None,
    every: float = DEFAULT_EVERY,
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> Iterator[ImageVector | VideoVectors | FileFailure]:
    """``embedding.video.embed_media`` on a Ray cluster: connect (or start one), embed, results in input order."""
    from mmcli.models import describe_encoder

    if not paths:
        return
    shape = describe_encoder(spec)
    with ray_session(options):
        yield from embed_on_ray(
            spec, shape.preprocess, paths, options, device=device, precision=precision,
            batch_size=batch_size, max_pixels=max_pixels, ordered=True, on_progress=on_progress,
            every=every, max_frames=max_frames,
        )  # fmt: skip


def embed_on_ray(
    spec: ModelSpec,
    preprocess: Preprocess,
    paths: Sequence[str],
    options: RayOptions,
    *,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    ordered: bool = True,
    on_progress: ProgressFn | None = None,
    every: float = DEFAULT_EVERY,
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> Iterator[ImageVector | VideoVectors | FileFailure]:
    """Embed ``paths`` (images, and videos: their moments sampled on the workers) on the Ray cluster of
    the current session (see ``ray_session``).

    Yields one item per path: in input order when ``ordered``, else as results arrive (faster when
    actors differ in speed). ``preprocess`` must be the model's (``models.describe_encoder``).
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if not paths:
        return
    import ray

    from mmcli.embedding.batch import default_batch_size

    env = _forwarded_env()
    plan = plan_actors(ray.cluster_resources(), options)
    batch_size = batch_size or default_batch_size("cuda" if plan.gpus else "cpu")  # per actor, for its device
    model_check = ray.remote(check_model).options(num_cpus=0, num_gpus=plan.gpus or None, **_remote_args(env))
    model_ok = model_check.remote(spec, device, precision)  # runs while the files are checked
    check_shared_files(paths, _remote_args(env))
    try:
        ray.get(model_ok, timeout=600)
    except Exception as exc:  # noqa: BLE001 - Ray's wrapper of the worker's error
        raise _job_error(exc) from None
    total, done = len(paths), 0
    work = Work(preprocess, max_pixels, every, max_frames, batch_size)
    moments: dict[int, list[tuple[float, np.ndarray]]] = {}  # a video's moments until all have come
    for batch in _reported(_pipeline(spec, paths, plan, env, device, precision, work, ordered)):
        for i, t, n, vector, error in zip(batch["i"], batch["time"], batch["n"], batch["vector"], batch["error"]):
            path = paths[int(i)]  # as given (a worker got it made absolute)
            if error:
                yield FileFailure(path, bytes(error).decode("utf-8", "surrogateescape"))
            elif math.isnan(t):
                yield ImageVector(path, np.ascontiguousarray(vector, dtype=np.float32))
            else:
                got = moments.setdefault(int(i), [])
                got.append((float(t), vector))
                if len(got) < int(n):
                    continue
                del moments[int(i)]
                got.sort(key=lambda m: m[0])
                vectors = np.ascontiguousarray(np.stack([v for _, v in got]), dtype=np.float32)
                yield VideoVectors(path, tuple(m[0] for m in got), vectors)
            done += 1
            if on_progress:
                on_progress(done, total)


def _reported(batches: Iterator[dict[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
    """The batches; a failed job becomes an MmcliError: the mmcli error an actor raised (a model that
    cannot load there, say), or the first line of Ray's."""
    from ray.data.exceptions import SystemException
    from ray.exceptions import RayError

    try:
        yield from batches
    except (RayError, SystemException) as exc:
        raise _job_error(exc) from None


def _job_error(exc: BaseException) -> MmcliError:
    """The mmcli error a worker raised, found inside Ray's wrappers, else Ray's last line."""
    seen: BaseException | None = exc
    for _ in range(10):  # Ray wraps a worker's exception in its own, sometimes twice
        if seen is None:
            break
        cause = getattr(seen, "cause", None)
        if isinstance(seen, MmcliError) and isinstance(getattr(seen, "message", None), str) and cause is None:
            found = MmcliError(seen.message, getattr(seen, "hint", None))
            found.exit_code = seen.exit_code
            return found
        seen = cause or seen.__cause__
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return MmcliError(f"the Ray job failed: {(lines[-1] if lines else type(exc).__name__)[:300]}")


def _forwarded_env() -> dict[str, str]:
    return {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}


def _remote_args(env: dict[str, str]) -> dict[str, Any]:
    return {"runtime_env": {"env_vars": env}} if env else {}


@dataclass(frozen=True)
class Work:
    """What the decoding tasks and the actors are given: the model's input, the limits, the batch."""

    preprocess: Preprocess
    max_pixels: int
    every: float
    max_frames: int
    batch_size: int


def blocks_of(paths: Sequence[str], batch_size: int) -> list[list[int]]:
    """The positions of ``paths`` in blocks of one decoding task each, in order: runs of up to
    ``batch_size`` images, and each video alone (its moments are many, and tasks run side by side)."""
    from mmcli.media.video import is_video

    blocks: list[list[int]] = []
    run: list[int] = []
    for i, path in enumerate(paths):
        if is_video(path):
            blocks += [run] if run else []
            blocks.append([i])
            run = []
            continue
        run.append(i)
        if len(run) >= batch_size:
            blocks.append(run)
            run = []
    return blocks + ([run] if run else [])


def _pipeline(
    spec: ModelSpec,
    paths: Sequence[str],
    plan: ActorPlan,
    env: dict[str, str],
    device: str,
    precision: str,
    work: Work,
    ordered: bool,
) -> Iterator[dict[str, np.ndarray]]:
    import pyarrow as pa
    import ray.data

    blocks = blocks_of(paths, work.batch_size)
    if len(blocks) > MAX_BLOCKS:  # a huge list: fewer, larger blocks of images (each video stays alone)
        blocks = blocks_of(paths, -(-len(paths) // MAX_BLOCKS))
    tables = [
        pa.table({"i": pa.array(b, pa.int64()), "path": pa.array([os.fsencode(os.path.abspath(paths[i])) for i in b])})
        for b in blocks
    ]
    ds = ray.data.from_arrow(tables)  # one block per table, one decoding task per block
    ds = ds.map_batches(
        decode_task,
        batch_size=None,
        batch_format="numpy",
        fn_kwargs={"preprocess": work.preprocess, "max_pixels": work.max_pixels, "every": work.every,
                   "max_frames": work.max_frames},
        num_cpus=1,
        memory=DECODE_MEMORY,  # (also keeps Ray from fusing the decoding into the model actors)
        **_remote_args(env),
    )  # fmt: skip
    ds = ds.map_batches(
        Embedder,
        batch_size=work.batch_size,
        batch_format="numpy",
        fn_constructor_kwargs={"spec": spec, "device": device, "precision": precision, "threads": plan.threads},
        compute=ray.data.ActorPoolStrategy(size=min(plan.actors, len(blocks))),  # no idle models for a small job
        num_gpus=plan.gpus or None,
        num_cpus=plan.cpus,
        **_remote_args(env),
    )
    ctx = ds.context
    ctx.enable_progress_bars = False  # mmcli's own bar on stderr, as for a local run
    ctx.print_on_execution_start = False
    ctx.execution_options.preserve_order = ordered
    with _quiet_logger("ray.data"):  # its start and finish lines, and its account of a failure: mmcli says it
        yield from ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2)


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
