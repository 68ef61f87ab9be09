"""Polling with a deadline, shared by the integration tests (kal_testlib) and the benches."""

import time


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until truthy; returns its value or raises AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
