"""The one error funnel: every expected failure is an MmcliError with an exit code and a hint."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the ``mmcli`` command (documented in the README)."""

    OK = 0
    ERROR = 1  # nothing could be done: no image succeeded, model unavailable, ...
    USAGE = 2  # bad arguments
    INTERRUPTED = 130  # Ctrl-C


class MmcliError(Exception):
    """An expected failure: the CLI prints ``mmcli: error: <message>`` (and ``hint: <hint>``)."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(MmcliError):
    """The arguments cannot work (no labels, unknown format, ...)."""

    exit_code = ExitCode.USAGE


class ModelError(MmcliError):
    """A model spec that cannot be resolved or whose weights cannot be had or loaded."""


class UnknownModel(UsageError):
    """A --model name that names no alias, architecture or pretrained tag (exit 2, like any bad argument)."""


class NoImagesError(MmcliError):
    """Not a single input image could be processed."""


class ImageLoadError(MmcliError):
    """One file could not be decoded; batches report it and go on."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type[ImageLoadError], tuple[str, str]]:  # crosses process boundaries
        return (ImageLoadError, (self.path, self.reason))


class OcrUnavailable(MmcliError):
    """Reading text from pictures needs the OCR engine (the ``ocr`` extra: ``mmcli-clip[ocr]``), which is not there."""


class IndexStoreError(MmcliError):
    """An index that cannot be used as asked; the subclasses below say why."""


class IndexMissing(IndexStoreError):
    """No index at that place, or one that holds no images yet."""


class IndexCorrupt(IndexStoreError):
    """The index database cannot be read (``mmcli index --rebuild`` sets it aside)."""


class NotANumber(IndexCorrupt):
    """A score or vector that is not a number (NaN or infinite): a damaged vector, never shown as output."""


class IndexTooNew(IndexStoreError):
    """Written by a newer mmcli (a newer format version)."""


class IndexReadOnly(IndexStoreError):
    """The index cannot be written here (read-only media, permissions): it can still be searched."""


class IndexLocked(IndexStoreError):
    """Another ``mmcli index`` is updating it."""


class ModelMismatch(IndexStoreError):
    """The index was built with another model than the one asked for."""


class DiskFull(IndexStoreError):
    """The disk filled up while writing; everything committed before is kept."""


class EmbeddingsError(MmcliError):
    """Embeddings to import whose files do not fit together (row counts, dimensions, unreadable parts)."""
