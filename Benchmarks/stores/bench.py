"""Times Stagecraft on shared stores; see run. Everything lives under Benchmarks/work/stores (git-ignored)."""
import glob, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from fleet import deploy_fleet, write_fleet  # noqa: E402

stagecraft, root, repetitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
work = os.path.join(root, "Benchmarks/work/stores")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
identity = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost", "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@localhost"}
credentials = {"AWS_ACCESS_KEY_ID": "AKIABENCH", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_REGION": "us-east-1"}
os.environ.update(credentials)
env = {**os.environ, **identity, "NO_COLOR": "1"}


def run(args, cwd=None, check=True):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.exit(f"{' '.join(args)} exited {result.returncode}:\n{result.stderr}{result.stdout}")
    return result


def timed(args, cwd):
    start = time.perf_counter()
    run(args, cwd)
    return time.perf_counter() - start


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"nothing listened on {port}")


class Postgres:
    """Debian's PostgreSQL in a temporary folder (as the user postgres when this runs as root)."""

    def __init__(self):
        self.bin = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
        self.data = tempfile.mkdtemp(prefix="stagecraft-bench-pg-")
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
        self.port = free_port()
        self.ctl(["initdb", "-D", self.data, "-U", "stagecraft", "--auth=trust", "--no-sync"])
        self.ctl(["pg_ctl", "-D", self.data, "-l", self.data + "/log", "-w", "-o",
                  f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1", "start"])
        self.ctl(["createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "stagecraft", "stagecraft"])
        self.url = f"postgres://stagecraft@127.0.0.1:{self.port}/stagecraft?sslmode=disable"

    def ctl(self, command):
        result = subprocess.run(self.as_user + [f"{self.bin}/{command[0]}"] + command[1:], capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, cwd="/tmp")
        if result.returncode != 0:
            sys.exit(f"{command[0]}: {result.stderr}")

    def stop(self):
        self.ctl(["pg_ctl", "-D", self.data, "-w", "-m", "fast", "stop"])
        shutil.rmtree(self.data, ignore_errors=True)


def fleet(name, settings):
    """A fleet repository with `settings` as stagecraft.yaml, deployed in dev, qa and prod; returns its path."""
    path = os.path.join(work, name)
    os.makedirs(path)
    run(["git", "init", "-q", "-b", "main"], path)
    open(os.path.join(path, ".gitignore"), "w").write(".stagecraft/\n")
    write_fleet(path, root, free_port)
    open(os.path.join(path, "stagecraft.yaml"), "w").write(
        "apiVersion: stagecraft/v1\nkind: Project\nspec:\n" + "".join(f"  {line}\n" for line in settings))

    def commit(message):
        run(["git", "add", "-A"], path)
        run(["git", "commit", "-q", "-m", message], path)

    commit("50 models, 3 environments")
    deploy_fleet(path, lambda env_name: run([stagecraft, "reconcile", "--env", env_name], path), commit)
    return path


def noop(path):
    """No-op reconciles: the median over dev, qa and prod, `repetitions` each."""
    times = [timed([stagecraft, "reconcile", "--env", e], path) for e in ["dev", "qa", "prod"] for _ in range(repetitions)]
    return statistics.median(times), max(times)


def stop_servers(path):
    for env_name in ["dev", "qa", "prod"]:
        run([stagecraft, "stop", "--env", env_name], path, check=False)


postgres = Postgres()
s3_port = free_port()
moto = subprocess.Popen([os.path.join(root, ".venv-s3/bin/moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
rows = []
try:
    wait_for(s3_port)
    import boto3
    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}").create_bucket(Bucket="bench-models")
    repositories = {
        "SQLite": fleet("sqlite", ["stateStore: .stagecraft/state.db"]),
        "PostgreSQL": fleet("postgres", [f"stateStore: {postgres.url}"]),
        "PostgreSQL + S3 artifacts": fleet("postgres-s3", [
            "artifacts: s3://bench-models/stagecraft", f's3: {{endpoint: "http://127.0.0.1:{s3_port}", pathStyle: true}}',
            f"stateStore: {postgres.url.replace('/stagecraft?', '/postgres?')}"]),
    }
    # Interleaved rounds, so that the machine's noise falls on every store alike.
    results = {name: [] for name in repositories}
    for _ in range(3):
        for name, path in repositories.items():
            results[name].append(noop(path))
    for path in repositories.values():
        stop_servers(path)

    # Three hosts sharing PostgreSQL and S3: a clone of the PostgreSQL + S3 fleet per environment (its own
    # .stagecraft/: an empty artifact cache, its own server), each reconciling its environment; then no-op reconciles
    # on each host, interleaved.
    shared = repositories["PostgreSQL + S3 artifacts"]
    hosts = {}
    for env_name in ["dev", "qa", "prod"]:
        hosts[env_name] = os.path.join(work, f"host-{env_name}")
        run(["git", "clone", "-q", shared, hosts[env_name]])
        run([stagecraft, "reconcile", "--env", env_name], hosts[env_name])
    host_noop = []
    for _ in range(repetitions):
        for env_name, path in hosts.items():
            host_noop.append(timed([stagecraft, "reconcile", "--env", env_name], path))
    for env_name, path in hosts.items():
        run([stagecraft, "stop", "--env", env_name], path, check=False)
    rows.append(("no-op reconcile, 50 models, 3 hosts sharing PostgreSQL + S3, each its environment (median)",
                 f"{statistics.median(host_noop) * 1000:.1f} ms", "≤ 200 ms",
                 f"max {max(host_noop) * 1000:.1f} ms; a lease taken and given up in each"))

    # Push to serving on qa's host through a webhook: qa's reconciler knows the repository only by URL and watches it
    # with an hour's poll; a promotion is pushed, a signed delivery posted, and the clock stops when qa's server answers
    # with the promoted version. Both versions were built on another host (in S3): qa's host never builds.
    origin = os.path.join(work, "origin.git")
    example = os.path.join(work, "example")
    os.makedirs(example)
    run([os.path.join(root, "scripts/example"), example], root)
    open(os.path.join(example, ".gitignore"), "w").write(".stagecraft/\n")
    qa_port = free_port()
    qa_file = os.path.join(example, "environments/qa.yaml")
    qa_text = open(qa_file).read()
    import re
    open(qa_file, "w").write(re.sub(r"port: \d+", f"port: {qa_port}", qa_text))
    open(os.path.join(example, "stagecraft.yaml"), "w").write(
        "apiVersion: stagecraft/v1\nkind: Project\nspec:\n  artifacts: s3://bench-models/example\n"
        f'  s3: {{endpoint: "http://127.0.0.1:{s3_port}", pathStyle: true}}\n'
        f"  stateStore: {postgres.url.replace('/stagecraft?', '/webhook?')}\n")
    # A database of its own: the fleet's records (in the others) name models this project does not have.
    postgres.ctl(["createdb", "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "stagecraft", "webhook"])
    run(["git", "init", "-q", "-b", "main"], example)
    run(["git", "add", "-A"], example)
    run(["git", "commit", "-q", "-m", "example on shared stores"], example)
    versions = [json.loads(run([stagecraft, "build", "breast-cancer", "--output", "json"], example).stdout)["digest"]]
    manifest = os.path.join(example, "manifests/breast-cancer.yaml")
    text = open(manifest).read()
    open(manifest, "w").write(re.sub(r"l2: ([0-9.]+)", lambda m: f"l2: {float(m.group(1)) * 2}", text, count=1))
    run(["git", "commit", "-q", "-am", "breast-cancer: l2 doubled"], example)
    versions.append(json.loads(run([stagecraft, "build", "breast-cancer", "--output", "json"], example).stdout)["digest"])
    assert versions[0] != versions[1], versions
    run(["git", "clone", "-q", "--bare", example, origin])
    run(["git", "remote", "add", "origin", origin], example)
    run(["git", "fetch", "-q", "origin"], example)
    run(["git", "branch", "-q", "-u", "origin/main"], example)
    qa_host = os.path.join(work, "host-qa-webhook")
    os.makedirs(qa_host)
    secret = os.path.join(qa_host, "hook-secret")
    open(secret, "w").write("bench-secret\n")
    hook_port = free_port()
    watcher = subprocess.Popen(
        [stagecraft, "reconcile", "--env", "qa", "--repo", "file://" + origin, "--ref", "main", "--watch", "--interval", "1h",
         "--webhook", f"127.0.0.1:{hook_port}", "--webhook-secret-file", secret],
        cwd=qa_host, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import hashlib, hmac, urllib.request

    def deliver():
        body = b'{"ref": "refs/heads/main"}'
        signature = "sha256=" + hmac.new(b"bench-secret", body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(f"http://127.0.0.1:{hook_port}/", data=body, method="POST", headers={
            "X-GitHub-Event": "push", "X-Hub-Signature-256": signature, "Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=5).read()

    def serving():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{qa_port}/v2/models/breast-cancer", timeout=2) as response:
                return json.load(response).get("versions", [None])[0]
        except Exception:
            return None

    pushes = []
    try:
        wait_for(hook_port)
        for index in range(1 + repetitions):
            version = versions[index % 2]
            run([stagecraft, "promote", "breast-cancer", "--to", "qa", "--version", version[:12], "--force", "--push"], example)
            start = time.perf_counter()
            deliver()
            while serving() != version and time.perf_counter() - start < 60:
                time.sleep(0.005)
            if serving() != version:
                sys.exit(f"qa did not serve {version[:12]} within 60 s of the push")
            if index > 0:  # the first starts qa's server and fills its cache: not timed
                pushes.append(time.perf_counter() - start)
    finally:
        watcher.terminate()
        watcher.wait()
        run([stagecraft, "stop", "--env", "qa", "--repo", origin], qa_host, check=False)
        for pidfile in glob.glob(os.path.join(qa_host, "**/*.pid"), recursive=True):
            try:
                os.kill(int(open(pidfile).read().strip()), 15)
            except (ValueError, OSError):
                pass
    rows.append(("push → serving on qa's host through a webhook (promotion pushed, artifact from S3; median)",
                 f"{statistics.median(pushes):.2f} s", "≤ 2 s",
                 f"max {max(pushes):.2f} s; polling: Argo CD 180 s, Kargo 300 s by default"))

    # A model whose 200 MB training file is in S3: the build's download (cold cache) next to `aws s3 cp` of the same
    # object from the same server, three times each, interleaved; then a warm build, which downloads nothing.
    data = os.path.join(work, "big.csv")
    source = open(os.path.join(root, "data/breast-cancer/train.csv")).read().splitlines()
    with open(data, "w") as out:
        out.write(source[0] + "\n")
        body = "\n".join(source[1:]) + "\n"
        while out.tell() < 200 * 1024 * 1024:
            out.write(body)
    size = os.path.getsize(data)
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}")
    s3.create_bucket(Bucket="bench-data")
    s3.upload_file(data, "bench-data", "big/train.csv")
    big = os.path.join(work, "big")
    os.makedirs(os.path.join(big, "manifests"))
    run(["git", "init", "-q", "-b", "main"], big)
    shutil.copytree(os.path.join(root, "data/breast-cancer"), os.path.join(big, "data/breast-cancer"))
    open(os.path.join(big, ".gitignore"), "w").write(".stagecraft/\n")
    open(os.path.join(big, "stagecraft.yaml"), "w").write(
        f'apiVersion: stagecraft/v1\nkind: Project\nspec:\n  s3: {{endpoint: "http://127.0.0.1:{s3_port}", pathStyle: true}}\n')
    open(os.path.join(big, "manifests/big.yaml"), "w").write(
        "apiVersion: stagecraft/v1\nkind: Model\nmetadata:\n  name: big\nspec:\n  task: binary-classification\n"
        "  data: {train: s3://bench-data/big/train.csv, test: data/breast-cancer/test.csv, target: diagnosis}\n"
        "  trainer: {algorithm: logistic-regression, params: {l2: 0.01}, seed: 1}\n")
    run(["git", "add", "-A"], big)
    run(["git", "commit", "-q", "-m", "a model on 200 MB in S3"], big)
    aws = os.path.join(root, "Benchmarks/.venv-stores/bin/aws")
    ours, theirs = [], []
    for _ in range(3):
        shutil.rmtree(os.path.join(big, ".stagecraft"), ignore_errors=True)
        built = json.loads(run([stagecraft, "build", "big", "--output", "json"], big).stdout)
        info = json.load(open(os.path.join(big, ".stagecraft/artifacts", built["digest"], "build.json")))
        ours.append(info["timings"]["download"])
        target = os.path.join(work, "copy.csv")
        theirs.append(timed([aws, "s3", "cp", "--quiet", "--endpoint-url", f"http://127.0.0.1:{s3_port}",
                             "s3://bench-data/big/train.csv", target], work))
        os.remove(target)
    shutil.rmtree(os.path.join(big, ".stagecraft/artifacts"))
    run([stagecraft, "build", "big"], big)
    built = json.loads(run([stagecraft, "builds", "--output", "json"], big).stdout)[0]
    warm = json.load(open(os.path.join(big, ".stagecraft/artifacts", built["digest"], "build.json")))["timings"]
    mb = size / 1e6
    rate, reference = mb / statistics.median(ours), mb / statistics.median(theirs)
    rows.append((f"build, {mb:.0f} MB training CSV in S3, cold cache: download", f"{rate:.0f} MB/s", "≥ aws s3 cp",
                 f"aws s3 cp {reference:.0f} MB/s ({rate / reference:.2f}×)"))
    rows.append(("build, same data, warm cache: bytes downloaded", "0" if "download" not in warm else "some", "0", ""))
    medians = {name: statistics.median(m for m, _ in values) for name, values in results.items()}
    for name in repositories:
        worst = max(w for _, w in results[name])
        ratio = medians[name] / medians["SQLite"]
        target = "" if name == "SQLite" else ("≤ 1.5× SQLite" if name == "PostgreSQL" else "")
        rows.append((f"no-op reconcile, 50 models, state in {name} (median over dev, qa, prod)",
                     f"{medians[name] * 1000:.1f} ms", target, f"{ratio:.2f}× SQLite, max {worst * 1000:.1f} ms"))
finally:
    moto.terminate()
    postgres.stop()

width = max(len(r[0]) for r in rows)
print(f"{'':{width}}  {'measured':>10}  {'target':<14}  reference")
for name, measured, target, reference in rows:
    print(f"{name:{width}}  {measured:>10}  {target:<14}  {reference}")
