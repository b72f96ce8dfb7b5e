"""Keywords into XMP sidecars (``mmcli.xmp``), read back by exiftool, a client none of us wrote: new
sidecars, sidecars exiftool and darktable wrote first, ``--replace``, the files left as they were, and
`mmcli classify --write-xmp` end to end with the tiny model."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import TINY, run_mmcli
from exif_fixtures import SHOTS, jpeg_bytes

from mmcli.engine.keywords import SidecarWriter, XmpOptions, image_keywords, video_keywords
from mmcli.errors import UsageError
from mmcli.queries import ClassifyRequest
from mmcli.results import Classification, LabelScore, Segment
from mmcli.xmp.keywords import check_keyword, check_prefix, keywords_in, sidecar_for, write_keywords

EXIFTOOL = shutil.which("exiftool")


@pytest.fixture(autouse=True)
def _exiftool() -> None:
    if EXIFTOOL is None:
        if os.environ.get("CI"):  # .ci/run installs it: there this never skips
            pytest.fail("exiftool not found: CI must install libimage-exiftool-perl")
        pytest.skip("exiftool not installed (Debian: libimage-exiftool-perl)")


def exiftool(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([EXIFTOOL, *map(str, args)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc


def read_back(sidecar: Path, *tags: str) -> dict[str, object]:
    """What exiftool reads from a sidecar (lists stay lists: -struct; numbers as they are: -n)."""
    tags = tags or ("-XMP-dc:Subject", "-XMP-lr:HierarchicalSubject")
    found = json.loads(exiftool("-j", "-n", "-struct", "-G1", *tags, sidecar).stdout)[0]
    found.pop("SourceFile")
    return {k: (v if isinstance(v, list) else [v]) if k.endswith("Subject") else v for k, v in found.items()}


def all_tags(sidecar: Path) -> dict[str, object]:
    found = json.loads(exiftool("-j", "-n", "-struct", "-G1", "-a", "-XMP:all", sidecar).stdout)[0]
    return {k: v for k, v in found.items() if k not in ("SourceFile",) and not k.startswith("ExifTool")}


def only_inserted(old: bytes, new: bytes) -> bool:
    """``new`` is ``old`` with bytes inserted (and, with ``removed``, taken out) and nothing else changed."""
    ops = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    return all(op in ("equal", "insert") for op, *_ in ops)


def picture(folder: Path, name: str = "photo.jpg", shot: int = 0) -> Path:
    path = folder / name
    path.write_bytes(jpeg_bytes(SHOTS[shot]))
    return path


DARKTABLE = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
   xmp:Rating="3"
   xmpMM:DerivedFrom="photo.jpg"
   darktable:xmp_version="5"
   darktable:raw_params="0"
   darktable:auto_presets_applied="1"
   darktable:history_end="2"
   darktable:iop_order_version="4">
   <darktable:masks_history>
    <rdf:Seq/>
   </darktable:masks_history>
   <darktable:history>
    <rdf:Seq>
     <rdf:li
      darktable:num="0"
      darktable:operation="exposure"
      darktable:enabled="1"
      darktable:modversion="6"
      darktable:params="00000000000080b90000003f00004842000080c00100000001000000"
      darktable:multi_name=""
      darktable:multi_priority="0"
      darktable:blendop_version="14"
      darktable:blendop_params="gz11eJxjYGBgYAFiCQYYOOHEgAZY0QVwggZ7CB6pfOygYtaVAyCMtK8="/>
     <rdf:li
      darktable:num="1"
      darktable:operation="colorin"
      darktable:enabled="1"
      darktable:modversion="7"
      darktable:params="gz48eJzjZBgFo4C+AAAC1AAB"
      darktable:multi_name=""
      darktable:multi_priority="0"
      darktable:blendop_version="14"
      darktable:blendop_params="gz11eJxjYGBgYAFiCQYYOOHEgAZY0QVwggZ7CB6pfOygYtaVAyCMtK8="/>
    </rdf:Seq>
   </darktable:history>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>holiday</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>darktable|format|jpg</rdf:li>
     <rdf:li>places|holiday</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""  # modelled on darktable's own sidecars (Exiv2: attributes, history items, no xpacket wrapper)


# ------------------------------------------------------------------------------ the writer
def test_a_new_sidecar_is_read_by_exiftool_and_a_second_run_writes_nothing(tmp_path: Path) -> None:
    photo = picture(tmp_path)
    image_bytes = photo.read_bytes()
    change = write_keywords(photo, ["sunset", "beach"])
    sidecar = tmp_path / "photo.jpg.xmp"
    assert (change.state, change.sidecar, change.written) == ("new", str(sidecar), True)
    assert read_back(sidecar) == {
        "XMP-dc:Subject": ["sunset", "beach"],
        "XMP-lr:HierarchicalSubject": ["mmcli|label|sunset", "mmcli|label|beach"],
    }
    first, st = sidecar.read_bytes(), sidecar.stat()
    assert first.startswith(b'<?xpacket begin="\xef\xbb\xbf"') and first.rstrip().endswith(b'<?xpacket end="w"?>')
    again = write_keywords(photo, ["beach", "sunset"])
    assert (again.state, again.written, again.added) == ("unchanged", False, ())
    assert sidecar.read_bytes() == first
    assert (sidecar.stat().st_ino, sidecar.stat().st_mtime_ns) == (st.st_ino, st.st_mtime_ns)  # not rewritten
    assert photo.read_bytes() == image_bytes  # the picture is never written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg", "photo.jpg.xmp"]  # no temporary left


def test_a_sidecar_exiftool_wrote_keeps_every_field(tmp_path: Path) -> None:
    photo = picture(tmp_path)  # EXIF: camera, lens, GPS (exiftool copies them into the sidecar)
    sidecar = tmp_path / "photo.jpg.xmp"
    exiftool("-q", "-o", sidecar, photo)
    exiftool("-q", "-overwrite_original", "-XMP-dc:Subject+=sunset", "-XMP-xmp:Rating=4", sidecar)
    before, tags = sidecar.read_bytes(), all_tags(sidecar)
    assert tags["XMP-tiff:Make"] == "Apple" and tags["XMP-xmp:Rating"] == 4
    change = write_keywords(photo, ["sunset", "mountain"])
    assert change.state == "changed" and change.added == ("mountain", "mmcli|label|sunset", "mmcli|label|mountain")
    after = all_tags(sidecar)
    assert after.pop("XMP-dc:Subject") == ["sunset", "mountain"]
    assert after.pop("XMP-lr:HierarchicalSubject") == ["mmcli|label|sunset", "mmcli|label|mountain"]
    tags.pop("XMP-dc:Subject")
    assert after == tags  # every other field as it was
    assert only_inserted(before, sidecar.read_bytes())
    assert b"<?xpacket begin=" in sidecar.read_bytes()[:60] and sidecar.read_bytes().rstrip().endswith(b"?>")
    snapshot = sidecar.read_bytes()
    assert write_keywords(photo, ["mountain", "sunset"]).state == "unchanged" and sidecar.read_bytes() == snapshot


def test_a_darktable_sidecar_keeps_its_history_and_layout(tmp_path: Path) -> None:
    photo = picture(tmp_path)
    sidecar = tmp_path / "photo.jpg.xmp"
    sidecar.write_text(DARKTABLE)
    before = all_tags(sidecar)
    change = write_keywords(photo, ["sunset", "holiday"])
    assert change.added == ("sunset", "mmcli|label|sunset", "mmcli|label|holiday")  # flat "holiday" was there
    new = sidecar.read_bytes()
    assert only_inserted(DARKTABLE.encode(), new)
    assert b"     <rdf:li>holiday</rdf:li>\n     <rdf:li>sunset</rdf:li>\n" in new  # set out like its neighbours
    after = all_tags(sidecar)
    assert after.pop("XMP-dc:Subject") == ["holiday", "sunset"]
    assert after.pop("XMP-lr:HierarchicalSubject") == [
        "darktable|format|jpg", "places|holiday", "mmcli|label|sunset", "mmcli|label|holiday"
    ]  # fmt: skip
    before.pop("XMP-dc:Subject"), before.pop("XMP-lr:HierarchicalSubject")
    assert after == before  # rating, history (both operations), masks: as they were
    assert before["XMP-darktable:History"][1]["Operation"] == "colorin"
    assert write_keywords(photo, ["holiday", "sunset"]).state == "unchanged" and sidecar.read_bytes() == new


def test_replace_takes_out_only_our_keywords_and_their_twins(tmp_path: Path) -> None:
    photo = picture(tmp_path)
    sidecar = tmp_path / "photo.jpg.xmp"
    write_keywords(photo, ["sunset", "beach", "dog"])
    exiftool(
        "-q", "-overwrite_original", "-XMP-dc:Subject+=family", "-XMP-lr:HierarchicalSubject+=people|family",
        "-XMP-lr:HierarchicalSubject+=places|beach", "-XMP-lr:HierarchicalSubject+=other|label|dog", sidecar,
    )  # fmt: skip
    kept = write_keywords(photo, ["sunset"])  # without replace: nothing taken out
    assert kept.state == "unchanged"
    change = write_keywords(photo, ["sunset", "cat"], replace=True)
    assert change.removed == ("mmcli|label|beach", "mmcli|label|dog")  # "beach" and "dog": another hierarchy's leaf
    found = read_back(sidecar)
    assert found["XMP-dc:Subject"] == ["sunset", "beach", "dog", "family", "cat"]
    assert found["XMP-lr:HierarchicalSubject"] == [
        "mmcli|label|sunset", "people|family", "places|beach", "other|label|dog", "mmcli|label|cat"
    ]  # fmt: skip
    exiftool("-q", "-overwrite_original", "-XMP-lr:HierarchicalSubject-=places|beach", sidecar)
    write_keywords(photo, ["beach"])  # ours again (flat "beach" already there: only the hierarchical one added)
    gone = write_keywords(photo, [], replace=True)
    assert set(gone.removed) == {"beach", "cat", "sunset", "mmcli|label|beach", "mmcli|label|cat", "mmcli|label|sunset"}
    found = read_back(sidecar)
    assert found["XMP-dc:Subject"] == ["dog", "family"]
    assert found["XMP-lr:HierarchicalSubject"] == ["people|family", "other|label|dog"]


def test_adobe_names_and_whichever_sidecar_exists(tmp_path: Path) -> None:
    photo = picture(tmp_path)
    assert write_keywords(photo, ["sunset"], style="adobe").sidecar == str(tmp_path / "photo.xmp")
    assert not (tmp_path / "photo.jpg.xmp").exists()
    assert sidecar_for(photo, "darktable") == tmp_path / "photo.xmp"  # the one that exists is read and written
    change = write_keywords(photo, ["sunset", "sea"])
    assert change.sidecar == str(tmp_path / "photo.xmp") and change.added == ("sea", "mmcli|label|sea")
    assert not (tmp_path / "photo.jpg.xmp").exists()
    (tmp_path / "photo.jpg.xmp").write_text(DARKTABLE)  # both: the chosen style's name wins
    assert sidecar_for(photo, "darktable") == tmp_path / "photo.jpg.xmp"
    assert sidecar_for(photo, "adobe") == tmp_path / "photo.xmp"


BAD = {
    "not XML": (b"this is not xml", "not XML"),
    "HTML": (b"<html><body><p>hello</p></body></html>", "not XMP"),
    "a DTD": (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>'
        b"</x:xmpmeta>",
        "DTD",
    ),
    "UTF-16": (DARKTABLE.encode("utf-16"), "not UTF-8"),
    "truncated": (DARKTABLE.encode()[:700], "not XML"),
    "subject as text": (
        DARKTABLE.replace("<rdf:Bag>\n     <rdf:li>holiday</rdf:li>\n    </rdf:Bag>", "holiday").encode(),
        "form other than one list",
    ),
    "subject as an attribute": (
        DARKTABLE.replace('xmp:Rating="3"', 'xmp:Rating="3" dc:subject="x"').encode(),
        "as an attribute",
    ),
    "two rdf:RDF": (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>'
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>',
        "not XMP",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_sidecar_that_is_not_xmp_is_left_as_it_was(tmp_path: Path, case: str) -> None:
    photo = picture(tmp_path)
    content, reason = BAD[case]
    sidecar = tmp_path / "photo.jpg.xmp"
    sidecar.write_bytes(content)
    change = write_keywords(photo, ["sunset"])
    assert change.state == "skipped" and reason in (change.reason or ""), change
    assert sidecar.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg", "photo.jpg.xmp"]


def test_sidecars_that_are_not_files_are_left_alone(tmp_path: Path) -> None:
    photo = picture(tmp_path)
    (tmp_path / "photo.jpg.xmp").mkdir()
    assert "regular file" in (write_keywords(photo, ["a"]).reason or "")
    other = picture(tmp_path, "other.jpg")
    os.mkfifo(tmp_path / "other.jpg.xmp")  # opened without waiting for a writer
    assert write_keywords(other, ["a"]).state == "skipped"
    third = picture(tmp_path, "third.jpg")
    (tmp_path / "third.jpg.xmp").symlink_to(tmp_path / "nowhere.xmp")
    assert "symbolic link to nothing" in (write_keywords(third, ["a"]).reason or "")
    absent = write_keywords(tmp_path / "absent.jpg", ["a"])  # a sidecar belongs beside a picture
    assert absent.state == "skipped" and not (tmp_path / "absent.jpg.xmp").exists()


def test_mode_kept_links_followed_dry_run_writes_nothing(tmp_path: Path) -> None:
    photo = picture(tmp_path)
    sidecar = tmp_path / "photo.jpg.xmp"
    sidecar.write_text(DARKTABLE)
    sidecar.chmod(0o640)
    dry = write_keywords(photo, ["sunset"], dry_run=True)
    assert (dry.state, dry.written, dry.added) == ("changed", False, ("sunset", "mmcli|label|sunset"))
    assert sidecar.read_text() == DARKTABLE
    write_keywords(photo, ["sunset"])
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o640
    store = tmp_path / "store"
    store.mkdir()
    (store / "linked.xmp").write_text(DARKTABLE)
    linked = picture(tmp_path, "linked.jpg")
    (tmp_path / "linked.jpg.xmp").symlink_to(store / "linked.xmp")
    assert write_keywords(linked, ["sea"]).state == "changed"
    assert (tmp_path / "linked.jpg.xmp").is_symlink()  # the link stays; the file it names has the keyword
    assert read_back(store / "linked.xmp")["XMP-dc:Subject"] == ["holiday", "sea"]


def test_a_failed_write_leaves_the_old_sidecar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photo = picture(tmp_path)
    sidecar = tmp_path / "photo.jpg.xmp"
    sidecar.write_text(DARKTABLE)

    def full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    change = write_keywords(photo, ["sunset"])
    assert change.state == "skipped" and "No space left" in (change.reason or "")
    assert sidecar.read_text() == DARKTABLE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg", "photo.jpg.xmp"]


def test_keywords_with_markup_and_any_script_come_back_exactly(tmp_path: Path) -> None:
    photo = picture(tmp_path)
    words = ["rock & roll", "<tag>", 'say "cheese"', "Café", "東京タワー", "a|b"]
    write_keywords(photo, words, prefix="ai|clip")
    found = read_back(tmp_path / "photo.jpg.xmp")
    assert found["XMP-dc:Subject"] == words
    assert found["XMP-lr:HierarchicalSubject"] == [f"ai|clip|{w}" for w in words]
    assert write_keywords(photo, words, prefix="ai|clip").state == "unchanged"


COMPACT = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><r:RDF xmlns:r="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<r:Description r:about="" xmlns:d="http://purl.org/dc/elements/1.1/"><d:subject><r:Bag><r:li>a</r:li>'
    "</r:Bag></d:subject></r:Description></r:RDF></x:xmpmeta>"
)
EMPTY_LISTS = DARKTABLE.replace(
    "<rdf:Bag>\n     <rdf:li>holiday</rdf:li>\n    </rdf:Bag>", "<rdf:Bag/>"
).replace("<rdf:Bag>\n     <rdf:li>darktable|format|jpg</rdf:li>\n     <rdf:li>places|holiday</rdf:li>\n    </rdf:Bag>",
          "<rdf:Bag>\n    </rdf:Bag>")  # fmt: skip
BARE_RDF = '<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>\n'


CRLF = DARKTABLE.replace("\n", "\r\n")  # written on Windows
BOM = "\ufeff" + DARKTABLE


@pytest.mark.parametrize(
    "content", [COMPACT, EMPTY_LISTS, BARE_RDF, CRLF, BOM], ids=["other-prefixes", "empty-lists", "bare", "crlf", "bom"]
)
def test_other_shapes_of_packets(tmp_path: Path, content: str) -> None:
    photo = picture(tmp_path)
    sidecar = tmp_path / "photo.jpg.xmp"
    sidecar.write_bytes(content.encode())
    flat_before, _ = keywords_in(content.encode())
    write_keywords(photo, ["sunset", "sea"])
    found = read_back(sidecar)
    assert found["XMP-dc:Subject"] == [*flat_before, "sunset", "sea"]
    assert found["XMP-lr:HierarchicalSubject"][-2:] == ["mmcli|label|sunset", "mmcli|label|sea"]
    snapshot = sidecar.read_bytes()
    assert content is BARE_RDF or only_inserted(content.encode(), snapshot)  # (<rdf:RDF/> must be opened)
    assert snapshot.count(b"\n") == (snapshot.count(b"\r\n") if content is CRLF else snapshot.count(b"\n"))
    assert write_keywords(photo, ["sea", "sunset"]).state == "unchanged" and sidecar.read_bytes() == snapshot
    assert write_keywords(photo, [], replace=True).state == "changed"
    assert read_back(sidecar).get("XMP-dc:Subject", []) == flat_before  # an emptied list: its property gone


def test_mangled_sidecars_are_edited_correctly_or_left_alone(tmp_path: Path) -> None:
    """Truncations and flipped bytes of a real sidecar: never an exception; either left byte for byte
    as it was, or edited so that its lists read back as planned."""
    import random

    rng = random.Random(30)
    photo = picture(tmp_path)
    sidecar = tmp_path / "photo.jpg.xmp"
    original = DARKTABLE.encode()
    states = set()
    for i in range(300):
        data = bytearray(original)
        if i % 3 == 0:
            data = data[: rng.randrange(len(data))]
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.choice(b'<>/"=&; \n\x00\xffabc:')
        sidecar.write_bytes(bytes(data))
        change = write_keywords(photo, ["sunset"])
        states.add(change.state)
        if change.state == "skipped":
            assert sidecar.read_bytes() == bytes(data)
        elif change.state == "changed":
            flat, tree = keywords_in(sidecar.read_bytes())
            assert "sunset" in flat and "mmcli|label|sunset" in tree
    assert {"skipped", "changed"} <= states


@pytest.mark.parametrize("bad", ["", " ", "tab\there", "line\nbreak", "cr\rhere", "nul\0", "\x7f"])
def test_keywords_xmp_cannot_hold_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        check_keyword(bad)


@pytest.mark.parametrize("bad", ["", "|", "a||b", "a|", " a|b", "a\nb"])
def test_prefixes_are_names_joined_by_bars(bad: str) -> None:
    with pytest.raises(UsageError):
        check_prefix(bad)


# ------------------------------------------------------------------------------ which labels
def test_which_labels_become_keywords() -> None:
    scores = (LabelScore("cat", 0.7), LabelScore("dog", 0.2), LabelScore("car", 0.1))
    item = Classification("a.jpg", scores)
    plain = ClassifyRequest(("a.jpg",), ("cat", "dog", "car"))
    assert image_keywords(item, plain) == ["cat"]  # a softmax over every label: its best
    assert image_keywords(item, ClassifyRequest(("a.jpg",), ("cat",), top_k=2)) == ["cat", "dog", "car"]  # as kept
    segments = [Segment("v.mp4", 0, 9, "red", 0.9), Segment("v.mp4", 9, 10, "blue", 0.8)]
    assert video_keywords(segments) == ["red"]  # blue holds a tenth of the timeline
    segments += [Segment("v.mp4", 10, 13, "green", 0.8)]
    assert video_keywords(segments) == ["red", "green"]  # most time first; green: 3 of 13 s
    assert video_keywords(segments, top_k=1) == ["red"]
    assert video_keywords([]) == []


def test_the_writer_waits_for_a_video_s_whole_timeline(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not read")  # the writer only names it
    request = ClassifyRequest((str(video),), ("red", "blue"))
    writer = SidecarWriter(request, XmpOptions())
    assert writer.add(Segment(str(video), 0, 6, "red", 0.9)) == []
    assert writer.add(Segment(str(video), 6, 10, "blue", 0.9)) == []
    photo = picture(tmp_path)
    changes = writer.add(Classification(str(photo), (LabelScore("blue", 0.9),)))
    assert [(c.path, c.added) for c in changes] == [
        (str(video), ("red", "blue", "mmcli|label|red", "mmcli|label|blue")),
        (str(photo), ("blue", "mmcli|label|blue")),
    ]
    assert writer.finish() == []


# ------------------------------------------------------------------------------ the command
def test_classify_write_xmp_end_to_end(tmp_path: Path, shapes_dir: Path) -> None:
    for name in ("red_circle.jpg", "blue_square.jpg"):
        shutil.copy(shapes_dir / name, tmp_path / name)
    (tmp_path / "blue_square.jpg.xmp").write_text(DARKTABLE)
    labels = ("--labels", "red circle", "blue square", "green star")
    args = ("classify", str(tmp_path), "--model", TINY, *labels, "--write-xmp")
    dry = run_mmcli(*args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert [json.loads(line)["labels"][0]["label"] for line in dry.stdout.splitlines()] == ["blue square", "red circle"]
    assert b"would change " + str(tmp_path / "blue_square.jpg.xmp").encode() + b": + blue square" in dry.stderr
    assert b"would make " in dry.stderr and not (tmp_path / "red_circle.jpg.xmp").exists()
    assert (tmp_path / "blue_square.jpg.xmp").read_text() == DARKTABLE
    done = run_mmcli(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout == dry.stdout  # stdout: the classifications, whatever the sidecars
    assert read_back(tmp_path / "red_circle.jpg.xmp")["XMP-dc:Subject"] == ["red circle"]
    assert read_back(tmp_path / "blue_square.jpg.xmp")["XMP-dc:Subject"] == ["holiday", "blue square"]
    snapshot = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    again = run_mmcli(*args, "--top-k", "1")
    assert again.returncode == 0 and {p.name: p.read_bytes() for p in tmp_path.iterdir()} == snapshot
    (tmp_path / "red_circle.jpg.xmp").write_text("garbage")
    adobe = run_mmcli(*args, "--multi-label", "--threshold", "0.2", "--xmp-style", "adobe", "--replace")
    assert adobe.returncode == 0, adobe.stderr
    assert b"red_circle.jpg.xmp left as it was: not XML" in adobe.stderr
    assert (tmp_path / "red_circle.jpg.xmp").read_text() == "garbage"
    assert not (tmp_path / "red_circle.xmp").exists()  # the sidecar there is the one: left, not doubled


def test_classify_write_xmp_on_a_video_s_timeline(tmp_path: Path) -> None:
    pytest.importorskip("av")
    from videos import write_video

    from mmcli.demo.shapes import ShapeSpec

    scenes = ((0.0, ShapeSpec("red", "circle")), (9.0, ShapeSpec("blue", "square")))  # blue: the last tenth
    clip = write_video(tmp_path / "clip.mp4", scenes=scenes)
    labels = ("--labels", "red circle", "blue square")
    proc = run_mmcli("classify", str(clip), "--model", TINY, *labels, "--every", "1", "--write-xmp")
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["label"] for line in proc.stdout.splitlines()] == ["red circle", "blue square"]
    assert read_back(tmp_path / "clip.mp4.xmp")["XMP-dc:Subject"] == ["red circle"]  # a fifth at least


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--replace"], "--replace needs --write-xmp"),
        (["--dry-run"], "--dry-run needs --write-xmp"),
        (["--xmp-style", "adobe"], "--xmp-style needs --write-xmp"),
        (["--write-xmp", "--xmp-style", "lightroom"], "use darktable"),
        (["--write-xmp", "--xmp-prefix", "a||b"], "--xmp-prefix"),
    ],
)
def test_xmp_usage_errors(runner, tmp_path: Path, extra: list[str], message: str) -> None:  # noqa: ANN001
    from mmcli.cli import app

    photo = picture(tmp_path)
    result = runner.invoke(app, ["classify", str(photo), "--labels", "a", "b", "--model", TINY, *extra])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert message in result.stderr and result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]


def test_api_classify_write_xmp(tmp_path: Path, shapes_dir: Path) -> None:
    import mmcli

    photo = tmp_path / "green_star.jpg"
    shutil.copy(shapes_dir / "green_star.jpg", photo)
    results = mmcli.classify([photo], ["green star", "red circle"], model=TINY, write_xmp="adobe", xmp_prefix="ai")
    assert results[0].labels[0].label == "green star"
    assert read_back(tmp_path / "green_star.xmp")["XMP-lr:HierarchicalSubject"] == ["ai|green star"]
    change = mmcli.write_keywords(photo, ["night"], style="adobe", prefix="ai")
    assert isinstance(change, mmcli.SidecarChange) and change.added == ("night", "ai|night")
