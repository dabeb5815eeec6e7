"""Predict-then-reveal: the true answer from the engine, and the grading of what a student typed.

The answer is never written in the lesson: `true_answer` applies the step's change to the
model as it stands and reads the quantity from the engine's analysis, with the layer's own
derivation lines ("params = 3*3*1*32 + 32 = 320"). The reader of typed answers is
forgiving about form ("13x13x32", "(None, 13, 13, 32)", "13, 13, 32", "1,234", "1 234",
"3*3*1*32 + 32", "5x5" or "5") and strict about value: right means exactly the engine's
number. Input it cannot read is not a wrong answer: it says how to write one.
"""

from __future__ import annotations

import ast
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from ..analysis import describe_field
from .format import Action, Step
from .goals import find_row, shape_text
from .simulate import ActionError, apply_actions, state_of

FORMS = {
    "output_shape": "write it like 13x13x32 (height x width x channels) or (None, 13, 13, 32)",
    "params": "write a whole number like 18,496 (or the sum, like 3*3*32*64 + 64)",
    "total_params": "write a whole number like 121,930 (or the sum, like 320 + 18,496)",
    "receptive_field": "write it like 5x5 (or just 5 for a square)",
    "macs": "write a whole number like 194,688 (or the product, like 26*26*32 * 3*3*1)",
}
MAX_ANSWER_CHARS = 200
# Words around the numbers ("None", "pixels", "trainable parameters", "about") are dropped; "x" and
# "by" between numbers are kept (they separate a shape's sizes or multiply).
_WORDS = re.compile(r"\b(?!x\b|by\b)[a-z][a-z'’-]*\b")
_THOUSANDS = re.compile(r"(?<=\d)[,  _'’](?=\d{3}(?!\d))")


class AnswerFormatError(ValueError):
    """Typed text that is not an answer of the asked form (the message says how to write one)."""


@dataclass(frozen=True)
class Answer:
    """The engine's answer to a predict step, on the model after the step's change."""

    quantity: str
    layer: str | None
    value: Any  # output_shape: (None, h, w, c); receptive_field: (h, w); the others: int
    text: str  # "13x13x32", "18,496", "8x8"
    derivation: tuple[str, ...]
    before: Any = None  # the value before the change (None when there is no change or no such layer)

    @property
    def sentence(self) -> str:
        """The answer in words: "conv2d outputs 13x13x32"."""
        return {"output_shape": f"{self.layer} outputs {self.text}",
                "params": f"{self.layer} has {self.text} parameters",
                "total_params": f"the model has {self.text} parameters in all",
                "receptive_field": f"each value of {self.layer} sees {self.text} input pixels",
                "macs": f"{self.layer} does {self.text} multiply-adds (MACs) per image",
                }[self.quantity]


@dataclass(frozen=True)
class Grade:
    """understood: the typed text was an answer of the right form (else feedback says how to write
    one, and correct is False without it being a wrong answer)."""

    correct: bool
    understood: bool
    feedback: str  # one line
    derivation: tuple[str, ...]  # the engine's working, to show with the reveal
    answer: Answer | None


def true_answer(step: Step, model: Any) -> Answer:
    """The answer to a predict step on `model` (the document, a ModelState or an engine model)
    as it stands before the step: its change is applied first. ActionError for a change that
    cannot be made or a layer that does not exist after it."""
    state = state_of(model)
    changed = apply_actions(state, step.change)
    value, text, derivation = _quantity(step.quantity, step.layer, changed.report())
    before = None
    if step.change:
        try:
            before = _quantity(step.quantity, step.layer, state.report())[0]
        except ActionError:
            pass
    return Answer(step.quantity, step.layer, value, text, derivation, before)


def _quantity(quantity: str, layer: str | None, report) -> tuple[Any, str, tuple[str, ...]]:
    if quantity == "total_params":
        if report.error:
            raise ActionError(f"the model has an error, so it has no parameter count: {report.error}")
        lines = tuple(f"{row.name}: {line}" for row in report.rows if row.params
                      for line in _param_lines(row.inference.derivation))
        total = report.total_params
        lines += (f"total = {_sum_text([row.params for row in report.rows if row.params])} = {total:,}",)
        return total, f"{total:,}", lines
    row, problem = find_row(report, layer)
    if row is None:
        raise ActionError(problem)
    inference = row.inference
    if quantity == "output_shape":
        return tuple(row.output_shape), shape_text(row.output_shape), tuple(inference.derivation)
    if quantity == "params":
        return row.params, f"{row.params:,}", _param_lines(inference.derivation) or tuple(inference.derivation)
    if quantity == "macs":
        return row.macs, f"{row.macs:,}", (inference.macs_line,)
    if quantity == "receptive_field":
        size = tuple(inference.field.size)
        return size, f"{size[0]}x{size[1]}", _field_chain(report, row.index)
    raise ActionError(f"unknown quantity {quantity!r}")


