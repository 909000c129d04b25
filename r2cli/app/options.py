"""Typed options of the use cases: each default and each rule is written once, on its field.

A use case declares a frozen dataclass derived from ``Options`` whose fields are made by
``option()``::

    @dataclass(frozen=True)
    class SummarizeOptions(Options):
        ratio: float | None = option(None, help="Budget as a fraction of each video's duration.",
                                     above=0, maximum=1)

Two front ends build the same object:

- the CLI with ``from_flags(**flags)``: a flag the user did not give is ``None`` and takes the
  field's default; a rule broken names the flag (``--ratio must be in (0, 1], got 1.5``);
- the job runner with ``from_table(table, where=..., base=...)``: the keys of a job table are the
  field names (``job=False`` fields excepted), values are type-checked from the annotation, paths
  are resolved against the job file's folder, and a broken rule names the file and the key.

Both end in ``validate``, which checks every field's rule and then the class's own cross-field
rules (``check``), so no rule is written twice and a job step equals the command line.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from r2cli.errors import InputError, UsageError

_META = "r2cli.option"
T = TypeVar("T", bound="Options")

# names a field for an error message: the CLI says "--top-k", a job "jobs/x.toml: [search].top_k"
Namer = Callable[[str], str]


@dataclass(frozen=True)
class Spec:
    """The rule and help text of one option."""

    help: str  # one sentence for people; the CLI and the job file's comment both use it
    minimum: float | None = None  # inclusive lower bound of a number
    above: float | None = None  # exclusive lower bound of a number
    maximum: float | None = None  # inclusive upper bound of a number
    choices: tuple[str, ...] | None = None  # the allowed values of a string
    check: Callable[[Any], str | None] | None = None  # extra rule: returns the rule's text when broken
    job: bool = True  # whether a job file may set it (False: command line or library only)
    flag: str | None = None  # the CLI flag when it is not --field-name
    exists: bool = False  # an input path (or paths) that must exist; `r2cli run --check` checks it


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
    check: Callable[[Any], str | None] | None = None,
    job: bool = True,
    flag: str | None = None,
    exists: bool = False,
) -> Any:
    """A dataclass field with its default, its rule and its help text, each written once here."""
    spec = Spec(help=help, minimum=minimum, above=above, maximum=maximum, choices=choices, check=check,
                job=job, flag=flag, exists=exists)
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple (immutable) as the default of a list option")
    return dataclasses.field(default=default, metadata={_META: spec})


def flag_name(field_name: str, spec: Spec | None = None) -> str:
    """The CLI flag of a field: ``top_k`` -> ``--top-k``, unless the field names its own."""
    if spec is not None and spec.flag:
        return spec.flag
    return "--" + field_name.replace("_", "-")


def cli_namer(cls: type["Options"]) -> Namer:
    """Names fields as the CLI's flags."""
    specs = cls.specs()
    return lambda name: flag_name(name, specs.get(name))


class job_namer:
    """Names fields as keys of a job table: ``where`` is ``"FILE: [section]"``.

    The first field of a message gets the file (``job.toml: [search].stride``); the others only
    the table (``[search].window``), so a cross-field rule reads as one sentence.
    """

    def __init__(self, where: str) -> None:
        self.where = where

    def __call__(self, name: str) -> str:
        return f"{self.where}.{name}"

    def short(self, name: str) -> str:
        table = self.where.rsplit(": ", 1)[-1]
        return f"{table}.{name}"


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _describe_bounds(spec: Spec) -> str:
    low = "(" if spec.above is not None else "["
    high = "]"
    lo = spec.above if spec.above is not None else spec.minimum
    if lo is not None and spec.maximum is not None:
        return f"must be in {low}{lo:g}, {spec.maximum:g}{high}"
    if spec.above is not None:
        return f"must be > {spec.above:g}"
    if spec.minimum is not None:
        return f"must be >= {spec.minimum:g}"
    return f"must be <= {spec.maximum:g}"


