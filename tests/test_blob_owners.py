"""Derived data with one owner: every blob says whether a thread, a page or a model owns it, so a
thread's delete and retention reach what they should and nothing else; stores written before
owners existed open and get them."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from test_store import raw_execute

from optical_memory import DecaySchedule, Mode, OpticalMemory
from optical_memory.memory.limits import MOSAIC_NAMESPACE, Mosaic, bound_pages
from optical_memory.renderers.pil import PillowRenderer
from optical_memory.store import SCHEMA_VERSION, BlobOwner, open_store
from optical_memory.targets import RequestLimits, vision_tokens

#: A store written by optical-memory with schema version 2 (before blob owners): thread
#: "old-thread" of 30 turns, 5 frozen pages with their renders, one turn (number 3) with a
#: 4x3 red PNG, and one blob of each kind: a message key, learnt image costs whose model key
#: is also "old-thread", encoded visual tokens of the first page, and a mosaic.
VERSION_2_FILE = Path(__file__).parent / "data" / "store_v2.db"


def owners(path: Path) -> dict[str, tuple[str, str | None, str | None]]:
    with sqlite3.connect(path) as raw:
        rows = raw.execute(
            "SELECT namespace, identity, owner_kind, owner_thread, owner_page FROM blobs"
        ).fetchall()
    return {f"{ns}/{identity}": (kind, thread, page) for ns, identity, kind, thread, page in rows}


def test_a_version_2_store_file_opens_and_its_blobs_get_owners(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copy(VERSION_2_FILE, path)
    renderer = PillowRenderer(font_size=40)
    with OpticalMemory(path, thread_id="old-thread", renderer=renderer) as memory:
        assert memory.store.count_turns("old-thread") == 30
        assert len(memory.context().pages) == 5
        third = memory.turns(3)[0]
        assert [image.width for image in memory.turn_images(third.id or 0)] == [4]
        first_page = memory.store.pages("old-thread")[0].content_hash
        found = owners(path)
        assert found["langchain-message-id/msg-1"] == ("thread", "old-thread", None)
        assert found["turn-images/3/1"] == ("thread", "old-thread", None)
        assert found["image-costs/1024x1024"] == ("model", None, None)
        assert found["visual-tokens/enc-1"] == ("page", None, first_page)
        assert not [key for key in found if key.startswith("mosaics/")]  # ownerless: dropped
        assert memory.delete_thread() == 30
    assert list(owners(path)) == ["image-costs/1024x1024"]  # the model's, not the thread's
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert raw.execute("SELECT COUNT(*) FROM page_images").fetchone() == (0,)


def test_a_version_2_postgres_schema_gets_blob_owners(postgres_server) -> None:
    dsn = postgres_server.new_database()
    with open_store(dsn) as store:
        turn = store.add_turn("t", "user", "hello", None, 2)
        assert turn.id is not None
        store.put_blob("langchain-message-id", "t", "", "m1", b"1")
        store.put_blob("image-costs", "t", "openai", "1x1", b"cost")
        store.put_blob("visual-tokens", "page-hash", "tiny", "enc", b"v")
    # The schema as version 2 left it: no owner columns.
    raw_execute(dsn, "DROP INDEX {s}blobs_by_thread")
    raw_execute(dsn, "DROP INDEX {s}blobs_by_page")
    for column in ("owner_kind", "owner_thread", "owner_page"):
        raw_execute(dsn, f"ALTER TABLE {{s}}blobs DROP COLUMN {column}")
    raw_execute(dsn, "UPDATE {s}schema_version SET version = 2")
    with open_store(dsn) as store:
        rows = raw_execute(
            dsn, "SELECT namespace, owner_kind, owner_thread, owner_page FROM {s}blobs"
        )
        assert sorted(rows) == [
            ("image-costs", "model", None, None),
            ("langchain-message-id", "thread", "t", None),
            ("visual-tokens", "page", None, "page-hash"),
        ]
        store.delete_thread("t")
        assert store.get_blob("langchain-message-id", "t", "", "m1") is None
        assert store.get_blob("image-costs", "t", "openai", "1x1") == b"cost"
    assert raw_execute(dsn, "SELECT version FROM {s}schema_version") == [(SCHEMA_VERSION,)]


def _chatter(n: int) -> str:
    return f"Message {n}: the lighthouse keeper logged the weather and the passing ships. " * 4


def _mosaic(memory: OpticalMemory) -> Mosaic:
    def cost(width: int, height: int, mode: Mode) -> int:
        return vision_tokens(width, height, "deepseek-ocr", mode)

    pages = memory.context().pages
    limits = RequestLimits(max_images=len(pages) - 3, max_bytes=10**9)
    mosaics = [i for i in bound_pages(pages, limits, cost, memory.store).images]
    mosaic = next(item for item in mosaics if isinstance(item, Mosaic))
    mosaic.png()  # drawn once, then kept in the store
    return mosaic


def stored_mosaic(memory: OpticalMemory, mosaic: Mosaic) -> bytes | None:
    return memory.store.get_blob(MOSAIC_NAMESPACE, mosaic.key, mosaic.mode.value, "2x2")


def test_mosaics_go_with_their_thread_and_with_retention(store_location: str) -> None:
    renderer = PillowRenderer(font_size=40)
    kept = DecaySchedule(tiers=[(Mode.TINY, 1)], batch=1)
    forgetting = DecaySchedule(tiers=[(Mode.TINY, 1)], forget_after=8, batch=1)
    with (
        OpticalMemory(store_location, thread_id="deleted", schedule=kept, renderer=renderer) as a,
        OpticalMemory(
            store_location, thread_id="aged", schedule=forgetting, renderer=renderer
        ) as b,
    ):
        for n in range(60):
            a.add("user", _chatter(n))
            b.add("user", _chatter(n))
        of_a, of_b = _mosaic(a), _mosaic(b)
        assert stored_mosaic(a, of_a) and stored_mosaic(b, of_b)
        a.delete_thread()
        assert stored_mosaic(a, of_a) is None  # a delete reaches the thread's mosaics
        assert stored_mosaic(b, of_b) is not None
        while set(of_b.page_ids) & {p.page_id for p in b.context().pages}:
            b.add("user", _chatter(0))
        assert stored_mosaic(b, of_b) is None  # so does retention, once its pages are forgotten


def test_a_blob_owner_must_be_a_blob_owner(store_location: str) -> None:
    with open_store(store_location) as store:
        try:
            store.put_blob("x", "h", "", "i", b"d", owner="thread")  # type: ignore[arg-type]
        except TypeError as error:
            assert "owner must be a BlobOwner" in str(error)
        else:
            raise AssertionError("a str owner was accepted")
        assert store.get_blob("x", "h", "", "i") is None
        store.put_blob("x", "h", "", "i", b"d", owner=BlobOwner.model())
        assert store.get_blob("x", "h", "", "i") == b"d"


def test_callers_that_name_no_owner_get_the_owner_their_namespace_means() -> None:
    """The store gives blobs written without an owner the one their namespace means: these are
    the namespaces the library's own callers write."""
    pytest.importorskip("langchain")
    from optical_memory.agents.calibration import COST_NAMESPACE
    from optical_memory.agents.identity import MESSAGE_KEY_NAMESPACE
    from optical_memory.legibility import LEGIBILITY_NAMESPACE
    from optical_memory.memory.threads import TURN_IMAGE_NAMESPACE
    from optical_memory.store import blob_owner

    assert blob_owner(MESSAGE_KEY_NAMESPACE, "user-1", None) == BlobOwner.thread("user-1")
    assert blob_owner(TURN_IMAGE_NAMESPACE, "user-1", None) == BlobOwner.thread("user-1")
    assert blob_owner(COST_NAMESPACE, "user-1", None) == BlobOwner.model()
    assert blob_owner(LEGIBILITY_NAMESPACE, "gpt-4o", None) == BlobOwner.model()
    assert blob_owner("visual-tokens", "abc", None) == BlobOwner.page("abc")
