"""Density search: the densest page rendering that each mode still reads at ≥ 97%.

The Pillow renderer lays text out once on the 1024-px reference page and draws that layout at
every mode, so a page's text is fixed when it is packed and only its pixels shrink as it fades.
"Per mode" therefore means: for each mode, the densest layout (most text tokens per page) whose
pages the probe still reads at :data:`THRESHOLD` or better at that mode. One layout serves all
modes, and the faintest mode memory uses sets the limit: the default schedule ends every long
conversation at TINY, so the renderer's default is the densest layout that TINY (and with it
every sharper mode) keeps legible. The sharper modes' own limits are recorded too: they say how
much denser pages could be for a memory that never fades that far.

For each line spacing and mode the search bisects the font sizes (legibility falls as the font
shrinks), the pixel probe of :mod:`optical_memory.experiments.probe` reading a few full pages of a
real conversation at each point. The result is ``optical_memory/renderers/data/density.json``;
:func:`optical_memory.renderers.layout.chosen_density` reads it: the Pillow renderer's defaults.

Run it with ``optical-memory density --data PATH|synthetic``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optical_memory.renderers.layout import DENSITY_FILE, FALLBACK, Density

#: Probe character accuracy a page must keep at a mode.
THRESHOLD = 0.97
FONT_SIZES: tuple[float, ...] = (22, 20, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8)
LINE_SPACINGS: tuple[float, ...] = (1.0, 1.1, 1.25)
#: Full pages of the sample conversation read per setting and mode.
PAGES_PER_SETTING = 2


# --- the search --------------------------------------------------------------------------------


@dataclass
class _Setting:
    density: Density
    pieces: list[tuple[tuple[str, str], ...]]  # per sample page: (role, content) pieces
    texts: list[str]  # per sample page: its exact text
    text_tokens: list[int]
    accuracy: dict[str, list[float]]
    settings_key: str = ""


def _sample_pages(turns: Sequence[Any], density: Density, pages: int) -> _Setting:
    """``pages`` full pages, evenly spread over the conversation, as the memory packs them:
    each page's pieces drawn alone (a piece continuing a turn gets its plain role label)."""
    from optical_memory.renderers.pil import PillowRenderer
    from optical_memory.tokens import count_text_tokens
    from optical_memory.turns import Turn, turn_text

    renderer = PillowRenderer(font_size=density.font_size, line_spacing=density.line_spacing)
    layout = renderer.paginate(turns)
    full = max(1, len(layout) - 1)  # the last page is usually not full
    chosen = sorted({min(full - 1, int((i + 0.5) * full / pages)) for i in range(pages)})
    setting = _Setting(density, [], [], [], {}, renderer.settings_key)
    for index in chosen:
        pieces = [
            Turn(role=turns[s.turn].role, content=turns[s.turn].content[s.start : s.end])
            for s in layout[index]
        ]
        alone = renderer.paginate(pieces)[0]  # drawn alone, the pieces must still fit
        pieces = [
            Turn(role=pieces[s.turn].role, content=pieces[s.turn].content[s.start : s.end])
            for s in alone
        ]
        text = "\n".join(turn_text(p.role, p.content) for p in pieces)
        setting.pieces.append(tuple((p.role, p.content) for p in pieces))
        setting.texts.append(text)
        setting.text_tokens.append(count_text_tokens(text))
    return setting


