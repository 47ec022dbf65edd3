"""``facereenact assets``: which catalogued files are where, checking them, fetching the missing.

The catalogue itself (names, sizes, SHA-256, licences, origins) is :data:`facereenact.io.assets.CATALOG`.
A mirror is any folder or base URL laid out as an assets folder is (``3ddfa/…``,
``mediapipe/…``, ``examples/…``). A development checkout's ``../shared/assets`` is one: the
example media, which it keeps in ``../shared/data``, are found there by their
:attr:`~facereenact.io.assets.AssetFile.shared_path`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from facereenact.app.locations import assets_dir, locate
from facereenact.errors import AssetError, InputError
from facereenact.io.assets import CATALOG, AssetFile, FileCheck, Kind, State, check_file, env_assets_dir, fetch_command, user_assets_dir
from facereenact.io.download import ProgressCallback, fetch_file, is_url

__all__ = [
    "CATALOG", "AssetFile", "FetchReport", "FileCheck", "Kind", "State", "default_destination", "describe", "fetch", "fetch_command",
    "mirror_source", "problems", "selected", "survey",
]  # fmt: skip


def selected(optional: bool = False) -> list[AssetFile]:
    """The files to fetch or verify: the model files and the example media, and with
    ``optional`` the optional ones too."""
    return [entry for entry in CATALOG if entry.required or optional]


def survey(folder: Path | None = None, entries: Iterable[AssetFile] | None = None) -> list[FileCheck]:
    """Check every file where it is looked up: in ``folder`` alone when one is named, else where
    the commands look (see :func:`facereenact.app.locations.assets_dir`). Optional files that are
    absent are left out."""
    checks = []
    for entry in selected(optional=True) if entries is None else entries:
        path = folder / entry.name if folder is not None else locate(entry, assets_dir())
        check = check_file(entry, path)
        if check.state is State.missing and not entry.required:
            continue
        checks.append(check)
    return checks


def default_destination() -> Path:
    """Where ``fetch`` puts files when no folder is named: ``FACEREENACT_ASSETS``, else the
    per-user folder."""
    return env_assets_dir() or user_assets_dir()


def mirror_source(entry: AssetFile, mirror: str) -> str:
    """Where ``entry`` is in ``mirror``: a base URL, or a local folder laid out as an assets
    folder, a checkout's ``../shared/assets`` (examples in ``../data``) or ``../shared`` itself."""
    if is_url(mirror) and urllib.parse.urlsplit(mirror).scheme != "file":
        return mirror.rstrip("/") + "/" + urllib.parse.quote(entry.name)
    root = Path(urllib.parse.urlsplit(mirror).path) if is_url(mirror) else Path(mirror).expanduser()
    candidates = [root / entry.name, root / "assets" / entry.name]
    if entry.shared_path is not None:
        candidates += [root.parent / entry.shared_path, root / entry.shared_path]
    return str(next((c for c in candidates if c.is_file()), candidates[0]))


@dataclass
class FetchReport:
    destination: Path
    #: Files written, and files that were already there and checked.
    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    #: Set when nothing was fetched because every file is already where the commands look.
    found_in: Path | None = None


#: ``on_file(entry, source)`` before a file is fetched.
FileCallback = Callable[[AssetFile, str], None]


def fetch(
    destination: Path | None,
    origin: str | None,
    optional: bool = False,
    on_file: FileCallback = lambda entry, source: None,
    on_progress: ProgressCallback = lambda done, total: None,
) -> FetchReport:
    """Fetch every selected file missing or damaged in ``destination`` from ``origin`` (a
    mirror: folder or base URL; None: each file's public origin), each checked before it is
    renamed into place. With no ``destination``, nothing is fetched when the commands already
    find every file (checked) where they look; else the files go to :func:`default_destination`."""
    entries = selected(optional)
    if origin is not None and not is_url(origin) and not Path(origin).expanduser().is_dir():
        raise InputError(f"--from {origin}: no such folder (give a folder or an http(s) URL of a mirror)")
    if destination is None:
        current = survey(None, entries)
        if all(check.good for check in current) and len(current) == len(entries):
            return FetchReport(assets_dir(), present=[c.entry.name for c in current], found_in=assets_dir())
        destination = default_destination()
    if destination.exists() and not destination.is_dir():
        raise InputError(f"--dir {destination} is a file; give a folder")
    report = FetchReport(destination)
    failed: dict[str, list[str]] = {}  # reason → files (one unreachable host fails them all alike)
    for entry in entries:
        if check_file(entry, destination / entry.name).good:
            report.present.append(entry.name)
            continue
        source = mirror_source(entry, origin) if origin is not None else entry.url
        on_file(entry, source)
        try:
            fetch_file(source, destination / entry.name, entry.size, entry.sha256, on_progress)
        except OSError as error:  # the folder cannot be made or written
            raise AssetError(f"cannot write into {destination}: {error.strerror or error} (name another folder with --dir)") from None
        except AssetError as error:
            failed.setdefault(str(error), []).append(entry.name)
            continue
        report.fetched.append(entry.name)
    if failed:
        count = sum(len(names) for names in failed.values())
        reasons = "; ".join(f"{', '.join(names)} ({reason})" for reason, names in failed.items())
        done = f"; {len(report.fetched)} other(s) fetched into {destination}" if report.fetched else ""
        raise AssetError(f"could not fetch {count} file(s): {reasons}{done}")
    return report


def problems(checks: Iterable[FileCheck]) -> list[FileCheck]:
    """The checks that make a folder unusable: a required file not good, an optional one damaged."""
    return [check for check in checks if not check.good]


def describe(check: FileCheck) -> str:
    """``name: state (detail)``."""
    detail = f" ({check.detail})" if check.detail else ""
    return f"{check.entry.name}: {check.state.value}{detail}"
