"""What the engine's parts need of an engine: encoders loaded on first need (``LocalEngine`` is one)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mmcli.models import Encoder
    from mmcli.models.onnx_towers import OnnxImageEncoder
    from mmcli.models.spec import TextEncoder


class Encoders(Protocol):
    """What a search needs of an engine: the fingerprint its cached texts are filed under, and encoders
    loaded on first need (``mmcli.engine.local.LocalEngine`` is one)."""

    @property
    def text_fingerprint(self) -> str: ...

    def text_encoder(self) -> TextEncoder: ...

    def image_encoder(self, images: int) -> Encoder | OnnxImageEncoder: ...
