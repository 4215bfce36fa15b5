"""Page latency while a web diagnosis runs: /patients/N idle, and while the job renders and stores its report.

Starts `neurotriage serve` on 127.0.0.1 (a fresh SQLite database in a temporary folder, the shipped
model), signs in, measures the patient page idle, then uploads one synthetic case and keeps asking
for the same page until the job ends. Each answer is filed under the job stage that was running when
the request started, read from the job's live stages. Requests are bounded in count and time.
"""

from __future__ import annotations

import io
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import httpx

IDLE_REQUESTS = 40
MAX_JOB_S = 300
PASSWORD = "bench-password-long-enough"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "neurotriage", *args], env=env, check=True, capture_output=True)


def _case_zip(root: Path, env: dict) -> bytes:
    _cli(env, "synth", str(root / "cases"), "--n", "1", "--seed", "7")
    case = next((root / "cases").iterdir())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(case.glob("*.nii.gz")):
            if "_seg" not in path.name:
                zf.write(path, f"{case.name}/{path.name}")
    return buffer.getvalue()


def _wait_up(client: httpx.Client) -> None:
    for _ in range(200):
        try:
            client.get("/login")
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _timed(client: httpx.Client, path: str) -> float:
    start = time.perf_counter()
    client.get(path).raise_for_status()
    return (time.perf_counter() - start) * 1000


def _stage_of(client: httpx.Client, job_id: int, state: dict) -> None:
    """Keep `state['stage']` at the job's running stage until it ends (polled every 50 ms)."""
    deadline = time.monotonic() + MAX_JOB_S
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        running = [s["name"] for s in job["stages"] or [] if s["state"] == "running"]
        state["stage"] = running[0] if running else job["status"]
        if job["status"] in ("done", "failed"):
            state["done"] = job["status"]
            return
        time.sleep(0.05)
    state["done"] = "timed out"


def _measure(base: str, patient: str, case_zip: bytes) -> dict:
    with httpx.Client(base_url=base, timeout=60) as client, httpx.Client(base_url=base, timeout=60) as poller:
        _wait_up(client)
        for c in (client, poller):
            c.post(
                "/login", data={"username": "bench", "password": PASSWORD, "csrf_token": _csrf(c.get("/login").text)}
            )
        idle = [_timed(client, patient) for _ in range(IDLE_REQUESTS)]
        token = _csrf(client.get(patient).text)
        upload = client.post(
            f"{patient}/upload",
            data={"csrf_token": token},
            files={"case_zip": ("case.zip", case_zip, "application/zip")},
        )
        if upload.status_code != 303:
            raise RuntimeError(f"upload refused: {upload.status_code} {upload.text[:200]}")
        job_id = int(upload.headers["location"].rstrip("/").split("/")[-1])
        state: dict = {"stage": "queued"}
        watcher = threading.Thread(target=_stage_of, args=(poller, job_id, state))
        watcher.start()
        by_stage: dict[str, list[float]] = {}
        while "done" not in state:
            stage = state["stage"]
            by_stage.setdefault(stage, []).append(_timed(client, patient))
        watcher.join()
    idle_median = statistics.median(idle)
    return {
        "job": state["done"],
        "idle_median_ms": round(idle_median, 1),
        "stages": {
            name: {
                "requests": len(ms),
                "median_ms": round(statistics.median(ms), 1),
                "p95_ms": round(statistics.quantiles(ms, n=20)[-1], 1) if len(ms) > 1 else round(ms[0], 1),
                "max_ms": round(max(ms), 1),
                "max_over_idle_median": round(max(ms) / idle_median, 2),
            }
            for name, ms in by_stage.items()
        },
    }


def run() -> dict:
    """Serve on loopback, measure the patient page idle and during one diagnosis, stop the server."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = os.environ | {
            "NEUROTRIAGE_HOME": str(root / "home"),
            "NEUROTRIAGE_DATABASE_URL": f"sqlite:///{root / 'nt.db'}",
            "NEUROTRIAGE_ADMIN_USER": "bench",
            "NEUROTRIAGE_ADMIN_PASSWORD": PASSWORD,
        }
        _cli(env, "db", "init")
        _cli(env, "db", "seed", "--sample")
        case_zip = _case_zip(root, env)
        port = _free_port()
        cmd = [sys.executable, "-m", "neurotriage", "serve", "--port", str(port), "--insecure-cookies"]
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            return _measure(f"http://127.0.0.1:{port}", "/patients/1", case_zip)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
