"""The README's shell examples, run as written (issue 21): each command of each ```bash / ```console
block, in a sandbox whose home holds the folders the examples name (~/Pictures, ~/Phone, ~/Videos,
~/ref/sunset.jpg) and whose working folder holds the files they name (photo.jpg, ./photos, talk.mp4,
...), with `MMCLI_MODEL=mmcli-tiny`. Every one must exit 0 without a traceback. Those that cannot run
here are listed in ``SKIPPED`` with the reason; ``MOVED`` lists the absolute paths put in the sandbox.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY

from mmcli.demo.shapes import ShapeSpec, all_specs, draw_shape

pytestmark = pytest.mark.readme
README = Path(__file__).resolve().parent.parent / "README.md"
CLUSTER = "needs a Ray cluster (tests/test_ray.py runs --ray against a local one)"
SKIPPED = {  # a command (its start), and why it is not run here
    "pip install": "installs packages from the network (the tests run in an installed checkout)",
    "python3 -m venv": "makes a virtual environment (the tests run in one)",
    "pytest": "the test suite itself",
    "apt-get install": "installs system packages",
    "ruff check": "lints the source tree (CI runs it)",
    "lint-imports": "checks the layers of the source tree (CI runs it; tests/test_architecture.py too)",
    'mmcli search "a red car" --rerank vit-l-14': "downloads ViT-L-14's weights from the model hub "
    "(tests/test_answers.py re-ranks with local models)",
    "claude mcp add": "needs Claude Code installed (tests/test_mcp.py drives `mmcli mcp` with the SDK's client)",
    "python scripts/bench": "a benchmark: minutes of CPU (`--smoke` is tests/test_bench_smoke.py)",
    "mmcli index ~/Pictures --watch": "watches until Ctrl-C (tests/test_watch.py runs it)",
    "mmcli serve": "starts a server that runs until stopped (tests/test_serve.py runs it)",
    "curl -s localhost:8765": "needs a running `mmcli serve`",
    'mmcli search "sunset" -0 | xargs -0 open': "opens every hit in a desktop viewer",
    "ray ": CLUSTER,
    "export RAY_ADDRESS": CLUSTER,
    "mmcli index /shared/photos": CLUSTER,
    "mmcli embed /shared/photos": CLUSTER,
    "clip-retrieval inference": "another tool (tests/test_imports.py writes its output folder with pyarrow)",
    "mmcli index --from-embeddings /data/emb": "imports the clip-retrieval output of the line before, made with "
    "ViT-B/32's weights from the model hub (tests/test_imports.py imports such a folder)",
}
MOVED = {"/data/photos": "data/photos"}  # absolute example folders, made inside the sandbox instead
CWD_FILES = ("photo.jpg", "image.jpg", "a.jpg", "b.jpg", "beach.jpg", "frame.jpg", "labels.txt", "talk.mp4")


def _strip_comment(line: str) -> str:
    """The line without its shell comment (a # outside quotes, at the start of a word)."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def examples() -> list[tuple[int, list[str]]]:
    """(README line of the block, its commands) of every shell block."""
    text = README.read_text(encoding="utf-8")
    out = []
    for m in re.finditer(r"```(bash|console)\n(.*?)```", text, re.S):
        commands = []
        for line in m.group(2).splitlines():
            line = line[2:] if m.group(1) == "console" and line.startswith("$ ") else line
            command = _strip_comment(line).strip()
            if command:
                commands.append(command)
        out.append((text[: m.start()].count("\n") + 1, commands))
    return out


def skipped(command: str) -> str | None:
    """Why ``command`` is not run here, or None. ``pip install ... && X`` runs X (mmcli is installed)."""
    if command.startswith("pip install") and " && " in command:
        command = command.split(" && ", 1)[1]
    if "--ray" in command:
        return CLUSTER
    return next((why for start, why in SKIPPED.items() if command.startswith(start)), None)


def _picture(path: Path, colour: str, shape: str, seed: int, when: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_shape(ShapeSpec(colour, shape), size=96, seed=seed).save(path)
    if when is not None:
        os.utime(path, (when, when))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    pytest.importorskip("av")
    from videos import write_video

    base = tmp_path_factory.mktemp("readme")
    home = base / "home"
    specs = all_specs()
    for i, spec in enumerate(specs[:10]):
        _picture(home / "Pictures" / f"{spec.colour}_{spec.shape}.jpg", spec.colour, spec.shape, 10 + i)
    for i, spec in enumerate(specs[10:13]):  # taken in January 2024 (no EXIF: the mtime is the date)
        _picture(
            home / "Pictures" / "2024" / f"{spec.colour}_{spec.shape}.jpg", spec.colour, spec.shape, 30 + i, 1704103200
        )
    _picture(home / "Phone" / "IMG_0001.jpg", "red", "circle", 50)
    _picture(home / "ref" / "sunset.jpg", "orange", "circle", 51)
    (home / "Videos").mkdir()
    write_video(home / "Videos" / "talk.mp4")
    bin_dir = base / "bin"  # `mmcli` as installed: this interpreter, this checkout
    bin_dir.mkdir()
    (bin_dir / "mmcli").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mmcli "$@"\n')
    (bin_dir / "mmcli").chmod(0o755)
    env = {
        **os.environ,
        "HOME": str(home),
        "MMCLI_HOME": str(base / "mmcli-home"),
        "MMCLI_MODEL": TINY,
        "MMCLI_SERVER": "off",
        "HF_HUB_OFFLINE": "1",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "COLUMNS": "80",
    }
    for folder in MOVED.values():
        for i, spec in enumerate(specs[20:23]):
            _picture(base / folder / f"{spec.colour}_{spec.shape}.jpg", spec.colour, spec.shape, 60 + i)
    ready = _run("mmcli index ~/Pictures ~/Phone ~/Videos", base, env)  # what the searches below search
    assert ready.returncode == 0, ready.stderr
    return {"base": base, "home": home, "env": env}


def _run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"set -o pipefail\n{command}"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _working_folder(sandbox: dict[str, object], line: int, commands: list[str]) -> Path:
    """A fresh folder holding the files this block names (and only those: `-o photos/` needs no ./photos)."""
    from videos import write_video

    cwd = Path(str(sandbox["base"])) / f"block-{line}"
    cwd.mkdir()
    text = "\n".join(commands)
    for i, name in enumerate(n for n in CWD_FILES if n in text):
        if name == "labels.txt":
            (cwd / name).write_text("cat\ndog\n# a comment\nred circle\n")
        elif name == "talk.mp4":
            write_video(cwd / name)
        else:
            _picture(cwd / name, "blue", "square", 70 + i)
    if "*.png" in text:
        for i, spec in enumerate(all_specs()[:2]):
            _picture(cwd / f"{spec.colour}.png", spec.colour, spec.shape, 80 + i)
    if "./photos" in text:
        for i, spec in enumerate(all_specs()[5:8]):
            _picture(cwd / "photos" / f"{spec.colour}_{spec.shape}.jpg", spec.colour, spec.shape, 90 + i)
    return cwd


BLOCKS = examples()


def test_the_readme_has_the_examples_this_test_knows() -> None:
    commands = [c for _, block in BLOCKS for c in block]
    assert len(BLOCKS) >= 12 and len(commands) >= 50
    for start in SKIPPED:  # each reason still applies to an example (the list stays explicit and short)
        assert any(c.startswith(start) or c.split(" && ")[-1].startswith(start) for c in commands), start
    assert any(c.startswith("find . -print0 | mmcli classify") for c in commands)  # issue 21's first example


@pytest.mark.parametrize(("line", "commands"), BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_readme_examples_run_as_written(sandbox: dict[str, object], line: int, commands: list[str]) -> None:
    ran = []
    cwd = _working_folder(sandbox, line, commands)
    for command in commands:
        if skipped(command):
            continue
        if command.startswith("pip install") and " && " in command:
            command = command.split(" && ", 1)[1]
        for absolute, inside in MOVED.items():
            command = command.replace(absolute, str(Path(str(sandbox["base"])) / inside))
        proc = _run(command, cwd, sandbox["env"])  # type: ignore[arg-type]
        assert proc.returncode == 0, f"README line {line}: {command}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr, proc.stderr
        ran.append(command)
    if not ran:
        pytest.skip("every command of this block needs what is listed in SKIPPED")
