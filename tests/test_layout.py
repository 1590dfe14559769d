"""The test tree mirrors the package: every module under messenger/ has its test module
(tests/<path>/test_<name>.py) or a line in tests/README.md naming the test modules that
cover it, and every test module named there exists."""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial import unittest

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^- `(messenger/[^`]*)` — (.*?) — ")


def _listed() -> dict[str, list[str]]:
    entries = {}
    for line in (ROOT / "tests" / "README.md").read_text("utf-8").splitlines():
        match = LINE.match(line)
        if match:
            entries[match.group(1)] = re.findall(r"`(tests/[^`]+)`", match.group(2))
    return entries


class LayoutTests(unittest.TestCase):

    def test_every_module_is_tested_somewhere_named(self) -> None:
        """Each module has its mirrored test module or a README line (itself, or its
        folder)."""
        listed = _listed()
        missing = []
        for path in sorted((ROOT / "messenger").rglob("*.py")):
            if path.name in ("__init__.py", "__main__.py"):
                continue
            relative = path.relative_to(ROOT / "messenger")
            mirrored = ROOT / "tests" / relative.parent / f"test_{relative.name}"
            name = str(path.relative_to(ROOT))
            folders = [str(parent.relative_to(ROOT)) + "/" for parent in path.parents
                       if parent != ROOT and ROOT in parent.parents]
            if not mirrored.exists() and name not in listed and \
                    not any(folder in listed for folder in folders):
                missing.append(name)
        self.assertEqual(missing, [], "add a test module, or a line in tests/README.md")

    def test_the_readme_names_real_test_modules(self) -> None:
        """Every module and test module the README names exists."""
        listed = _listed()
        self.assertGreater(len(listed), 20)
        for module, tests in listed.items():
            self.assertTrue((ROOT / module).exists(), module)
            self.assertTrue(tests, module)
            for test in tests:
                self.assertTrue((ROOT / test).exists(), f"{module}: {test}")
