"""Non-blocking key reading for `monitor`: cbreak mode + select on stdin, restored on exit.

Only when stdin is a TTY; otherwise waiting is a plain sleep and Ctrl-C still quits.
cbreak keeps ISIG, so Ctrl-C raises KeyboardInterrupt as usual.
"""
from __future__ import annotations

import os
import select
import sys
import time
from typing import TextIO

QUIT_KEYS = {"q", "Q"}


class KeyReader:
    """`with KeyReader() as keys: keys.wait_for_quit(2.0)` → True when q was pressed."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdin
        self._saved = None
        self.interactive = False

    def __enter__(self) -> "KeyReader":
        try:
            self.interactive = self.stream.isatty()
        except (AttributeError, ValueError):
            self.interactive = False
        if self.interactive:
            import termios
            import tty

            fd = self.stream.fileno()
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None

    def wait_for_quit(self, timeout: float) -> bool:
        """Wait up to `timeout` s; True as soon as a quit key arrives."""
        if not self.interactive:
            time.sleep(timeout)
            return False
        deadline = time.monotonic() + timeout
        fd = self.stream.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                char = os.read(fd, 1).decode(errors="ignore")
                if char in QUIT_KEYS:
                    return True
                if char == "":        # stdin closed
                    time.sleep(max(0.0, deadline - time.monotonic()))
                    return False
