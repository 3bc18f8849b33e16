"""Times the console's pages on a fleet of 50 models × 3 environments; see run. Work lives under
Benchmarks/work/console (git-ignored)."""
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from fleet import ENV, NAMES, deploy_fleet, free_port, write_fleet  # noqa: E402
from fleet import run as run_in  # noqa: E402

stagecraft, root, requests = sys.argv[1], sys.argv[2], int(sys.argv[3])
work = os.path.join(root, "Benchmarks/work/console")
shutil.rmtree(work, ignore_errors=True)
fleet = os.path.join(work, "fleet")
os.makedirs(fleet)


def run(args, check=True):
    return run_in(args, fleet, check)


def commit(message):
    run(["git", "add", "-A"])
    run(["git", "commit", "-q", "-m", message])


print("setting up 50 models × 3 environments (builds, reconciles)…", file=sys.stderr)
write_fleet(fleet, root, free_port)
open(os.path.join(fleet, ".gitignore"), "w").write(".stagecraft/\n")
run(["git", "init", "-q", "-b", "main"])
commit("fleet")
deploy_fleet(fleet, lambda name: run([stagecraft, "reconcile", "--env", name]), commit)
port = free_port()
console = subprocess.Popen([stagecraft, "console", "--listen", f"127.0.0.1:{port}"], cwd=fleet, env=ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
base = f"http://127.0.0.1:{port}"
try:
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/api/board").read()
            break
        except OSError:
            if time.time() > deadline:
                sys.exit("the console did not start")
            time.sleep(0.1)

    def fetch(path, gzipped=True):
        """(seconds, bytes transferred, bytes of the page) of a GET as a browser sends it (Accept-Encoding: gzip)."""
        request = urllib.request.Request(base + path, headers={"Accept-Encoding": "gzip"} if gzipped else {})
        start = time.perf_counter()
        with urllib.request.urlopen(request) as response:
            body = response.read()
            encoding = response.headers.get("Content-Encoding")
        elapsed = time.perf_counter() - start
        return elapsed, len(body), len(gzip.decompress(body) if encoding == "gzip" else body)

    for _ in range(10):
        fetch("/")
    times = sorted(fetch("/")[0] * 1000 for _ in range(requests))
    p50, p95 = statistics.median(times), times[int(len(times) * 0.95) - 1]
    # After a change (a branch moved), the board is built again from git, the state store and the servers.
    cold = []
    for index in range(5):
        run(["git", "branch", "-f", f"bench-{index}"])
        cold.append(fetch("/")[0] * 1000)
    status = []
    for _ in range(5):
        start = time.perf_counter()
        run([stagecraft, "status", "--output", "json"])
        status.append((time.perf_counter() - start) * 1000)
    pages = ["/", "/api/board", f"/models/{NAMES[0]}", f"/api/models/{NAMES[0]}", "/environments/prod", "/api/environments/prod"]
    sizes = {path: fetch(path)[1:] for path in pages}
finally:
    console.terminate()
    console.wait()
    for name in ["dev", "qa", "prod"]:
        run([stagecraft, "stop", "--env", name], check=False)

print(f"console, 50 models × 3 environments, {requests} requests, 2 cores       measured     budget")
print(f"  board GET /, p50 ms                                          {p50:9.1f}   {30:8}")
print(f"  board GET /, p95 ms                                          {p95:9.1f}          -")
print(f"  board GET / after a branch moved (built again), median ms    {statistics.median(cold):9.1f}          -")
print(f"  stagecraft status --output json (same reads), median ms      {statistics.median(status):9.1f}          -")
for path in pages:
    sent, page = sizes[path]
    print(f"  {path:<24} KB transferred (gzip; page {page / 1000:6.1f} KB)  {sent / 1000:9.1f}   {150:8}")
worst = max(sent for sent, _ in sizes.values()) / 1000
print(f"board p50 {p50:.1f} ms (budget 30: {'met' if p50 <= 30 else 'NOT met'}); "
      f"largest page {worst:.1f} KB (budget 150: {'met' if worst <= 150 else 'NOT met'})")
