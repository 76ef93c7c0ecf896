"""Long-dialog experiments: what optical memory saves and what it keeps.

``run`` replays conversations into memory and measures every page at every mode; ``probe``
reads pages back with an OCR engine (``ocr``, cached); ``similarity`` decides whether a reading
still contains a turn; ``records`` holds what a run measures; ``summary`` computes the numbers,
``plots`` draws them and ``report`` writes ``report.md``; ``density`` searches the densest
legible rendering. Datasets: ``locomo`` (LoCoMo conversations) and ``synthetic`` (generated
dialogues with planted facts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optical_memory.extras import lazy_exports

if TYPE_CHECKING:
    from optical_memory.experiments.run import ExperimentResult, ExperimentSettings, run_experiment

__all__ = ["ExperimentResult", "ExperimentSettings", "run_experiment"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "optical_memory.experiments.run"))
