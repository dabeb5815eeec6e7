"""A lesson as data: the dataclasses the parser fills, the checker walks and the writer writes.

The file form (resources/lessons/NN_slug.md) is Markdown with TOML front matter between
`+++` lines; each step is a `## Title` heading followed at once by a ```step fenced block of
TOML (the structured part), then the step's Markdown text. The vocabularies below (step
kinds, goal checks, actions, predict quantities, explain views) are the whole format: the
parser refuses anything else, so a typo in a lesson is a line in `visualcnn lesson check`,
not a step that silently never completes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..layers import ConfigError

KINDS = ("read", "do", "predict", "train", "explain")

# Keys a step's TOML may hold, per kind ("kind" and "hints" are allowed in every step).
STEP_KEYS = {
    "read": ("image",),
    "do": ("goal", "show_me"),
    "predict": ("quantity", "layer", "change"),
    "train": ("settings", "question", "choices", "answer", "explain"),
    "explain": ("view", "layer"),
}
COMMON_STEP_KEYS = ("kind", "hints")

QUANTITIES = ("output_shape", "params", "total_params", "receptive_field", "macs")
VIEWS = ("trace", "slide", "gradcam", "occlusion", "saliency", "filter_vis", "embedding")

# Comparisons a numeric condition takes (at least one of them).
COMPARISONS = ("equals", "at_most", "at_least")

# check -> (required arguments, optional arguments). Numeric checks take COMPARISONS too.
CHECKS = {
    "output_shape": (("layer", "equals"), ()),
    "params": (("layer",), COMPARISONS),
    "total_params": ((), COMPARISONS),
    "receptive_field": (("layer",), COMPARISONS),
    "macs": ((), ("layer", *COMPARISONS)),  # without a layer: the whole model's MACs
    "has_layer": (("class",), COMPARISONS),  # no comparison: at least 1
    "layer_count": ((), COMPARISONS),
    "setting": (("key",), COMPARISONS),
    "trained": ((), ()),
    "test_accuracy": ((), ("at_least", "at_most")),
    "no_error": ((), ()),
}
# Checks that need at least one comparison.
NEEDS_COMPARISON = ("params", "total_params", "receptive_field", "macs", "layer_count", "setting", "test_accuracy")
# Checks that depend on a training run, not on the model's structure.
RUN_CHECKS = ("trained", "test_accuracy")

# action -> (required arguments, optional arguments)
ACTIONS = {
    "set_config": (("layer", "config"), ()),
    "insert_after": (("layer", "class"), ("config",)),
    "remove": (("layer",), ()),
    "set_training": (("settings",), ()),
    "wrap_residual": (("first", "last"), ()),
    "set_input_shape": (("shape",), ()),
}

FRONT_MATTER_KEYS = ("title", "summary", "model", "teacher", "glossary")
REQUIRED_FRONT_MATTER = ("title", "summary", "model")

# A train step's settings: TrainingConfig's fields plus these.
EXTRA_TRAIN_SETTINGS = ("limit", "dataset")


class LessonError(ConfigError):
    """A lesson file that cannot be read; the message is one line, "FILE:LINE: problem"."""


@dataclass(frozen=True)
class Condition:
    """One condition of a do-step's goal: {check="params", layer="dense", at_most=1000}."""

    check: str
    args: dict = field(default_factory=dict)  # every other key, as written
    line: int = 0  # where it is written in the file (0: made in code)

    def to_dict(self) -> dict:
        return {"check": self.check, **self.args}


@dataclass(frozen=True)
class Action:
    """One edit of show_me / change: {action="remove", layer="dropout"}."""

    action: str
    args: dict = field(default_factory=dict)  # every other key, as written
    line: int = 0

    def to_dict(self) -> dict:
        return {"action": self.action, **self.args}


