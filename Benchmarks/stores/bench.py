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
