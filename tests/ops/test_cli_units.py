"""Command-line plumbing without a fleet: options, key reading on a real pty, refused connections."""
from __future__ import annotations

import os
import pty
import termios
import time

import pytest

from simple_monitoring.cli import build_parser, main
from simple_monitoring.keys import KeyReader
from stress.client import ApiClient
from workers.embedded_redis import free_port


def test_url_and_token_work_before_or_after_the_command(monkeypatch):
    monkeypatch.setenv("PIXELFLEET_URL", "http://env:1")
    parser = build_parser()
    assert parser.parse_args(["check"]).url == "http://env:1"
    assert parser.parse_args(["--url", "http://a:1", "check"]).url == "http://a:1"
    assert parser.parse_args(["check", "--url", "http://b:2"]).url == "http://b:2"
    stress = parser.parse_args(["--url", "http://a:1", "--token", "t", "stress", "3"])
    assert (stress.url, stress.token, stress.count) == ("http://a:1", "t", 3)
    assert parser.parse_args(["stress", "3", "--url", "http://c:3"]).url == "http://c:3"


def test_refused_connection_is_a_result_not_an_exception():
    url = f"http://127.0.0.1:{free_port()}"
    resp = ApiClient(url).get("/api/health/", timeout=2)
    assert resp.status == 0 and resp.error == "connection refused"
    assert resp.error_code() == "connection_error"


def test_commands_exit_1_when_the_api_is_down(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["--url", url, "check"]) == 1
    out = capsys.readouterr().out
    assert "✗ API reachable" in out and out.rstrip().endswith("Passed: 0  Failed: 1")
    assert main(["--url", url, "metrics"]) == 1
    assert main(["--url", url, "monitor", "--once"]) == 1
    assert "API DOWN" in capsys.readouterr().out


def test_stress_refuses_to_start_without_an_api():
    from stress import simple_stress

    with pytest.raises(SystemExit, match="API not reachable"):
        simple_stress.main(["2", "--url", f"http://127.0.0.1:{free_port()}"])
    with pytest.raises(SystemExit, match="N must be between"):
        simple_stress.main(["0"])


def test_key_reader_on_a_real_pty_quits_on_q_and_restores_the_terminal():
    master, slave = pty.openpty()
    try:
        stream = os.fdopen(slave, "r", closefd=False)
        before = termios.tcgetattr(slave)
        with KeyReader(stream) as keys:
            assert keys.interactive
            assert not termios.tcgetattr(slave)[3] & termios.ICANON   # cbreak while running
            started = time.monotonic()
            assert keys.wait_for_quit(0.2) is False                     # nothing typed: times out
            assert time.monotonic() - started >= 0.19
            os.write(master, b"xq")
            assert keys.wait_for_quit(2.0) is True
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
