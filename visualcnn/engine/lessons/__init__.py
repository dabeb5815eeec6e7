"""Lessons: guided, self-checking exercises (the lesson file format, its checks and grading).

The file format is described in format.py; `load_lesson` reads a file, `lesson_problems`
lists everything wrong with one, `lesson_text` writes one.
"""

from .format import (ACTIONS, CHECKS, KINDS, QUANTITIES, VIEWS, Action, Condition, Lesson, LessonError, Step,
                     model_path)
from .bundled import bundled_lessons, lesson_dir
from .parser import Problem, load_lesson, parse_lesson

__all__ = ["ACTIONS", "CHECKS", "KINDS", "QUANTITIES", "VIEWS", "Action", "Condition", "Lesson", "LessonError",
           "Step", "Problem", "bundled_lessons", "lesson_dir", "load_lesson", "parse_lesson", "model_path"]