@dataclass(frozen=True)
class Step:
    """One step. Only the fields of its kind are used; `text` is Markdown shown to the student."""

    title: str
    kind: str
    text: str = ""
    hints: tuple[str, ...] = ()
    image: str | None = None  # read: a picture, relative to the lesson file
    goal: tuple[Condition, ...] = ()  # do: all must hold
    show_me: tuple[Action, ...] = ()  # do: performed by "Show me" as one undoable edit
    quantity: str | None = None  # predict
    layer: str | None = None  # predict (the layer after the change) / explain (optional)
    change: tuple[Action, ...] = ()  # predict: applied after the reveal
    settings: dict = field(default_factory=dict)  # train: TrainingConfig fields + limit (+ dataset)
    question: str = ""  # train
    choices: tuple[str, ...] = ()  # train
    answer: int | None = None  # train: index into choices
    explain: str = ""  # train: shown after answering
    view: str | None = None  # explain
    number: int = 0  # 1-based position in the lesson (0: not placed yet)
    line: int = 0  # the heading's line in the file

    @property
    def label(self) -> str:
        """How messages name the step: "step 3 'Count the weights'"."""
        return f"step {self.number} '{self.title}'" if self.number else f"step '{self.title}'"

    def to_dict(self) -> dict:
        """The step's TOML table (kind first, only the keys that say something)."""
        data: dict[str, Any] = {"kind": self.kind}
        if self.kind == "read" and self.image:
            data["image"] = self.image
        elif self.kind == "do":
            data["goal"] = [c.to_dict() for c in self.goal]
            if self.show_me:
                data["show_me"] = [a.to_dict() for a in self.show_me]
        elif self.kind == "predict":
            data["quantity"] = self.quantity
            if self.layer is not None:
                data["layer"] = self.layer
            if self.change:
                data["change"] = [a.to_dict() for a in self.change]
        elif self.kind == "train":
            data["settings"] = dict(self.settings)
            data["question"] = self.question
            data["choices"] = list(self.choices)
            data["answer"] = self.answer
            if self.explain:
                data["explain"] = self.explain
        elif self.kind == "explain":
            data["view"] = self.view
            if self.layer is not None:
                data["layer"] = self.layer
        if self.hints:
            data["hints"] = list(self.hints)
        return data


@dataclass(frozen=True)
class Lesson:
    """A whole lesson. `id` is the file stem (progress is kept per id)."""

    title: str
    summary: str
    model: str  # as written: a bundled preset's name or a path relative to the lesson file
    steps: tuple[Step, ...] = ()
    intro: str = ""  # Markdown before the first step
    teacher: dict | None = None  # the project "teacher" section's form
    glossary: tuple[str, ...] = ()  # terms the lesson introduces
    path: Path | None = None  # the file it was read from
    id: str = ""

    @property
    def folder(self) -> Path | None:
        return self.path.parent if self.path is not None else None

    @property
    def model_path(self) -> Path:
        """The starting model's file; FileNotFoundError naming what is missing."""
        return model_path(self.model, self.folder)

    def resolve(self, relative: str) -> Path:
        """A path written in the lesson (image, model), relative to the lesson file."""
        return (self.folder or Path.cwd()) / relative


def is_preset_reference(model: str) -> bool:
    """"seed_cnn" names a bundled preset; "models/x.json" or "x.json" is a file beside the lesson."""
    return "/" not in model and "\\" not in model and not model.lower().endswith(".json")


def model_path(model: str, folder: Path | None) -> Path:
    from ...resources import preset_path

    if is_preset_reference(model):
        return preset_path(model)
    path = (folder or Path.cwd()) / model
    if not path.is_file():
        raise FileNotFoundError(f"the model file {model!r} does not exist (looked for {path})")
    return path


__all__ = ["KINDS", "STEP_KEYS", "QUANTITIES", "VIEWS", "CHECKS", "ACTIONS", "COMPARISONS", "RUN_CHECKS",
           "LessonError", "Condition", "Action", "Step", "Lesson", "model_path", "is_preset_reference"]
