"""The inspector: the selected block's arguments, its explanation and its worked derivation.

One editor per declared engine argument (layers.arguments.Arg), chosen by kind: spin
boxes for counts, a linked pair for kernel/stride/pool sizes, combos for padding and
activation. Binding is two-way in the napari style: an edit pushes a
SetLayerConfigCommand; the document's signals update the editors inside QSignalBlocker,
and only when the value differs, so nothing loops and a half-typed number is never
overwritten.
"""

from __future__ import annotations

import ast
from typing import Any

from PySide6.QtCore import QEvent, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QFont, QUndoStack
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit,
                               QSizePolicy, QSpinBox, QToolButton, QVBoxLayout, QWidget)

from ..engine.analysis import LayerReport, describe_field
from ..engine.layers import ACTIVATIONS, LAYER_CLASSES, Arg, ConfigError
from ..engine.layers.arguments import INITIALIZERS, normalise, to_json
from ..engine.shapes import format_shape
from .answer_mask import MASK_TIP, answer_mask, hidden_line, masked_derivation
from .commands import SetLayerConfigCommand
from .document import PipelineDocument
from .families import ERROR_COLOUR, family_colour, family_icon, family_title
from .glossary_tips import arg_terms, explained
from .pipeline_view import field_explanation

INT_LIMIT = 1_000_000


def default_value(arg: Arg) -> Any:
    """The Keras default in normal form (pairs as tuples), None if the argument has no default."""
    if arg.required or arg.default is None:
        return None
    return normalise(arg, arg.default, "default")


def default_text(arg: Arg) -> str:
    """How the inspector shows the Keras default next to an argument."""
    if arg.required:
        return "required"
    value = arg.default
    if value is None:
        return "default None" + (" (= pool_size)" if arg.name == "strides" else "")
    if isinstance(value, (tuple, list)):
        if any(isinstance(v, (tuple, list)) for v in value):
            return f"default {format_value(value)}"
        return f"default ({', '.join(str(v) for v in value)})"
    if isinstance(value, bool):
        return f"default {value}"
    if isinstance(value, str):
        return f"default '{value}'"
    return f"default {value:g}" if isinstance(value, float) else f"default {value}"


def config_with(config: dict, arg: Arg, value: Any) -> dict:
    """A copy of config with one argument set; a value equal to the Keras default is dropped."""
    new = dict(config)
    if not arg.required:
        try:
            same = (normalise(arg, value, "") if value is not None else None) == default_value(arg)
        except ConfigError:
            same = False
        if same:
            new.pop(arg.name, None)
            return new
    new[arg.name] = value
    return new


def _spin(minimum: float | None, maximum: float | None) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(int(minimum) if minimum is not None else -INT_LIMIT,
                  int(maximum) if maximum is not None else INT_LIMIT)
    # Room for three digits and the arrows: wider spin boxes pushed MaxPooling2D's strides
    # row (check box, two spins, link, default) past a projector-sized dock.
    spin.setMinimumWidth(spin.fontMetrics().horizontalAdvance("000") + 24)
    spin.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
    return spin


class ArgEditor(QWidget):
    """Base editor: shows a normal-form value, emits value_edited with an engine-acceptable one."""

    value_edited = Signal(object)

    def __init__(self, arg: Arg, parent=None):
        super().__init__(parent)
        self.arg = arg
        self.layout_ = QHBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setSpacing(4)

    def set_value(self, value: Any) -> None:
        raise NotImplementedError


class IntEditor(ArgEditor):
    def __init__(self, arg, parent=None, minimum=None, maximum=None):
        super().__init__(arg, parent)
        self.spin = _spin(arg.minimum if minimum is None else minimum, arg.maximum if maximum is None else maximum)
        self.spin.setAccessibleName(arg.name)
        self.spin.valueChanged.connect(lambda v: self.value_edited.emit(int(v)))
        self.layout_.addWidget(self.spin)
        self.layout_.addStretch(1)

    def set_value(self, value):
        if isinstance(value, int) and self.spin.value() != value:
            with QSignalBlocker(self.spin):
                self.spin.setValue(value)


