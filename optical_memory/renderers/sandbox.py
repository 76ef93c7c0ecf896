"""A headless Chromium in which untrusted pages are laid out and printed, and can reach nothing.

:class:`ChromiumSandbox` owns the browser: it starts Chromium (through Playwright) on first use,
on a thread of its own, and closes it with :meth:`ChromiumSandbox.close`. Its walls, each
enough on its own for what it covers:

- JavaScript is disabled in every browser context (Playwright's own ``evaluate`` still works:
  the sandbox measures layouts with it);
- every request a page makes is aborted by request routing (pages come from ``set_content``,
  so nothing needs fetching) and counted in :attr:`ChromiumSandbox.blocked_requests`;
- documents carry :data:`CONTENT_SECURITY_POLICY`, which allows inline styles and nothing else;
- the browser runs with no background networking, no component updates, no sync, no QUIC.

A browser that fails is restarted once and the action run again; a second failure raises
:class:`ChromiumCrashedError` with what to check.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from optical_memory.closing import Closing
from optical_memory.extras import import_extra

DEFAULT_CHROMIUM = "/usr/bin/chromium"

#: Headless Chromium on a machine with no network: no sandbox (root), no GPU, no background
#: traffic (its connections would only be refused). Tests that drive Chromium reuse them.
CHROMIUM_LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
#: For a ``<meta http-equiv="Content-Security-Policy">`` in every document: inline styles only.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; font-src 'none'; "
    "script-src 'none'; object-src 'none'; frame-src 'none'; connect-src 'none'; "
    "media-src 'none'; base-uri 'none'; form-action 'none'"
)

T = TypeVar("T")


class HtmlRendererError(RuntimeError):
    """The HTML renderer cannot work; the message says what to do."""


class ChromiumNotFoundError(HtmlRendererError, FileNotFoundError):
    """No Chromium executable at the configured path."""


class ChromiumCrashedError(HtmlRendererError):
    """Chromium failed, was restarted once, and failed again."""


class ChromiumSandbox(Closing):
    """One headless Chromium, its thread and its sandboxed pages (one per device scale factor).

    ``chromium`` defaults to ``$OPTICAL_MEMORY_CHROMIUM`` or ``/usr/bin/chromium``; ``viewport``
    is the pages' size in CSS px. Nothing starts until :meth:`run` is first called.
    """

    def __init__(
        self,
        chromium: str | os.PathLike[str] | None = None,
        viewport: tuple[int, int] = (1024, 1024),
    ) -> None:
        self.chromium = str(chromium or os.environ.get("OPTICAL_MEMORY_CHROMIUM", DEFAULT_CHROMIUM))
        self.viewport = viewport
        #: Requests the router aborted (sanitized pages should leave none to abort).
        self.blocked_requests = 0
        self._browser: Any = None
        self._playwright: Any = None
        self._worker: ThreadPoolExecutor | None = None
        self._pages: dict[float, Any] = {}

    @property
    def is_running(self) -> bool:
        """Whether a browser is started."""
        return self._browser is not None

    def run(self, action: Callable[[], T], doing: str) -> T:
        """Run ``action`` on the sandbox's own thread and wait for it; ``doing`` names the work
        in errors ("rendering"). :meth:`page` may be called only from inside ``action``.

        Playwright's sync API is bound to the thread that started it and refuses a thread with
        a running asyncio loop; a private thread makes the sandbox usable from any thread,
        including from inside ``async`` code (an agent's middleware).
        """
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="optical-memory-chromium")
        return self._worker.submit(self._with_browser, action, doing).result()

    def page(self, scale: float) -> Any:
        """The sandboxed Playwright page for one device scale factor (created on first use)."""
        if self._browser is None:
            self._launch()
        page = self._pages.get(scale)
        if page is None:
            width, height = self.viewport
            context = self._browser.new_context(
                viewport={"width": width, "height": height},
                device_scale_factor=scale,
                java_script_enabled=False,
                offline=False,
                service_workers="block",
                accept_downloads=False,
                color_scheme="light",
                reduced_motion="reduce",
                locale="en-US",
                timezone_id="UTC",
            )
            context.route("**/*", self._abort)
            page = context.new_page()
            self._pages[scale] = page
        return page

    def close(self) -> None:
        """Close the browser, Playwright's driver and the thread (if started); a later
        :meth:`run` starts them again."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.submit(self._stop).result()
            worker.shutdown()

    def _with_browser(self, action: Callable[[], T], doing: str) -> T:
        """Run ``action``; if the browser fails, restart it once and run ``action`` again."""
        errors = import_extra("playwright.sync_api", "html")
        try:
            return action()
        except errors.Error:
            self._stop()
        try:
            return action()
        except errors.Error as again:
            self._stop()
            raise ChromiumCrashedError(
                f"Chromium failed while {doing}, was restarted, and failed again: {again}. "
                f"Check that `{self.chromium} --headless --no-sandbox --dump-dom about:blank` "
                "runs on this machine (memory, /dev/shm), or set OPTICAL_MEMORY_CHROMIUM"
            ) from again

    def _abort(self, route: Any) -> None:
        self.blocked_requests += 1
        route.abort("blockedbyclient")

    def _launch(self) -> None:
        if shutil.which(self.chromium) is None and not Path(self.chromium).is_file():
            raise ChromiumNotFoundError(
                f"Chromium not found at {self.chromium}: install it (Debian/Ubuntu: "
                "`apt-get install chromium`) or pass HtmlRenderer(chromium=...) / set "
                "OPTICAL_MEMORY_CHROMIUM to its path"
            )
        if self._playwright is None:
            sync_api = import_extra("playwright.sync_api", "html")
            self._playwright = sync_api.sync_playwright().start()
        self._browser = self._playwright.chromium.launch(
            executable_path=self.chromium, headless=True, args=CHROMIUM_LAUNCH_ARGS
        )

    def _stop(self) -> None:
        """Close the browser and Playwright's driver (on the sandbox thread)."""
        browser, self._browser, self._pages = self._browser, None, {}
        playwright, self._playwright = self._playwright, None
        with contextlib.suppress(Exception):  # a dead browser has nothing left to close
            if browser is not None:
                browser.close()
        with contextlib.suppress(Exception):
            if playwright is not None:
                playwright.stop()
