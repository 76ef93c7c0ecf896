"""The probe's preparation of a page image: what the OCR engine is handed."""

from __future__ import annotations

import numpy as np

from optical_memory.experiments.probe import PROBE_MIN_SIDE, enlarge_for_probe
from optical_memory.modes import Mode
from optical_memory.renderers import PillowRenderer
from optical_memory.turns import Turn


def test_a_palette_page_is_enlarged_smoothly_like_its_colours() -> None:
    [page] = PillowRenderer().render([Turn(role="user", content="small print " * 40)], Mode.TINY)
    assert page.image.mode == "P"
    enlarged = enlarge_for_probe(page.image)
    assert enlarged.size == (PROBE_MIN_SIDE, PROBE_MIN_SIDE)
    # The same as enlarging the RGB page (Lanczos), not the palette indices' nearest neighbour.
    assert np.array_equal(
        np.asarray(enlarged.convert("RGB")),
        np.asarray(enlarge_for_probe(page.image.convert("RGB"))),
    )


def test_a_page_at_the_probes_scale_is_handed_over_unchanged() -> None:
    [page] = PillowRenderer().render([Turn(role="user", content="hello")], Mode.BASE)
    assert enlarge_for_probe(page.image) is page.image
