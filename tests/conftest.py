"""Shared test setup: Qt runs offscreen, caches go to a temporary folder."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
