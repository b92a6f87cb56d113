"""A stop signal reaches ordinary code once, and no further signal kills the process."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import sys, threading
from executions.stop_signals import on_stop_signal

calls = []
stopped = threading.Event()
on_stop_signal(lambda signum: (calls.append((signum, threading.current_thread().name)), stopped.set()))
print("ready", flush=True)
stopped.wait()
print("stopped", flush=True)
sys.stdin.readline()
print(calls, flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_first_stop_signal_calls_back_once_from_a_thread_and_later_ones_are_ignored(signum):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signum)
        assert child.stdout.readline() == "stopped\n"
        child.send_signal(signal.SIGTERM)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate("go on\n", timeout=30)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert out == f"[({int(signum)}, 'stop-signal')]\n"
