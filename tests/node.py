"""Node.js for the tests that run real JavaScript clients (``tests/js``, installed with ``npm ci``).

Without node or npm these tests are skipped locally; with ``CI`` set they run, and fail, saying what to
install.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.processes import ROOT

JS = ROOT / "tests" / "js"
NODE = shutil.which("node")
NPM = shutil.which("npm")

needs_node = pytest.mark.skipif(
    (NODE is None or NPM is None) and not os.environ.get("CI"),
    reason="needs Node.js 20+ and npm (apt-get install nodejs npm); with CI set these tests always run",
)


def install_packages() -> None:
    """``npm ci`` in tests/js, unless node_modules was installed from the current lock file already."""
    installed = JS / "node_modules" / ".package-lock.json"  # npm writes it at the end of an install
    if installed.exists() and installed.stat().st_mtime >= (JS / "package-lock.json").stat().st_mtime:
        return
    assert NPM is not None
    result = subprocess.run(
        [NPM, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"npm ci failed in {JS}:\n{result.stdout}{result.stderr}"


def node_with_packages() -> str:
    """The node executable, once tests/js has its packages; fails (in CI) when node or npm is missing."""
    assert NODE is not None, "node is required in CI: install Node.js 20+ (Debian: apt-get install nodejs)"
    assert NPM is not None, "npm is required in CI (Debian: apt-get install npm)"
    install_packages()
    return NODE
