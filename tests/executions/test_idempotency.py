"""Idempotency keys: the unique constraint decides a race between submits with one key."""

import threading

import pytest
from django.db import connection

from executions import idempotency
from executions.idempotency import IdempotencyMismatch, fingerprint, submit_once
from executions.models import Execution, IdempotencyKey
from executions.services import execution_submit


def test_fingerprint_ignores_key_order():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


@pytest.mark.parametrize("key", ["", " ", "x" * 201, "tab\there"])
def test_a_bad_key_is_refused(key, django_user_model, demo_agents):
    user = django_user_model.objects.create_user("alice")
    with pytest.raises(ValueError):
        submit_once(user=user, key=key, digest="d", submit=lambda: execution_submit(agent=demo_agents["slow"]))
    assert Execution.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_loser_of_a_race_returns_the_winners_execution(django_user_model, demo_agents, monkeypatch):
    """B checks for the key while A's submit is not yet committed, so both submit: the unique
    constraint makes B's insert fail, B's execution rolls back with it, and B answers with A's."""
    user = django_user_model.objects.create_user("alice")
    a_submitted, b_checked = threading.Event(), threading.Event()
    checked = idempotency._replayed

    def replayed(*args):
        found = checked(*args)
        if threading.current_thread().name == "B":
            b_checked.set()
        return found

    monkeypatch.setattr(idempotency, "_replayed", replayed)
    results, unexpected = {}, []

    def submit_a():
        execution = execution_submit(agent=demo_agents["slow"], submitted_by=user)
        a_submitted.set()
        assert b_checked.wait(60)
        return execution

    def racer(name, submit):
        try:
            if name == "B":
                assert a_submitted.wait(60)
            results[name] = submit_once(user=user, key="k", digest="d", submit=submit)
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            unexpected.append(repr(exc))
        finally:
            connection.close()

    b_submit = lambda: execution_submit(agent=demo_agents["slow"], submitted_by=user)  # noqa: E731
    threads = [
        threading.Thread(target=racer, args=(name, fn), name=name) for name, fn in (("A", submit_a), ("B", b_submit))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert unexpected == []
    (a_execution, a_made), (b_execution, b_made) = results["A"], results["B"]
    assert (a_made, b_made) == (True, False)
    assert a_execution.pk == b_execution.pk
    assert list(Execution.objects.values_list("pk", flat=True)) == [a_execution.pk]
    assert IdempotencyKey.objects.count() == 1


def test_a_reused_key_with_another_body_is_refused(django_user_model, demo_agents):
    user = django_user_model.objects.create_user("alice")
    submit = lambda: execution_submit(agent=demo_agents["slow"], submitted_by=user)  # noqa: E731
    first, made = submit_once(user=user, key="k", digest="one", submit=submit)
    assert made
    assert submit_once(user=user, key="k", digest="one", submit=submit) == (first, False)
    with pytest.raises(IdempotencyMismatch):
        submit_once(user=user, key="k", digest="two", submit=submit)
    assert Execution.objects.count() == 1
