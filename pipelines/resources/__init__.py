"""The files the package reads at run time, and a site's own versions of them.

The contracts, rules, value sets and cohort definition (`schemas/`) and the SQL models
(`sql/`) ship inside the package: this folder holds them (in a checkout, `schemas` and
`sql` here are links to the project's top-level folders; the wheel holds copies), and
they are found through `importlib.resources`, never through the working directory.

A site (a folder `redflags init DIR` writes) may hold its own version of any file under
`schemas/`: the file there replaces the packaged file of the same name, for every
command, and every other file comes from the package. `active()` is the set of files a
command uses; the CLI picks the site once (`use_site`) before any file is read.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from pipelines.errors import UserError

# Where a site keeps its own files; only these may replace packaged ones.
OVERLAY = "schemas"
SITE_ENV = "REDFLAGS_SITE"
CONFIG_FILE = "redflags.toml"


class ResourceError(UserError):
    """A resource file that is missing or cannot be read: one line naming the file."""


def packaged_root() -> Path:
    """This folder, as installed (a wheel unpacks to real files, so it is a real path)."""
    return Path(str(files(__name__)))


@dataclass(frozen=True)
class Resources:
    """The files of one command: the site's where it has one, the package's otherwise."""

    site: Path | None = None

    def path(self, name: str) -> Path:
        """The file `name` (such as `schemas/red_flags.yml`) as this command reads it."""
        if self.site is not None and name.startswith(OVERLAY + "/"):
            own = self.site / name
            if own.is_file():
                return own
        packaged = packaged_root() / name
        if packaged.is_file():
            return packaged
        where = f" or in the site {self.site}" if self.site is not None else ""
        raise ResourceError(
            f"{name}: no such file in the package{where}; reinstall redflags or check the "
            "name of the site's file"
        )

    def paths(self, folder: str, suffix: str) -> list[Path]:
        """Every `*suffix` file of `folder`, by name: a site's file replaces the packaged
        one of the same name, and adds to them when the package has none of that name."""
        by_name = {p.name: p for p in sorted((packaged_root() / folder).glob("*" + suffix))}
        if self.site is not None and folder.startswith(OVERLAY):
            by_name |= {p.name: p for p in sorted((self.site / folder).glob("*" + suffix))}
        return [by_name[name] for name in sorted(by_name)]

    def text(self, name: str) -> str:
        return read_text(self.path(name))

    def yaml(self, name: str) -> Any:
        return read_yaml(self.path(name))

    def is_overridden(self, name: str) -> bool:
        return self.path(name) != packaged_root() / name


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ResourceError(f"{path}: cannot be read ({reason})") from None


def read_yaml(path: Path) -> Any:
    """A YAML resource; a malformed one is one line naming the file and the place."""
    import yaml

    try:
        return yaml.safe_load(read_text(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ResourceError(f"{path}{where}: not valid YAML ({problem})") from None


def fingerprint(paths: Iterable[Path]) -> str:
    """The first 16 hex digits of a SHA-256 over the files' names and bytes, in order:
    what `rules_version` records, so that a site's own rule file shows in it."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode("utf-8") + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


_active = Resources()


def active() -> Resources:
    """The resources of this process's command (the package's, until a site is chosen)."""
    return _active


def use_site(site: Path | None) -> Resources:
    """Read resources from `site` (None: the package's only) from now on in this process."""
    global _active
    if site is not None:
        site = Path(site).resolve()
        if not site.is_dir():
            raise UserError(f"{site}: no such site folder (make one with `redflags init DIR`)")
    _active = Resources(site)
    return _active


def find_site(
    explicit: Path | None, cwd: Path, environ: dict[str, str] | None = None
) -> Path | None:
    """The site of a command: `--site DIR`, else REDFLAGS_SITE, else the working directory
    when it holds a redflags.toml; None when there is none (the package's files alone)."""
    environ = dict(os.environ) if environ is None else environ
    if explicit is not None:
        return explicit
    if environ.get(SITE_ENV):
        return Path(environ[SITE_ENV])
    return cwd if (cwd / CONFIG_FILE).is_file() else None


@cache
def version() -> str:
    """The installed distribution's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    try:
        return distribution_version("redflags")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"