class Options:
    """Base of every use case's options; subclasses are frozen dataclasses of ``option()`` fields."""

    # the job table the options are read from ("search"); None: not a job step
    section: ClassVar[str | None] = None

    # -- introspection ---------------------------------------------------------------------------

    @classmethod
    def specs(cls) -> dict[str, Spec]:
        """Field name -> its ``Spec``, in declaration order."""
        return {f.name: f.metadata[_META] for f in dataclasses.fields(cls) if _META in f.metadata}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Field name -> its default value."""
        return {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                for f in dataclasses.fields(cls)}

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of one field (what the CLI shows in its help)."""
        return cls.defaults()[name]

    @classmethod
    def help(cls, name: str, *, show_default: bool = True) -> str:
        """The field's help text, with its default appended when it has one."""
        text = cls.specs()[name].help
        value = cls.default(name)
        if show_default and value is not None and value != () and not isinstance(value, bool):
            text = f"{text.rstrip('.')}. Default: {value}."
        return text

    @classmethod
    def _types(cls) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

    @classmethod
    def job_keys(cls) -> list[str]:
        """The keys a job file's table may hold: every field not marked ``job=False``."""
        return [name for name, spec in cls.specs().items() if spec.job]

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_flags(cls: type[T], **flags: Any) -> T:
        """Options from CLI flags: ``None`` means "not given" and keeps the field's default.

        Raises:
            UsageError: a value breaks its rule (the message names the flag).
        """
        values = {name: value for name, value in flags.items() if value is not None}
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"{cls.__name__} has no option {unknown[0]!r}")
        hints = cls._types()
        for name, value in list(values.items()):
            target, _ = _unwrap_optional(hints[name])
            if typing.get_origin(target) is tuple and isinstance(value, list):
                values[name] = tuple(value)
        options = cls(**values)
        options.validate(cli_namer(cls), UsageError)
        return options

    @classmethod
    def from_table(cls: type[T], table: Mapping[str, Any], *, where: str, base: Path,
                   overrides: Mapping[str, Any] | None = None) -> T:
        """Options from one table of a job file.

        ``where`` is ``"FILE: [section]"``; relative paths are resolved against ``base``;
        ``overrides`` are values the job runner sets itself (its out folder, ``resume``).

        Raises:
            InputError: an unknown key, a value of the wrong type, or a broken rule (the message
                names the file and the key and lists the known keys where that helps).
        """
        allowed = cls.job_keys()
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            raise InputError(f"{where} has unknown key '{unknown[0]}'; known keys: {', '.join(allowed)}")
        hints = cls._types()
        name_of = job_namer(where)
        values: dict[str, Any] = {}
        for key, raw in table.items():
            values[key] = _coerce(name_of(key), hints[key], raw, base)
        values.update(overrides or {})
        options = cls(**values)
        object.__setattr__(options, "_source", (name_of, InputError))  # later errors name the file and key
        options.validate()
        return options

    def value_source(self) -> tuple[Namer, type[Exception]]:
        """How errors about these values name a field, and which error they raise: the CLI's flags and
        ``UsageError``, or, for options read from a job table, its file and keys and ``InputError``.

        A rule that can only be checked later (the stride against a preset's window, once the
        checkpoint is loaded) names the field the way the user wrote it.
        """
        return getattr(self, "_source", None) or (cli_namer(type(self)), UsageError)

    def error_for(self, problem: tuple[tuple[str, ...], str]) -> Exception:
        """The error for a broken rule ``((field, ...), "{0} must not exceed {1}")``, fields named as
        ``value_source`` says (the first one in full, the others short: one sentence)."""
        name_of, error = self.value_source()
        return error(_sentence(problem, name_of))

    # -- validation ------------------------------------------------------------------------------

    def validate(self, name_of: Namer | None = None, error: type[Exception] | None = None) -> None:
        """Check every field's rule, then the cross-field rules of ``check``.

        Raises:
            UsageError (or ``error``): the first broken rule, naming the field as ``name_of`` does
                (by default as ``value_source`` says: flags, or the job file's keys with ``InputError``).
        """
        if name_of is None or error is None:
            source_names, source_error = self.value_source()
            name_of, error = name_of or source_names, error or source_error
        for name, spec in self.specs().items():
            value = getattr(self, name)
            if value is None:
                continue
            problem = _rule_problem(spec, value)
            if problem:
                raise error(f"{name_of(name)} {problem}, got {value!r}")
        problem = self.check()
        if problem is not None:
            raise error(_sentence(problem, name_of))

    def check(self) -> tuple[tuple[str, ...], str] | None:
        """Cross-field rules of a subclass: ``((field, ...), "{0} must not exceed {1}")`` when broken.

        The message's ``{0}``, ``{1}`` ... are replaced by the names of the fields as the caller
        shows them (flags or job keys).
        """
        return None

    def missing_inputs(self) -> list[tuple[str, Path]]:
        """(field, path) of every ``exists=True`` input that does not exist."""
        missing: list[tuple[str, Path]] = []
        for name, spec in self.specs().items():
            value = getattr(self, name)
            if not spec.exists or value is None:
                continue
            for item in value if isinstance(value, tuple) else (value,):
                if not Path(item).exists():
                    missing.append((name, Path(item)))
        return missing

    def replace(self: T, **changes: Any) -> T:
        """A copy with some fields changed (the copy is not validated again; it keeps ``value_source``)."""
        copy = dataclasses.replace(self, **changes)  # type: ignore[type-var]
        if getattr(self, "_source", None) is not None:
            object.__setattr__(copy, "_source", self._source)  # type: ignore[attr-defined]
        return copy

    @classmethod
    def reworded(cls, name: str, **changes: Any) -> Any:
        """A field of ``cls`` (its default and rule) for a subclass that says it its own way (``help``,
        ``flag``): ``videos: tuple[str, ...] = VideoSelection.reworded("videos", flag="VIDEO", help=...)``."""
        field = next(f for f in dataclasses.fields(cls) if f.name == name)  # type: ignore[arg-type]
        spec = dataclasses.replace(field.metadata[_META], **changes)
        return dataclasses.field(default=field.default, metadata={_META: spec})

    def to_dict(self) -> dict[str, Any]:
        """Field values as JSON-ready data (paths as strings, tuples as lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = [str(v) if isinstance(v, Path) else v for v in value]
            out[f.name] = value
        return out


def _sentence(problem: tuple[tuple[str, ...], str], name_of: Namer) -> str:
    """A cross-field rule's message with its fields named: the first in full, the others short."""
    names, rule = problem
    short = getattr(name_of, "short", name_of)
    return rule.format(*[name_of(n) if i == 0 else short(n) for i, n in enumerate(names)])


