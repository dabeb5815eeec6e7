"""Placeholder until the glossary lands (replaced in the next commit)."""


def install_glossary_tips(window) -> None:
    return None
