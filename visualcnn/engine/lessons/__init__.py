"""Lessons: guided, self-checking exercises (the lesson file format, its checks and grading).

The file format is described in format.py; `load_lesson` reads a file, `lesson_problems`
lists everything wrong with one, `lesson_text` writes one.
"""

from .format import (ACTIONS, CHECKS, KINDS, QUANTITIES, VIEWS, Action, Condition, Lesson, LessonError, Step,
                     model_path)
from .bundled import bundled_lessons, lesson_dir
from .check import lesson_problems
from .goals import ConditionStatus, GoalStatus, RunFacts, evaluate_goal
from .parser import Problem, load_lesson, parse_lesson
from .predict import Answer, AnswerFormatError, Grade, grade, parse_answer, true_answer
from .writer import lesson_text
from .simulate import ActionError, Entry, ModelState, apply_action, apply_actions, merged_config, merged_training, state_of

__all__ = ["ACTIONS", "CHECKS", "KINDS", "QUANTITIES", "VIEWS", "Action", "Condition", "Lesson", "LessonError",
           "Step", "Problem", "bundled_lessons", "lesson_dir", "load_lesson", "parse_lesson", "model_path",
           "ConditionStatus", "GoalStatus", "RunFacts", "evaluate_goal", "Answer", "AnswerFormatError", "Grade", "grade",
           "parse_answer", "true_answer", "ActionError", "Entry", "ModelState", "apply_action", "apply_actions",
           "merged_config", "merged_training", "state_of", "lesson_problems", "lesson_text"]
