"""The wheel: built with `python -m build`, installed into a fresh virtual environment.

The daemon's command must work without the demo's broker (amqtt, the `demo` extra), and
`battery-hawk demo` must then say how to get it.
"""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from battery_hawk import __version__

ROOT = Path(__file__).parents[1]

pytestmark = pytest.mark.timeout(600)


def _run(*argv: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=ROOT)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = _run(sys.executable, "-m", "build", "--wheel", "--outdir", out, ROOT)
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("battery_hawk-*.whl")
    return path


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Iterator[Path]:
    """A new virtual environment with only the wheel and its own dependencies."""
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=True)
    installed = _run(env / "bin" / "python", "-m", "pip", "install", "-q",
                     "--disable-pip-version-check", wheel)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    yield env


def test_wheel_holds_the_package_and_its_command_but_no_tests(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "battery_hawk/cli.py" in names and "battery_hawk/protocols/bm6.py" in names
    assert not [n for n in names if n.startswith("tests/")]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "battery-hawk = battery_hawk.cli:main" in text
    metadata = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Provides-Extra: demo" in metadata
    assert "Requires-Dist: amqtt" in metadata and "extra == \"demo\"" in metadata


def test_installed_command_runs_without_the_demo_broker(fresh_venv: Path) -> None:
    python = fresh_venv / "bin" / "python"
    assert _run(python, "-c", "import amqtt").returncode != 0  # not pulled in
    version = _run(fresh_venv / "bin" / "battery-hawk", "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"battery-hawk {__version__}"


def test_installed_check_config_accepts_the_example(fresh_venv: Path, tmp_path: Path) -> None:
    config = tmp_path / "bh.yaml"
    config.write_text((ROOT / "config" / "battery-hawk.yaml").read_text().replace(
        "path: /var/lib/battery-hawk", f"path: {tmp_path / 'state'}"))
    result = _run(fresh_venv / "bin" / "battery-hawk", "check-config", "-c", config)
    assert result.returncode == 0, result.stderr


def test_demo_without_the_extra_says_how_to_get_it(fresh_venv: Path) -> None:
    result = _run(fresh_venv / "bin" / "battery-hawk", "demo", "--duration", "1", timeout=60)
    assert result.returncode == 1
    assert "pipx inject battery-hawk 'amqtt" in result.stderr and "--broker" in result.stderr
    assert "Traceback" not in result.stderr
