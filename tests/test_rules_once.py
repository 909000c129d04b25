"""Each rule is written once (#23; STYLE.md: "defaults defined once").

Every module under ``r2cli/`` is parsed with ``ast``: literals and definitions are looked up in the
code, not in comments or docstrings, so a rule restated in prose does not count, a restated value does.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "r2cli"


@cache
def _parsed() -> tuple[tuple[str, ast.AST], ...]:
    return tuple((path.relative_to(PACKAGE_ROOT).as_posix(), ast.parse(path.read_text(encoding="utf-8")))
                 for path in sorted(PACKAGE_ROOT.rglob("*.py")))


def _trees() -> dict[str, ast.AST]:
    return dict(_parsed())


def _where_constant(value: object) -> list[str]:
    return [f"{name}:{node.lineno}" for name, tree in _trees().items() for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and type(node.value) is type(value) and node.value == value]


def test_the_scan_sees_literals_and_definitions():
    # the homes hold what the other tests say they hold: the scan itself works
    assert any(w.startswith("media/frames.py:") for w in _where_constant("ffmpeg-fps-near"))
    assert any(w.startswith("model/config.py:") for w in _where_constant(0.7))


def test_frame_rule_name_is_written_only_in_media_frames():
    assert {w.split(":")[0] for w in _where_constant("ffmpeg-fps-near")} == {"media/frames.py"}


def test_nms_threshold_is_written_only_in_model_config():
    # eval/moments.py lists the IoU thresholds of the official metrics (0.5 ... 0.95): another rule
    places = {w.split(":")[0] for w in _where_constant(0.7)} - {"eval/moments.py"}
    assert places == {"model/config.py"}, places


def test_nms_is_implemented_once():
    defining = sorted(f"{name}:{node.name}" for name, tree in _trees().items() for node in ast.walk(tree)
                      if isinstance(node, ast.FunctionDef) and "nms" in node.name.lower())
    assert defining and all(d.startswith("model/postprocess.py:") for d in defining), defining


def _literal_fps_defaults(trees: dict[str, ast.AST]) -> list[str]:
    """Clip rates given as a number anywhere but their home: ``fps=0.5`` defaults, ``fps: float = 0.5``
    fields, ``X_FPS = 0.5`` constants (limits such as ``MAX_FEATURE_FPS`` are not rates)."""

    def is_rate(name: str) -> bool:
        rate = name == "fps" or name.endswith(("_fps", "_FPS"))
        return rate and not name.startswith(("MAX_", "MIN_"))

    def numeric(node: ast.AST | None) -> bool:
        value = getattr(node, "value", None)
        return isinstance(node, ast.Constant) and isinstance(value, (int, float)) and not isinstance(value, bool)

    found = []
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                arguments = node.args
                positional = arguments.posonlyargs + arguments.args
                pairs = list(zip(positional[len(positional) - len(arguments.defaults):], arguments.defaults))
                pairs += [(a, d) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d is not None]
                found += [f"{name}:{node.lineno} {a.arg}" for a, d in pairs if is_rate(a.arg) and numeric(d)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if is_rate(node.target.id) and numeric(node.value):
                    found.append(f"{name}:{node.lineno} {node.target.id}")
            elif isinstance(node, ast.Assign):
                found += [f"{name}:{node.lineno} {t.id}" for t in node.targets
                          if isinstance(t, ast.Name) and is_rate(t.id) and numeric(node.value)]
    return found


def test_clip_rate_default_is_written_only_in_model_config():
    from r2cli.features.names import FEATURE_FPS
    from r2cli.model.config import DEFAULT_FPS, DataConfig

    assert FEATURE_FPS == DEFAULT_FPS == DataConfig().fps == 0.5
    trees = _trees()
    trees["model/config.py"] = ast.parse("")  # the home: DEFAULT_FPS = 0.5 and DataConfig.fps
    assert _literal_fps_defaults(trees) == []
    # the scan finds each way of restating it
    sample = ast.parse("def f(a, fps=0.5, *, window_fps=1):\n    pass\nclass C:\n    fps: float = 1.0\n"
                       "INDEX_FPS = 0.5\nMAX_FPS = 1000.0\n")
    found = sorted(_literal_fps_defaults({"x.py": sample}))
    assert found == ["x.py:1 fps", "x.py:1 window_fps", "x.py:4 fps", "x.py:5 INDEX_FPS"]


def test_defaults_read_the_one_definition():
    from r2cli.features.store import FeatureSettings
    from r2cli.inference.windows import PostProcess
    from r2cli.media.frames import FRAME_RULE_EXACT
    from r2cli.model.config import NMS_SIGMA, NMS_THRESHOLD, NmsConfig

    assert FeatureSettings("ViT-B-32", "x").frame_rule == FRAME_RULE_EXACT
    assert NmsConfig().threshold == PostProcess().nms_threshold == NMS_THRESHOLD
    assert NmsConfig().sigma == PostProcess().nms_sigma == NMS_SIGMA


def test_the_cores_this_process_may_use_are_counted_once():
    """``media._process.default_jobs`` counts them; the decoder-thread default reads it (#23 leftover)."""
    where = [f"{name}:{node.lineno}" for name, tree in _trees().items() for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and node.attr == "sched_getaffinity"]
    assert [w.split(":")[0] for w in where] == ["media/_process.py"]


def test_post_processing_defaults_are_the_official_ones_written_once():
    from r2cli.inference.windows import PostProcess
    from r2cli.model.config import MAX_MOMENTS, ROUND_UNIT_S, DataConfig, ModelConfig

    assert (PostProcess().unit, DataConfig().unit) == (ROUND_UNIT_S, ROUND_UNIT_S)
    assert (PostProcess().max_moments, ModelConfig().max_num_moment) == (MAX_MOMENTS, MAX_MOMENTS)