def _rule_problem(spec: Spec, value: Any) -> str | None:
    if spec.choices is not None and not isinstance(value, tuple) and value not in spec.choices:
        return f"must be one of {', '.join(spec.choices)}"
    if isinstance(value, float) and not math.isfinite(value):
        # TOML and the CLI both accept inf and nan; no option means anything by them
        return "must be a finite number"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if spec.above is not None and not value > spec.above:
            return _describe_bounds(spec)
        if spec.minimum is not None and not value >= spec.minimum:
            return _describe_bounds(spec)
        if spec.maximum is not None and not value <= spec.maximum:
            return _describe_bounds(spec)
    if spec.check is not None:
        return spec.check(value)
    return None


def _coerce(where: str, annotation: Any, value: Any, base: Path) -> Any:
    """A TOML value as the field's type, or an ``InputError`` that names the key."""
    target, optional = _unwrap_optional(annotation)

    def fail(rule: str) -> InputError:
        return InputError(f"{where} {rule}, got {value!r}")

    if typing.get_origin(target) is tuple:
        (item,) = [a for a in typing.get_args(target) if a is not Ellipsis]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise fail("must be a list")
        return tuple(_coerce(where, item, v, base) for v in value)
    if target is bool:
        if not isinstance(value, bool):
            raise fail("must be true or false")
        return value
    if target is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("must be an integer")
        return value
    if target is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("must be a number")
        return float(value)
    if target is Path:
        if not isinstance(value, str) or not value.strip():
            raise fail("must be a path (a non-empty string)")
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base / path).resolve()
    if target is str:
        if not isinstance(value, str) or not value.strip():
            raise fail("must be a non-empty string")
        return value
    raise TypeError(f"option type {annotation!r} is not supported in job files")  # a bug in an Options class


