"""Long-dialog experiments: what optical memory saves and what it keeps (issue 8).

``run`` replays conversations into memory and measures every page at every mode; ``probe``
reads pages back with an OCR engine (cached); ``similarity`` decides whether a reading still
contains a turn; ``report`` summarizes, plots and writes ``report.md``; ``records`` holds the
numbers. ``optical_memory.density`` searches the densest legible rendering.
"""

from __future__ import annotations

from optical_memory.experiments.run import ExperimentResult, ExperimentSettings, run_experiment

__all__ = ["ExperimentResult", "ExperimentSettings", "run_experiment"]
