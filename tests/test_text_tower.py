"""Texts without torch: the tokenizer gives open_clip's ids, the ONNX text tower open_clip's vectors,
and the commands that need no image model import neither torch nor open_clip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY

from mmcli.models.tokenizer import Tokenizer

STRINGS = [
    "a red car",
    "",
    "   ",
    "A Photo Of A DOG.",
    "Ünïcödé çafé naïve résumé",
    "日本語のテキスト 中文字符 한국어 문장",
    "emoji 🚗🔥👍🏽 and a flag 🇩🇪 and 👨‍👩‍👧",
    "&amp;lt;b&amp;gt; HTML &quot;quoted&quot; &#39;x&#39;",
    "don't can't we're I'll you've she'd it's",
    "x" * 500,
    " ".join(["word"] * 200),
    "tab\tand\nnew line\r\n",
    "<start_of_text> inside <end_of_text>",
    "numbers 123 4567.89 1e-5 ½ ²",
    "ligatures ﬁ ﬀ and mojibake â€™",
    "a\u00a0non-breaking\u200bzero-width",
    "Ελληνικά кириллица עברית العربية हिन्दी",
    "!!!???...,,,;;;:::---___",
]


@pytest.mark.parametrize("context", [77, 24])
def test_tokenizer_gives_open_clips_ids(context: int) -> None:
    from open_clip.tokenizer import SimpleTokenizer

    ref = SimpleTokenizer(context_length=context)
    ours = Tokenizer(context)
    for text in STRINGS:
        assert np.array_equal(ours.tokenize([text]), ref([text]).numpy()), repr(text)
        assert ours.count(text) == len(ref.encode(text))
    assert np.array_equal(ours.tokenize(STRINGS), ref(STRINGS).numpy())


def test_tokenizer_on_random_text() -> None:
    from open_clip.tokenizer import SimpleTokenizer

    rng = np.random.default_rng(5)
    pool = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,'!?-éüßçñ中文日本語🚗👍&;#"
    texts = ["".join(rng.choice(list(pool), size=int(rng.integers(0, 120)))) for _ in range(300)]
    assert np.array_equal(Tokenizer(77).tokenize(texts), SimpleTokenizer(context_length=77)(texts).numpy())


@pytest.fixture
def tiny_tower():
    from mmcli.models import load_encoder, parse_model_spec
    from mmcli.models.onnx_export import export_tower
    from mmcli.models.onnx_towers import OnnxTextEncoder
    from mmcli.models.tower_files import tower_state

    spec = parse_model_spec(TINY)
    assert export_tower(spec).done and tower_state(spec).ready
    assert tower_state(spec).meta["lengths"] == "prefix"  # causal, pooled at the end of text: cut there
    return OnnxTextEncoder(spec), load_encoder(spec, device="cpu", precision="fp32")


def test_onnx_text_tower_equals_open_clip(tiny_tower) -> None:
    onnx, torch_encoder = tiny_tower
    ours, theirs = onnx.encode_texts(STRINGS), torch_encoder.encode_texts(STRINGS)
    assert (np.sum(ours * theirs, axis=1) >= 0.9999).all()
    assert [onnx.too_long(t) for t in STRINGS] == [torch_encoder.too_long(t) for t in STRINGS]
    assert (onnx.logit_scale, onnx.logit_bias) == pytest.approx((torch_encoder.logit_scale, torch_encoder.logit_bias))


def test_search_rankings_are_the_same_with_either_text_encoder(tiny_tower, shapes_dir: Path, tmp_path: Path) -> None:
    from mmcli.engine.local import LocalEngine
    from mmcli.index.job import IndexJob
    from mmcli.index.sync import run_index
    from mmcli.queries import SearchRequest, build_terms

    run_index(tmp_path / "idx", IndexJob([str(shapes_dir)], model=TINY, workers=1))
    for text in ("a red circle", "a blue star", "a green square", "a white triangle"):
        request = SearchRequest(build_terms(text, None), top_k=32)
        with_onnx = LocalEngine(tmp_path / "idx").search(request).hits
        engine = LocalEngine(tmp_path / "idx", precision="fp32")
        engine._text = engine.encoder()  # the torch path
        with_torch = engine.search(request).hits
        assert [h.path for h in with_onnx] == [h.path for h in with_torch]
        assert np.allclose([h.score for h in with_onnx], [h.score for h in with_torch], atol=1e-4)


def _heavy_modules(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str], bytes]:
    """Run an mmcli command in a fresh process; its exit code, the heavy modules it imported, stdout."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['mmcli', *{list(args)!r}]\n"
        "try:\n    runpy.run_module('mmcli', run_name='__main__')\n"
        "except SystemExit as e:\n    status = e.code or 0\nelse:\n    status = 0\n"
        "heavy = sorted(m for m in ('torch', 'open_clip', 'torchvision') if m in sys.modules)\n"
        "print('HEAVY', status, ','.join(heavy), file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, env={**os.environ, **(env or {})})
    line = [x for x in r.stderr.decode().splitlines() if x.startswith("HEAVY")][-1].split(" ")
    return int(line[1]), [m for m in (line[2] if len(line) > 2 else "").split(",") if m], r.stdout


