"""Report: I/O edge: open a written report in headless Chromium through Playwright and report what a reader's
browser sees (console errors, network requests, images, element ids, a screenshot).

Playwright drives the *system* Chromium (``$FEATURESCOPE_CHROMIUM`` or ``chromium`` on PATH); it never downloads a
browser. Both are optional: without them the check raises a clear error and the tests that need it are skipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import FeaturescopeError


def find_chromium() -> str | None:
    """A Chromium / Chrome executable: ``$FEATURESCOPE_CHROMIUM`` or the usual names on PATH."""
    for name in (
        os.environ.get("FEATURESCOPE_CHROMIUM"),
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
        "chrome",
    ):
        if name:
            p = shutil.which(name)
            if p:
                return p
    return None


_PAGE_INFO = """() => ({
  ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
  title: document.title,
  height: document.documentElement.scrollHeight,
  images: Array.from(document.images).map(i => i.complete && i.naturalWidth > 0),
  svgs: document.querySelectorAll('svg').length,
  text: document.body ? document.body.innerText.length : 0,
})"""


def browser_check(
    path: str | Path,
    *,
    screenshot: str | Path | None = None,
    width: int = 1280,
    max_height: int = 2400,
    timeout: float = 90,
) -> dict[str, Any]:
    """Open ``path`` in headless Chromium and report what a reader's browser would see.

    Returns ``{"errors": [...], "warnings": [...], "requests": [every URL requested other than the page itself and
    data: / about: URLs - a self-contained page makes none], "ids": [element ids], "title", "images": {"n",
    "broken"}, "height", "svgs", "text_chars", "screenshot", "method"}``. Console errors, uncaught exceptions and
    failed requests all count as errors."""
    exe = find_chromium()
    if exe is None:
        raise FeaturescopeError("no Chromium found (install Debian's `chromium`, or set FEATURESCOPE_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright  # optional (dev extra): only the browser check needs it
    except ImportError:
        raise FeaturescopeError(
            "the browser check needs Playwright: pip install playwright (no browser download)"
        ) from None
    page_path = Path(path).resolve()
    if not page_path.exists():
        raise FeaturescopeError(f"{page_path} does not exist")
    url = page_path.as_uri()
    errors: list[str] = []
    warnings: list[str] = []
    requests: list[str] = []
    shot: Path | None = None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=exe, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})

            def on_console(msg: Any) -> None:
                if msg.type in ("error", "assert"):
                    errors.append(msg.text)
                elif msg.type == "warning":
                    warnings.append(msg.text)

            def on_request(req: Any) -> None:
                u = req.url
                if u.split("#")[0] != url and not u.startswith(("data:", "about:")):
                    requests.append(u)

            page.on("console", on_console)
            page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
            page.on("request", on_request)
            page.on("requestfailed", lambda req: errors.append(f"network: {req.failure} ({req.url[:120]})"))
            try:
                page.goto(url, wait_until="load", timeout=timeout * 1000)
            except Exception as e:  # playwright's TimeoutError and navigation errors
                errors.append(f"page did not finish loading ({type(e).__name__})")
            page.wait_for_timeout(300)
            info: dict[str, Any] = page.evaluate(_PAGE_INFO)
            if screenshot:
                h = int(min(max(info.get("height") or 900, 300), max_height))
                page.set_viewport_size({"width": width, "height": h})
                shot = Path(screenshot)
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": width, "height": h})
        finally:
            browser.close()
    imgs = info.get("images") or []
    return {
        "method": "playwright",
        "errors": errors,
        "warnings": warnings,
        "requests": requests,
        "ids": info.get("ids") or [],
        "title": info.get("title"),
        "height": info.get("height"),
        "images": {"n": len(imgs), "broken": sum(1 for x in imgs if not x)},
        "svgs": info.get("svgs"),
        "text_chars": info.get("text"),
        "screenshot": str(shot) if shot else None,
    }
