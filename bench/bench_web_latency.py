"""Page latency while web diagnoses run: one client per job stage, then 20 concurrent clients.

Starts `neurotriage serve` on 127.0.0.1 (a fresh SQLite database in a temporary folder, the shipped
model, two job workers), signs in, measures the patient page idle, then uploads one synthetic case and
keeps asking for the same page until the job ends. Each answer is filed under the job stage that was
running when the request started, read from the job's live stages.

Then 20 clients, each signed in with a session of its own, ask for the main pages in turn with no
pause between requests (each starts at another page, so every page is asked for at every moment):
first idle, then from the moment two more uploads (two patients) are accepted until the first of
their diagnoses ends. Per phase: p50/p95/max per page, requests per second, and the 1-minute load
average at its start and end (with the one before the bench began: other work on the machine).
Requests are bounded in count and time.
"""

from __future__ import annotations

import contextlib
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
CLIENTS = 20
IDLE_ROUNDS = 10  # per client, over every page: 20 x 10 x 5 = 1,000 requests
BUSY_ROUNDS = 400  # per client at most while two diagnoses run; the first job's end usually stops them sooner


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "neurotriage", *args], env=env, check=True, capture_output=True)


def _case_zips(root: Path, env: dict, n: int) -> list[bytes]:
    """`n` synthetic cases (seed 7), each zipped without its reference segmentation."""
    _cli(env, "synth", str(root / "cases"), "--n", str(n), "--seed", "7")
    return [_zipped(case) for case in sorted(p for p in (root / "cases").iterdir() if p.is_dir())]


def _zipped(case: Path) -> bytes:
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


def _sign_in(client: httpx.Client) -> None:
    form = {"username": "bench", "password": PASSWORD, "csrf_token": _csrf(client.get("/login").text)}
    if client.post("/login", data=form).status_code != 303:
        raise RuntimeError("sign-in refused")


def _upload(client: httpx.Client, patient: str, case_zip: bytes) -> int:
    """Upload a case zip on the patient's page; returns the new job's id."""
    token = _csrf(client.get(patient).text)
    upload = client.post(
        f"{patient}/upload",
        data={"csrf_token": token},
        files={"case_zip": ("case.zip", case_zip, "application/zip")},
    )
    if upload.status_code != 303:
        raise RuntimeError(f"upload refused: {upload.status_code} {upload.text[:200]}")
    return int(upload.headers["location"].rstrip("/").split("/")[-1])


def _percentile(ms: list[float], q: int) -> float:
    """The q-th percentile, interpolated between the measured values (never beyond the largest)."""
    return statistics.quantiles(ms, n=100, method="inclusive")[q - 1] if len(ms) > 1 else ms[0]


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


def _measure(base: str, patient: str, case_zip: bytes) -> tuple[dict, int]:
    """One client: the patient page idle, then filed by the stage of one diagnosis; also the job's id."""
    with httpx.Client(base_url=base, timeout=60) as client, httpx.Client(base_url=base, timeout=60) as poller:
        _wait_up(client)
        for c in (client, poller):
            _sign_in(c)
        idle = [_timed(client, patient) for _ in range(IDLE_REQUESTS)]
        job_id = _upload(client, patient, case_zip)
        state: dict = {"stage": "queued"}
        watcher = threading.Thread(target=_stage_of, args=(poller, job_id, state))
        watcher.start()
        by_stage: dict[str, list[float]] = {}
        while "done" not in state:
            stage = state["stage"]
            by_stage.setdefault(stage, []).append(_timed(client, patient))
        watcher.join()
    idle_median = statistics.median(idle)
    result = {
        "job": state["done"],
        "idle_median_ms": round(idle_median, 1),
        "stages": {
            name: {
                "requests": len(ms),
                "median_ms": round(statistics.median(ms), 1),
                "p95_ms": round(_percentile(ms, 95), 1),
                "max_ms": round(max(ms), 1),
                "max_over_idle_median": round(max(ms) / idle_median, 2),
            }
            for name, ms in by_stage.items()
        },
    }
    return result, job_id


def _pages(patient_id: int, finding_id: int, job_id: int) -> dict[str, str]:
    """The main pages, by the name they are reported under."""
    return {
        "/patients": "/patients",
        "/patients/{id}": f"/patients/{patient_id}",
        "/reports/{finding_id}": f"/reports/{finding_id}",
        "/api/patients": "/api/patients",
        "/jobs/{id}": f"/jobs/{job_id}",
    }


def _client_loop(client: httpx.Client, pages: dict[str, str], first: int, rounds: int, stop: threading.Event,
                 out: list[tuple[str, float, bool]]) -> None:  # fmt: skip
    """Ask for every page in turn from page `first` on, `rounds` times or until `stop` is set; `out` gets
    (page, milliseconds, answered 200) per request."""
    names = list(pages)
    order = names[first:] + names[:first]
    for _ in range(rounds):
        for name in order:
            if stop.is_set():
                return
            start = time.perf_counter()
            try:
                ok = client.get(pages[name]).status_code == 200
            except httpx.HTTPError:
                ok = False
            out.append((name, (time.perf_counter() - start) * 1000, ok))


