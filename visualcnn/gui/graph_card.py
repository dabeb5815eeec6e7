"""One layer card: what it says (plain strings) and how it is painted.

block_texts() is everything a card shows, from the engine's LayerReport (type and key
settings, output shape, parameter count, receptive field, memory at the batch size, or the
engine's error); CardPainter paints it, for the builder's graph view and anything else that
shows a card. The same painter draws a card in a plain column and in a graph's column.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QPen

from ..engine.analysis import LayerReport
from ..engine.memory import LayerMemory, format_bytes
from ..engine.shapes import format_shape
from .answer_mask import MASK, hidden_line, masked_derivation
from .families import ERROR_COLOUR, UNKNOWN_COLOUR, family_colour, paint_family_badge
from .glossary_tips import explained, layer_terms

def _image_size(image_shape) -> tuple[int, int] | None:
    """(height, width) of the pipeline's input when it is an image, else None."""
    shape = tuple(image_shape or ())
    return (int(shape[0]), int(shape[1])) if len(shape) >= 2 else None


def short_count(n: int) -> str:
    """A count in three digits for a card: 640, 21.6K, 195K, 2.23M."""
    for unit in ("", "K", "M", "G"):
        if n < 999.5:
            return f"{n:.3g}{unit}" if unit else f"{n:.0f}"
        n /= 1000
    return f"{n:.3g}T"


def _pair(size) -> str:
    return f"{size[0]:g}x{size[1]:g}"


def _flat(report: LayerReport) -> bool:
    """True for a block whose output is a vector (Flatten, Dense, global pooling...)."""
    return report.output_shape is not None and len(report.output_shape) == 2


def field_text(report: LayerReport, image_shape=None) -> str:
    """'receptive field 5x5' for a block, as short as possible; a vector block says how
    much of the image it sees, and a field larger than the image says so."""
    if report.inference is None:
        return ""
    size = report.inference.field.size
    image = _image_size(image_shape)
    if image is not None and (size[0] > image[0] or size[1] > image[1]):
        return f"receptive field {_pair(size)}, past the {image[0]}x{image[1]} image's border"
    if image is not None and _flat(report):
        if size[0] >= image[0] and size[1] >= image[1]:
            return "sees the whole image"
        return f"sees {_pair(size)} of the {image[0]}x{image[1]} image"
    return f"receptive field {_pair(size)}" + ("" if size[0] == size[1] else " (h x w)")


def field_explanation(report: LayerReport, image_shape=None) -> str:
    """What the receptive field shown on a card means for this block, in a sentence or two
    ('' when the plain 'each output sees NxN input pixels' says it all)."""
    if report.inference is None or report.output_shape is None:
        return ""
    size = report.inference.field.size
    image = _image_size(image_shape)
    parts = []
    flat = _flat(report)
    name = report.layer.class_name
    if flat and report.input_shape is not None and len(report.input_shape) == 4:
        parts.append(f"{name} has no sliding window: each of its outputs is computed from every position of its "
                     f"{format_shape(report.input_shape)} input at once, so it depends on the whole "
                     f"{_pair(size)} area that the layers before it cover together.")
    elif flat and report.params > 0 and name == "Dense":
        parts.append(f"Dense connects every input to every unit, so each unit depends on everything the layers "
                     f"before it see: a {_pair(size)} area of the image.")
    elif flat:
        parts.append(f"{name} works value by value, so each output sees what its input saw: a {_pair(size)} area "
                     "of the image.")
    if image is not None and (size[0] > image[0] or size[1] > image[1]):
        parts.append(f"The field ({_pair(size)}) is larger than the {image[0]}x{image[1]} input image: the "
                     "windows reach past the border into the padding (zeros), so a value can depend on the whole "
                     "image, and how much of it lies inside depends on where the value sits.")
    elif image is not None and flat and (size[0] >= image[0] and size[1] >= image[1]):
        parts.append("That is the whole image.")
    elif image is not None and flat:
        parts.append(f"That is {_pair(size)} of the {image[0]}x{image[1]} image: the remaining border pixels are "
                     "never seen (a stride or pooling that does not divide the size evenly drops them).")
    return " ".join(parts)


