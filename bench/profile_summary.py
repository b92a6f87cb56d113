#!/usr/bin/env python
"""Summarise ``py-spy record --format raw`` output of a worker cluster (``throughput.py --profile DIR``).

    .venv/bin/python bench/profile_summary.py DIR/symphony-1.txt [--top 25]

Samples are split by role (worker / pusher / monitor / sentinel, found from the
django-q2 frame on the stack), then ranked by inclusive time per frame inside each role.
py-spy records only threads that are not idle, so this is CPU (and busy-waiting) time.
"""

import argparse
import re
from collections import Counter, defaultdict

ROLES = [
    ("worker", "worker (django_q/worker.py"),
    ("pusher", "pusher (django_q/pusher.py"),
    ("monitor", "monitor (django_q/monitor.py"),
    ("sentinel", "guard (django_q/cluster.py"),
]
LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")


def role_of(stack: str) -> str:
    for role, marker in ROLES:
        if marker in stack:
            return role
    return "other"


def frame_name(frame: str) -> str:
    """'func (path/file.py:123)' -> 'path/file.py:func' (line numbers merged)."""
    match = re.match(r"^(?P<func>.*) \((?P<file>[^:]+)(:\d+)?\)$", frame)
    if not match:
        return frame
    return f"{match['file']}:{match['func']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    totals: Counter = Counter()
    inclusive: dict[str, Counter] = defaultdict(Counter)
    leaf: dict[str, Counter] = defaultdict(Counter)
    with open(args.path) as lines:
        for raw in lines:
            match = LINE.match(raw.rstrip("\n"))
            if not match:
                continue
            stack, count = match["stack"], int(match["count"])
            role = role_of(stack)
            totals[role] += count
            frames = [frame_name(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            for name in set(frames):
                inclusive[role][name] += count
            if frames:
                leaf[role][frames[-1]] += count

    grand = sum(totals.values()) or 1
    print(f"{args.path}: {grand} samples")
    for role, count in totals.most_common():
        print(f"\n== {role}: {count} samples ({100 * count / grand:.0f}%)")
        print("   inclusive:")
        for name, n in inclusive[role].most_common(args.top):
            print(f"   {100 * n / count:6.1f}%  {name}")
        print("   self (leaf):")
        for name, n in leaf[role].most_common(10):
            print(f"   {100 * n / count:6.1f}%  {name}")


if __name__ == "__main__":
    main()
