"""mmcli: zero-shot image classification and text-to-image search with CLIP-family models."""

__version__ = "0.1.0"
