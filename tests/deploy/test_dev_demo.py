"""The demo command is safe to run twice: with its port taken it refuses at once and changes nothing."""
from __future__ import annotations

import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_second_demo_on_a_busy_port_changes_nothing():
    demo_data = REPO / "var" / "demo-data"
    before = {p: p.stat().st_mtime_ns for p in demo_data.rglob("*")} if demo_data.exists() else {}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(["bash", str(REPO / "deploy" / "dev.sh"), "demo"], cwd=REPO, capture_output=True,
                              text=True, timeout=60, env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
                                                          "PDAS_DEMO_PORT": str(port)})
    assert done.returncode == 2
    assert f"127.0.0.1:{port} is in use" in done.stderr and "nothing was changed" in done.stderr
    assert "==>" not in done.stderr, "no setup step ran"
    after = {p: p.stat().st_mtime_ns for p in demo_data.rglob("*")} if demo_data.exists() else {}
    assert after == before