def memory_texts(memory: LayerMemory | None, batch_size: int | None = None) -> tuple[str, str]:
    """(activation text next to the output shape, weight text next to the parameters)."""
    if memory is None:
        return "", ""
    activation = format_bytes(memory.activation_bytes) if memory.activation_bytes else ""
    weights = format_bytes(memory.weight_bytes) if memory.weight_bytes else ""
    return activation, weights


def block_texts(report: LayerReport, image_shape=None, memory: LayerMemory | None = None,
                hidden: frozenset = frozenset()) -> dict:
    """Everything a card shows, as plain strings (also used by tests and accessibility).

    hidden: the quantities a lesson's predict step asks about this block right now
    (gui/answer_mask.py): shown as "?" until the student has answered."""
    layer = report.layer
    activation_mem, weight_mem = memory_texts(memory)
    if report.status == "ok":
        shape = format_shape(report.output_shape)
        params = f"{report.params:,} params"
        if report.params != report.trainable_params:
            params += f" ({report.params - report.trainable_params:,} non-trainable)"
        if weight_mem:
            params += f" · {weight_mem}"
        note, error = field_text(report, image_shape), ""
    elif report.status == "error":
        shape, params, note, error = "cannot compute", "", "", report.error
        activation_mem = ""
    else:
        shape, params, note, error = "?", "", "shape unknown until the red block above is fixed", ""
        activation_mem = ""
    # multiply-adds per image (issue 13): beside the params when the card has room, in full in the tooltip
    macs = f"{short_count(report.macs)} MACs" if report.status == "ok" and report.macs else ""
    if report.status == "ok" and hidden:
        if "output_shape" in hidden:
            shape, activation_mem = MASK, ""  # the output's bytes multiply the shape out
        if "params" in hidden:
            params = f"{MASK} params"
        if "receptive_field" in hidden:
            note = f"receptive field {MASK}"
        if "macs" in hidden:
            macs = f"{MASK} MACs"
    return {"title": report.name, "class_name": layer.class_name, "settings": layer.describe(),
            "shape": shape, "params": params, "note": note, "error": error, "activation_memory": activation_mem,
            "macs": macs}


def measured_line(forward_ms: float, backward_ms: float, batch_size: int, backward_in: str = "",
                  forward_in: str = "") -> str:
    """The last run's measured time of a block (issue 13), e.g. 'measured after the last run:
    forward 1.08 ms, backward 2.82 ms per batch of 64'. backward_in / forward_in: the block
    whose pass also did this one's (a max pool right after a first conv), said so, since a
    bare 0 ms would read as a pool that costs nothing."""
    line = (f"measured after the last run: forward {forward_ms:.3g} ms, backward {backward_ms:.3g} ms "
            f"per batch of {batch_size}")
    # on its own line: the tooltip keeps the width of its other lines
    if backward_in and forward_in == backward_in:
        line += f"\n(its forward and backward run inside {backward_in}'s, in one pass each)"
    elif backward_in or forward_in:
        passes = [f"its {what} runs inside {name}'s" for what, name in (("forward", forward_in),
                                                                        ("backward", backward_in)) if name]
        line += f"\n({'; '.join(passes)}, in one pass)"
    return line


def block_tooltip(report: LayerReport, image_shape=None, memory: LayerMemory | None = None,
                  batch_size: int | None = None, measured: tuple | None = None,
                  hidden: frozenset = frozenset()) -> str:
    """The card's tooltip: the derivation, what the receptive field means, the memory.

    measured: (forward ms, backward ms, batch size[, block whose backward did this one's]) of
    this block in the last run, if any.
    hidden: as block_texts (their lines become "... = ?")."""
    if report.inference is None:
        return report.error or "shape unknown until the red block above is fixed"
    lines = list(report.inference.derivation)
    lines += [f"{report.inference.macs_line} per image", f"{report.inference.activation_line} per image"]
    lines = masked_derivation(lines, hidden)
    if measured is not None:
        lines.append(measured_line(*measured))
    explanation = field_explanation(report, image_shape)
    if "receptive_field" in hidden:
        explanation = hidden_line("receptive field")
    if explanation:
        lines += ["", explanation]
    if memory is not None and batch_size and not hidden & {"output_shape", "params"}:
        lines += ["", f"Memory at batch {batch_size} (float32): weights {format_bytes(memory.weight_bytes)}, "
                      f"output {format_bytes(memory.activation_bytes)}"]
    return explained("\n".join(lines), *layer_terms(report))  # the card's words, from the glossary