def _sum_text(counts: list[int]) -> str:
    """'160 + 16*2,320 + 170': a run of three or more equal counts written once, times its length."""
    parts, i = [], 0
    while i < len(counts):
        j = i
        while j < len(counts) and counts[j] == counts[i]:
            j += 1
        parts.append(f"{j - i}*{counts[i]:,}" if j - i >= 3 else " + ".join([f"{counts[i]:,}"] * (j - i)))
        i = j
    return " + ".join(parts) or "0"


def _param_lines(derivation) -> tuple[str, ...]:
    return tuple(line for line in derivation if line.startswith("params"))


def _field_chain(report, index: int) -> tuple[str, ...]:
    """How the receptive field grows from the input to row `index`, one line per layer (the
    engine's fields, following each layer's first input)."""
    chain = []
    while index >= 0:
        row = report.rows[index]
        chain.append(row)
        index = row.inbound[0] if row.inbound else -1
    return tuple(f"{row.name}: {describe_field(row.inference)}" for row in reversed(chain))


# --- reading what the student typed ----------------------------------------------------------


def parse_answer(quantity: str, typed: str) -> Any:
    """The value in the typed text, in the form of the quantity's answer; AnswerFormatError
    (its message says how to write one) for text that is not one."""
    if not isinstance(typed, str) or not typed.strip():
        raise AnswerFormatError(f"type your prediction first: {FORMS[quantity]}")
    if len(typed) > MAX_ANSWER_CHARS:
        raise AnswerFormatError(f"that is too long for an answer: {FORMS[quantity]}")
    text = typed.strip().lower()
    if "=" in text:  # "3*3*1*32 + 32 = 320": the result is what was predicted
        text = text.rsplit("=", 1)[1]
    text = text.strip().rstrip(".!").strip()  # "13x13x32." is still the answer
    # other scripts' digits (full-width １３) as ASCII; ×, ✕, ·, ⋅ as x; the minus sign as -
    text = "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text)
    text = re.sub("[×✕⨯·⋅]", "x", text).replace("−", "-")
    if quantity == "output_shape":
        return _shape(text, quantity)
    if quantity == "receptive_field":
        dims = _shape(text, quantity)
        if len(dims) == 1:
            return dims[0], dims[0]
        if len(dims) == 2:
            return dims
        raise AnswerFormatError(f"a receptive field has a height and a width: {FORMS[quantity]}")
    return _count(text, quantity)


def _shape(text: str, quantity: str) -> tuple[int, ...]:
    text = _WORDS.sub(" ", text)
    text = re.sub(r"\bby\b", "x", text)
    stripped = text.strip().strip("()[]{} ").strip()
    if re.fullmatch(r"\d{1,3}(,\d{3})+", stripped):  # "1,600": one number with a thousands comma
        return (int(stripped.replace(",", "")),)
    tokens = [t for t in re.split(r"[x*,;\s()\[\]{}]+", stripped) if t]
    if not tokens or not all(t.isdecimal() for t in tokens):
        raise AnswerFormatError(f"that does not read as a {'shape' if quantity == 'output_shape' else 'size'}: "
                                f"{FORMS[quantity]}")
    dims = tuple(int(t) for t in tokens)
    if any(d == 0 for d in dims):
        raise AnswerFormatError(f"a size of 0 is never a {'shape' if quantity == 'output_shape' else 'size'}: "
                                f"{FORMS[quantity]}")
    return dims


def _count(text: str, quantity: str) -> int:
    if re.search(r"\d\s*(k|m|b|thousand|million|billion)\b", text):
        raise AnswerFormatError(f"give the exact whole number, not a rounded one: {FORMS[quantity]}")
    text = _WORDS.sub(" ", text).strip()
    text = _THOUSANDS.sub("", text)
    text = re.sub(r"(?<=[\d)\s])x(?=[\d(\s])", "*", text)  # 3x3x32 as a product
    text = text.strip()
    if re.search(r"\d[.,]\d", text):
        raise AnswerFormatError(f"give the exact whole number, not a rounded one: {FORMS[quantity]}")
    if not re.fullmatch(r"[\d\s+*()\-]+", text) or not re.search(r"\d", text):
        raise AnswerFormatError(f"that does not read as a number: {FORMS[quantity]}")
    try:
        value = _arithmetic(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, RecursionError):
        raise AnswerFormatError(f"that does not read as a number: {FORMS[quantity]}") from None
    if value < 0:
        raise AnswerFormatError(f"a count is never negative: {FORMS[quantity]}")
    return value


