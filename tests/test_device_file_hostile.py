"""Hostile device files: whatever the file holds, ``device-bridge check`` ends with exit 0
or 2 and a message, quickly and in bounded memory, never a traceback."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.config import ConfigError, load_config
from bridge.yaml_load import MAX_FILE_SIZE

DEVICE = """
devices:
  - id: scale
    driver: serial-line
    connection: {port: /dev/ttyUSB0}
    command: "SI\\r\\n"
    parse: {regex: '(?P<weight>\\d+)'}
    points: [{id: weight, writable: true, write: "%s"}]
"""


def alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append("devices:")
    lines.append("  - id: boiler")
    lines.append("    driver: modbus-tcp")
    lines.append("    connection: {host: 127.0.0.1}")
    lines.append(f"    points: [{{id: t, address: *a{levels - 1}}}]")
    return "\n".join(lines) + "\n"


HOSTILE = {
    "an alias bomb": alias_bomb(),
    "an alias bomb in the server section": alias_bomb().replace("a8: &a8", "server: &a8"),
    "an alias bomb in a list the messages quote": alias_bomb().split("devices:")[0]
    + "devices:\n  - id: scale\n    driver: serial-line\n    connection: {port: /dev/x}\n"
    + "    parse: {csv: *a8}\n    points: [{id: weight}]\n",
    "deep nesting": "devices: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep mappings": "devices: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "a bad tagged integer": "devices: !!int 12abc\n",
    "a bad tagged float": "devices: !!float xyz\n",
    "a huge integer": "devices:\n  - id: x\n    interval: " + "9" * 5000 + "\n",
    "an impossible date": "devices:\n  - id: x\n    interval: 2024-02-31\n",
    "an impossible tagged date": "devices: !!timestamp 2024-13-45T99:99:99\n",
    "bad base64": "devices: !!binary '@@@@'\n",
    "a python tag": "devices: !!python/object/apply:os.system ['true']\n",
    "an unhashable key": "devices: {[1, 2]: 3}\n",
    "a bad merge": "a: &a 1\ndevices: {<<: *a}\n",
    "a tab and control characters": "devices:\t\x00\x07\n",
    "a huge write width": DEVICE % "SP {value:99999999999}\\r\\n",
    "a nested width": DEVICE % "SP {value:{value}}\\r\\n",
    "a huge precision": DEVICE % "SP {value:.999999999f}\\r\\n",
    "a long value quoted in a message": "devices:\n  - id: x\n    driver: '"
    + "d" * 100_000
    + "'\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_device_file_is_a_clear_error(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "devices.yaml"
    path.write_text(HOSTILE[name], encoding="utf-8")
    assert main(["check", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: ")
    assert "Traceback" not in err
    # every message is short, whatever the file quoted
    assert all(len(line) < 600 for line in err.splitlines()), max(map(len, err.splitlines()))


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "devices.yaml"
    path.write_bytes(b"# padding\n" * (MAX_FILE_SIZE // 10 + 1))
    with pytest.raises(ConfigError, match="larger than"):
        load_config(path)


def _limit_memory() -> None:
    gib = 1 << 30
    resource.setrlimit(resource.RLIMIT_AS, (2 * gib, 2 * gib))


@pytest.mark.parametrize("name", ["an alias bomb", "a huge write width", "deep nesting"])
def test_check_of_a_hostile_file_ends_quickly_in_bounded_memory(tmp_path: Path, name: str) -> None:
    path = tmp_path / "devices.yaml"
    path.write_text(HOSTILE[name], encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "check", "-c", str(path)],
        capture_output=True, text=True, timeout=20, preexec_fn=_limit_memory, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
