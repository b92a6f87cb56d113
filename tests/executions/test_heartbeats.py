import os
import socket
import subprocess
import sys

import pytest

from executions.cluster import _children
from executions.heartbeats import Beater
from executions.models import Heartbeat, ProcessRole

pytestmark = pytest.mark.django_db


def test_a_beat_records_the_host_the_pid_and_the_children():
    beater = Beater(ProcessRole.WORKER, process_ids=lambda: [101, 102])

    beater.beat()

    row = Heartbeat.objects.get(name=beater.name)
    assert (row.host, row.pid, row.process_ids) == (socket.gethostname(), os.getpid(), [101, 102])


def test_later_beats_follow_the_children_as_they_change():
    children = [[7], [7, 8]]
    beater = Beater(ProcessRole.WORKER, every=0, process_ids=lambda: children.pop(0))

    beater.beat()
    beater.beat()

    assert Heartbeat.objects.get(name=beater.name).process_ids == [7, 8]


def test_a_worker_cluster_names_the_processes_it_started():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert child.pid in _children()
    finally:
        child.communicate(b"")
    assert child.pid not in _children()
