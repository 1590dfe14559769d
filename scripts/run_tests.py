#!/usr/bin/env python3
"""Run the whole trial suite and print one summary line.

Three trial processes: the core suite on the default (epoll) reactor, in parallel jobs;
the real-time tests (modules named ``test_*_realtime``: real audio through pyaudio, whole
calls through NATs) alone, one at a time, since the parallel jobs' load would starve
their 20 ms audio frames; and the Qt widget tests (``tests/client/ui``) on the
``messenger-qt5`` reactor with the offscreen platform, since a trial run has one reactor.
The last line printed is ``trial: N passed, N failed`` (``, N skipped`` when any), summed
from trial's own summary lines; the exit status is non-zero when any test failed or
errored.

With arguments, runs trial once on them (Qt reactor if they name ui tests).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UI_TESTS = "tests.client.ui"
SUMMARY = re.compile(r"^(PASSED|FAILED) \((.*)\)\s*$")


REALTIME_SUFFIX = "_realtime"


def _modules(realtime: bool) -> list[str]:
    names = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if dotted.startswith(UI_TESTS + "."):
            continue
        if dotted.endswith(REALTIME_SUFFIX) == realtime:
            names.append(dotted)
    return names


def core_modules() -> list[str]:
    """Every test module under tests/ except the Qt widget and the real-time tests."""
    return _modules(realtime=False)


def realtime_modules() -> list[str]:
    """The real-time test modules (``test_*_realtime``), run alone after the core."""
    return _modules(realtime=True)


def has_ui_tests() -> bool:
    return any((ROOT / "tests" / "client" / "ui").glob("test_*.py"))


def run_trial(args: list[str], env: dict[str, str]) -> dict[str, int]:
    """Run one trial process, echo its output, and return the counts of its summary."""
    command = [sys.executable, "-m", "twisted.trial", *args]
    print("$", " ".join(command), flush=True)
    process = subprocess.Popen(  # noqa: S603 (our own trial, fixed argv)
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace")
    counts: dict[str, int] | None = None
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        match = SUMMARY.match(line.strip())
        if match:
            counts = {}
            for part in match.group(2).split(","):
                key, _, value = part.strip().partition("=")
                if value.isdigit():
                    counts[key] = int(value)
    status = process.wait()
    sys.stdout.flush()
    if counts is None:
        # trial died before its summary: count the run as one error so CI fails loudly.
        print(f"run_tests: trial exited {status} without a summary", flush=True)
        return {"errors": 1}
    return counts


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    runtime = tempfile.mkdtemp(prefix="messenger-xdg-")
    os.chmod(runtime, 0o700)
    env.setdefault("XDG_RUNTIME_DIR", runtime)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # Servers started by tests may hash passwords cheaply (--scrypt-n below the floor).
    env["MESSENGER_TEST_WEAK_HASHING"] = "1"
    jobs = ["-j", str(max(2, min(4, os.cpu_count() or 2)))]

    runs: list[list[str]] = []
    if argv:
        if any(arg.startswith(UI_TESTS) or arg.startswith("tests/client/ui") for arg in argv):
            runs.append(["--reactor=messenger-qt5", *argv])
        else:
            runs.append(argv)
    else:
        runs.append([*jobs, "--temp-directory", "_trial_temp_core", *core_modules()])
        if realtime_modules():
            runs.append(["--temp-directory", "_trial_temp_realtime", *realtime_modules()])
        if has_ui_tests():
            runs.append(["--reactor=messenger-qt5", "--temp-directory", "_trial_temp_ui",
                         UI_TESTS])

    totals = {"passed": 0, "failed": 0, "skipped": 0}
    for args in runs:
        counts = run_trial(args, env)
        totals["passed"] += counts.get("successes", 0)
        totals["failed"] += (counts.get("failures", 0) + counts.get("errors", 0)
                             + counts.get("unexpectedSuccesses", 0))
        totals["skipped"] += counts.get("skips", 0) + counts.get("expectedFailures", 0)
    line = f"trial: {totals['passed']} passed, {totals['failed']} failed"
    if totals["skipped"]:
        line += f", {totals['skipped']} skipped"
    print(line, flush=True)
    return 1 if totals["failed"] or not totals["passed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
