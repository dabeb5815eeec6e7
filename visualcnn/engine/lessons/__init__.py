"""Lessons: guided, self-checking exercises (the lesson file format, its checks and grading)."""