class CardPainter:
    """Paints one layer card.

    [stripe] n [badge]  name  Type ..................... (None, 26, 26, 32)
                        32 filters, 3x3, relu · receptive field 3x3   320 params
                        (the engine's error, wrapped, in red, when the block is impossible)

    Sizes follow the font it is given (View > Zoom changes the widget's font).
    """

    MARGIN = 4      # around the card, in logical pixels
    PADDING = 8     # inside the card

    def __init__(self, font: QFont, palette: QPalette):
        self._font = QFont(font)
        self._palette = QPalette(palette)

    def fonts(self) -> tuple[QFont, QFont, QFont, QFont]:
        base = QFont(self._font)
        title = QFont(base)
        title.setBold(True)
        title.setPointSizeF(base.pointSizeF() * 1.1)
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSizeF(base.pointSizeF() * 1.05)
        mono.setBold(True)
        small = QFont(base)
        small.setPointSizeF(base.pointSizeF() * 0.95)
        return base, title, mono, small

    def _geometry(self) -> tuple[int, int, int]:
        """(badge size, number column width, text left offset from the card's left)."""
        base, title, _, small = self.fonts()
        badge = QFontMetrics(title).height() + QFontMetrics(base).height() - 4
        number = QFontMetrics(small).horizontalAdvance("00")
        return badge, number, 10 + number + 6 + badge + self.PADDING

    def _text_left(self, width: float) -> int:
        """Where the text lines start, from the card's left."""
        return 12 if self.narrow(width) else self._geometry()[2]

    def _error_height(self, width: float, text: str) -> int:
        small = self.fonts()[3]
        available = max(60, int(width) - 2 * self.MARGIN - self._text_left(width) - self.PADDING)
        return QFontMetrics(small).boundingRect(QRect(0, 0, available, 10000),
                                                int(Qt.TextFlag.TextWordWrap), text).height()

    def compact(self, width: float) -> bool:
        """A card too narrow for name, type and shape on one line (a graph's side-by-side
        columns) puts the shape on a line of its own."""
        return width < 40 * QFontMetrics(self._font).horizontalAdvance("m")

    def roomy(self, text_width: float) -> bool:
        """Lines wide enough for the multiply-adds beside the params on every card (decided by
        width alone, so either every card shows them or none does; the tooltip always has them)."""
        return text_width >= 56 * QFontMetrics(self._font).horizontalAdvance("m")

    def narrow(self, width: float) -> bool:
        """A card narrower still (four branches side by side) drops the row number, shrinks the
        badge to one line and shows the shape without the batch dimension."""
        return width < 24 * QFontMetrics(self._font).horizontalAdvance("m")

    def height(self, report: LayerReport | None, width: float) -> int:
        """The height of a card's cell (margins included) at this width."""
        base, title, _, _ = self.fonts()
        height = 2 * self.PADDING + self.MARGIN + QFontMetrics(title).height() + QFontMetrics(base).height()
        if self.compact(width):
            height += QFontMetrics(base).height()
        if report is not None and report.status == "error":
            height += 4 + self._error_height(width, report.error or "")
        return height

    def paint(self, painter: QPainter, rect: QRectF, report: LayerReport, texts: dict, number: int,
              selected: bool = False, outline: QColor | None = None) -> None:
        """Paint the card of `report` in `rect` (the card's whole cell, margins included).

        outline: a colour to ring the card with (a valid target while connecting)."""
        small = self.fonts()[3]
        palette = self._palette
        card = QRectF(rect).adjusted(self.MARGIN, self.MARGIN / 2, -self.MARGIN, -self.MARGIN / 2)
        family = report.layer.family
        error = report.status == "error"
        unknown = report.status == "unknown"
        colour = QColor(ERROR_COLOUR) if error else family_colour(family)
        muted = palette.color(QPalette.ColorRole.PlaceholderText)

        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        background = QColor("#fdecea") if error else QColor(palette.color(QPalette.ColorRole.Base))
        if selected and not error:
            background = QColor(palette.color(QPalette.ColorRole.Highlight))
            background.setAlpha(28)
            background = _over(background, palette.color(QPalette.ColorRole.Base))
        border = QColor(ERROR_COLOUR) if error else (palette.color(QPalette.ColorRole.Highlight) if selected
                                                     else QColor(family_colour(family)).lighter(160))
        painter.setPen(QPen(border, 2.5 if (selected or error) else 1.2))
        painter.setBrush(background)
        painter.drawRoundedRect(card, 7, 7)
        if outline is not None:
            painter.setPen(QPen(outline, 3, Qt.PenStyle.DashLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(card.adjusted(-1.5, -1.5, 1.5, 1.5), 8, 8)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawRoundedRect(QRectF(card.left() + 2, card.top() + 2, 6, card.height() - 4), 3, 3)

        top = card.top() + self.PADDING
        right = card.right() - self.PADDING
        y = top
        if self.narrow(rect.width()):
            badge = QFontMetrics(self.fonts()[1]).height()
            paint_family_badge(painter, family, QRectF(card.left() + 12, top, badge, badge), colour if error else None)
            text_left = card.left() + self._text_left(rect.width())
            y = self._paint_narrow_lines(painter, report, texts, text_left, text_left + badge + 6, right, y, error,
                                         unknown)
        else:
            badge, number_w, _ = self._geometry()
            painter.setFont(small)
            painter.setPen(muted)
            painter.drawText(QRectF(card.left() + 10, top, number_w, badge),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, str(number))
            paint_family_badge(painter, family, QRectF(card.left() + 10 + number_w + 6, top, badge, badge),
                               colour if error else None)
            text_left = card.left() + self._text_left(rect.width())
            if self.compact(rect.width()):
                y = self._paint_compact_lines(painter, texts, text_left, right, y, error, unknown)
            else:
                y = self._paint_lines(painter, texts, text_left, right, y, error, unknown)  # today's two lines

        # the engine's own words when the block is impossible
        if error:
            painter.setFont(small)
            painter.setPen(QColor(ERROR_COLOUR))
            painter.drawText(QRectF(text_left, y, right - text_left, card.bottom() - y),
                             int(Qt.TextFlag.TextWordWrap) | int(Qt.AlignmentFlag.AlignTop), texts["error"])
        painter.restore()

    def _paint_title(self, painter: QPainter, texts: dict, left: float, y: float, space: float,
                     height: float) -> None:
        """The title line's text: the block's name, then its class in the muted colour, both
        elided to `space` (the full and compact cards; the narrow one shows the name only)."""
        base, title_font, _, _ = self.fonts()
        fm_title, fm_base = QFontMetrics(title_font), QFontMetrics(base)
        painter.setFont(title_font)
        painter.setPen(self._palette.color(QPalette.ColorRole.Text))
        name = fm_title.elidedText(texts["title"], Qt.TextElideMode.ElideRight, int(space))
        painter.drawText(QRectF(left, y, space, height), Qt.AlignmentFlag.AlignVCenter, name)
        name_w = fm_title.horizontalAdvance(name + "  ")
        if name_w < space:
            painter.setFont(base)
            painter.setPen(self._palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(QRectF(left + name_w, y, space - name_w, height), Qt.AlignmentFlag.AlignVCenter,
                             fm_base.elidedText(texts["class_name"], Qt.TextElideMode.ElideRight,
                                                int(space - name_w)))

    def _paint_lines(self, painter: QPainter, texts: dict, text_left: float, right: float, y: float, error: bool,
                     unknown: bool) -> float:
        base, title_font, mono, small = self.fonts()
        fm_title, fm_base, fm_mono = QFontMetrics(title_font), QFontMetrics(base), QFontMetrics(mono)
        text_colour = self._palette.color(QPalette.ColorRole.Text)
        muted = self._palette.color(QPalette.ColorRole.PlaceholderText)

        # line 1: name  Type ........ output shape
        title_h = fm_title.height()
        painter.setFont(mono)
        painter.setPen(QColor(ERROR_COLOUR) if error else (QColor(UNKNOWN_COLOUR) if unknown else text_colour))
        shape_w = fm_mono.horizontalAdvance(texts["shape"])
        painter.drawText(QRectF(right - shape_w, y, shape_w, title_h),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, texts["shape"])
        activation = texts.get("activation_memory", "")
        fm_small = QFontMetrics(small)
        if activation and right - shape_w - text_left > fm_small.horizontalAdvance(activation) + 120:
            # the batch's output, in bytes, beside the shape it comes from
            act_w = fm_small.horizontalAdvance(activation)
            painter.setFont(small)
            painter.setPen(muted)
            painter.drawText(QRectF(right - shape_w - 10 - act_w, y, act_w, title_h),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, activation)
            shape_w += 10 + act_w
        self._paint_title(painter, texts, text_left, y, right - shape_w - 12 - text_left, title_h)
        y += title_h

        # line 2: settings · receptive field (or why unknown) ........ params
        line_h = fm_base.height()
        painter.setFont(base)
        params_w = fm_base.horizontalAdvance(texts["params"])
        painter.setPen(text_colour)
        painter.drawText(QRectF(right - params_w, y, params_w, line_h),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, texts["params"])
        macs = texts.get("macs", "")
        if macs and self.roomy(right - text_left):
            # the multiply-adds per image, muted, before the params (as the bytes beside the shape)
            macs_w = fm_small.horizontalAdvance(macs)
            painter.setFont(small)
            painter.setPen(muted)
            painter.drawText(QRectF(right - params_w - 10 - macs_w, y, macs_w, line_h),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, macs)
            params_w += 10 + macs_w
            painter.setFont(base)
        space = right - params_w - 12 - text_left
        settings = fm_base.elidedText(texts["settings"], Qt.TextElideMode.ElideRight, int(space))
        painter.setPen(muted if unknown else text_colour)
        painter.drawText(QRectF(text_left, y, space, line_h), Qt.AlignmentFlag.AlignVCenter, settings)
        used = fm_base.horizontalAdvance(settings) if settings else 0
        if texts["note"] and used < space:
            note = ("  ·  " if settings else "") + texts["note"]
            painter.setPen(muted)
            painter.drawText(QRectF(text_left + used, y, space - used, line_h), Qt.AlignmentFlag.AlignVCenter,
                             fm_base.elidedText(note, Qt.TextElideMode.ElideRight, int(space - used)))
        return y + line_h + 4

    def _paint_narrow_lines(self, painter: QPainter, report: LayerReport, texts: dict, text_left: float,
                            name_left: float, right: float, y: float, error: bool, unknown: bool) -> float:
        """[badge] name / (26, 26, 32) / params · settings, each line elided to the card."""
        base, title_font, mono, _ = self.fonts()
        fm_title, fm_base = QFontMetrics(title_font), QFontMetrics(base)
        text_colour = self._palette.color(QPalette.ColorRole.Text)
        muted = self._palette.color(QPalette.ColorRole.PlaceholderText)
        space = right - text_left
        title_h, line_h = fm_title.height(), fm_base.height()
        painter.setFont(title_font)
        painter.setPen(text_colour)
        painter.drawText(QRectF(name_left, y, right - name_left, title_h), Qt.AlignmentFlag.AlignVCenter,
                         fm_title.elidedText(texts["title"], Qt.TextElideMode.ElideRight, int(right - name_left)))
        y += title_h

        shape = texts["shape"]
        if report.status == "ok" and report.output_shape is not None and shape != MASK:
            dims = [str(d) for d in report.output_shape[1:]]
            shape = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"  # the batch is in the tooltip
        mono = QFont(mono)
        mono.setPointSizeF(base.pointSizeF())
        painter.setFont(mono)
        painter.setPen(QColor(ERROR_COLOUR) if error else (QColor(UNKNOWN_COLOUR) if unknown else text_colour))
        painter.drawText(QRectF(text_left, y, space, line_h), Qt.AlignmentFlag.AlignVCenter,
                         QFontMetrics(mono).elidedText(shape, Qt.TextElideMode.ElideRight, int(space)))
        y += line_h

        params = texts["params"].split(" · ")[0]
        rest = " · ".join(t for t in (texts["settings"], texts["note"]) if t)
        painter.setFont(base)
        painter.setPen(text_colour)
        params = fm_base.elidedText(params, Qt.TextElideMode.ElideRight, int(space))
        painter.drawText(QRectF(text_left, y, space, line_h), Qt.AlignmentFlag.AlignVCenter, params)
        used = fm_base.horizontalAdvance(params + " · ") if params else 0
        if rest and used < space:
            painter.setPen(muted)
            painter.drawText(QRectF(text_left + used, y, space - used, line_h), Qt.AlignmentFlag.AlignVCenter,
                             fm_base.elidedText(rest, Qt.TextElideMode.ElideRight, int(space - used)))
        return y + line_h + 4

    def _paint_compact_lines(self, painter: QPainter, texts: dict, text_left: float, right: float, y: float,
                             error: bool, unknown: bool) -> float:
        """name  Type / output shape / params · settings · receptive field"""
        base, title_font, mono, _ = self.fonts()
        fm_title, fm_base, fm_mono = QFontMetrics(title_font), QFontMetrics(base), QFontMetrics(mono)
        text_colour = self._palette.color(QPalette.ColorRole.Text)
        muted = self._palette.color(QPalette.ColorRole.PlaceholderText)
        space = right - text_left
        title_h, line_h = fm_title.height(), fm_base.height()

        self._paint_title(painter, texts, text_left, y, space, title_h)
        y += title_h

        painter.setFont(mono)
        painter.setPen(QColor(ERROR_COLOUR) if error else (QColor(UNKNOWN_COLOUR) if unknown else text_colour))
        painter.drawText(QRectF(text_left, y, space, line_h), Qt.AlignmentFlag.AlignVCenter,
                         fm_mono.elidedText(texts["shape"], Qt.TextElideMode.ElideRight, int(space)))
        y += line_h

        # params first (the weights' bytes stay in the tooltip when they do not fit), then the settings
        params = texts["params"]
        rest = " · ".join(t for t in (texts["settings"], texts["note"]) if t)
        if params and fm_base.horizontalAdvance(f"{params} · {rest}") > space:
            params = params.split(" · ")[0]
        painter.setFont(base)
        painter.setPen(text_colour)
        params = fm_base.elidedText(params, Qt.TextElideMode.ElideRight, int(space))
        painter.drawText(QRectF(text_left, y, space, line_h), Qt.AlignmentFlag.AlignVCenter, params)
        used = fm_base.horizontalAdvance(params + " · ") if params else 0
        if rest and used < space:
            painter.setPen(muted)
            painter.drawText(QRectF(text_left + used, y, space - used, line_h), Qt.AlignmentFlag.AlignVCenter,
                             fm_base.elidedText(rest, Qt.TextElideMode.ElideRight, int(space - used)))
        return y + line_h + 4


def _over(top: QColor, bottom: QColor) -> QColor:
    """top (with alpha) composited over an opaque bottom colour."""
    a = top.alphaF()
    return QColor.fromRgbF(top.redF() * a + bottom.redF() * (1 - a), top.greenF() * a + bottom.greenF() * (1 - a),
                           top.blueF() * a + bottom.blueF() * (1 - a))

__all__ = ["CardPainter", "block_texts", "block_tooltip", "field_text", "field_explanation", "measured_line",
           "memory_texts"]
