"""`visualcnn lesson check [FILE...]`, `visualcnn lesson list`, `visualcnn lesson answers FILE`.

check: every problem of each lesson file, one line each ("FILE:LINE: step N 'Title': problem"),
exit 2 when any; "FILE: ok: N steps" for a good one. Without FILE, the bundled lessons.
answers: what the engine computes for each step (predict answers with their derivation, each
goal before and after Show me), for authors who quote numbers in a lesson's text.
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="lesson_action", metavar="ACTION")
    actions.required = True
    check = actions.add_parser("check", help="check lesson files; one line per problem",
                               description="Check lesson files (default: the bundled lessons); prints one line "
                                           "per problem and exits with 2 when there is any.")
    check.add_argument("files", metavar="FILE", nargs="*", help="a lesson file (.md)")
    actions.add_parser("list", help="list the bundled lessons", description="List the bundled lessons in order.")
    answers = actions.add_parser("answers", help="print what the engine computes for each step of a lesson",
                                 description="Print each predict step's answer with the engine's derivation and "
                                             "each do-step's goal before and after Show me.")
    answers.add_argument("files", metavar="FILE", nargs="+", help="a lesson file (.md)")


def run(args) -> int:
    return {"check": _check, "list": _list, "answers": _answers}[args.lesson_action](args)


def _check(args) -> int:
    from ..engine.lessons import bundled_lessons, load_lesson
    from ..engine.lessons.check import lesson_problems

    files = args.files or [str(p) for p in bundled_lessons()]
    if not files:
        raise ValueError("no lesson files given and no bundled lessons found; give a lesson file (.md)")
    failed = False
    for file in files:
        problems = lesson_problems(file)
        if problems:
            failed = True
            for line in problems:
                print(line)
        else:
            print(f"{file}: ok: {len(load_lesson(file).steps)} steps")
    return 2 if failed else 0


def _list(args) -> int:  # noqa: ARG001 - every action takes args
    from ..engine.lessons import LessonError, bundled_lessons, load_lesson

    paths = bundled_lessons()
    if not paths:
        print("no bundled lessons found")
        return 0
    for path in paths:
        try:
            lesson = load_lesson(path)
        except LessonError as exc:
            print(f"{path.stem}: cannot be read: {exc}")
            continue
        print(f"{lesson.id}: {lesson.title} ({len(lesson.steps)} steps): {lesson.summary}")
    return 0


def _answers(args) -> int:
    from ..engine.lessons import ActionError, ModelState, apply_actions, evaluate_goal, load_lesson, true_answer
    from ..engine.lessons.simulate import merged_training
    from ..engine.training_config import TrainingConfig

    for file in args.files:
        lesson = load_lesson(file)
        state = ModelState.from_file(lesson.model_path)
        print(f"{file}: {lesson.title} (model {lesson.model})")
        for step in lesson.steps:
            head = f"  {step.number}. [{step.kind}] {step.title}"
            try:
                if step.kind == "predict":
                    answer = true_answer(step, state)
                    print(f"{head}: {answer.sentence}")
                    for line in answer.derivation:
                        print(f"       {line}")
                    state = apply_actions(state, step.change)
                elif step.kind == "do":
                    print(head)
                    for line in evaluate_goal(step, state).lines:
                        print(f"       before: {line}")
                    if step.show_me:
                        state = apply_actions(state, step.show_me)
                        for line in evaluate_goal(step, state).lines:
                            print(f"       after Show me: {line}")
                elif step.kind == "train":
                    fields = {k: v for k, v in step.settings.items() if k in TrainingConfig.__dataclass_fields__}
                    state = ModelState(state.input_shape, state.entries, merged_training(state.training, fields),
                                       state.input_name, state.name)
                    print(f"{head}: answer {step.answer} = {step.choices[step.answer]!r}"
                          if step.answer is not None and 0 <= step.answer < len(step.choices) else head)
                else:
                    print(head)
            except ActionError as exc:
                print(f"{head}: cannot be computed: {exc}")
        report = state.report()
        print(f"  at the end: {len(report.rows)} layers, {report.total_params:,} parameters"
              + (f", error: {report.error}" if report.error else ""))
    return 0