def _phase(clients: list[httpx.Client], pages: dict[str, str], rounds: int, stop: threading.Event) -> dict:
    """Every client's loop at once: per page p50/p95/max, throughput and the 1-minute load average."""
    samples: list[list[tuple[str, float, bool]]] = [[] for _ in clients]
    threads = [
        threading.Thread(target=_client_loop, args=(c, pages, i % len(pages), rounds, stop, samples[i]))
        for i, c in enumerate(clients)
    ]
    load_start, start = os.getloadavg()[0], time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    answers = [sample for own in samples for sample in own]
    by_page = {name: [ms for page, ms, _ in answers if page == name] for name in pages}
    return {
        "requests": len(answers),
        "not_200": sum(not ok for _, _, ok in answers),
        "seconds": round(seconds, 1),
        "requests_per_s": round(len(answers) / seconds, 1),
        "load_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "pages": {
            name: {
                "requests": len(ms),
                "p50_ms": round(_percentile(ms, 50), 1),
                "p95_ms": round(_percentile(ms, 95), 1),
                "max_ms": round(max(ms), 1),
            }
            for name, ms in by_page.items()
            if ms
        },
    }


def _watch_jobs(client: httpx.Client, job_ids: list[int], first_end: threading.Event, ends: dict) -> None:
    """Poll the jobs until all end (bounded); `ends` gets each one's status and seconds, and `first_end`
    is set when the first ends."""
    start = time.monotonic()
    while len(ends) < len(job_ids) and time.monotonic() - start < MAX_JOB_S:
        for job_id in job_ids:
            status = client.get(f"/api/jobs/{job_id}").json()["status"]
            if job_id not in ends and status in ("done", "failed"):
                ends[job_id] = {"status": status, "seconds": round(time.monotonic() - start, 1)}
                first_end.set()
        time.sleep(0.25)
    first_end.set()


def _concurrent(base: str, finding_id: int, done_job: int, case_zips: list[bytes]) -> dict:
    """20 signed-in clients on the main pages: idle, then while two diagnoses run (two patients)."""
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(httpx.Client(base_url=base, timeout=60)) for _ in range(CLIENTS + 1)]
        for client in clients:
            _sign_in(client)
        clients, poller = clients[:-1], clients[-1]
        idle = _phase(clients, _pages(1, finding_id, done_job), IDLE_ROUNDS, threading.Event())
        jobs = [_upload(poller, f"/patients/{n}", case) for n, case in enumerate(case_zips, start=1)]
        first_end, ends = threading.Event(), {}
        watcher = threading.Thread(target=_watch_jobs, args=(poller, jobs, first_end, ends))
        watcher.start()
        busy = _phase(clients, _pages(1, finding_id, jobs[0]), BUSY_ROUNDS, first_end)
        busy["stopped_by"] = "first diagnosis ended" if first_end.is_set() else "request bound"
        watcher.join()
    busy["jobs"] = [ends.get(job_id, {"status": "timed out"}) for job_id in jobs]
    return {"clients": CLIENTS, "idle": idle, "two_diagnoses": busy}


def run() -> dict:
    """Serve on loopback, measure one client during one diagnosis, then 20 clients idle and during two."""
    load_before = os.getloadavg()[0]  # other work on the machine; the phases' own figures include the clients
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = os.environ | {
            "NEUROTRIAGE_HOME": str(root / "home"),
            "NEUROTRIAGE_DATABASE_URL": f"sqlite:///{root / 'nt.db'}",
            "NEUROTRIAGE_ADMIN_USER": "bench",
            "NEUROTRIAGE_ADMIN_PASSWORD": PASSWORD,
            "NEUROTRIAGE_JOB_WORKERS": "2",
        }
        _cli(env, "db", "init")
        _cli(env, "db", "seed", "--sample")
        case_zips = _case_zips(root, env, 3)
        port = _free_port()
        cmd = [sys.executable, "-m", "neurotriage", "serve", "--port", str(port), "--insecure-cookies"]
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            result, job_id = _measure(base, "/patients/1", case_zips[0])
            with httpx.Client(base_url=base, timeout=60) as client:
                _sign_in(client)
                finding_id = client.get(f"/api/jobs/{job_id}").json()["finding_id"]
            if finding_id is None:
                raise RuntimeError(f"the first diagnosis ended {result['job']}: no report to measure")
            concurrent = _concurrent(base, finding_id, job_id, case_zips[1:])
            return {"load_1min_before": round(load_before, 2)} | result | {"concurrent": concurrent}
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
