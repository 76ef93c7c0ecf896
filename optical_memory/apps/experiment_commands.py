"""The ``experiment`` and ``density`` subcommands of ``optical-memory`` (wired in by
:func:`optical_memory.apps.cli.build_parser`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from optical_memory.experiments.density import THRESHOLD, WORST_PAGE
from optical_memory.modes import Mode


def _modes(text: str) -> tuple[Mode, ...]:
    try:
        modes = tuple(Mode.parse(name) for name in text.replace(",", " ").split())
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if not modes:
        raise argparse.ArgumentTypeError("name at least one mode, e.g. tiny,base")
    return tuple(m for m in Mode if m in modes)  # faintest first, as reports list them


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(value) for value in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, not {text!r}"
        ) from None


def _samples(text: str) -> tuple[str, ...]:
    return tuple(text.replace(",", " ").split())


def _command_line(command: str, data_by_name: bool = False) -> str:
    """The command line as typed, written as ``optical-memory COMMAND ...`` (also when run as
    ``python -m optical_memory.experiments.density ...``); ``data_by_name``: the ``--data`` file
    by its name alone, for a record that travels without the folder it was read from."""
    arguments = sys.argv[1:]
    if arguments[:1] != [command]:
        arguments = [command, *arguments]
    if data_by_name:
        arguments = [
            Path(value).name if previous == "--data" else value
            for previous, value in zip(["", *arguments], arguments, strict=False)
        ]
        arguments = [
            f"--data={Path(value[7:]).name}" if value.startswith("--data=") else value
            for value in arguments
        ]
    return shlex.join(["optical-memory", *arguments])


def add_parsers(commands: Any) -> None:
    """Add ``experiment`` and ``density`` to the ``optical-memory`` subcommands."""
    modes_help = "modes, comma-separated (default: all: " + ",".join(m.value for m in Mode)
    experiment = commands.add_parser(
        "experiment",
        help="long-dialog experiment: tokens saved and text kept, per page and mode",
        description="Replay conversations into memory, read every page back at every mode with "
        "an OCR probe, and write results.json, plots and report.md to --out. OCR readings are "
        "cached, so a stopped run resumes where it was.",
    )
    experiment.add_argument(
        "--data", required=True, help="a LoCoMo-format JSON file, or 'synthetic'"
    )
    experiment.add_argument("--out", type=Path, required=True, help="folder for the report")
    experiment.add_argument(
        "--samples", type=_samples, help="LoCoMo sample ids, comma-separated (default: all)"
    )
    experiment.add_argument("--renderer", choices=["pil", "html"], default="pil")
    experiment.add_argument("--probe", choices=["tesseract", "rapidocr"], default="tesseract")
    experiment.add_argument(
        "--modes",
        type=_modes,
        default=tuple(Mode),
        help=modes_help + "; the default schedule's modes are always measured too)",
    )
    experiment.add_argument(
        "--limit", type=int, metavar="N", help="only the first N turns of each conversation"
    )
    experiment.add_argument("--workers", type=int, default=2, help="OCR processes (default 2)")
    experiment.add_argument(
        "--window",
        type=int,
        default=None,
        metavar="N",
        help="the keep-last-N baseline of the context plot (default 40)",
    )
    experiment.add_argument("--cache", type=Path, help="OCR cache folder (default: user cache)")
    experiment.add_argument("--quiet", action="store_true", help="no progress bar")
    experiment.add_argument(
        "--results",
        type=Path,
        metavar="FILE",
        help="also write the headline table here, for the docs (e.g. docs/results/locomo.md)",
    )
    experiment.set_defaults(run=experiment_command)

    density = commands.add_parser(
        "density",
        help="search the densest layout that stays legible on conversations it was not chosen on",
        description="Sweep the Pillow renderer's font size and line spacing over every "
        "conversation of --data, read sample pages with an OCR probe, choose the densest layout "
        f"every page of which TINY reads at >= {WORST_PAGE:.0%} (>= {THRESHOLD:.0%} on average, "
        "every mode), hold each conversation out in turn (choose on the others, measure on it) "
        "and write the result as JSON.",
    )
    density.add_argument("--data", required=True, help="a LoCoMo-format JSON file, or 'synthetic'")
    density.add_argument(
        "--samples", type=_samples, help="LoCoMo sample ids, comma-separated (default: all)"
    )
    density.add_argument(
        "--out", type=Path, help="result file (default: the package's data/density.json)"
    )
    density.add_argument("--probe", choices=["tesseract", "rapidocr"], default="tesseract")
    density.add_argument("--modes", type=_modes, default=tuple(Mode), help=modes_help + ")")
    density.add_argument("--font-sizes", type=_floats, help="font sizes to sweep (default 15-19)")
    density.add_argument(
        "--line-spacings", type=_floats, help="line spacings to sweep (default 1,1.1,1.25)"
    )
    density.add_argument("--pages", type=int, help="sample pages per conversation (default 2)")
    density.add_argument("--workers", type=int, default=2, help="OCR processes (default 2)")
    density.add_argument("--cache", type=Path, help="OCR cache folder (default: user cache)")
    density.add_argument("--quiet", action="store_true", help="no progress bar")
    density.set_defaults(run=density_command)


def experiment_command(args: argparse.Namespace) -> int:
    """``optical-memory experiment --data PATH|synthetic --out DIR [...]``."""
    from optical_memory.apps import CommandError
    from optical_memory.experiments.run import WINDOW_TURNS, ExperimentSettings, run_experiment

    # The options named like the settings' fields (data, out, samples, renderer, probe, ...).
    given = vars(args) | {
        "window_turns": args.window or WINDOW_TURNS,
        "progress": not args.quiet,
        "command": _command_line("experiment"),
    }
    settings = ExperimentSettings(**{f.name: given[f.name] for f in fields(ExperimentSettings)})
    try:
        result = run_experiment(settings)
    except ValueError as error:  # a sample the file lacks, a limit below 1, an empty file
        raise CommandError(str(error)) from error
    per_mode = result.summary["per_mode"]
    for mode, row in per_mode.items():
        print(
            f"{mode:>6}: {row['mean_compression']['deepseek-ocr']:5.1f}x (deepseek-ocr), "
            f"probe accuracy {100 * row['mean_probe_accuracy']:5.1f}%, evidence recall "
            + ("–" if row["evidence_recall"] is None else f"{100 * row['evidence_recall']:5.1f}%")
        )
    print(f"{result.timing['seconds']:.0f} s; report: {args.out / 'report.md'}")
    if args.results:
        from optical_memory.experiments.report import headline
        from optical_memory.experiments.results_file import write_results

        modes = result.settings["modes"]
        print(f"results: {write_results(args.results, headline(result.summary, modes))}")
    return 0


def density_command(args: argparse.Namespace) -> int:
    """``optical-memory density --data PATH|synthetic [--samples IDS] [--out FILE] [...]``."""
    from optical_memory.apps import CommandError
    from optical_memory.experiments import density

    options: dict[str, Any] = {}
    if args.font_sizes:
        options["font_sizes"] = args.font_sizes
    if args.line_spacings:
        options["line_spacings"] = args.line_spacings
    if args.pages:
        options["pages"] = args.pages
    try:
        result = density.run_density_search(
            args.data,
            samples=args.samples,
            out=args.out or density.DENSITY_FILE,
            probe_engine=args.probe,
            cache_dir=args.cache,
            modes=[m.value for m in args.modes],
            workers=args.workers,
            progress=not args.quiet,
            command=_command_line("density", data_by_name=True),
            **options,
        )
    except ValueError as error:
        raise CommandError(str(error)) from error
    faintest = result["rule"]["faintest_mode"]
    for fold in result["held_out"]:
        if fold["layout"] is None:
            print(f"{fold['held_out']:>8} held out: no layout meets the rule on the others")
            continue
        layout = fold["layout"]
        print(
            f"{fold['held_out']:>8} held out: font {layout['font_size']:g} spacing "
            f"{layout['line_spacing']:g} chosen on the others; there {faintest} reads "
            f"{100 * fold['accuracy'][faintest]:.1f}% (worst page {100 * fold['worst_page']:.1f}%)"
        )
    chosen = result["default"]
    print(f"default: font {chosen['font_size']:g} spacing {chosen['line_spacing']:g}")
    return 0
