"""The ``@ray_options`` group: --ray and its settings, handed to a command as one ``RayChoice``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from mmcli.cli.groups import F, _group, _opt

if TYPE_CHECKING:
    from mmcli.embedding.ray_driver import RayOptions


@dataclass(frozen=True)
class RayChoice:
    """--ray and its settings; any --ray-* option implies --ray."""

    ray: bool
    ray_address: str | None
    ray_actors: int | None
    ray_gpus_per_actor: float | None

    @property
    def options(self) -> RayOptions | None:
        """What the core takes: None for a local run (Ray is then never imported)."""
        if not (self.ray or self.ray_address or self.ray_actors is not None or self.ray_gpus_per_actor is not None):
            return None
        from mmcli.embedding.ray_driver import RayOptions, require_ray

        require_ray()  # before any work: one line saying how to install it
        return RayOptions(self.ray_address, self.ray_actors, self.ray_gpus_per_actor)


RAY_PARAMS = (
    _opt(
        "ray",
        bool,
        False,
        "--ray",
        help="Run the decoding and the model on a Ray cluster: $RAY_ADDRESS, else a new local Ray instance "
        "(needs mmcli's ray extra on every node, as `pip install -e '.[ray]'` in its clone installs it; "
        "every Ray node must see the files at the same paths).",
    ),
    _opt(
        "ray_address",
        Optional[str],
        None,
        "--ray-address",
        help="The Ray cluster to use (implies --ray): HOST:PORT of its head, ray://HOST:10001, "
        "auto (the cluster started last on this machine) or local.",
        show_default=False,
    ),
    _opt(
        "ray_actors",
        Optional[int],
        None,
        "--ray-actors",
        min=1,
        help="Model copies (Ray actors) (implies --ray). Default: one per GPU, or one per 8 CPUs without GPUs.",
        show_default=False,
    ),
    _opt(
        "ray_gpus_per_actor",
        Optional[float],
        None,
        "--ray-gpus-per-actor",
        min=0,
        help="GPUs each actor reserves (implies --ray; 0.5 puts two on a GPU). Default: 1 if the cluster "
        "has GPUs, else 0. --batch-size is per actor.",
        show_default=False,
    ),
)


def ray_options(fn: F) -> F:
    """Adds --ray/--ray-address/--ray-actors/--ray-gpus-per-actor; the command receives ``ray_choice: RayChoice``."""
    return _group("ray_choice", RAY_PARAMS, RayChoice)(fn)
