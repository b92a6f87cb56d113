"""SIGTERM and SIGINT carried out of signal context, so reacting to them can take locks and log.

A Python signal handler runs between two bytecodes of the main thread, possibly
while that thread holds the very lock the handler needs: ``Event.set()`` from a
handler deadlocks when the signal lands inside ``Event.wait()`` (django-q2 #346
is this bug in ``qcluster``). So the handlers here do nothing; CPython's C-level
handler writes each signal's number to a wakeup pipe, and ordinary code (a
thread, or a ``wait`` on the pipe) reacts to it.
"""

import contextlib
import os
import signal
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _noted(signum, frame) -> None:
    """The Python-level handler: the wakeup pipe already carries the signal."""


def signal_pipe(signums=STOP_SIGNALS) -> int:
    """Catch ``signums`` in this process; returns a descriptor each arriving signal's number is written to.

    Call from the main thread. The signals no longer interrupt system calls, so a
    database query or a queue read in progress is not broken by them.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for signum in signums:
        signal.signal(signum, _noted)
        signal.siginterrupt(signum, False)
    return read_fd


def read_signals(fd: int) -> set[int]:
    """The signal numbers waiting in a ``signal_pipe``; blocks until there is at least one."""
    return set(os.read(fd, 256))


def on_stop_signal(callback: Callable[[int], None], signums=STOP_SIGNALS) -> None:
    """Call ``callback(signum)`` once, from a thread of its own, when one of ``signums`` first arrives.

    Later signals are noted and ignored. Other signals with Python handlers
    (django-q2's SIGALRM timeout) write to the same pipe and are passed over.
    """
    fd = signal_pipe(signums)

    def listen() -> None:
        while True:
            arrived = read_signals(fd) & set(signums)
            if arrived:
                callback(arrived.pop())
                return

    threading.Thread(target=listen, name="stop-signal", daemon=True).start()


@contextlib.contextmanager
def blocked(signums=STOP_SIGNALS):
    """Hold ``signums`` pending (not lost) while handlers are changed or a child is forked."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signums)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