# -- rules shared by several use cases ------------------------------------------------------------


def device_rule(value: Any) -> str | None:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    if isinstance(value, str) and (value in ("auto", "cpu", "cuda", "mps") or
                                   (value.startswith("cuda:") and value[5:].isdigit())):
        return None
    return "must be auto, cpu, cuda, cuda:N or mps"


def ray_address_rule(value: Any) -> str | None:
    """``--ray``'s rule (``r2cli.distributed.session.ray_address_rule``), loading that module only
    when a value is checked, so building the flags stays light (#23)."""
    from r2cli.distributed.session import ray_address_rule as rule

    return rule(value)


def name_rule(value: Any) -> str | None:
    """A name, not a path: no separators, not ``.`` or ``..``, no control characters, at most
    ``NAME_MAX_BYTES`` of UTF-8 (a job's name becomes the folder ``job-<name>``)."""
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty name"
    if "/" in value or "\\" in value or value in (".", "..") or any(ord(c) < 32 for c in value):
        return "must be a name (no '/', '\\', '..' or control characters), not a path"
    if len(value.encode("utf-8", "surrogatepass")) > NAME_MAX_BYTES:
        return f"must be at most {NAME_MAX_BYTES} bytes (it becomes part of a file name)"
    return None


# A name that becomes part of a file or folder name: below the usual 255-byte limit, leaving room
# for prefixes such as "job-" and temporary names.
NAME_MAX_BYTES = 200

# The highest clip rate `r2cli index --fps` accepts; one clip at that rate is the shortest span
# (window, stride) that can mean anything, so shorter ones are refused where they enter.
MAX_FEATURE_FPS = 1000.0
MIN_SPAN_S = 1 / MAX_FEATURE_FPS


# -- option fields shared by several use cases (STYLE.md rule 10: declared once) -------------------


@dataclass(frozen=True)
class VideoSelection(Options):
    """Which catalog videos a run reads: search, summarize and duplicates derive from it."""

    videos: tuple[str, ...] = option(
        (), help="Only videos whose catalog id, path or file name matches one of these globs.", flag="--video")
    min_duration: float | None = option(None, help="Only videos at least this long (s).", minimum=0)
    max_duration: float | None = option(None, help="Only videos at most this long (s).", minimum=0)
    path_contains: str | None = option(None, help="Only videos whose path contains this text.")

    def check(self) -> tuple[tuple[str, ...], str] | None:
        if self.min_duration is not None and self.max_duration is not None and self.min_duration > self.max_duration:
            return (("min_duration", "max_duration"),
                    f"{{0}} ({self.min_duration:g}) must not exceed {{1}} ({self.max_duration:g})")
        return super().check()

    def video_filter(self) -> Any:
        """The catalog's ``VideoFilter`` of these options."""
        from r2cli.catalog.selection import VideoFilter

        return VideoFilter(patterns=self.videos, min_duration=self.min_duration, max_duration=self.max_duration,
                           path_contains=self.path_contains)


@dataclass(frozen=True)
class RunFolderOptions(VideoSelection):
    """A run that publishes a run folder (``r2cli.app.model_run.publish_run``): where, and what besides."""

    out: Path | None = option(None, help="Run folder for the outputs. Default: <workspace>/runs/<run id>.")
    wait: float = option(0.0, help="Seconds to wait when another run writes to the same --out.", minimum=0,
                         job=False)
    # set by the job runner (not a key of a job file): return the finished run in ``out`` when its
    # settings are the same
    resume: bool = option(False, help="Reuse a finished run with the same settings in --out.", job=False)
    report: bool = option(False, help="Also write an HTML report of the run into report/ in the run folder "
                                      "(what `r2cli report RUN` writes).")
