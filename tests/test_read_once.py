"""The embedding pipeline reads each file once: the index's content hash comes from the bytes that
are decoded, and only files that could share a stored vector's content are hashed beforehand."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY

from mmcli.demo.shapes import photo_like
from mmcli.embedding.batch import default_batch_size, embed_stream
from mmcli.index.job import IndexJob
from mmcli.index.sync import run_index
from mmcli.media.gpu_decode import CPU_SCALE, device_decode_stream
from mmcli.media.images import load_pixels
from mmcli.models import load_encoder, parse_model_spec

OPENS: Counter[str] = Counter()
WATCHING: list[Path] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and WATCHING and isinstance(args[0], (str, bytes)):
        path = Path(args[0].decode() if isinstance(args[0], bytes) else args[0])
        if path.parent == WATCHING[0]:
            OPENS[path.name] += 1


sys.addaudithook(_audit)  # (audit hooks cannot be removed; this one only counts while WATCHING is set)


def _stored(index: Path) -> dict[str, str]:
    with sqlite3.connect(index / "index.sqlite") as db:
        return {Path(bytes(p).decode()).name: h for p, h in db.execute("SELECT path, hash FROM files")}


def test_a_new_index_opens_each_image_once_and_stores_the_hash_of_what_it_embedded(
    tmp_path: Path, random_corpus
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for p, _ in random_corpus[:10]:
        shutil.copy(p, folder / p.name)
    OPENS.clear()
    WATCHING[:] = [folder]
    try:
        s = run_index(tmp_path / "idx", IndexJob([str(folder)], model=TINY, workers=1))  # decoding in this process
    finally:
        WATCHING.clear()
    assert s.added == 10
    assert OPENS and set(OPENS.values()) == {1}, OPENS  # read once: no separate hashing pass
    stored = _stored(tmp_path / "idx")
    assert stored == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_a_copy_of_an_indexed_image_is_still_found_by_its_content(tmp_path: Path, random_corpus) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for p, _ in random_corpus[:4]:
        shutil.copy(p, folder / p.name)
    run_index(tmp_path / "idx", IndexJob([str(folder)], model=TINY, workers=1))
    first = random_corpus[0][0]
    shutil.copy(first, folder / "copy.jpg")  # same size as a stored file: hashed first, vector reused
    (folder / random_corpus[1][0].name).rename(folder / "renamed.jpg")
    s = run_index(tmp_path / "idx", IndexJob([str(folder)], workers=1))
    assert (s.copied, s.renamed, s.embedded, s.model_loaded) == (1, 1, 0, False)


def _big_jpeg(path: Path, min_side: int) -> None:
    side = CPU_SCALE * min_side + 8
    photo_like(side * 4 // 3, side, seed=7).save(path, quality=90)


def test_device_stream_overlaps_batches_and_decodes_large_jpegs_at_reduced_size(tmp_path: Path, random_corpus) -> None:
    enc = load_encoder(parse_model_spec(TINY), device="cpu", precision="fp32")
    big = tmp_path / "big.jpg"
    _big_jpeg(big, enc.preprocess.min_side)
    missing = tmp_path / "missing.jpg"
    paths = [str(p) for p, _ in random_corpus[:7]] + [str(big), str(missing)]
    batches = list(device_decode_stream(enc, paths, batch_size=4, max_pixels=10**9, reads=True))
    assert [len(b.order) + len(b.failures) for b in batches] == [4, 4, 1]
    assert [p for b in batches for p in b.order] == paths[:8]
    assert [p for b in batches for p, _ in b.failures] == [str(missing)]
    digests = {p: r.digest for b in batches for p, r in b.reads.items()}
    assert digests == {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths[:8]}
    # the large JPEG went through the CPU path (DCT-scaled decode): the same input as that path
    vectors = np.concatenate([b.vectors for b in batches if b.vectors is not None])
    reference = enc.encode_images(load_pixels(str(big), enc.preprocess)[None])
    assert float(vectors[7] @ reference[0]) > 0.99999


def test_embed_stream_reads_on_both_paths(monkeypatch: pytest.MonkeyPatch, random_corpus, tmp_path: Path) -> None:
    import mmcli.embedding.batch as embed

    enc = load_encoder(parse_model_spec(TINY), device="cpu", precision="fp32")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really")
    paths = [str(p) for p, _ in random_corpus[:5]] + [str(bad)]
    expected = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]
    for device_path in (False, True):
        monkeypatch.setattr(embed, "use_device_decoding", lambda encoder, on=device_path: on)
        got = list(embed_stream(enc, paths, batch_size=4, workers=2, reads=True))
        assert [r.path for r in got] == paths
        assert [r.read.digest for r in got] == expected  # the bad file too: it was read
        assert {r.read.taken.source for r in got} == {"mtime"}  # (no EXIF dates in these files)
    assert all(r.read is None for r in embed_stream(enc, paths[:2], workers=1))


def test_the_batch_size_follows_the_device() -> None:
    assert default_batch_size("cuda") == default_batch_size("cuda:1") == 256
    assert default_batch_size("cpu") == default_batch_size("mps") == 32
