"""Whether torch is importable here. torch has no wheel for every interpreter the project
supports (none for Python 3.12 on this machine): tests that need it skip with ``NO_TORCH``."""

from __future__ import annotations

import importlib.util

HAS_TORCH = importlib.util.find_spec("torch") is not None
NO_TORCH = "torch is not installed (the 'torch' extra; no CPU wheel for this Python here)"
