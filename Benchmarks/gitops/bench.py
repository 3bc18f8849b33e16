"""Times Stagecraft's GitOps loop; see run. Everything lives under Benchmarks/work/gitops (git-ignored)."""
import json, os, re, shutil, statistics, subprocess, sys, time, urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from fleet import ENV as env, deploy_fleet, free_port, run, write_fleet  # noqa: E402

stagecraft, root, repetitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
work = os.path.join(root, "Benchmarks/work/gitops")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


def timed(args, cwd, expect=(0,)):
    start = time.perf_counter()
    result = run(args, cwd, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode not in expect:
        sys.exit(f"{' '.join(args)} exited {result.returncode}:\n{result.stderr}{result.stdout}")
    return elapsed


def new_repo(path, files_from=None):
    os.makedirs(path)
    if files_from:  # the example as shipped (committed files, pins cleared), whatever the checkout holds
        run([os.path.join(files_from, "scripts/example"), path], files_from)
    with open(os.path.join(path, ".gitignore"), "w") as f:
        f.write(".stagecraft/\n")
    run(["git", "init", "-q", "-b", "main"], path)


def set_ports(path):
    ports = {}
    for name in os.listdir(os.path.join(path, "environments")):
        file = os.path.join(path, "environments", name)
        port = free_port()
        text = re.sub(r"port: \d+", f"port: {port}", open(file).read())
        open(file, "w").write(text)
        ports[name[:-5]] = port
    return ports


def commit(path, message):
    run(["git", "add", "-A"], path)
    run(["git", "commit", "-q", "-m", message], path)


def model_version(port, model):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}", timeout=5) as response:
        return json.load(response).get("versions", [None])


def stop_all(path):
    for name in ["dev", "qa", "prod"]:
        run([stagecraft, "stop", "--env", name], path, check=False)


ms = lambda seconds: f"{seconds * 1000:.1f} ms"
rows = []

# 1. Commit → serving in dev.
example = os.path.join(work, "example")
new_repo(example, files_from=root)
ports = set_ports(example)
commit(example, "example")
start = time.perf_counter()
run([stagecraft, "reconcile", "--env", "dev"], example)
cold = time.perf_counter() - start
manifest = os.path.join(example, "manifests/penguins.yaml")
text = open(manifest).read()
open(manifest, "w").write(text.replace("learningRate: 0.1", "learningRate: 0.2"))
commit(example, "penguins: learning rate 0.2")
start = time.perf_counter()
run([stagecraft, "reconcile", "--env", "dev"], example)
warm = time.perf_counter() - start
status = json.loads(run([stagecraft, "status", "--env", "dev", "--output", "json"], example).stdout)
assert all(row["sync"] == "Synced" for row in status), status
stop_all(example)
rows.append(("commit → serving, dev, cold (clone: build 2 models, start server, verify, serve)", f"{cold:.2f} s", "≤ 5 s", ""))
rows.append(("commit → serving, dev, warm (manifest commit: build, promote, verify, switch)", f"{warm:.2f} s", "≤ 5 s", ""))

# 2. 50 models × 3 environments.
fleet = os.path.join(work, "fleet")
new_repo(fleet)
write_fleet(fleet, root, free_port)
commit(fleet, "50 models, 3 environments")
start = time.perf_counter()
run([stagecraft, "reconcile", "--env", "dev"], fleet)
first_dev = time.perf_counter() - start
# qa and prod pin what dev pins (one commit each), then reconcile once.
deploy_fleet(fleet, lambda name: name == "dev" or run([stagecraft, "reconcile", "--env", name], fleet),
             lambda message: commit(fleet, message))
noop, plans = [], []
for env_name in ["dev", "qa", "prod"]:
    noop += [timed([stagecraft, "reconcile", "--env", env_name], fleet) for _ in range(repetitions)]
    plans += [timed([stagecraft, "plan", "--env", env_name], fleet) for _ in range(repetitions)]
stop_all(fleet)
rows.append(("first reconcile of dev, 50 models (build, verify, serve 50)", f"{first_dev:.2f} s", "", ""))
rows.append(("no-op reconcile, 50 models (median over dev, qa, prod)", ms(statistics.median(noop)), "≤ 200 ms", f"max {ms(max(noop))}"))
rows.append(("plan, 50 models, in sync (median over dev, qa, prod)", ms(statistics.median(plans)), "", f"max {ms(max(plans))}"))

