"""A fleet of 50 models × 3 environments (dev tracks main, qa and prod pin what dev serves), shared by the benchmarks."""
import os
import shutil
import socket
import subprocess
import sys

NAMES = [f"model-{i:02d}" for i in range(50)]
IDENTITY = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost", "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@localhost"}
ENV = {**os.environ, **IDENTITY, "NO_COLOR": "1"}


def run(args, cwd, check=True, stdin=None):
    """Runs a command as the benchmarks' git identity, without colours; exits with its output when it fails."""
    result = subprocess.run(args, cwd=cwd, env=ENV, input=stdin, capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.exit(f"{' '.join(args)} exited {result.returncode}:\n{result.stderr}{result.stdout}")
    return result


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_fleet(path, root, free_port):
    """Writes the manifests, the environment files (fresh ports) and the data into `path` (a new repository)."""
    os.makedirs(os.path.join(path, "manifests"))
    os.makedirs(os.path.join(path, "environments"))
    shutil.copytree(os.path.join(root, "data/breast-cancer"), os.path.join(path, "data/breast-cancer"))
    for i, name in enumerate(NAMES):
        open(os.path.join(path, "manifests", f"{name}.yaml"), "w").write(f"""apiVersion: stagecraft/v1
kind: Model
metadata:
  name: {name}
spec:
  task: binary-classification
  data: {{train: data/breast-cancer/train.csv, test: data/breast-cancer/test.csv, target: diagnosis}}
  trainer:
    algorithm: logistic-regression
    params: {{l2: {0.001 * (i + 1):.3f}}}
    seed: 42
""")
    models = "".join(f"    {name}:\n      version: ~\n      source: ~\n" for name in NAMES)
    for env_name, upstream in [("dev", None), ("qa", "dev"), ("prod", "qa")]:
        open(os.path.join(path, "environments", f"{env_name}.yaml"), "w").write(
            f"apiVersion: stagecraft/v1\nkind: Environment\nmetadata:\n  name: {env_name}\nspec:\n"
            + (f"  upstream: {upstream}\n" if upstream else "  track: true\n")
            + f"  server: {{host: 127.0.0.1, port: {free_port()}}}\n  gates:\n    accuracy: \">= 0.8\"\n  models:\n{models}")


def deploy_fleet(path, reconcile, commit):
    """Reconciles dev, then pins what dev serves in qa and prod (a commit each) and reconciles them."""
    reconcile("dev")
    dev_text = open(os.path.join(path, "environments/dev.yaml")).read()
    dev_models = dev_text[dev_text.index("  models:\n"):]
    for env_name in ["qa", "prod"]:
        file = os.path.join(path, "environments", f"{env_name}.yaml")
        text = open(file).read()
        open(file, "w").write(text[:text.index("  models:\n")] + dev_models)
        commit(f"{env_name}: pin what dev serves")
        reconcile(env_name)
