"""Each student's progress through the lessons, kept in their own QSettings (per user, per
machine, as the window's layout and recent files are): the step they are on and the steps
they completed, per lesson id (the lesson file's stem, e.g. "03_pooling").

    lessons/<id>/step   the index of the step shown when the lesson is next opened
    lessons/<id>/done   the completed step indices, "0,1,3" (text: the same in .ini and registry)
"""

from __future__ import annotations

from PySide6.QtCore import QSettings


class LessonProgress:
    def __init__(self, settings: QSettings):
        self._settings = settings

    def _key(self, lesson_id: str, field: str) -> str:
        return f"lessons/{lesson_id}/{field}"

    def step(self, lesson_id: str) -> int:
        try:
            return max(0, int(self._settings.value(self._key(lesson_id, "step"), 0)))
        except (TypeError, ValueError):  # a hand-edited settings file: start at the beginning
            return 0

    def set_step(self, lesson_id: str, index: int) -> None:
        self._settings.setValue(self._key(lesson_id, "step"), int(index))

    def done(self, lesson_id: str) -> set[int]:
        text = self._settings.value(self._key(lesson_id, "done"), "")
        if isinstance(text, (list, tuple)):  # QSettings may split a comma-separated value itself
            parts = [str(part) for part in text]
        else:
            parts = str(text or "").split(",")
        return {int(part) for part in parts if part.strip().isdigit()}

    def mark_done(self, lesson_id: str, index: int) -> bool:
        """Record step `index` as completed; True when it was not before."""
        done = self.done(lesson_id)
        if index in done:
            return False
        done.add(int(index))
        self._settings.setValue(self._key(lesson_id, "done"), ",".join(str(i) for i in sorted(done)))
        return True

    def finished(self, lesson_id: str, step_count: int) -> bool:
        """Every step completed."""
        return step_count > 0 and set(range(step_count)) <= self.done(lesson_id)

    def reset(self, lesson_id: str) -> None:
        self._settings.remove(f"lessons/{lesson_id}")

    def sync(self) -> None:
        self._settings.sync()


__all__ = ["LessonProgress"]
