"""The pixel probe: an OCR engine reads page images back, cached on disk, two pages at a time.

The probe asks how much of a page survives in its pixels at a mode, not what DeepSeek-OCR would
decode: an off-the-shelf OCR engine (:func:`~optical_memory.experiments.ocr.read_text`) reads
the very image
the mode feeds the encoder. Engines are tuned for text a few tens of pixels high, so images whose
longer side is below :data:`PROBE_MIN_SIDE` are first enlarged by a whole factor with Lanczos
resampling (TINY 512 → 1024, SMALL 640 → 1280): enlarging adds no information, it hands the
engine the same pixels at its working scale.

Readings are cached on disk, one small file per (page content, mode, renderer settings, probe),
so a re-run, or a run that was stopped, repeats no OCR. OCR is the slow part (seconds per page),
so :func:`read_pages` spreads it over a pool of processes, each rendering and reading its pages.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from PIL import Image

from optical_memory.modes import Mode
from optical_memory.renderers.page import Renderer
from optical_memory.turns import Turn

#: Pages whose longer side is below this many pixels are enlarged before reading.
PROBE_MIN_SIDE = 1024
#: Bump when the probe's preparation changes, so that cached readings are not reused.
PROBE_VERSION = 3


@dataclass(frozen=True)
class RendererSpec:
    """How to build a renderer in another process: ``pil`` with keyword options, or ``html``."""

    name: str = "pil"
    options: tuple[tuple[str, float], ...] = ()

    def build(self) -> Renderer:
        from optical_memory import renderers

        return renderers.create(self.name, **dict(self.options))


@dataclass(frozen=True)
class PageJob:
    """A page for the probe to read: ``png`` as drawn, or else ``pieces`` to draw with
    ``renderer`` at ``mode`` (the first page they fill).

    ``key`` names the page's content, its pixel size and the renderer settings (the cache
    key). ``pieces`` are ``(role, content)`` pairs, each drawn as a turn under its role label.
    A job whose reading is cached needs neither.
    """

    key: str
    png: bytes | None = None
    renderer: RendererSpec = RendererSpec()
    pieces: tuple[tuple[str, str], ...] = ()
    mode: Mode = Mode.BASE


@dataclass(frozen=True)
class Probe:
    """Reads page images with ``engine`` (``tesseract`` or ``rapidocr``); caches in ``cache``."""

    engine: str = "tesseract"
    cache: Path | None = None

    @property
    def identity(self) -> str:
        """Everything about the probe that changes its readings."""
        return f"{self.engine}/v{PROBE_VERSION}/min{PROBE_MIN_SIDE}"

    def cache_path(self, key: str) -> Path | None:
        """Where the reading of the page identified by ``key`` is cached (None: no cache)."""
        if self.cache is None:
            return None
        digest = hashlib.sha256(f"{key}\n{self.identity}".encode()).hexdigest()
        return self.cache / digest[:2] / f"{digest}.txt"

    def cached(self, key: str) -> str | None:
        path = self.cache_path(key)
        if path is None or not path.exists():
            return None
        return path.read_text(encoding="utf-8")

    def read(self, image: Image.Image, key: str) -> str:
        """The engine's reading of ``image``, from the cache when it holds one."""
        reading = self.cached(key)
        if reading is not None:
            return reading
        from optical_memory.experiments.ocr import read_text

        # Tesseract's OpenMP threads fight over a small machine's cores and slow it several
        # times over (14 s instead of 2 s a page on two cores); we parallelize across pages.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        reading = read_text(enlarge_for_probe(image), self.engine)
        path = self.cache_path(key)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.part")
            partial.write_text(reading, encoding="utf-8")
            partial.replace(path)  # atomic: a stopped run leaves no half reading behind
        return reading


def enlarge_for_probe(image: Image.Image) -> Image.Image:
    """``image`` enlarged by the smallest whole factor that brings its longer side to
    :data:`PROBE_MIN_SIDE` (512 → 2×, 640 → 2×), in colour (a palette image is converted to RGB
    first); larger images unchanged."""
    factor = math.ceil(PROBE_MIN_SIDE / max(image.size))
    if factor <= 1:
        return image
    if image.mode not in ("L", "RGB"):
        # Pillow enlarges palette images by nearest neighbour: read the colours, as a model does.
        image = image.convert("RGB")
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.LANCZOS)


# --- reading many pages ------------------------------------------------------------------------

_renderers: dict[RendererSpec, Renderer] = {}


def _image(job: PageJob) -> Image.Image:
    if job.png is not None:
        return Image.open(io.BytesIO(job.png))
    renderer = _renderers.get(job.renderer)
    if renderer is None:
        renderer = _renderers[job.renderer] = job.renderer.build()
    turns = [Turn(role=role, content=content) for role, content in job.pieces]
    return renderer.render(turns, job.mode)[0].image


def _read_job(probe: Probe, job: PageJob) -> tuple[str, str]:
    return job.key, probe.read(_image(job), job.key)


class ProbePool:
    """Reads pages in ``workers`` processes while the caller goes on (1: in this process).

    ``submit`` pages as they become known; ``readings`` waits for all of them. Cached pages are
    neither rendered nor read again.
    """

    def __init__(self, probe: Probe, workers: int = 2) -> None:
        self.probe = probe
        self.workers = workers
        self._readings: dict[str, str] = {}
        self._futures: dict[str, Future[tuple[str, str]]] = {}
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> ProbePool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def submit(self, jobs: Sequence[PageJob]) -> None:
        for job in jobs:
            if job.key in self._readings or job.key in self._futures:
                continue
            cached = self.probe.cached(job.key)
            if cached is not None:
                self._readings[job.key] = cached
            elif self.workers <= 1:
                self._readings[job.key] = _read_job(self.probe, job)[1]
            else:
                if self._pool is None:
                    # spawn: a clean interpreter per worker, no inherited SQLite handles.
                    self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"))
                self._futures[job.key] = self._pool.submit(_read_job, self.probe, job)

    def readings(self, progress: Callable[[int], Any] | None = None) -> dict[str, str]:
        """Every submitted page's reading, by key, once all are read; ``progress(n)`` is
        called as pages are done."""
        if progress is not None and self._readings:
            progress(len(self._readings))
        for future in as_completed(list(self._futures.values())):
            key, reading = future.result()
            self._readings[key] = reading
            if progress is not None:
                progress(1)
        self._futures.clear()
        return dict(self._readings)


def read_pages(
    jobs: Sequence[PageJob],
    probe: Probe,
    *,
    workers: int = 2,
    progress: Callable[[int], Any] | None = None,
) -> dict[str, str]:
    """The probe's reading of every job's page, by key (see :class:`ProbePool`)."""
    with ProbePool(probe, workers) as pool:
        pool.submit(jobs)
        return pool.readings(progress)
