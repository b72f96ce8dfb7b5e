"""The distribution's name (issue 31.1): on PyPI, `mmcli` is another project ("Cli client for mmdok"), so
no hint, README line or script may tell pip to install `mmcli` by name; this project is `mmcli-clip`
(the command and the import name stay `mmcli`), installed from its clone until it is published."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mmcli import config
from mmcli.config import tomllib

ROOT = Path(__file__).resolve().parent.parent
PIP = re.compile(r"pip3?\s+install\b(?P<args>[^`\n;&|)]*)")


def foreign(args: str) -> list[str]:
    """The requirements among ``pip install`` arguments that name the PyPI project `mmcli`."""
    try:
        words = shlex.split(args)
    except ValueError:
        words = args.split()
    return [w for w in words if re.fullmatch(r"mmcli(\[[^\]]*\])?([<>=!~].*)?", w.strip("'\""), re.I)]


def sources() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "pyproject.toml", *ROOT.glob(".ci/*")]
    for folder in ("mmcli", "scripts", "docs", "tests"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md", ".toml", ".txt", ".sh")]
    return [p for p in files if p.is_file() and p.name != Path(__file__).name]


def test_the_check_finds_the_forms_that_fetch_the_other_project() -> None:
    for line in ('pip install "mmcli[ray]"', "pip install -U mmcli", "pip install mmcli==1.1", "pip3 install mmcli"):
        assert foreign(PIP.search(line)["args"]), line
    for line in ('pip install -e ".[ray]"', "pip install 'mmcli-clip[serve]'", 'pip install "/src/mmcli[video]"'):
        assert not foreign(PIP.search(line)["args"]), line


def test_no_hint_or_line_installs_the_other_project_named_mmcli() -> None:
    found = []
    for path in sources():
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in PIP.finditer(text):
            if foreign(m["args"]):
                found.append(f"{path.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}: {m[0].strip()}")
    assert not found, found


def test_the_distribution_is_named_for_this_project_and_the_command_stays() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == config.DISTRIBUTION == "mmcli-clip"
    assert project["scripts"] == {"mmcli": "mmcli.cli:main"}
    assert "mmcli-clip" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("extra", [None, "serve", "video", "ray"])
def test_install_hints_install_this_copy(extra: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    from_clone = config.install_command(extra)
    assert from_clone.startswith("pip install -e ") and str(ROOT) in from_clone and not foreign(from_clone[12:])
    monkeypatch.setattr(config, "_installed_at", lambda: None)  # installed as a package
    by_name = config.install_command(extra)
    assert by_name == "pip install " + shlex.quote("mmcli-clip" + (f"[{extra}]" if extra else ""))
    assert config.upgrade_command() == "pip install -U mmcli-clip"
