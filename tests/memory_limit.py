"""Run a piece of attack code in a child process under an address-space limit (``RLIMIT_AS``).

A regression test of a memory blow-up must not take the machine down when the fix breaks: the child gets
``LIMIT_BYTES`` of address space (torch and infoclip import in about 3 GB of it), so an attack that allocates
tens of gigabytes fails inside the child, and the test sees a failed child instead of a dead machine.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

LIMIT_BYTES = 4 * 1024**3
_SRC = str(Path(__file__).resolve().parents[1] / "src")
_ROOT = str(Path(__file__).resolve().parents[1])


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))


def run_limited(code: str, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -c code *args`` with ``RLIMIT_AS`` = ``LIMIT_BYTES``, one thread, this tree's ``src`` first."""
    child_env = dict(os.environ)
    child_env.update({"PYTHONPATH": os.pathsep.join([_SRC, _ROOT]), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
    child_env.pop("INFOCLIP_DEBUG", None)
    child_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=timeout, env=child_env, preexec_fn=_limit, check=False,
    )  # fmt: skip


def run_cli_limited(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``infoclip ARGS`` (the real entry point) under the same limit."""
    code = "import sys; from infoclip_cli.main import main; sys.argv = ['infoclip', *sys.argv[1:]]; main()"
    return run_limited(code, *args, timeout=timeout, env=env)


def refusal_under_limit(function: str, error: str, *args: str, timeout: float = 120) -> str:
    """Call ``function`` (``"package.module.name"``) on ``args`` in a limited child and return the message of
    the ``error`` (same form) it raised; fail the test when it returned, raised something else or died."""
    fn_module, fn_name = function.rsplit(".", 1)
    err_module, err_name = error.rsplit(".", 1)
    child = run_limited(
        f"""
        import sys
        from {fn_module} import {fn_name} as attacked
        from {err_module} import {err_name} as expected
        try:
            attacked(*sys.argv[1:])
        except expected as exc:
            print("refused:", exc)
        """,
        *args,
        timeout=timeout,
    )
    assert child.returncode == 0, f"the child failed (exit {child.returncode}): {child.stderr[-2000:]}"
    assert child.stdout.startswith("refused: "), f"{function} did not raise {err_name}: {child.stdout[-500:]}"
    return child.stdout[len("refused: ") :].strip()