def test_commands_that_need_no_image_model_import_neither_torch_nor_open_clip(
    shapes_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / "cache"))  # nothing exported before this test
    index = str(tmp_path / "idx")
    status, heavy, _ = _heavy_modules("index", str(shapes_dir), "--index", index, "--model", TINY)
    assert status == 0 and "torch" in heavy  # indexing embeds images: torch, of course (and writes the towers)
    assert sorted(p.suffix for p in (tmp_path / "cache" / "onnx").glob("*-*-*.onnx*")) == [
        ".data",
        ".data",
        ".onnx",
        ".onnx",
    ]
    for args in (
        ["search", "a red circle", "--index", index, "-k", "3"],  # the first search after an index: no torch
        ["search", "a blue star", "--index", index, "-k", "3"],  # a new query: the ONNX tower
        ["search", "a blue star", "--index", index, "-k", "3"],  # the same again: the text cache
        ["search", "a star", "--add", "2:blue", "--sub", "a red circle", "--index", index],
        ["cluster", "-k", "2", "--labels", "circle", "star", "--index", index],
        ["embed", "--text", "a yellow circle", "--model", TINY],
        ["info", "--index", index],
        ["dupes", "--threshold", "0.5", "--index", index],
        ["models"],
    ):
        status, heavy, out = _heavy_modules(*args)
        assert status == 0 and out and heavy == [], (args, heavy)


def test_a_model_that_keeps_torch_for_texts_still_searches(
    shapes_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmcli.models import parse_model_spec
    from mmcli.models.tower_files import FORMAT, tower_paths

    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / "cache"))  # this test's refusal stays its own
    index = str(tmp_path / "idx")
    assert _heavy_modules("index", str(shapes_dir), "--index", index, "--model", TINY)[0] == 0
    paths = tower_paths(parse_model_spec(TINY))
    paths.sidecar.write_text(json.dumps({"format": FORMAT, "refused": "its tokenizer is not open_clip's plain BPE"}))
    status, heavy, out = _heavy_modules("search", "a green circle", "--index", index, "-k", "2")
    assert status == 0 and out.count(b"\n") == 2 and "torch" in heavy


def test_the_export_says_once_why_a_model_keeps_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmcli.models.onnx_export as onnx_export
    from mmcli.models import parse_model_spec
    from mmcli.models.tower_files import tower_state
    from mmcli.models.towers import open_tower

    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_export, "_clean_mode", lambda tokenizer: None)
    spec = parse_model_spec(TINY)
    opened = open_tower(spec)
    assert opened.encoder is None and "plain BPE" in (opened.note or "")
    assert tower_state(spec).refused and not tower_state(spec).ready  # recorded: it will recur
    assert open_tower(spec) == open_tower(spec, export=False)  # not tried again, not said again
    assert open_tower(spec).note is None

    class NotSimple:
        pass

    from open_clip.tokenizer import SimpleTokenizer

    monkeypatch.undo()
    assert onnx_export._clean_mode(NotSimple()) is None
    assert onnx_export._clean_mode(SimpleTokenizer(context_length=77)) == "lower"


def test_a_small_classify_job_needs_no_torch_and_a_large_one_uses_it(
    shapes_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / "cache"))
    one = str(shapes_dir / "red_star.jpg")
    status, heavy, out = _heavy_modules("classify", one, "--labels", "red star", "blue circle", "--model", TINY)
    assert status == 0 and "torch" in heavy  # the first time: the towers are exported
    status, heavy, out = _heavy_modules("classify", one, "--labels", "green star", "red star", "--model", TINY)
    assert status == 0 and heavy == [] and json.loads(out)["labels"][0]["label"] == "red star"
    status, heavy, out = _heavy_modules("classify", str(shapes_dir), "--labels", "star", "circle", "--model", TINY)
    assert status == 0 and "torch" in heavy and out.count(b"\n") == 32  # 32 images: the torch model's batches


def test_plain_ascii_is_what_ftfy_and_html_unescaping_leave_alone() -> None:
    """The tokenizer skips ftfy for printable ASCII without "&" (and tab, newline): exhaustively on one and
    two characters, and on random strings, ftfy + HTML unescaping leave such text as it is."""
    import html
    import itertools

    import ftfy

    from mmcli.models.tokenizer import _PLAIN

    plain = [chr(c) for c in range(0x20, 0x7F) if chr(c) != "&"] + ["\t", "\n"]
    rng = np.random.default_rng(11)
    randoms = ["".join(rng.choice(plain, size=int(rng.integers(1, 60)))) for _ in range(3000)]
    for text in itertools.chain(plain, map("".join, itertools.product(plain, repeat=2)), randoms):
        assert _PLAIN.fullmatch(text)
        assert html.unescape(html.unescape(ftfy.fix_text(text))) == text, repr(text)
    for text in ("&amp;", "a & b", "caf\u00e9", "\r\n", "\x00", "\x7f", "\x1b[0m"):
        assert not _PLAIN.fullmatch(text)


