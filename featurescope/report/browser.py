"""Report: i/O edge: headless Chromium check (Chrome DevTools protocol over a websocket)."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import FeaturescopeError
from .html import get


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


_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-sync",
    "--mute-audio",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]


class _CDP:
    def __init__(self, ws: Any):
        self.ws, self.n, self.events = ws, 0, []

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
        self.n += 1
        me = self.n
        self.ws.send(json.dumps({"id": me, "method": method, "params": params or {}}))
        end = time.time() + timeout
        while time.time() < end:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == me:
                if "error" in msg:
                    raise FeaturescopeError(f"Chromium {method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(f"Chromium did not answer {method} in {timeout}s")

    def wait_event(self, method: str, timeout: float) -> bool:
        if any(e["method"] == method for e in self.events):
            return True
        end = time.time() + timeout
        self.ws.settimeout(1.0)
        try:
            while time.time() < end:
                try:
                    msg = json.loads(self.ws.recv())
                except Exception as e:  # websocket timeout: keep polling
                    if "timed out" in str(e).lower() or type(e).__name__ == "WebSocketTimeoutException":
                        continue
                    raise
                if "method" in msg:
                    self.events.append(msg)
                    if msg["method"] == method:
                        return True
        finally:
            self.ws.settimeout(30)
        return False

    def drain(self, seconds: float) -> None:
        self.wait_event("__none__", seconds)


def _console_text(ev: dict[str, Any]) -> str:
    p = ev.get("params", {})
    if ev["method"] == "Runtime.consoleAPICalled":
        return " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
    if ev["method"] == "Runtime.exceptionThrown":
        d = p.get("exceptionDetails", {})
        return str(get(d, "exception", "description") or d.get("text", "exception"))
    if ev["method"] == "Log.entryAdded":
        e = p.get("entry", {})
        return f"{e.get('source', '')}: {e.get('text', '')} {e.get('url', '')}".strip()
    return json.dumps(p)[:300]


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
    data: / about: URLs - a self-contained page makes none], "ids": [element ids],
    "title", "images": {"n", "broken"}, "height", "screenshot", "method"}``. Console errors, uncaught exceptions and
    browser log errors (e.g. a resource that failed to load) all count as errors. Uses the DevTools protocol through
    ``websocket-client`` when installed, else ``--dump-dom`` and the console lines of Chromium's log."""
    exe = find_chromium()
    if exe is None:
        raise FeaturescopeError("no Chromium found (install Debian's `chromium`, or set FEATURESCOPE_CHROMIUM)")
    path = Path(path).resolve()
    if not path.exists():
        raise FeaturescopeError(f"{path} does not exist")
    url = path.as_uri()
    try:
        import websocket  # websocket-client
    except ImportError:
        return _browser_check_dump(exe, url, screenshot, width, max_height, timeout)
    with tempfile.TemporaryDirectory(prefix="fs-chromium-") as prof, tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [
                exe,
                *_FLAGS,
                "--remote-debugging-port=0",
                f"--user-data-dir={prof}",
                f"--window-size={width},900",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        closed = False
        try:
            port_file = Path(prof) / "DevToolsActivePort"
            end = time.time() + timeout
            while not (port_file.exists() and port_file.read_text().strip()):
                if proc.poll() is not None or time.time() > end:
                    log.seek(0)
                    raise FeaturescopeError(f"Chromium did not start: {log.read()[-800:].decode('utf-8', 'replace')}")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            import urllib.request

            targets = []
            while time.time() < end:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as f:
                    targets = [t for t in json.loads(f.read()) if t.get("type") == "page"]
                if targets:
                    break
                time.sleep(0.1)
            if not targets:
                raise FeaturescopeError("Chromium opened no page")
            ws = websocket.create_connection(targets[0]["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
            cdp = _CDP(ws)
            for m in ("Runtime.enable", "Log.enable", "Page.enable", "Network.enable"):
                cdp.call(m)
            cdp.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            )
            cdp.events.clear()
            cdp.call("Page.navigate", {"url": url})
            loaded = cdp.wait_event("Page.loadEventFired", timeout=max(5.0, end - time.time()))
            cdp.drain(0.5)
            info = cdp.call(
                "Runtime.evaluate",
                {
                    "returnByValue": True,
                    "expression": (
                        "JSON.stringify({ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),"
                        " title: document.title, height: document.documentElement.scrollHeight,"
                        " images: Array.from(document.images).map(i => i.complete && i.naturalWidth > 0),"
                        " svgs: document.querySelectorAll('svg').length,"
                        " text: document.body ? document.body.innerText.length : 0})"
                    ),
                },
            )
            page = json.loads(get(info, "result", "value") or "{}")
            shot = None
            if screenshot:
                h = int(min(max(page.get("height") or 900, 300), max_height))
                cdp.call(
                    "Emulation.setDeviceMetricsOverride",
                    {"width": width, "height": h, "deviceScaleFactor": 1, "mobile": False},
                )
                cdp.drain(0.3)
                img = cdp.call(
                    "Page.captureScreenshot",
                    {
                        "format": "png",
                        "captureBeyondViewport": False,
                        "clip": {"x": 0, "y": 0, "width": width, "height": h, "scale": 1},
                    },
                    timeout=60,
                )
                shot = Path(screenshot)
                shot.parent.mkdir(parents=True, exist_ok=True)
                shot.write_bytes(base64.b64decode(img["data"]))
            errors, warnings, requests = [], [], []
            for ev in cdp.events:
                m, p = ev["method"], ev.get("params", {})
                if m == "Runtime.exceptionThrown":
                    errors.append(_console_text(ev))
                elif m == "Runtime.consoleAPICalled":
                    (
                        errors
                        if p.get("type") in ("error", "assert")
                        else warnings
                        if p.get("type") == "warning"
                        else []
                    ).append(_console_text(ev))
                elif m == "Log.entryAdded":
                    lvl = get(p, "entry", "level")
                    (errors if lvl == "error" else warnings if lvl == "warning" else []).append(_console_text(ev))
                elif m == "Network.requestWillBeSent":
                    u = str(get(p, "request", "url") or "")
                    if u.split("#")[0] != url and not u.startswith(("data:", "about:")):
                        requests.append(u)
                elif m == "Network.loadingFailed":
                    errors.append(f"network: {p.get('errorText', '')} ({p.get('type', '')})")
            if not loaded:
                errors.append("page did not finish loading (no load event)")
            try:
                cdp.call("Browser.close", timeout=5)
                closed = True
            except Exception:
                pass
            ws.close()
        finally:
            try:
                proc.wait(timeout=10 if closed else 0.1)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
    imgs = page.get("images") or []
    return {
        "method": "devtools",
        "errors": errors,
        "warnings": warnings,
        "requests": requests,
        "ids": page.get("ids") or [],
        "title": page.get("title"),
        "height": page.get("height"),
        "images": {"n": len(imgs), "broken": sum(1 for x in imgs if not x)},
        "svgs": page.get("svgs"),
        "text_chars": page.get("text"),
        "screenshot": str(shot) if shot else None,
    }


def _browser_check_dump(
    exe: str, url: str, screenshot: str | Path | None, width: int, max_height: int, timeout: float
) -> dict[str, Any]:
    """Fallback without a websocket client: ``--dump-dom`` plus Chromium's own console log lines on stderr."""
    with tempfile.TemporaryDirectory(prefix="fs-chromium-") as prof:
        p = subprocess.run(
            [exe, *_FLAGS, f"--user-data-dir={prof}", "--enable-logging=stderr", "--v=0", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        errors = [ln for ln in p.stderr.splitlines() if ":CONSOLE" in ln and re.search(r"Uncaught|Error|Failed", ln)]
        shot = None
        if screenshot:
            shot = Path(screenshot).resolve()
            shot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    exe,
                    *_FLAGS,
                    f"--user-data-dir={prof}",
                    f"--screenshot={shot}",
                    f"--window-size={width},{max_height}",
                    url,
                ],
                capture_output=True,
                timeout=timeout,
            )
    ids = re.findall(r"\sid=\"([^\"]+)\"", p.stdout)
    imgs = re.findall(r"<img\b", p.stdout)
    # no request log without the DevTools protocol: list what the DOM would fetch (external or local files)
    requests = [u for u in re.findall(r"\s(?:src|srcset|poster)=\"([^\"]*)\"", p.stdout) if not u.startswith("data:")]
    requests += re.findall(r"\shref=\"((?:https?:)?//[^\"]*)\"", p.stdout)
    title = re.search(r"<title>(.*?)</title>", p.stdout, re.S)
    return {
        "method": "dump-dom",
        "errors": errors,
        "warnings": [],
        "requests": requests,
        "ids": ids,
        "title": html.unescape(title.group(1)) if title else None,
        "height": None,
        "images": {"n": len(imgs), "broken": None},
        "svgs": p.stdout.count("<svg"),
        "text_chars": len(p.stdout),
        "screenshot": str(shot) if shot else None,
    }