class SeedEditor(IntEditor):
    """An integer or None, shown as 'None' at the bottom of the range."""

    def __init__(self, arg, parent=None):
        super().__init__(arg, parent, minimum=-1, maximum=2**31 - 1)
        self.spin.setSpecialValueText("None")
        self.spin.valueChanged.disconnect()
        self.spin.valueChanged.connect(lambda v: self.value_edited.emit(None if v < 0 else int(v)))

    def set_value(self, value):
        super().set_value(-1 if value is None else value)


class PairEditor(ArgEditor):
    """height x width, linked (square) by default so one edit sets both."""

    def __init__(self, arg, parent=None):
        super().__init__(arg, parent)
        self.height_spin = _spin(arg.minimum, arg.maximum)
        self.width_spin = _spin(arg.minimum, arg.maximum)
        self.height_spin.setAccessibleName(f"{arg.name} height")
        self.width_spin.setAccessibleName(f"{arg.name} width")
        self.link = QToolButton()
        self.link.setCheckable(True)
        self.link.setChecked(True)
        self.link.setText("=")
        self.link.setToolTip("Linked: height and width stay equal (click to set them separately)")
        self.layout_.addWidget(self.height_spin)
        self.layout_.addWidget(QLabel("×"))
        self.layout_.addWidget(self.width_spin)
        self.layout_.addWidget(self.link)
        self.layout_.addStretch(1)
        self.height_spin.valueChanged.connect(lambda v: self._on_spin_value_changed(0, v))
        self.width_spin.valueChanged.connect(lambda v: self._on_spin_value_changed(1, v))

    def _on_spin_value_changed(self, which: int, value: int):
        if self.link.isChecked():
            other = self.width_spin if which == 0 else self.height_spin
            with QSignalBlocker(other):
                other.setValue(value)
        self.value_edited.emit([self.height_spin.value(), self.width_spin.value()])

    def set_value(self, value):
        if isinstance(value, int):
            value = (value, value)
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            return
        for spin, v in zip((self.height_spin, self.width_spin), value):
            if isinstance(v, int) and spin.value() != v:
                with QSignalBlocker(spin):
                    spin.setValue(v)
        if value[0] != value[1]:
            self.link.setChecked(False)

    def set_enabled(self, enabled: bool):
        for w in (self.height_spin, self.width_spin, self.link):
            w.setEnabled(enabled)


class OptionalPairEditor(PairEditor):
    """None (e.g. pooling strides = pool_size) or a pair: a checkbox switches between them."""

    def __init__(self, arg, parent=None):
        super().__init__(arg, parent)
        self.enabled_box = QCheckBox("set")
        self.enabled_box.setToolTip("Unchecked: None (the Keras default)")
        self.layout_.insertWidget(0, self.enabled_box)
        self.enabled_box.toggled.connect(self._on_enabled_box_toggled)
        self.set_enabled(False)

    def _on_enabled_box_toggled(self, checked: bool):
        self.set_enabled(checked)
        self.value_edited.emit([self.height_spin.value(), self.width_spin.value()] if checked else None)

    def show_implied(self, pair):
        """What None means right now (the pool size), shown greyed out."""
        if not self.enabled_box.isChecked() and pair is not None:
            super().set_value(pair)

    def set_value(self, value):
        with QSignalBlocker(self.enabled_box):
            self.enabled_box.setChecked(value is not None)
        self.set_enabled(value is not None)
        if value is not None:
            super().set_value(value)

    def set_enabled(self, enabled: bool):
        super().set_enabled(enabled)


