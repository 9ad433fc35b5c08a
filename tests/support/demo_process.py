"""Run the demo (`crm-demo`) as a newcomer would, on free ports, and read what it prints."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.redis_server import free_port


def read_lines(stream, into: queue.Queue) -> None:  # type: ignore[no-untyped-def]
    for line in iter(stream.readline, ""):
        into.put(line)
    into.put(None)


def wait_for(lines: queue.Queue, seen: list[str], marker: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            raise AssertionError("the demo exited early:\n" + "".join(seen))
        seen.append(line)
        if marker in line:
            return
    raise AssertionError(f"no {marker!r} within {timeout}s:\n" + "".join(seen))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


@dataclass
class RunningDemo:
    process: subprocess.Popen
    lines: queue.Queue
    seen: list[str]
    port: int
    sandbox_port: int
    banner: str = ""
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def crm_url(self) -> str:
        return re.search(r"CRM:\s+(http://\S+)/\n", self.banner).group(1)  # type: ignore[union-attr]

    @property
    def login(self) -> tuple[str, str]:
        email, password = re.search(r"Sign in:\s+(\S+) / (\S+)\n", self.banner).groups()  # type: ignore[union-attr]
        return email, password

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def realm(self) -> str:
        return re.search(r"\(realm (\d+)\)", self.banner).group(1)  # type: ignore[union-attr]


@contextmanager
def running_demo(workdir: Path) -> Iterator[RunningDemo]:
    port, sandbox_port, xero_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_QBO_", "REFERENCE_CRM_"))}
    env.update(REFERENCE_CRM_DEMO_PORT=str(port), REFERENCE_CRM_DEMO_SANDBOX_PORT=str(sandbox_port),
               REFERENCE_CRM_DEMO_XERO_PORT=str(xero_port), REFERENCE_CRM_DEMO_DIR=str(workdir / ".demo"),
               PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "reference_crm"], env=env, cwd=workdir,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True).start()
    demo = RunningDemo(process, lines, [], port, sandbox_port)
    try:
        wait_for(lines, demo.seen, "Press Ctrl-C to stop.")
        demo.banner = "".join(demo.seen)
        demo.pids = {name: int(pid) for name, pid in
                     re.findall(r"(\w+) (\d+)", re.search(r"Processes:\s+(.*)\n", demo.banner).group(1))}  # type: ignore[union-attr]
        yield demo
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
