"""The suite's own isolation (conftest.py): no user cache, model hub, home folder, running server
or MMCLI_* setting from the machine reaches a test or the processes it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import isolate

PROBE = """
import json, os
import platformdirs, torch.hub
from huggingface_hub import constants
from mmcli.config import settings
s = settings()
print(json.dumps({
    "home": os.path.expanduser("~"),
    "hf_home": constants.HF_HOME,
    "hub": constants.HF_HUB_CACHE,
    "torch": torch.hub.get_dir(),
    "user_cache": platformdirs.user_cache_dir("mmcli"),
    "user_data": platformdirs.user_data_dir("mmcli"),
    "mmcli_home": str(s.home),
    "mmcli_cache": str(s.cache),
    "server": s.server,
    "helper": s.helper,
    "fault": s.fault,
    "offline": constants.HF_HUB_OFFLINE,
}))
"""


def test_a_subprocess_sees_only_the_test_folders(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.getbasetemp()
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout)
    assert (seen.pop("server"), seen.pop("helper"), seen.pop("fault"), seen.pop("offline")) == ("off", False, "", True)
    outside = {key: path for key, path in seen.items() if not Path(path).is_relative_to(base)}
    assert not outside, f"not under {base}: {outside}"


def test_every_other_mmcli_variable_is_dropped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in (("MMCLI_FAULT", "index.commit"), ("MMCLI_WORKERS", "3"), ("MMCLI_SERVER", "http://x:1")):
        monkeypatch.setenv(name, value)
    isolate(monkeypatch, tmp_path)
    mmcli_vars = {k: v for k, v in os.environ.items() if k.startswith("MMCLI_")}
    assert mmcli_vars == {
        "MMCLI_CACHE": str(tmp_path / "cache"),
        "MMCLI_HOME": str(tmp_path / "home"),
        "MMCLI_SERVER": "off",
        "MMCLI_DAEMON": "off",
    }