def _arithmetic(node) -> int:
    """Whole-number + - * only (a student may type the sum instead of its result)."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
        left, right = _arithmetic(node.left), _arithmetic(node.right)
        if isinstance(node.op, ast.Mult) and abs(left) * abs(right) > 10 ** 18:
            raise ValueError("too large")
        return left + right if isinstance(node.op, ast.Add) else left - right if isinstance(node.op, ast.Sub) \
            else left * right
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_arithmetic(node.operand)
    raise ValueError("not arithmetic")


# --- grading ---------------------------------------------------------------------------------------


def grade(step: Step, model: Any, typed: str) -> Grade:
    """Grade a typed prediction against the engine's answer (on `model` before the change).

    Feedback is one line: ✔ with the answer; ✘ without it (the student may try again), naming the
    mistake when it is a known one (biases left out, the shape before the change, the batch axis).
    The answer and the engine's derivation are in grade.answer / grade.derivation for the reveal."""
    answer = true_answer(step, model)
    try:
        value = parse_answer(step.quantity, typed)
    except AnswerFormatError as exc:
        return Grade(False, False, str(exc)[0].upper() + str(exc)[1:] + ".", (), answer)
    expected = answer.value[1:] if step.quantity == "output_shape" else answer.value
    correct = value == expected
    if correct:
        return Grade(True, True, f"✔ Right: {answer.sentence}.", answer.derivation, answer)
    # The answer itself is not in the feedback: the student may try again, and the panel reveals it
    # (answer.sentence, answer.derivation) on a right answer or when asked.
    wrote = _written(step.quantity, value)
    hint = _hint(step, model, answer, value)
    return Grade(False, True, f"✘ Not quite: you wrote {wrote}." + (f" {hint}" if hint else ""),
                 answer.derivation, answer)


def _written(quantity: str, value) -> str:
    if quantity in ("output_shape", "receptive_field"):
        return "x".join(str(d) for d in value)
    return f"{value:,}"


def _size_hint(step: Step, model: Any, value: tuple) -> str:
    """Height and width as the layer would give them with the other padding, or without its
    stride: the engine's own analysis of that variant, compared with what was typed."""
    changed = apply_actions(state_of(model), step.change)
    entry = changed.entries[changed.row_named(step.layer)]
    config = entry.config
    variants = []
    padding = config.get("padding", "valid")
    if padding in ("valid", "same") and "padding" in _arg_names(entry.class_name):
        other = "same" if padding == "valid" else "valid"
        variants.append(({"padding": other}, f"That would be the size with '{other}' padding; "
                                             f"this layer uses '{padding}'."))
    strides = config.get("strides")
    if strides not in (None, 1, [1, 1], (1, 1)) and "strides" in _arg_names(entry.class_name):
        variants.append(({"strides": 1}, "That would be the size with stride 1: look at the stride again."))
    for changes, hint in variants:
        try:
            variant = apply_actions(changed, (Action("set_config", {"layer": step.layer, "config": changes}),))
            row, _ = find_row(variant.report(), step.layer)
        except ActionError:
            continue
        if row is not None and tuple(row.output_shape[1:]) == tuple(value):
            return hint
    return ""


def _arg_names(class_name: str) -> tuple[str, ...]:
    from ..layers import LAYER_CLASSES

    cls = LAYER_CLASSES.get(class_name)
    return tuple(a.name for a in getattr(cls, "ARGS", ()))


def _hint(step: Step, model: Any, answer: Answer, value) -> str:
    """A known mistake, named; '' when it is none of them."""
    quantity = step.quantity
    before = answer.before
    if quantity == "output_shape":
        before = before[1:] if before is not None else None
        want = answer.value[1:]
        if before is not None and value == before:
            return "That is the shape before the change."
        if len(value) == len(want) + 1 and value[1:] == want:
            return "Leave out the batch size: Keras writes it as None."
        if len(value) != len(want):
            return f"The output has {len(want)} number{'s' if len(want) != 1 else ''} besides the batch axis."
        if len(want) == 3 and value[:2] == want[:2]:
            return "The height and width are right; check the channels."
        if len(want) == 3 and value[2] == want[2]:
            return _size_hint(step, model, value) or "The channels are right; work out the height and width again."
        return ""
    if before is not None and value == before:
        return "That is the value before the change."
    if quantity == "params":
        row, _ = find_row(apply_actions(state_of(model), step.change).report(), step.layer)
        weights = row.inference.weights
        without_bias = sum(w.size for w in weights if w.name != "bias")
        if any(w.name == "bias" for w in weights) and value == without_bias:
            return "You left out the biases: one per output channel (or unit)."
        if row.trainable_params != row.params and value == row.trainable_params:
            return "That counts only the trainable ones; Keras's count includes the non-trainable ones too."
    if quantity == "total_params":
        report = apply_actions(state_of(model), step.change).report()
        if report.trainable_params != report.total_params and value == report.trainable_params:
            return "That counts only the trainable parameters; the total includes the non-trainable ones."
    if quantity == "receptive_field" and answer.value[0] != answer.value[1] and value == answer.value[::-1]:
        return "Height first, then width."
    return ""


__all__ = ["Answer", "Grade", "AnswerFormatError", "true_answer", "grade", "parse_answer", "FORMS"]
