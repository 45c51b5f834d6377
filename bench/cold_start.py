"""Cold start of each function: module import time and process start to first answer.

For `setup`, `sync_spoke`, `scheduler` and `push_webhook` (cloud backend,
Firestore emulator) and a bare functions-framework function (`baseline`):

- `import_ms`: loading the function's main.py in a fresh interpreter (what
  the platform does before serving; heavy SDKs must not be imported here);
- `first_answer_ms`: from spawning `functions-framework` to the first
  complete HTTP answer to a real request (an authenticated request that
  reads the hub store; the baseline answers "ok"): interpreter start,
  functions-framework, the module, the Context (clients) and the request;
- `first_answer_cpu_ms`: the CPU time (user + system) the functions-framework
  processes spent from spawn to being stopped right after that answer: on a
  shared machine wall times vary 2x with the load, CPU time far less;
- `sdk_import_cpu_ms` (top level): CPU time of importing each cloud SDK in a
  fresh interpreter that has imported functions-framework already: what the
  first request pays for the SDK alone, the floor under the figures above.

Each figure is the median of N runs (`--n`).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench._cloud import PROJECT, Emulator, free_port

DEFAULT_N = 3
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"

# name -> (source, target, method, path, body, headers)
FUNCTIONS: dict[str, tuple[str, str, str, str, bytes | None, dict[str, str]]] = {
    "setup": ("functions/setup/main.py", "setup", "GET", "/api/status", None, {"Authorization": f"Bearer {TOKEN}"}),
    "sync_spoke": ("functions/sync_spoke/main.py", "sync_spoke", "POST", "/", b'{"spoke_id": "none"}',
                   {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}),
    "scheduler": ("functions/sync_spoke/main.py", "scheduler", "POST", "/", b'{"job": "poll"}',
                  {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}),
    "push_webhook": ("functions/push_webhook/main.py", "push_webhook", "POST", "/", b"",
                     {"X-Goog-Channel-ID": "nope", "X-Goog-Channel-Token": "x", "X-Goog-Resource-ID": "r",
                      "X-Goog-Resource-State": "exists", "X-Goog-Message-Number": "2"}),
}
BASELINE = "def baseline(request):\n    return 'ok'\n"


def _import_ms(source: str, env: dict[str, str]) -> float:
    code = ("import time, importlib.util as u; t=time.perf_counter();"
            f"s=u.spec_from_file_location('m', {source!r}); m=u.module_from_spec(s); s.loader.exec_module(m);"
            "print((time.perf_counter()-t)*1000)")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


SDKS = {"google.cloud.firestore": "import google.cloud.firestore",
        "google.cloud.tasks_v2": "import google.cloud.tasks_v2",
        "google.cloud.secretmanager_v1": "import google.cloud.secretmanager_v1",
        "firestore+tasks": "import google.cloud.firestore, google.cloud.tasks_v2"}


def _sdk_import_cpu_ms(statement: str, env: dict[str, str]) -> float:
    code = f"import functions_framework, time; t=time.process_time(); {statement}; print((time.process_time()-t)*1000)"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def _children_cpu_s() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def _first_answer_ms(source: str, target: str, request: tuple[str, str, bytes | None, dict[str, str]],
                     env: dict[str, str]) -> tuple[float, int, float]:
    """Wall ms to the first answer, its status, and the CPU ms the server's processes used."""
    method, path, body, headers = request
    port = free_port()
    binary = Path(sys.executable).parent / "functions-framework"
    cpu_before = _children_cpu_s()
    started = time.perf_counter()
    process = subprocess.Popen([str(binary), "--target", target, "--source", source, "--port", str(port),
                                "--host", "127.0.0.1"], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - local server
                    resp.read()
                    status = resp.status
                break
            except urllib.error.HTTPError as err:
                err.read()
                status = err.code
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{target} did not answer") from None
                time.sleep(0.005)
        elapsed = (time.perf_counter() - started) * 1000
    finally:
        process.terminate()
        process.wait(timeout=10)
    return elapsed, status, (_children_cpu_s() - cpu_before) * 1000


def run(n: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with Emulator() as emulator, tempfile.TemporaryDirectory() as tmp:
        env = {
            "PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT / 'shared'}:{ROOT}",
            "FIRESTORE_EMULATOR_HOST": emulator.host, "SPOKESYNC_BACKEND": "cloud", "SPOKESYNC_AUTH_MODE": "token",
            "SPOKESYNC_ADMIN_TOKEN": TOKEN, "SPOKESYNC_TASK_TOKEN": TOKEN, "SPOKESYNC_GCP_PROJECT": PROJECT,
            "SPOKESYNC_TASKS_QUEUE": f"projects/{PROJECT}/locations/x/queues/q", "SPOKESYNC_TASKS_ENDPOINT":
            "127.0.0.1:9", "SPOKESYNC_SYNC_URL": "http://127.0.0.1:9/", "SPOKESYNC_SECRET_MANAGER_ENDPOINT":
            "127.0.0.1:9",
        }
        baseline = Path(tmp) / "main.py"
        baseline.write_text(BASELINE)
        cases = {"baseline": (str(baseline), "baseline", ("GET", "/", None, {}))}
        for name, (source, target, method, path, body, headers) in FUNCTIONS.items():
            cases[name] = (source, target, (method, path, body, headers))
        for name, (source, target, request) in cases.items():
            imports = [_import_ms(source, env) for _ in range(n)]
            answers = [_first_answer_ms(source, target, request, env) for _ in range(n)]
            results[name] = {
                "import_ms": round(statistics.median(imports), 1),
                "first_answer_ms": round(statistics.median(a for a, _, _ in answers), 1),
                "first_answer_cpu_ms": round(statistics.median(c for _, _, c in answers), 1),
                "status": answers[-1][1],
            }
        sdks = {name: round(statistics.median(_sdk_import_cpu_ms(statement, env) for _ in range(n)), 1)
                for name, statement in SDKS.items()}
    base = results["baseline"]
    for name, figures in results.items():
        if name != "baseline":
            figures["over_baseline_ms"] = round(figures["first_answer_ms"] - base["first_answer_ms"], 1)
            figures["ratio"] = round(figures["first_answer_ms"] / base["first_answer_ms"], 2)
            figures["cpu_ratio"] = round(figures["first_answer_cpu_ms"] / base["first_answer_cpu_ms"], 2)
    return {"functions": results, "sdk_import_cpu_ms": sdks, "runs_each": n,
            "note": "medians; cloud backend against the Firestore emulator; ratios against the bare function"}