class ChoiceEditor(ArgEditor):
    def __init__(self, arg, choices, parent=None):
        super().__init__(arg, parent)
        self.combo = QComboBox()
        self.combo.addItems(list(choices))
        self.combo.setAccessibleName(arg.name)
        # Shrinkable to about 12 characters: a long choice (RandomFlip's
        # "horizontal_and_vertical") must not push the row past a projector-sized dock.
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(min(12, max((len(c) for c in choices), default=1)))
        self.combo.currentTextChanged.connect(self._on_combo_text_changed)
        self.layout_.addWidget(self.combo)
        self.layout_.addStretch(1)

    def _on_combo_text_changed(self, text):
        self.value_edited.emit(text)

    def set_value(self, value):
        text = value if isinstance(value, str) else ("linear" if value is None else None)
        if text is None:
            return
        if self.combo.findText(text) < 0:
            with QSignalBlocker(self.combo):
                self.combo.addItem(text)
        if self.combo.currentText() != text:
            with QSignalBlocker(self.combo):
                self.combo.setCurrentText(text)


class InitializerEditor(ChoiceEditor):
    CUSTOM = "custom (from file)"

    def __init__(self, arg, parent=None):
        super().__init__(arg, [snake for snake, _ in INITIALIZERS.values()], parent)
        self._custom = None

    def _on_combo_text_changed(self, text):
        self.value_edited.emit(self._custom if text == self.CUSTOM else text)

    def set_value(self, value):
        if isinstance(value, dict):
            self._custom = value
            value = self.CUSTOM
        super().set_value(value)


class BoolEditor(ArgEditor):
    def __init__(self, arg, parent=None):
        super().__init__(arg, parent)
        self.check = QCheckBox()
        self.check.setAccessibleName(arg.name)
        self.check.toggled.connect(lambda v: self.value_edited.emit(bool(v)))
        self.layout_.addWidget(self.check)
        self.layout_.addStretch(1)

    def set_value(self, value):
        if isinstance(value, bool) and self.check.isChecked() != value:
            with QSignalBlocker(self.check):
                self.check.setChecked(value)


class FloatEditor(ArgEditor):
    """A number typed as text, checked as you type; anything that parses goes to the engine."""

    def __init__(self, arg, parent=None):
        super().__init__(arg, parent)
        self.edit = QLineEdit()
        self.edit.setAccessibleName(arg.name)
        self.edit.setMaximumWidth(self.edit.fontMetrics().horizontalAdvance("0.000000") + 24)
        self.edit.textEdited.connect(self._on_edit_text_edited)
        self.hint = QLabel()
        self.hint.setStyleSheet(f"color: {ERROR_COLOUR};")
        self.layout_.addWidget(self.edit)
        self.layout_.addWidget(self.hint)
        self.layout_.addStretch(1)

    def _on_edit_text_edited(self, text):
        try:
            value = float(text)
        except ValueError:
            self.edit.setStyleSheet(f"border: 2px solid {ERROR_COLOUR};")
            self.hint.setText("type a number, e.g. 0.25")
            return
        self.edit.setStyleSheet("")
        self.hint.setText("")
        self.value_edited.emit(value)

    def set_value(self, value):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return
        try:
            current = float(self.edit.text())
        except ValueError:
            current = None
        if current != value:
            with QSignalBlocker(self.edit):
                self.edit.setText(f"{value:g}")
            self.edit.setStyleSheet("")
            self.hint.setText("")


def parse_text(text: str) -> Any:
    """What a student typed, as a Python value: 0.2, [-0.2, 0.3], (1, 2), 2, 3, None/null/empty.

    Literals only (ast.literal_eval), so typing never runs code; tuples become lists as in
    a JSON config. Raises ValueError for text that is not a literal.
    """
    text = text.strip()
    if text.lower() in ("", "none", "null"):
        return None
    value = ast.literal_eval(text)  # "3, 3" is a tuple; (1, 2) too
    return to_json(value)