def test_ascii_text_is_split_as_regex_splits_it() -> None:
    """ASCII text goes through ``re`` instead of ``regex`` (no import): the same pieces, the same ids."""
    import regex
    from open_clip.tokenizer import SimpleTokenizer

    from mmcli.models.tokenizer import _ASCII_PATTERN, _unicode_pattern

    rng = np.random.default_rng(12)
    alphabet = [chr(c) for c in range(128)] + ["'s", "'ll", "<start_of_text>", "<end_of_text>"]
    texts = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 50)))) for _ in range(2000)]
    for text in texts:
        assert _ASCII_PATTERN.findall(text) == _unicode_pattern().findall(text), repr(text)
    assert isinstance(_unicode_pattern(), regex.Pattern)
    ascii_only = [t for t in texts if t.isascii()][:500]
    assert np.array_equal(Tokenizer(77).tokenize(ascii_only), SimpleTokenizer(context_length=77)(ascii_only).numpy())


def test_the_prepared_tables_are_used_and_a_damaged_copy_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmcli.models.tokenizer as tokenizer

    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / "cache"))
    first = Tokenizer(77)
    (prepared,) = (tmp_path / "cache" / "onnx").glob("bpe-*.marshal")
    monkeypatch.setattr(tokenizer, "_parse", lambda vocab_file: pytest.fail("parsed again"))
    assert Tokenizer(77).ids == first.ids and Tokenizer(77).ranks == first.ranks  # read from the prepared file
    monkeypatch.undo()
    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / "cache"))
    data = prepared.read_bytes()
    damaged = data.replace(b"ab</w>", b"ba</w>", 1)  # one token changed: its digest fails
    assert damaged != data
    prepared.write_bytes(damaged)
    again = Tokenizer(77)
    assert again.ids == first.ids and prepared.read_bytes() == data
    assert np.array_equal(again.tokenize(STRINGS), first.tokenize(STRINGS))


def test_only_a_causal_tower_pooled_at_the_end_of_text_is_cut_there() -> None:
    """Running the tokens up to the end of text only is right for CLIP's causal, argmax-pooled tower;
    a tower that attends both ways, or pools elsewhere, keeps the whole context."""
    import torch

    from mmcli.models import load_encoder, parse_model_spec
    from mmcli.models.text_prefix import prefix_module

    model = load_encoder(parse_model_spec(TINY), device="cpu", precision="fp32").model
    prefix = prefix_module(model)
    assert prefix is not None
    ids = torch.from_numpy(Tokenizer(24).tokenize(["a red circle", "日本語 🚗", "x " * 30, ""]))
    with torch.no_grad():
        full = model.encode_text(ids)
        end = int(ids.argmax(dim=1).max()) + 1
        assert torch.allclose(prefix(ids[:, :end]), full, atol=1e-5)
        assert torch.allclose(prefix(ids), full, atol=1e-5)
    mask = model.attn_mask
    model.attn_mask = torch.zeros_like(mask)  # attends both ways
    assert prefix_module(model) is None
    model.attn_mask, model.text_pool_type = mask, "last"  # pools at the last position, padding included
    assert prefix_module(model) is None


def test_a_prefix_cut_tower_that_does_not_reproduce_the_model_is_exported_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import mmcli.models.onnx_export as onnx_export
    import mmcli.models.text_prefix as text_prefix
    from mmcli.models import parse_model_spec
    from mmcli.models.tower_files import tower_state

    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / "cache"))
    right = text_prefix.prefix_module

    def wrong(model):  # noqa: ANN001, ANN202 - cut one token short: not the model's vectors
        module = right(model)

        class Short(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.module = module

            def forward(self, ids: torch.Tensor) -> torch.Tensor:
                return self.module(ids[:, :-1])

        return Short()

    monkeypatch.setattr(text_prefix, "prefix_module", wrong)
    monkeypatch.setattr(onnx_export, "_same_in_torch", lambda prefix, encoder, ids: True)
    spec = parse_model_spec(TINY)
    assert onnx_export.export_tower(spec).done
    assert tower_state(spec).meta["lengths"] == "full"


def test_a_server_and_a_command_embed_texts_to_the_same_bits(tiny_tower) -> None:
    """A warm engine (the server) and a command of its own must give the same bytes on stdout: their
    text towers, however their sessions are set up, give the same vectors to the last bit."""
    from mmcli.models import parse_model_spec
    from mmcli.models.onnx_towers import OnnxTextEncoder

    cold, _ = tiny_tower
    warm = OnnxTextEncoder(parse_model_spec(TINY), warm=True)
    for batch in (STRINGS, STRINGS[:1], STRINGS[5:7]):
        assert np.array_equal(warm.encode_texts(batch), cold.encode_texts(batch))
