"""Children started by the devtools stop when the thread that started them ends, even if it never stops them
(a runner killed hard runs no ``finally``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from subprocess import PIPE

import pytest

from controlplane.devtools.procutil import dying_with_parent
from tests.polling import wait_until

pytestmark = pytest.mark.envoy  # starts processes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_child_gets_sigterm_when_the_thread_that_started_it_ends() -> None:
    started: list[subprocess.Popen[bytes]] = []

    def start_and_end() -> None:
        child = subprocess.Popen(dying_with_parent(["sh", "-c", "echo running; exec sleep 60"]), stdout=PIPE)
        started.append(child)
        assert child.stdout is not None
        child.stdout.readline()  # it runs the command: the signal is set

    starter = threading.Thread(target=start_and_end)
    starter.start()
    starter.join()
    (child,) = started
    try:
        wait_until(lambda: child.poll() is not None, message="the child to end with its starting thread")
        assert child.returncode == -signal.SIGTERM
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        assert child.stdout is not None
        child.stdout.close()


def test_the_child_is_the_command_itself() -> None:
    """The prefix becomes the command (no process in between), so its pid is the one signals go to."""
    child = subprocess.Popen(
        dying_with_parent([sys.executable, "-c", "import os, sys; sys.stdout.write(str(os.getpid()))"]),
        stdout=subprocess.PIPE,
    )
    output, _ = child.communicate(timeout=60)
    assert int(output) == child.pid