def format_value(value: Any) -> str:
    """A normal-form value as the student would type it: 0.2, [-0.2, 0.3], [[1, 1], [2, 2]]."""
    if value is None:
        return "None"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def check_text(arg: Arg, text: str) -> tuple[Any, str]:
    """(normal-form value, "") for text the engine accepts, else (None, the one-line reason)."""
    try:
        value = parse_text(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None, f"cannot read {text.strip()!r}; type a number or a list such as [1, 2]"
    try:
        return normalise(arg, value, ""), ""
    except ConfigError as exc:
        # ": argument 'factor' expected ..." -> "expected ...": the row already names the argument
        message = str(exc)
        return None, message.split(f"argument '{arg.name}' ", 1)[-1]


class TextEditor(ArgEditor):
    """Any argument kind without a dedicated widget: a line edit whose text is parsed and
    checked by the engine's own normalise as you type (so a new kind, or a new layer, needs
    no inspector change); the engine's message shows in place while the text is not valid."""

    def __init__(self, arg, parent=None):
        super().__init__(arg, parent)
        self.edit = QLineEdit()
        self.edit.setAccessibleName(arg.name)
        self.edit.setPlaceholderText("None" if arg.default is None else "")  # empty text means None
        self.edit.textEdited.connect(self._on_edit_text_edited)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet(f"color: {ERROR_COLOUR};")
        self.hint.setVisible(False)
        column = QVBoxLayout()
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(self.edit)
        column.addWidget(self.hint)
        self.layout_.addLayout(column, 1)
        self.layout_.addStretch(0)

    @property
    def error(self) -> str:
        return self.hint.text()

    def _show_error(self, message: str) -> None:
        self.edit.setStyleSheet(f"border: 2px solid {ERROR_COLOUR};" if message else "")
        self.hint.setText(message)
        self.hint.setVisible(bool(message))

    def _on_edit_text_edited(self, text):
        _value, message = check_text(self.arg, text)
        self._show_error(message)
        if not message:
            self.value_edited.emit(parse_text(text))  # as typed (padding 1 stays 1 in the file)

    def set_value(self, value, as_written: Any = None):
        """Show a normal-form value; as_written (the config's own spelling, e.g. padding 1
        rather than [[1, 1], [1, 1]]) is shown instead when it means the same. Text that
        already means the value stays as typed."""
        current, message = check_text(self.arg, self.edit.text())
        if message or current != value or not self.edit.text().strip() and value is not None:
            text = format_value(value)
            if as_written is not None and check_text(self.arg, format_value(as_written)) == (value, ""):
                text = format_value(as_written)
            with QSignalBlocker(self.edit):
                self.edit.setText(text)
            self._show_error("")


def make_editor(arg: Arg) -> ArgEditor:
    """The widget for an argument, chosen by its kind alone (never by layer or argument name)."""
    kind = arg.kind
    if kind == "int":
        return IntEditor(arg)
    if kind == "axis":
        return IntEditor(arg, minimum=-4, maximum=3)
    if kind == "seed":
        return SeedEditor(arg)
    if kind == "pair":
        return PairEditor(arg)
    if kind == "optional_pair":
        return OptionalPairEditor(arg)
    if kind == "padding":
        return ChoiceEditor(arg, ("valid", "same"))
    if kind == "activation":
        return ChoiceEditor(arg, ACTIVATIONS)
    if kind == "initializer":
        return InitializerEditor(arg)
    if kind == "choice":
        return ChoiceEditor(arg, arg.choices)
    if kind == "bool":
        return BoolEditor(arg)
    if kind == "float":
        return FloatEditor(arg)
    return TextEditor(arg)  # factor, int_tuple, padding_2d, axis_list, optional_* and any new kind


def derivation_lines(report: LayerReport, image_shape=None, hidden: frozenset = frozenset()) -> list[str]:
    """The worked derivation a student reads: input, each formula with numbers, receptive field
    (and what it means when the block is not a sliding window, or the field outgrows the image).
    hidden: the quantities a lesson's predict step asks about this block (gui/answer_mask.py)."""
    lines = []
    if len(report.input_shapes) > 1:  # a merge: every input, not only the first
        lines += [f"input {k} = {'unknown' if shape is None else format_shape(shape)}"
                  for k, shape in enumerate(report.input_shapes, 1)]
    elif report.input_shape is not None:
        lines.append(f"input shape = {format_shape(report.input_shape)}")
    if report.inference is not None:
        lines += masked_derivation(report.inference.derivation, hidden)
        if "receptive_field" in hidden:
            lines.append(hidden_line("receptive field"))
        elif len(report.input_shape or ()) == 4 or report.inference.field.size != (1, 1):
            lines.append(describe_field(report.inference))
            explanation = field_explanation(report, image_shape)
            if explanation:
                lines.append(explanation)
    return lines


class InspectorWidget(QWidget):
    """Arguments, explanation and derivation of the block selected in the pipeline."""

    # Keep the most used arguments visible; initializers and the like go below a fold.
    ADVANCED_KINDS = ("initializer", "seed")

    def __init__(self, document: PipelineDocument, undo_stack: QUndoStack, parent=None):
        super().__init__(parent)
        self.setObjectName("inspector")
        self._document = document
        self._undo_stack = undo_stack
        self._mask = answer_mask(document)  # a lesson's predict step hides its answer here too
        self._mask.changed.connect(lambda: self._show_report(self._document.report) if self._row >= 0 else None)
        self._row = -1
        self._class_name: str | None = None
        self.editors: dict[str, ArgEditor] = {}

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(8)
        header = QHBoxLayout()
        self.badge = QLabel()
        header.addWidget(self.badge)
        self.title = QLabel()
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Every text wraps: "batch_normalization  BatchNormalization · Normalization" is
        # wider than the dock on a projector, and a label that cannot wrap is clipped.
        self.title.setWordWrap(True)
        header.addWidget(self.title, 1)
        layout.addLayout(header)

        self.explanation = QLabel()
        self.explanation.setWordWrap(True)
        self.explanation.setStyleSheet("font-style: italic;")
        layout.addWidget(self.explanation)

        self.form_host = QWidget()
        self.form = QFormLayout(self.form_host)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        # A long argument name (moving_variance_initializer) goes above its editor when the
        # dock is narrow instead of pushing the editor out of sight.
        self.form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        layout.addWidget(self.form_host)

        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setObjectName("inspectorError")
        self.error_label.setStyleSheet(f"color: {ERROR_COLOUR}; font-weight: bold; background: #fdecea;"
                                       "border-radius: 6px; padding: 6px;")
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.error_label)

        self.derivation_title = QLabel("<b>How the shape and parameters are computed</b>")
        self.derivation_title.setWordWrap(True)
        layout.addWidget(self.derivation_title)
        self.derivation = QLabel()
        self.derivation.setObjectName("derivation")
        self.derivation.setWordWrap(True)
        self.derivation.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.derivation.setFont(mono)
        self.derivation.setFrameShape(QFrame.Shape.StyledPanel)
        self.derivation.setStyleSheet("QLabel#derivation { background: palette(alternate-base); padding: 6px; }")
        layout.addWidget(self.derivation)
        layout.addStretch(1)

        self.placeholder = QLabel("Select a block in the pipeline to see and edit its settings.")
        self.placeholder.setWordWrap(True)
        layout.insertWidget(0, self.placeholder)

        document.report_updated.connect(self._on_document_report_updated)
        document.layer_changed.connect(self._on_document_layer_changed)
        self._fit_to_font()
        self.set_row(-1)

    def _fit_to_font(self) -> None:
        """The title 1.3x the text and the badge 2.2 lines: both follow View ▸ Zoom."""
        title_font = QFont(self.font())
        title_font.setPointSizeF(title_font.pointSizeF() * 1.3)
        title_font.setBold(True)
        self.title.setFont(title_font)
        if self._class_name is not None:
            size = int(self.fontMetrics().height() * 2.2)
            self.badge.setPixmap(family_icon(LAYER_CLASSES[self._class_name].family).pixmap(size, size))

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit_to_font()

    @property
    def row(self) -> int:
        return self._row

    def set_row(self, row: int) -> None:
        self._row = row if 0 <= row < len(self._document) else -1
        self._rebuild()

    # --- building ----------------------------------------------------------------

    def _rebuild(self):
        while self.form.rowCount():
            self.form.removeRow(0)
        self.editors = {}
        has_row = self._row >= 0
        for w in (self.badge, self.title, self.explanation, self.form_host, self.derivation_title, self.derivation):
            w.setVisible(has_row)
        self.placeholder.setVisible(not has_row)
        if not has_row:
            self._class_name = None
            self.error_label.setVisible(False)
            return
        entry = self._document.entry(self._row)
        self._class_name = entry.class_name
        cls = LAYER_CLASSES[entry.class_name]
        size = int(self.fontMetrics().height() * 2.2)
        self.badge.setPixmap(family_icon(cls.family).pixmap(size, size))
        self.explanation.setText(cls.explanation)
        ordered = [a for a in cls.ARGS if a.kind not in self.ADVANCED_KINDS] + \
                  [a for a in cls.ARGS if a.kind in self.ADVANCED_KINDS]
        if not ordered:
            none = QLabel("This layer has no settings.")
            none.setWordWrap(True)
            self.form.addRow(none)
        for arg in ordered:
            editor = make_editor(arg)
            editor.setToolTip(explained(arg.doc, *arg_terms(arg)))  # the glossary's words for it too
            editor.value_edited.connect(lambda value, a=arg: self._on_editor_value_edited(a, value))
            # A zero-width space after each "_" lets "'horizontal_and_vertical'" wrap in a narrow dock.
            hint = QLabel(default_text(arg).replace("_", "_\u200b"))
            hint.setWordWrap(True)
            hint.setStyleSheet("color: palette(placeholder-text);")
            hint.setToolTip(f"Keras's default for {arg.name}")
            editor.layout_.insertWidget(editor.layout_.count() - 1, hint)
            label = QLabel(arg.name)
            label.setToolTip(editor.toolTip())
            self.form.addRow(label, editor)
            self.editors[arg.name] = editor
        self._load_values()
        self._show_report(self._document.report)

    def _load_values(self):
        entry = self._document.entry(self._row)
        cls = LAYER_CLASSES[entry.class_name]
        for arg in cls.ARGS:
            editor = self.editors.get(arg.name)
            if editor is None:
                continue
            written = entry.config.get(arg.name, None if arg.required else arg.default)
            value = entry.config.get(arg.name, default_value(arg))
            try:
                value = normalise(arg, value, "") if value is not None else None
            except ConfigError:
                pass  # an invalid value stays as typed; the block shows the engine's message
            if isinstance(editor, TextEditor):
                editor.set_value(value, written)
            else:
                editor.set_value(value)
        strides = self.editors.get("strides")
        if isinstance(strides, OptionalPairEditor) and "pool_size" in self.editors:
            pool = entry.config.get("pool_size", (2, 2))
            strides.show_implied(pool if isinstance(pool, (list, tuple)) else (pool, pool))

    def _show_report(self, report):
        if self._row < 0 or self._row >= len(report.rows):
            return
        row = report.rows[self._row]
        family = row.layer.family
        self.title.setText(f"{row.name}  <span style='font-weight: normal; color: {family_colour(family).name()}'>"
                           f"{row.layer.class_name} · {family_title(family)}</span>")
        if row.status == "error":
            self.error_label.setText(row.error)
        elif row.status == "unknown":
            self.error_label.setText("The shape coming into this block is unknown until the red block above "
                                     "is fixed.")
        self.error_label.setVisible(row.status != "ok")
        hidden = self._mask.quantities(row.name)
        lines = derivation_lines(row, report.input_shape, hidden)
        self.derivation.setText("\n".join(lines) if lines else "—")
        self.derivation.setToolTip(MASK_TIP if hidden else "")

    # --- binding -----------------------------------------------------------------

    def _on_editor_value_edited(self, arg: Arg, value):
        if self._row < 0:
            return
        entry = self._document.entry(self._row)
        new_config = config_with(entry.config, arg, value)
        if new_config != entry.config:
            self._undo_stack.push(SetLayerConfigCommand(self._document, self._row, new_config, key=arg.name))

    def _on_document_layer_changed(self, index: int):
        if index == self._row:
            self._load_values()

    def _on_document_report_updated(self, report):
        # After an insert/remove/move/reset the selected row may hold another block.
        if self._row >= len(self._document):
            self.set_row(-1)
            return
        if self._row >= 0 and self._document.entry(self._row).class_name != self._class_name:
            self._rebuild()
            return
        if self._row >= 0:
            self._load_values()
            self._show_report(report)
