"""Drives Debian's headless `chromium` over the Chrome DevTools Protocol, for the status page's
browser test and the README screenshot (scripts/status-page-screenshot.sh).

    with Chromium() as b:                  # starts chromium --headless on a free debugging port
        b.navigate("http://127.0.0.1:8081/")
        b.eval("document.title")           # Runtime.evaluate, value returned
        b.screenshot("page.png")           # the whole page as PNG
        b.problems()                       # console errors and CSP violations seen so far

The protocol's WebSocket is spoken with Debian's python3-websocket (module `websocket`), which
installs for /usr/bin/python3 only: call kal_python.ensure("websocket") first. Loopback only: the
browser is told to use no proxy, and the pages it loads are the test's own.
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import websocket  # python3-websocket

CANDIDATES = ("chromium", "chromium-browser")


def find_chromium():
    for c in CANDIDATES:
        p = shutil.which(c)
        if p:
            return p
    return None


class Chromium:
    def __init__(self, width=1440, height=900, timeout=30):
        exe = find_chromium()
        if not exe:
            raise RuntimeError("chromium is not installed (scripts/install-deps.sh installs it)")
        self.profile = tempfile.mkdtemp(prefix="kal-chromium-")
        args = [exe, "--headless=new", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                f"--user-data-dir={self.profile}", "--no-first-run", "--no-default-browser-check",
                "--disable-gpu", "--disable-extensions", "--disable-background-networking",
                "--disable-sync", "--disable-component-update", "--no-proxy-server",
                "--hide-scrollbars", "--mute-audio", f"--window-size={width},{height}",
                "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # the sandbox refuses to run as root
        self.log_path = os.path.join(self.profile, "chromium.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.width, self.height = width, height
        self.next_id = 0
        self.events = []
        port = self._wait_port(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
                if pages:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("chromium shows no page target:\n" + self.output())
            time.sleep(0.1)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=timeout,
                                              suppress_origin=True)
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def _wait_port(self, timeout):
        f = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited ({self.proc.returncode}):\n" + self.output())
            try:
                with open(f) as fh:
                    line = fh.readline().strip()
                if line:
                    return int(line)
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its debugging port:\n" + self.output())

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-4000:].decode(errors="replace")
        except OSError:
            return ""

    def call(self, method, params=None, timeout=30):
        """Sends one command and returns its result; events that arrive meanwhile are kept."""
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
            if time.monotonic() > deadline:
                raise TimeoutError(method)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def navigate(self, url, timeout=15):
        self.call("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout
        while self.eval("document.readyState") != "complete" or self.eval("location.href") != url:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load")
            time.sleep(0.05)

    def wait_for(self, expr, timeout, what=None):
        """Polls a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.eval(expr)
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what or expr}")
            time.sleep(0.1)

    def scripts(self, enabled):
        self.call("Emulation.setScriptExecutionDisabled", {"value": not enabled})

    def screenshot(self, path):
        h = self.eval("Math.ceil(document.documentElement.scrollHeight)") or self.height
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": int(h), "deviceScaleFactor": 1, "mobile": False})
        r = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1,
                   "mobile": False})
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))
        return path

    def problems(self):
        """Console errors, uncaught exceptions and log errors (CSP violations are reported there)
        seen so far, as text lines."""
        out = []
        for e in self.events:
            m, p = e["method"], e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:500])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + json.dumps(p.get("args", []))[:500])
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: " + p["entry"].get("text", "")[:500])
        return out

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
