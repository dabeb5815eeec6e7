"""`visualcnn lesson check / list / answers`, run as a user would: a real subprocess."""

import subprocess
import sys
from pathlib import Path

FILES = Path(__file__).parent / "engine" / "lesson_files"


def run(*args):
    return subprocess.run([sys.executable, "-m", "visualcnn", "lesson", *args], capture_output=True, text=True,
                          timeout=120)


def test_check_a_good_lesson_says_ok_and_exits_0():
    result = run("check", str(FILES / "good_lesson.md"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"{FILES / 'good_lesson.md'}: ok: 6 steps\n"
    assert result.stderr == ""


def test_check_a_broken_lesson_prints_one_line_per_problem_and_exits_2():
    broken = FILES / "broken_lesson.md"
    result = run("check", str(FILES / "good_lesson.md"), str(broken))
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert lines[0] == f"{FILES / 'good_lesson.md'}: ok: 6 steps"
    problems = lines[1:]
    assert len(problems) == 17  # tests/engine/test_lessons_check.py lists them one by one
    assert all(line.startswith(f"{broken}:") for line in problems)
    assert f"{broken}:20: step 2 'Unknown kind': unknown kind 'watch'; a step's kind is one of read, do, predict, " \
           "train, explain" in problems
    assert "Traceback" not in result.stderr


def test_check_a_missing_file_is_one_line(tmp_path):
    result = run("check", str(tmp_path / "nope.md"))
    assert result.returncode == 2
    assert result.stdout == f"{tmp_path / 'nope.md'}: no such file\n"


def test_answers_print_the_engines_numbers():
    result = run("answers", str(FILES / "good_lesson.md"))
    assert result.returncode == 0, result.stderr
    assert "2. [predict] Predict the jump: conv2d outputs 13x13x32" in result.stdout
    assert "out_h = floor((28 - 1*(3-1) - 1) / 2) + 1 = 13" in result.stdout
    assert "after Show me: ✔ total parameters 23,882 (goal: at most 30,000)" in result.stdout
    assert "4. [predict] Count the normalisation's parameters: batch_normalization has 256 parameters" in result.stdout


def test_list_and_no_action():
    listed = run("list")
    assert listed.returncode == 0 and listed.stderr == ""
    from visualcnn.engine.lessons import bundled_lessons

    assert len(listed.stdout.splitlines()) == max(1, len(bundled_lessons()))
    bare = run()
    assert bare.returncode == 2 and bare.stderr.startswith("error: the following arguments are required: ACTION")
