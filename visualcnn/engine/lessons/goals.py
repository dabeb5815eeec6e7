"""A do-step's goal, checked on the model as it stands: one line per condition, ✔ or ✘.

Every number comes from the engine's analysis (engine/analysis.py): shapes, parameter
counts, receptive fields and MACs are read from the report, never recomputed here. The
conditions about a run (trained, test_accuracy) read what the caller knows of the last
run (`RunFacts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..analysis import PipelineReport
from ..training_config import TrainingConfig
from .format import RUN_CHECKS, Condition, Step

MET, UNMET = "✔", "✘"


@dataclass(frozen=True)
class RunFacts:
    """What the window knows of the last run on the document's current weights."""

    trained: bool = False
    test_accuracy: float | None = None  # 0..1, the last run's test accuracy


@dataclass(frozen=True)
class ConditionStatus:
    condition: Condition
    met: bool
    line: str  # "✔ conv2d_1 output is 13x13x32"


@dataclass(frozen=True)
class GoalStatus:
    """met: every condition holds; lines: one per condition, in the goal's order."""

    met: bool
    conditions: tuple[ConditionStatus, ...]

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(c.line for c in self.conditions)


def report_of(model_or_report: Any) -> PipelineReport:
    """The engine's report for a report, the window's document, a ModelState or an engine model."""
    obj = model_or_report
    if isinstance(obj, PipelineReport):
        return obj
    report = getattr(obj, "report", None)
    if isinstance(report, PipelineReport):  # the document keeps its live report
        return report
    if callable(report):
        value = report()
        if isinstance(value, PipelineReport):
            return value
    if hasattr(obj, "analyse"):
        return obj.analyse()
    from .simulate import state_of

    return state_of(obj).report()


def training_of(model_or_report: Any, training_config: TrainingConfig | None) -> TrainingConfig:
    if training_config is not None:
        return training_config
    found = getattr(model_or_report, "training", None)
    return found if isinstance(found, TrainingConfig) else TrainingConfig()


def _facts(results: Any) -> RunFacts:
    if results is None:
        return RunFacts()
    if isinstance(results, RunFacts):
        return results
    if isinstance(results, Mapping):
        return RunFacts(bool(results.get("trained", False)), results.get("test_accuracy"))
    return RunFacts(bool(getattr(results, "trained", False)), getattr(results, "test_accuracy", None))


def evaluate_goal(goal: Step | Sequence[Condition], model_or_report: Any, training_config: TrainingConfig | None = None,
                  results: Any = None) -> GoalStatus:
    """Check a do-step's goal (or a list of conditions) on the model as it stands.

    model_or_report: a PipelineReport, the window's document, a ModelState or an engine model.
    training_config: the settings (default: the document's / state's own). results: RunFacts,
    a mapping {"trained": bool, "test_accuracy": float} or None (never trained)."""
    conditions = goal.goal if isinstance(goal, Step) else tuple(goal)
    report = report_of(model_or_report)
    training = training_of(model_or_report, training_config)
    facts = _facts(results)
    statuses = tuple(check_condition(c, report, training, facts) for c in conditions)
    return GoalStatus(all(s.met for s in statuses), statuses)


