"""Long-dialog experiment from Python: what optical memory saves, and what stays legible.

    python examples/long_dialog.py [LOCOMO_FILE] [OUT_DIR]

Without a file it runs on the demo's synthetic dialogue. Needs the ``ocr`` and ``demo`` extras.
"""

import sys
from pathlib import Path

from optical_memory.experiments import ExperimentSettings, run_experiment
from optical_memory.modes import Mode

if __name__ == "__main__":  # the OCR pool starts fresh processes that import this file
    data = sys.argv[1] if len(sys.argv) > 1 else "synthetic"
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "out/long-dialog")
    settings = ExperimentSettings(data=data, out=out, modes=(Mode.TINY, Mode.SMALL, Mode.BASE))
    result = run_experiment(settings)
    for mode, row in result.summary["per_mode"].items():
        ratio = row["mean_compression"]["deepseek-ocr"]
        accuracy, recall = row["mean_probe_accuracy"], row["evidence_recall"]
        print(
            f"{mode:>5}: {ratio:4.1f}x fewer tokens, "
            f"{accuracy:.1%} read back, {recall:.1%} recalled"
        )
    print(f"report: {out / 'report.md'}")