def search(
    turns: Sequence[Any],
    *,
    modes: Sequence[str] = ("tiny", "small", "base", "large", "gundam"),
    font_sizes: Sequence[float] = FONT_SIZES,
    line_spacings: Sequence[float] = LINE_SPACINGS,
    pages: int = PAGES_PER_SETTING,
    probe: Any = None,
    workers: int = 2,
    progress: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """Search the grid and return the result document (see the module docstring).

    For each (mode, line spacing) a bisection over the font sizes finds the smallest size whose
    sample pages read at :data:`THRESHOLD` (legibility falls as the font shrinks); the sweeps
    run side by side, one probe batch per step. Then the densest setting the faintest mode
    passes is checked at every other mode, and the densest one that every mode passes becomes
    the default.
    """
    from optical_memory.experiments.probe import PageJob, Probe, RendererSpec, read_pages
    from optical_memory.experiments.similarity import page_accuracy
    from optical_memory.modes import Mode
    from optical_memory.renderers.page import page_size

    probe = probe or Probe()
    sizes = sorted(set(font_sizes), reverse=True)
    settings: dict[Density, _Setting] = {}

    def measure(batch: Sequence[tuple[str, Density]]) -> None:
        """Probe accuracy of each (mode, density) not measured yet, in one pool run."""
        todo = []
        for mode, density in batch:
            if density not in settings:
                settings[density] = _sample_pages(turns, density, pages)
            if mode not in settings[density].accuracy and (mode, density) not in todo:
                todo.append((mode, density))
        jobs: list[PageJob] = []
        for mode, density in todo:
            setting = settings[density]
            spec = RendererSpec(
                "pil", (("font_size", density.font_size), ("line_spacing", density.line_spacing))
            )
            width, height = page_size(Mode.parse(mode))
            for pieces in setting.pieces:
                digest = hashlib.sha256(json.dumps(pieces).encode()).hexdigest()
                jobs.append(
                    PageJob(
                        f"density|{digest}|{width}x{height}|{setting.settings_key}",
                        renderer=spec,
                        pieces=pieces,
                        mode=Mode.parse(mode),
                    )
                )
        readings = read_pages(jobs, probe, workers=workers, progress=progress)
        cursor = 0
        for mode, density in todo:
            setting = settings[density]
            accuracies = []
            for text in setting.texts:
                accuracies.append(page_accuracy(text, readings[jobs[cursor].key]))
                cursor += 1
            setting.accuracy[mode] = accuracies

    def passes(mode: str, density: Density) -> bool:
        accuracies = settings[density].accuracy[mode]
        return sum(accuracies) / len(accuracies) >= THRESHOLD

    # Bisection per (mode, spacing): sizes[low] passes (or low = -1), sizes[high] fails.
    bounds: dict[tuple[str, float], tuple[int, int]] = {
        (m, s): (-1, len(sizes)) for m in modes for s in line_spacings
    }
    first = True
    while True:
        probes = {}
        for (mode, spacing), (low, high) in bounds.items():
            if first:
                probes[(mode, spacing)] = 0  # the sparsest size first: is any size legible?
            elif low >= 0 and high - low > 1:
                probes[(mode, spacing)] = (low + high) // 2
        if not probes:
            break
        batch = [(m, Density(sizes[i], s)) for (m, s), i in probes.items()]
        measure(batch)
        for (mode, spacing), index in probes.items():
            low, high = bounds[(mode, spacing)]
            if passes(mode, Density(sizes[index], spacing)):
                bounds[(mode, spacing)] = (index, high)
            else:
                bounds[(mode, spacing)] = (low, index)
        first = False

    # The default: the densest setting the faintest mode passes that every mode passes too.
    faintest = min(modes, key=lambda m: Mode.parse(m).size)
    candidates = sorted(
        (
            Density(sizes[low], spacing)
            for (mode, spacing), (low, _) in bounds.items()
            if mode == faintest and low >= 0
        ),
        key=lambda d: -_mean(settings[d].text_tokens),
    )
    for density in candidates:
        measure([(mode, density) for mode in modes])
        if all(passes(mode, density) for mode in modes):
            break
    return _result(settings, modes, sizes, line_spacings, pages, probe)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _result(
    settings: dict[Density, _Setting],
    modes: Sequence[str],
    sizes: Sequence[float],
    line_spacings: Sequence[float],
    pages: int,
    probe: Any,
) -> dict[str, Any]:
    from optical_memory.modes import Mode
    from optical_memory.renderers.page import page_size

    def mean(values: Sequence[float]) -> float:
        return sum(values) / len(values)

    measurements: list[dict[str, Any]] = []
    for density, setting in sorted(
        settings.items(), key=lambda item: (item[0].line_spacing, -item[0].font_size)
    ):
        measurements.append(
            {
                "font_size": density.font_size,
                "line_spacing": density.line_spacing,
                "text_tokens_per_page": mean(setting.text_tokens),
                "characters_per_page": mean([len(t) for t in setting.texts]),
                "accuracy": {m: mean(a) for m, a in setting.accuracy.items()},
                "page_accuracy": setting.accuracy,
            }
        )

    def densest(legible_at: Sequence[str]) -> dict[str, Any] | None:
        """The measured setting with the most text per page that every mode in
        ``legible_at`` reads at the threshold or better."""
        candidates = [
            m
            for m in measurements
            if all(m["accuracy"].get(mode, 0.0) >= THRESHOLD for mode in legible_at)
        ]
        # Most text per page; on a tie the larger font (the more legible of equals).
        return max(
            candidates,
            key=lambda m: (m["text_tokens_per_page"], m["font_size"]),
            default=None,
        )

    per_mode = {}
    for mode in modes:
        best = densest([mode])
        tokens = Mode.parse(mode).sequence_tokens(*page_size(Mode.parse(mode)))
        per_mode[mode] = (
            None
            if best is None
            else {
                "font_size": best["font_size"],
                "line_spacing": best["line_spacing"],
                "text_tokens_per_page": best["text_tokens_per_page"],
                "accuracy": best["accuracy"][mode],
                "compression_deepseek_ocr": best["text_tokens_per_page"] / tokens,
            }
        )
    every = densest(modes)
    default: dict[str, Any] = (
        {"font_size": FALLBACK[0], "line_spacing": FALLBACK[1], "text_tokens_per_page": None}
        if every is None
        else {
            "font_size": every["font_size"],
            "line_spacing": every["line_spacing"],
            "text_tokens_per_page": every["text_tokens_per_page"],
            "accuracy": every["accuracy"],
        }
    )
    default["reason"] = (
        "one layout serves every mode (page breaks are fixed when a page is packed), and the "
        "default schedule ends long conversations at TINY: the default is the densest layout "
        f"at which every mode searched ({', '.join(modes)}) reads at >= {THRESHOLD:.0%}"
    )
    return {
        "threshold": THRESHOLD,
        "probe": probe.identity,
        "pages_per_setting": pages,
        "grid": {"font_sizes": list(sizes), "line_spacings": list(line_spacings)},
        "per_mode": per_mode,
        "default": default,
        "measurements": measurements,
    }


def run_density_search(
    data: str,
    *,
    sample: str | None = None,
    out: Path = DENSITY_FILE,
    probe_engine: str = "tesseract",
    cache_dir: Path | None = None,
    pages: int = PAGES_PER_SETTING,
    font_sizes: Sequence[float] = FONT_SIZES,
    line_spacings: Sequence[float] = LINE_SPACINGS,
    modes: Sequence[str] = ("tiny", "small", "base", "large", "gundam"),
    workers: int = 2,
    progress: bool = True,
    command: str = "",
) -> dict[str, Any]:
    """Search on one conversation of ``data`` (LoCoMo file: ``sample`` or its first; or
    ``"synthetic"``) and write the result document to ``out``."""
    import time

    from optical_memory.experiments.probe import Probe
    from optical_memory.experiments.run import load_dialogs
    from optical_memory.extras import import_extra
    from optical_memory.tokens import cache_dir as default_cache

    started = time.perf_counter()
    dialogs = load_dialogs(data, [sample] if sample else None)
    dialog = dialogs[0]
    probe = Probe(probe_engine, cache_dir or default_cache() / "probe")
    tqdm = import_extra("tqdm", "demo").tqdm
    with tqdm(desc="density search", unit="page", disable=not progress) as bar:
        result = search(
            dialog.turns,
            modes=modes,
            font_sizes=font_sizes,
            line_spacings=line_spacings,
            pages=pages,
            probe=probe,
            workers=workers,
            progress=bar.update,
        )
    result = {
        "data": Path(data).name if data != "synthetic" else "synthetic",
        "sample": dialog.sample_id,
        "command": command,
        "seconds": round(time.perf_counter() - started, 1),
        **result,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result
