"""What r2cli must never write over: the source videos the catalog knows.

``cut``, ``cut --concat`` and ``summarize --reel`` ask ``source_video_paths`` before writing,
with or without ``--force``; ``catalogued_folder_above`` tells ``cut`` that its ``--out`` lies
in an archive folder (whose next ``index`` would otherwise take the clips for new videos).
Both only read the catalog and never create or migrate it (a read-only engine: an intact catalog
on a read-only mount, or one an older r2cli wrote, is still read). A catalog that exists but
cannot be read makes them raise: a guard that cannot check refuses. Without a catalog nothing is
protected here (the rows' own sources still are, by the cut itself, and ``--force`` replaces only
r2cli's own outputs, see ``r2cli.ownership``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from r2cli.paths import Workspace


@contextmanager
def _read_session(workspace: "Workspace") -> Iterator:
    """A session on a read-only engine of the workspace's catalog.

    Raises:
        CatalogError: the catalog cannot be read.
    """
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

    from r2cli.catalog.db import describe_url, one_line, open_read_engine
    from r2cli.errors import CatalogError

    engine = open_read_engine(workspace.catalog_url)
    try:
        with Session(bind=engine) as session:
            yield session
    except SQLAlchemyError as exc:
        raise CatalogError(f"cannot read catalog {describe_url(workspace.catalog_url)}: {one_line(exc)}; "
                           "r2cli refuses to write without checking it") from None
    finally:
        engine.dispose()


def _like_prefix(folder: str) -> str:
    escaped = folder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.rstrip("/") + "/%"


def source_video_paths(workspace: "Workspace | None", candidates: Iterable[str | os.PathLike]) -> set[str]:
    """The candidates (as ``str(candidate)``) that are videos of the catalog.

    A candidate is a catalogued video when its resolved path (symlinks followed) is a catalog
    path, or when it exists and is the same file (device and inode: a hard link) as a catalogued
    video of the same size. Returns an empty set when the workspace has no catalog.

    Raises:
        CatalogError: the catalog exists but cannot be read.
    """
    from sqlalchemy import select

    from r2cli.catalog.db import catalog_exists
    from r2cli.catalog.schema import Video

    candidates = [Path(c) for c in candidates]
    if workspace is None or not candidates or not catalog_exists(workspace):
        return set()
    resolved = {str(c): os.path.realpath(c) for c in candidates}
    stats: dict[str, os.stat_result] = {}
    for c in candidates:
        try:
            stats[str(c)] = os.stat(c)
        except OSError:
            pass
    hits: set[str] = set()
    with _read_session(workspace) as session:
        known = set(session.scalars(select(Video.path).where(Video.path.in_(sorted(set(resolved.values()))))))
        hits |= {name for name, real in resolved.items() if real in known}
        sizes = sorted({s.st_size for name, s in stats.items() if name not in hits})
        if sizes:
            same_size = list(session.scalars(select(Video.path).where(Video.size.in_(sizes))))
            identities = {}
            for path in same_size:
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                identities[(st.st_dev, st.st_ino)] = path
            hits |= {name for name, st in stats.items() if (st.st_dev, st.st_ino) in identities}
    return hits


def catalogued_folder_above(workspace: "Workspace | None", folder: str | os.PathLike) -> Path | None:
    """The nearest folder at or above ``folder`` that directly holds a catalogued video, or None.

    Such a folder was scanned by ``r2cli index``; files written below it are found by the next scan.
    """
    from sqlalchemy import select

    from r2cli.catalog.db import catalog_exists
    from r2cli.catalog.schema import Video

    if workspace is None or not catalog_exists(workspace):
        return None
    here = Path(os.path.realpath(folder))
    with _read_session(workspace) as session:
        for above in (here, *here.parents):
            prefix = _like_prefix(str(above))
            deeper = prefix[:-1] + "%/%"
            query = (
                select(Video.path)
                .where(Video.path.like(prefix, escape="\\"), ~Video.path.like(deeper, escape="\\"))
                .limit(1)
            )
            if session.scalars(query).first() is not None:
                return above
    return None