def check_condition(condition: Condition, report: PipelineReport, training: TrainingConfig,
                    facts: RunFacts = RunFacts()) -> ConditionStatus:
    args, check = condition.args, condition.check

    def status(ok: bool, text: str) -> ConditionStatus:
        return ConditionStatus(condition, bool(ok), f"{MET if ok else UNMET} {text}")

    if check in RUN_CHECKS:
        if not facts.trained:
            return status(False, "not trained yet: train the model (Train tab)")
        if check == "trained":
            return status(True, "the model is trained")
        if facts.test_accuracy is None:
            return status(False, "no test accuracy yet: train the model to the end of a run (Train tab)")
        ok, goal = compare(facts.test_accuracy, args, percent=True)
        return status(ok, f"test accuracy {facts.test_accuracy:.2%} ({goal})")
    if check == "no_error":
        if report.error:
            return status(False, f"the pipeline has an error: {report.error}")
        return status(True, "no shape errors")
    if check == "layer_count":
        n = len(report.rows)
        ok, goal = compare(n, args)
        return status(ok, f"{n} layer{'s' if n != 1 else ''} ({goal})")
    if check == "has_layer":
        n = sum(1 for r in report.rows if r.layer.class_name == args["class"])
        wanted = args if any(k in args for k in ("equals", "at_most", "at_least")) else {"at_least": 1}
        ok, goal = compare(n, wanted)
        return status(ok, f"{n} {args['class']} layer{'s' if n != 1 else ''} ({goal})")
    if check == "setting":
        key = args["key"]
        value = getattr(training, key, None)
        if "equals" in args:
            ok = value == args["equals"] or (_number(value) and _number(args["equals"]) and value == args["equals"])
            return status(ok, f"{key} is {value}" + ("" if ok else f" (goal: {args['equals']})"))
        if not _number(value):
            return status(False, f"{key} is {value!r}, not a number")
        ok, goal = compare(value, args)
        return status(ok, f"{key} is {value:g} ({goal})")
    if check == "total_params":
        ok, goal = compare(report.total_params, args)
        return status(ok, f"total parameters {report.total_params:,} ({goal})")
    if check == "macs" and "layer" not in args:
        ok, goal = compare(report.total_macs, args)
        return status(ok, f"total MACs per image {report.total_macs:,} ({goal})")
    # the rest are about one layer
    row, problem = find_row(report, args["layer"])
    if row is None:
        return status(False, problem)
    name = row.name
    if check == "output_shape":
        shape = row.output_shape
        wanted = tuple(args["equals"])
        ok = shape is not None and tuple(shape[1:]) == wanted
        return status(ok, f"{name} output is {shape_text(shape)}" + ("" if ok else f" (goal: {'x'.join(map(str, wanted))})"))
    if check == "params":
        ok, goal = compare(row.params, args)
        return status(ok, f"{name} has {row.params:,} parameters ({goal})")
    if check == "macs":
        ok, goal = compare(row.macs, args)
        return status(ok, f"{name} MACs per image {row.macs:,} ({goal})")
    if check == "receptive_field":
        size = tuple(row.inference.field.size)
        if "equals" in args and isinstance(args["equals"], list):
            ok = size == tuple(args["equals"])
            goal = f"goal: {args['equals'][0]}x{args['equals'][1]}"
        else:
            # a square goal number holds for both sides; the smaller side decides at_least, the larger at_most
            ok = all(compare(s, args)[0] for s in size)
            goal = compare(size[0], args)[1]
        return status(ok, f"{name} sees {size[0]}x{size[1]} input pixels ({goal})")
    return status(False, f"unknown check {check!r}")


def find_row(report: PipelineReport, name: str):
    """(the row named `name`, None) or (None, the one-line reason it cannot be used)."""
    for row in report.rows:
        if row.name == name:
            if row.inference is None:
                return None, f"{name} has no shape: {row.error or 'a layer above it has an error'}"
            return row, ""
    names = ", ".join(r.name for r in report.rows)
    return None, f"there is no layer named {name!r} (the layers are: {names})"


def shape_text(shape) -> str:
    """(None, 13, 13, 32) -> '13x13x32'; None -> 'unknown'."""
    if shape is None:
        return "unknown"
    return "x".join(str(d) for d in shape[1:])


def compare(value, args: Mapping, percent: bool = False) -> tuple[bool, str]:
    """(value meets every comparison in args, "goal: at most 60,000")."""
    def fmt(v) -> str:
        if percent:
            return f"{v:.2%}"
        return f"{v:,}" if isinstance(v, int) else f"{v:g}"

    ok, parts = True, []
    if "equals" in args:
        ok = ok and value == args["equals"]
        parts.append(f"exactly {fmt(args['equals'])}")
    if "at_least" in args:
        ok = ok and value >= args["at_least"]
        parts.append(f"at least {fmt(args['at_least'])}")
    if "at_most" in args:
        ok = ok and value <= args["at_most"]
        parts.append(f"at most {fmt(args['at_most'])}")
    return ok, "goal: " + " and ".join(parts)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


__all__ = ["RunFacts", "ConditionStatus", "GoalStatus", "evaluate_goal", "check_condition", "report_of",
           "find_row", "shape_text", "compare"]
