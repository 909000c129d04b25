"""Where r2cli keeps things: workspace, catalog, feature store, runs, weights cache, data folders.

Resolution order for every location: explicit argument, then environment variable,
then default. Nothing here creates directories except ``Workspace.ensure``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from r2cli.errors import R2Error

WORKSPACE_ENV = "R2CLI_WORKSPACE"
CATALOG_ENV = "R2CLI_CATALOG"
CACHE_ENV = "R2CLI_CACHE"
MODELS_DIR_ENV = "R2CLI_MODELS_DIR"
DEFAULT_WORKSPACE = ".r2cli"
OUTPUT_MARKER = ".r2cli-output"  # file in every folder r2cli writes media to; `r2cli index` skips such folders
OUTPUT_COMMENT = "r2cli output"  # container comment tag of media r2cli writes; `r2cli index` skips such files

_PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Workspace:
    """A workspace folder: catalog, feature store and run outputs live below ``root``."""

    root: Path  # the workspace folder itself (default ./.r2cli)
    catalog_url: str  # SQLAlchemy URL of the catalog (default: SQLite file inside root)

    @property
    def features_dir(self) -> Path:
        """Content-addressed feature store."""
        return self.root / "features"

    @property
    def runs_dir(self) -> Path:
        """One folder per search/summarize/finetune run."""
        return self.root / "runs"

    @property
    def catalog_is_default_sqlite(self) -> bool:
        return self.catalog_url == default_catalog_url(self.root)

    def ensure(self) -> "Workspace":
        """Create the workspace folders if needed and return self.

        Raises:
            R2Error: a folder cannot be created (one line naming it and why: a read-only parent, ...).
        """
        for folder in (self.root, self.features_dir, self.runs_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise R2Error(f"workspace {self.root}: cannot create {folder}: {exc.strerror or exc} "
                              "(pass --workspace, or set $R2CLI_WORKSPACE, to a folder you can write)") from None
        return self


def default_catalog_url(root: Path) -> str:
    return f"sqlite:///{(root / 'catalog.sqlite').as_posix()}"


def resolve_workspace(workspace: str | os.PathLike | None = None, catalog: str | None = None) -> Workspace:
    """Resolve the workspace from the argument, ``$R2CLI_WORKSPACE`` or ``./.r2cli``.

    The catalog URL comes from ``catalog``, ``$R2CLI_CATALOG`` or a SQLite file in the workspace.
    """
    raw = workspace if workspace not in (None, "") else os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE
    root = Path(raw).expanduser().resolve()
    url = catalog or os.environ.get(CATALOG_ENV) or default_catalog_url(root)
    return Workspace(root=root, catalog_url=url)


def weights_cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """Folder where downloaded weights are kept: argument, ``$R2CLI_CACHE``, or ``$XDG_CACHE_HOME/r2cli``."""
    if cache:
        return Path(cache).expanduser().resolve()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().resolve() / "r2cli"


def _data_dir(name: str, env: str | None) -> Path:
    candidates: list[Path] = []
    if env and os.environ.get(env):
        candidates.append(Path(os.environ[env]).expanduser())
    candidates.append(_PACKAGE_DIR.parent / name)  # a checkout or editable install
    candidates.append(Path(sys.prefix) / "share" / "r2cli" / name)  # a wheel install
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    raise R2Error(
        f"cannot find the r2cli '{name}/' data folder (looked in {', '.join(str(c) for c in candidates)}); "
        + (f"set ${env} to it" if env else "reinstall r2cli")
    )


def models_dir() -> Path:
    """The ``models/`` data folder: presets (``*.json``) and the pretrained manifest."""
    return _data_dir("models", MODELS_DIR_ENV)


def jobs_dir() -> Path:
    """The ``jobs/`` data folder with the shipped job files."""
    return _data_dir("jobs", None)
