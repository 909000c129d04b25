"""Typed errors raised by the r2cli library.

The library never prints or exits. It raises one of these; the CLI turns each into
one clear line on stderr and an exit code (``exit_code``).
"""

from __future__ import annotations


class R2Error(Exception):
    """Base class of every error r2cli raises on purpose.

    The message is meant for a person: it names the file, line or flag involved
    and, where possible, how to fix it.
    """

    exit_code = 1


class UsageError(R2Error):
    """A flag or argument value breaks a rule (``"--ratio must be in (0, 1], got 1.5"``)."""

    exit_code = 2


class InputError(R2Error):
    """An input file exists but cannot be used (bad format, bad line, wrong schema)."""

    exit_code = 1


class MissingDependencyError(R2Error):
    """An external tool or optional package is missing (ffmpeg, ffprobe, opentimelineio)."""

    exit_code = 3


class MissingWeightsError(R2Error):
    """Model weights are not available locally and cannot be downloaded."""

    exit_code = 4


class CatalogError(R2Error):
    """The catalog database cannot be opened, migrated or written."""

    exit_code = 5


class CatalogBusyError(CatalogError):
    """Another r2cli process holds the catalog's writer lock."""

    exit_code = 6


class CheckpointError(R2Error):
    """A checkpoint's keys or shapes do not fit the model it is loaded into."""

    exit_code = 1


class MediaError(R2Error):
    """ffmpeg/ffprobe failed on a media file."""

    exit_code = 1


class FeatureError(R2Error):
    """Features are missing, stale or unreadable."""

    exit_code = 1


class ClusterError(R2Error):
    """The distributed engine (Ray) cannot be reached, or a node cannot do its part."""

    exit_code = 7