# 3. History on 10,000 commits, every 10th changing environments/prod.yaml.
history = os.path.join(work, "history")
new_repo(history, files_from=root)
commit(history, "example")
stream = []
for i in range(10_000):
    if i % 10 == 0:
        path, body = "environments/prod.yaml", open(os.path.join(root, "environments/prod.yaml")).read() + f"# change {i}\n"
    else:
        path, body = "notes/changelog.txt", f"change {i}\n"
    message = f"commit {i}"
    stream.append(f"commit refs/heads/main\ncommitter bench <bench@localhost> {1_700_000_000 + i} +0000\n"
                  f"data {len(message)}\n{message}\n" + ("from refs/heads/main^0\n" if i == 0 else "")
                  + f"M 100644 inline {path}\ndata {len(body.encode())}\n{body}\n")
run(["git", "fast-import", "--quiet"], history, stdin="".join(stream))
run(["git", "reset", "-q", "--hard", "main"], history)
gitlog = [timed(["git", "log", "--format=%H", "--", "environments/prod.yaml"], history) for _ in range(repetitions)]
uncached = []
for _ in range(repetitions):
    shutil.rmtree(os.path.join(history, ".stagecraft/cache"), ignore_errors=True)
    uncached.append(timed([stagecraft, "history", "--env", "prod"], history))
cached = [timed([stagecraft, "history", "--env", "prod"], history) for _ in range(repetitions)]
count = len(json.loads(run([stagecraft, "history", "--env", "prod", "--output", "json"], history).stdout))
git_count = len(run(["git", "log", "--format=%H", "--", "environments/prod.yaml"], history).stdout.split())
assert count == git_count, (count, git_count)
g = statistics.median(gitlog)
rows.append((f"git log -- environments/prod.yaml, 10,000 commits ({git_count} match)", ms(g), "reference", ""))
rows.append(("stagecraft history --env prod, no cache", ms(statistics.median(uncached)), "≤ 1/2 of git log",
             f"{statistics.median(uncached) / g:.2f} × git log"))
rows.append(("stagecraft history --env prod, cached", ms(statistics.median(cached)), "≤ 20 ms", f"{statistics.median(cached) / g:.2f} × git log"))

# 4. File queue: a 1,000-row file from drop (rename into inbox/) to its result in outbox/.
queue_repo = os.path.join(work, "queue")
new_repo(queue_repo, files_from=root)
commit(queue_repo, "example")
digest = json.loads(run([stagecraft, "build", "penguins", "--output", "json"], queue_repo).stdout)["digest"]
dev = os.path.join(queue_repo, "environments/dev.yaml")
text = open(dev).read()
head = run(["git", "rev-parse", "--short=12", "HEAD"], queue_repo).stdout.strip()
open(dev, "w").write(text.replace("penguins:\n      version: ~", f"penguins:\n      version: {digest[:12]}").replace(
    f"version: {digest[:12]}\n      source: ~", f"version: {digest[:12]}\n      source: {head}"))
commit(queue_repo, "pin penguins")
folder = os.path.join(queue_repo, "q")
worker = subprocess.Popen([stagecraft, "queue", "--env", "dev", "--model", "penguins", "--dir", folder, "--poll", "1ms"],
                          cwd=queue_repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
test_lines = open(os.path.join(root, "data/penguins/test.csv")).read().splitlines()
body = "\n".join([test_lines[0]] + [test_lines[1 + i % (len(test_lines) - 1)] for i in range(1000)]) + "\n"
while not os.path.isdir(os.path.join(folder, "inbox")):
    time.sleep(0.01)
latencies = []
for i in range(repetitions + 1):
    staged = os.path.join(folder, f".staged-{i}.csv")
    open(staged, "w").write(body)
    result = os.path.join(folder, "outbox", f"batch-{i}.csv")
    start = time.perf_counter()
    os.rename(staged, os.path.join(folder, "inbox", f"batch-{i}.csv"))
    while not os.path.exists(result):
        time.sleep(0.0005)
    if i > 0:  # the first warms the worker
        latencies.append(time.perf_counter() - start)
worker.terminate()
worker.wait()
rows.append(("queue: 1,000-row file, drop → outbox (penguins)", ms(statistics.median(latencies)), "≤ 50 ms", f"max {ms(max(latencies))}"))

width = max(len(r[0]) for r in rows)
print(f"{'measure'.ljust(width)}  {'stagecraft':>10}  {'target':<18}  note")
for name, value, target, note in rows:
    print(f"{name.ljust(width)}  {value:>10}  {target:<18}  {note}")
print(f"(median of {repetitions} runs where repeated; {os.cpu_count()} cores)")
