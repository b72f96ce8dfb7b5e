"""The ``--ray`` group: its options, declared once (``RAY_OPTIONS``, without Typer), handed to a command as
one ``RayChoice`` (``mmcli.cli.groups.ray_options`` for Typer-written commands, ``choice`` for declared ones)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmcli.cli.declare import Option
from mmcli.queries.requests import real, whole

if TYPE_CHECKING:
    from mmcli.embedding.ray_driver import RayOptions


@dataclass(frozen=True)
class RayChoice:
    """--ray and its settings; any --ray-* option implies --ray."""

    ray: bool
    ray_address: str | None
    ray_actors: int | None
    ray_gpus_per_actor: float | None

    def __post_init__(self) -> None:
        if self.ray_actors is not None:
            whole("ray_actors", self.ray_actors, 1)
        if self.ray_gpus_per_actor is not None:
            real("ray_gpus_per_actor", self.ray_gpus_per_actor, 0.0, 1024.0)

    @property
    def options(self) -> RayOptions | None:
        """What the core takes: None for a local run (Ray is then never imported)."""
        if not (self.ray or self.ray_address or self.ray_actors is not None or self.ray_gpus_per_actor is not None):
            return None
        from mmcli.embedding.ray_driver import RayOptions, require_ray

        require_ray()  # before any work: one line saying how to install it
        return RayOptions(self.ray_address, self.ray_actors, self.ray_gpus_per_actor)


RAY_OPTIONS = (
    Option(
        "ray",
        ("--ray",),
        "Run the decoding and the model on a Ray cluster: $RAY_ADDRESS, else a new local Ray instance (needs mmcli's "
        "ray extra on every node, as `pip install -e '.[ray]'` in its clone installs it; every Ray node must see the "
        "files at the same paths).",
        kind="flag",
    ),
    Option(
        "ray_address",
        ("--ray-address",),
        "The Ray cluster to use (implies --ray): HOST:PORT of its head, ray://HOST:10001, auto (the cluster started "
        "last on this machine) or local.",
    ),
    Option(
        "ray_actors",
        ("--ray-actors",),
        "Model copies (Ray actors) (implies --ray). Default: one per GPU, or one per 8 CPUs without GPUs.",
    ),
    Option(
        "ray_gpus_per_actor",
        ("--ray-gpus-per-actor",),
        "GPUs each actor reserves (implies --ray; 0.5 puts two on a GPU). Default: 1 if the cluster has GPUs, "
        "else 0. --batch-size is per actor.",
    ),
)
