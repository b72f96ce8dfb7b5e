"""Thumbnails of files: a picture decoded safely and shrunk, or a video's frame at a moment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmcli.config import DEFAULT_MAX_PIXELS
from mmcli.errors import ImageLoadError
from mmcli.media.images import load_image

if TYPE_CHECKING:
    from PIL import Image

THUMB = 256


def render_thumbnail(path: str, size: int = THUMB, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """``path`` decoded safely (bomb limit, EXIF orientation) and shrunk to fit ``size`` x ``size``;
    raises ImageLoadError."""
    img = load_image(path, max_pixels, min_side=size // 2)
    img.thumbnail((size, size))
    return img


def thumbnail(path: str, size: int = THUMB, time: float | None = None) -> Image.Image | None:
    """A picture's thumbnail, or a video's frame at ``time``; None when it cannot be shown."""
    from mmcli.media.video import frame_picture, is_video

    if time is not None or is_video(path):
        img = frame_picture(path, time or 0.0, size)
        if img is not None:
            img.thumbnail((size, size))
        return img
    try:
        return render_thumbnail(path, size)
    except ImageLoadError:
        return None
