"""The built wheel, installed outside the repository, runs the quick start with model files
fetched from a local mirror: what a user without a network and without ``../shared`` does."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from facereenact.io.assets import CATALOG, Kind
from tests.conftest import REPO, SHARED


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _installed(distribution: str) -> bool:
    """A distribution is installed (a module lookup would take a ``build/`` folder for it)."""
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package built as a wheel; offline when setuptools is installed here (the test extra).
    It is built from a copy of the repository's files (tracked, or new and not ignored), so that
    no stale ``build/`` folder can add to it and nothing is written into the repository."""
    out = tmp_path_factory.mktemp("dist")
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    if _installed("build") and _installed("setuptools"):
        command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)]
    else:  # pip builds it, with the setuptools here, or else one it fetches
        isolation = ["--no-build-isolation"] if _installed("setuptools") else []
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *isolation, "--wheel-dir", str(out), str(source)]
    _run(command, cwd=out)
    (found,) = out.glob("facereenact-*.whl")
    return found


def test_the_wheel_holds_the_model_its_card_every_data_file_and_the_licence(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        "facereenact/checkpoints/refine-holes-128.safetensors",
        "facereenact/checkpoints/MODEL_CARD.md",
        "facereenact/face3d/data/grid_expression_basis.safetensors",
        "facereenact/face3d/data/grid_blendshape_basis.safetensors",
        "facereenact/web/static/index.html",
        "facereenact/py.typed",
    }
    assert shipped <= names, sorted(shipped - names)
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    tracked = subprocess.run(["git", "ls-files", "src/facereenact"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    data_files = {f.removeprefix("src/") for f in tracked if not f.endswith(".py")}
    assert data_files <= names, f"tracked files left out of the wheel: {sorted(data_files - names)}"


def test_the_installed_wheel_runs_the_quick_start_with_files_from_a_mirror(wheel: Path, tmp_path: Path) -> None:
    if not (SHARED / "assets" / "3ddfa").is_dir() or not (SHARED / "data" / "clips").is_dir():
        pytest.skip(f"model files or example data not found under {SHARED} (the mirror is built from them)")
    # A mirror laid out as a checkout's ../shared is: assets/ and data/.
    mirror = tmp_path / "mirror"
    for entry in CATALOG:
        if entry.kind is not Kind.optional:
            place = mirror / (entry.shared_path or f"assets/{entry.name}")
            place.parent.mkdir(parents=True, exist_ok=True)
            place.symlink_to(SHARED / place.relative_to(mirror))

    # A fresh virtual environment outside the repository, with the wheel installed alone; then
    # the dependencies already installed here are made visible through a .pth file instead of
    # being downloaded again (after the install, so that pip sees only the new environment).
    env = {key: value for key, value in os.environ.items() if not key.startswith("FACEREENACT_") and key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index", str(wheel)], cwd=tmp_path, env=env)
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path, env=env).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "work"
    work.mkdir()
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    where = _run([str(python), "-c", "import facereenact; print(facereenact.__file__)"], cwd=work, env=env).stdout.strip()
    assert Path(where).is_relative_to(venv), f"the installed package is used, not the checkout: {where}"

    fetched = _run(["facereenact", "assets", "fetch", "--from", str(mirror / "assets")], cwd=work, env=env)
    assets = tmp_path / "cache" / "facereenact" / "assets"
    assert f"into {assets}" in fetched.stderr
    _run(["facereenact", "assets", "verify"], cwd=work, env=env)
    animated = _run(["facereenact", "animate", "-o", "animated.mp4", "--max-frames", "6"], cwd=work, env=env)
    assert "wrote animated.mp4 (6 frames)" in animated.stderr
    assert (work / "animated.mp4").stat().st_size > 10_000
