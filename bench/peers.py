"""The peers, each in its own git-ignored venv under bench/peers/, pointed at the sandbox by the
sitecustomize shim in bench/shim (their code is not changed). Benchmark-only: tests never need them.

- python-quickbooks 0.9.12: a STARTPOSITION/MAXRESULTS paging loop for import; save() and
  batch_create() for push (bench/peer_scripts/).
- the fair import peer: python-quickbooks' paging loop that writes every page through the host's
  bulk methods, as the plugin's import does (bench/peer_scripts/fair_import.py; see fair_import).
- singer-io tap-quickbooks 2.5.0: import of the customers and invoices streams (`--dev` with a
  valid access token: no token call), its Singer output read by a counting sink in the harness.

CPU comes from the peer's own process (os.wait4's rusage), peak RSS from its VmHWM sampled while it
runs (rusage's maxrss would count the harness image it was forked from), wall time from the harness.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.infra import ROOT, Sandbox, Stack, peak_rss_mb

PEERS_DIR = ROOT / "bench" / "peers"
SHIM_DIR = ROOT / "bench" / "shim"
SCRIPTS_DIR = ROOT / "bench" / "peer_scripts"
PEERS = {
    "python-quickbooks": "python-quickbooks==0.9.12",
    "tap-quickbooks": "tap-quickbooks==2.5.0",
}
PEER_TIMEOUT = 1800.0


def venv_python(name: str) -> Path:
    return PEERS_DIR / name / "bin" / "python"


def ensure_venvs(log: Any = print) -> dict[str, str]:
    """Create the missing peer venvs with pip (PyPI); returns {peer: version or problem}."""
    found: dict[str, str] = {}
    for name, requirement in PEERS.items():
        python = venv_python(name)
        if not python.exists():
            log(f"creating the {name} venv ({requirement}) …")
            subprocess.run([sys.executable, "-m", "venv", str(PEERS_DIR / name)], check=True)  # noqa: S603
            done = subprocess.run([str(python), "-m", "pip", "install", "-q", requirement],  # noqa: S603
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                found[name] = f"install failed: {done.stderr.strip()[-300:]}"
                continue
        version = subprocess.run([str(python), "-m", "pip", "show", name.split("==")[0]],  # noqa: S603
                                 capture_output=True, text=True, check=False).stdout
        found[name] = next((line.split(":", 1)[1].strip() for line in version.splitlines()
                            if line.startswith("Version:")), "unknown")
    return found


def _env(sandbox: Sandbox, metadata_case: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_QBO_", "PYTHON"))}
    env["PYTHONPATH"] = str(SHIM_DIR)
    env["QBO_EMULATOR_URL"] = sandbox.url
    if metadata_case:
        env["QBO_SHIM_METADATA_CASE"] = "1"
    return env


def _run(argv: list[str], sandbox: Sandbox | None, stdout: Any = subprocess.PIPE,
         metadata_case: bool = False, env: dict[str, str] | None = None) -> tuple[float, Any, Any, str]:
    """Run a peer process to its end; (wall, its rusage, stdout text or None, stderr tail).
    Without a QBO `sandbox` the caller gives the whole `env` (the Xero peers)."""
    if env is None:
        assert sandbox is not None, "a peer without the QBO shim needs its env"
        env = _env(sandbox, metadata_case)
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        popen = subprocess.Popen(argv, stdout=stdout, stderr=err, env=env,  # noqa: S603
                                 cwd=str(ROOT))
        peak = [0.0]
        finished = threading.Event()

        def sample() -> None:  # VmHWM of the peer's own image (rusage's maxrss counts the fork)
            while not finished.wait(0.02):
                try:
                    peak[0] = max(peak[0], peak_rss_mb(popen.pid))
                except OSError:
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out_text = None
        if stdout is subprocess.PIPE:
            assert popen.stdout is not None
            out_text = popen.stdout.read().decode("utf-8", "replace")
        _pid, status, rusage = os.wait4(popen.pid, 0)
        finished.set()
        sampler.join()
        usage = _Usage(rusage.ru_utime + rusage.ru_stime, peak[0])
        popen.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        err.seek(0)
        tail = err.read().decode("utf-8", "replace")[-600:]
    return wall, usage, out_text, tail


class _Usage:
    def __init__(self, cpu_s: float, peak_rss_mb: float) -> None:
        self.cpu_s = cpu_s
        self.peak_rss_mb = peak_rss_mb


def _usage(usage: _Usage) -> dict[str, float]:
    return {"cpu_s": round(usage.cpu_s, 3), "peak_rss_mb": round(usage.peak_rss_mb, 1)}


def run_process(argv: list[str], env: dict[str, str]) -> tuple[float, dict[str, float], str | None, str]:
    """A peer in its own process: (wall, its CPU and peak RSS, stdout, stderr tail)."""
    wall, usage, out, tail = _run(argv, None, env=env)
    return wall, _usage(usage), out, tail


def pq_import(sandbox: Sandbox, realm: str) -> dict[str, Any]:
    token = sandbox.token(realm)["access_token"]
    wall, usage, out, err = _run([str(venv_python("python-quickbooks")), str(SCRIPTS_DIR / "pq_import.py"),
                                  realm, token], sandbox)
    try:
        inner = json.loads((out or "").strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": f"no result; stderr: {err}", "process_wall_s": round(wall, 3), **_usage(usage)}
    return {"records": inner["records"], "distinct": inner["distinct"], "wall_s": round(inner["wall_s"], 3),
            "process_wall_s": round(wall, 3), **_usage(usage)}


def fair_import(st: Stack, realm: str, tenant: str) -> dict[str, Any]:
    """The fair peer (bench/peer_scripts/fair_import.py): python-quickbooks' paging loop writing each
    page through the host's bulk methods. It runs as its own process with the plugin worker's
    interpreter, packages, environment and host app, against the same database and sandbox mode."""
    assert st.sandbox is not None
    token = st.sandbox.token(realm)["access_token"]
    env = {**st.env, "PYTHONPATH": f"{ROOT}{os.pathsep}{SHIM_DIR}", "QBO_EMULATOR_URL": st.sandbox.url}
    wall, usage, out, err = _run([sys.executable, str(SCRIPTS_DIR / "fair_import.py"), realm, token, tenant],
                                 st.sandbox, env=env)
    try:
        inner = json.loads((out or "").strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": f"no result; stderr: {err}", "process_wall_s": round(wall, 3), **_usage(usage)}
    # the loop's own CPU (after the app is built, as a worker is measured once started); the process's apart
    return {"records": inner["records"], "counts": inner["counts"], "wall_s": round(inner["wall_s"], 3),
            "process_wall_s": round(wall, 3), "cpu_s": round(inner["cpu_s"], 3),
            "process_cpu_s": round(usage.cpu_s, 3), "peak_rss_mb": round(usage.peak_rss_mb, 1)}


def pq_push(sandbox: Sandbox, realm: str, mode: str, invoices: int, tag: str) -> dict[str, Any]:
    token = sandbox.token(realm)["access_token"]
    wall, usage, out, err = _run([str(venv_python("python-quickbooks")), str(SCRIPTS_DIR / "pq_push.py"),
                                  realm, token, mode, str(invoices), tag], sandbox)
    try:
        inner = json.loads((out or "").strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": f"no result; stderr: {err}", "process_wall_s": round(wall, 3), **_usage(usage)}
    return {"created": inner["created"], "error": inner["error"], "wall_s": round(inner["wall_s"], 3),
            "process_wall_s": round(wall, 3), **_usage(usage)}


def _select(catalog: dict[str, Any], streams: tuple[str, ...]) -> dict[str, Any]:
    chosen = []
    for entry in catalog.get("streams", []):
        if entry.get("tap_stream_id") not in streams:
            continue
        for meta in entry.get("metadata", []):
            if meta.get("breadcrumb") == []:
                meta.setdefault("metadata", {})["selected"] = True
        chosen.append(entry)
    return {"streams": chosen}


def tap_import(sandbox: Sandbox, realm: str, workdir: Path) -> dict[str, Any]:
    """tap-quickbooks --dev: discover (not timed), then sync customers + invoices into a counting sink."""
    token = sandbox.token(realm)["access_token"]
    config = {"start_date": "2000-01-01T00:00:00Z", "user_agent": "crm-qbo bench", "realm_id": realm,
              "client_id": "bench", "client_secret": "bench", "refresh_token": "unused", "access_token": token,
              "sandbox": False, "max_results": 1000}
    config_path = workdir / "tap-config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    tap = str(PEERS_DIR / "tap-quickbooks" / "bin" / "tap-quickbooks")
    _wall, _usage_d, out, err = _run([tap, "--config", str(config_path), "--discover", "--dev"], sandbox)
    try:
        catalog = _select(json.loads(out or ""), ("customers", "invoices"))
    except ValueError:
        return {"error": f"discovery failed; stderr: {err}"}
    catalog_path = workdir / "tap-catalog.json"
    catalog_path.write_text(json.dumps(catalog), encoding="utf-8")
    sandbox.stats(reset=True)
    wall, usage, out, err = _run([tap, "--config", str(config_path), "--catalog", str(catalog_path), "--dev"],
                                 sandbox, metadata_case=True)
    counts: dict[str, int] = {}
    ids: dict[str, set[str]] = {}
    for line in (out or "").splitlines():
        if not line.startswith('{"type": "RECORD"') and '"RECORD"' not in line[:40]:
            continue
        message = json.loads(line)
        if message.get("type") != "RECORD":
            continue
        stream = str(message.get("stream"))
        counts[stream] = counts.get(stream, 0) + 1
        ids.setdefault(stream, set()).add(str(message.get("record", {}).get("Id")))
    result: dict[str, Any] = {"records": sum(counts.values()), "counts": counts,
                              "distinct": {k: len(v) for k, v in ids.items()},
                              "process_wall_s": round(wall, 3), "wall_s": round(wall, 3), **_usage(usage)}
    if not counts:
        result["error"] = f"no records; stderr: {err}"
    return result
