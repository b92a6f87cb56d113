#!/usr/bin/env python
"""Where a workflow step's time goes: one run worked off in this process under cProfile.

    .venv/bin/python bench/profile_workflow.py --shape chain --steps 2000 [--top 30] [--output FILE.pstats]

A fresh SQLite install in a temp dir; the run is started, then worked off by
the workers' own loop (``executions.worker.drain``) in this process, so the
profile holds the claim, the agent call and the step's end with the engine's
advance, and nothing of django-q2. Compare two sizes: what grows per step
with the size of the run is what bench/workflows.py's scale ratio measures.
"""

import argparse
import cProfile
import os
import pstats
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.throughput import PYTHON  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=["chain", "fanout"], default="chain")
    parser.add_argument("--steps", type=int, default=2_000)
    parser.add_argument("--top", type=int, default=30, help="rows of the report (by cumulative time)")
    parser.add_argument("--output", help="also write the raw profile here (pstats)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="symphony-profile-wf-"))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SYMPHONY_", "DJANGO_", "DATABASE_"))}
        env.pop("REDIS_URL", None)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "symphony.settings",
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
                "DJANGO_DEBUG": "0",
                "SYMPHONY_VAR_DIR": str(workdir / "var"),
                "SYMPHONY_SQLITE_PATH": str(workdir / "symphony.sqlite3"),
                "SYMPHONY_LOG_LEVEL": "WARNING",
            }
        )
        os.environ.clear()
        os.environ.update(env)
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)

        import django

        django.setup()
        from bench.workflows import AGENT, definition
        from executions.worker import drain
        from routing.models import AgentConfig
        from workflows.models import WorkflowRun
        from workflows.services import workflow_definition_save, workflow_run_start

        AgentConfig.objects.update_or_create(name=AGENT, defaults={"settings": {"path": "bench.noop.noop_agent"}})
        source = definition(args.shape, args.steps)
        workflow_definition_save(source=source)
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        run = workflow_run_start(definition=source["name"])
        while drain(budget=600).ran:
            pass
        profile.disable()
        seconds = time.perf_counter() - started
        status = WorkflowRun.objects.get(pk=run.pk).status
        print(f"{args.shape} of {args.steps}: {status} in {seconds:.2f} s, {1000 * seconds / args.steps:.2f} ms/step")
        if args.output:
            profile.dump_stats(args.output)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
