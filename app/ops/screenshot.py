"""``crm-erp-sync ops-screenshot``: a PNG of the worker's ``/ops`` page, taken with headless Chromium.

Playwright (a dev extra) drives the Chromium that Debian packages (``make chromium`` installs it);
Playwright's own browser downloads (``playwright install``) are never used.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from app.domain.errors import ServiceError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class ScreenshotError(ServiceError):
    """No browser, no Playwright, or the page did not load; the message says which."""


def find_chromium(explicit: str | None = None) -> str:
    """The Chromium executable: ``explicit`` if given, else the first of :data:`BROWSERS` on the PATH."""
    if explicit:
        path = shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
        if path is None:
            raise ScreenshotError(f"no browser at {explicit!r}")
        return path
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise ScreenshotError("no Chromium on the PATH: `make chromium` installs Debian's chromium package")


def take(url: str, out: Path, chromium: str | None = None, width: int = 1400, timeout_s: float = 30.0) -> Path:
    """Load ``url`` in headless Chromium and save the whole page as a PNG at ``out``."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise ScreenshotError("needs the playwright package: pip install -e '.[dev]'") from exc
    executable = find_chromium(chromium)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, headless=True)
            try:
                page = browser.new_page(viewport={"width": width, "height": 900})
                response = page.goto(url, wait_until="load", timeout=timeout_s * 1000)
                if response is None or not response.ok:
                    raise ScreenshotError(f"{url} answered {response.status if response else 'nothing'}")
                page.screenshot(path=str(out), full_page=True)
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise ScreenshotError(f"cannot load {url} in {executable}: {exc.message.splitlines()[0]}") from exc
    return out
