"""Client conformance for the kserve SDK's own clients (InferenceRESTClient for V2 and V1, InferenceGRPCClient), in a
process of its own: the kserve SDK and tritonclient's gRPC module register the same protocol messages, so one process
cannot import both.

    python kserve_clients.py --url 127.0.0.1:PORT --grpc 127.0.0.1:GRPC_PORT --case MODEL:FEATURES.csv:EXPECTED.csv [--case ...]

The same cases as clients.py: every answer must equal `stagecraft predict`, labels exactly, numbers bit for bit.
"""
import argparse, asyncio, csv, sys

import numpy as np
import requests

parser = argparse.ArgumentParser()
parser.add_argument("--url", required=True)
parser.add_argument("--grpc", required=True)
parser.add_argument("--case", action="append", required=True)
args = parser.parse_args()
sys.argv = sys.argv[:1]  # the kserve package parses the command line of its model server when imported

from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig  # noqa: E402
failures = []


def check(name, ok, detail=""):
    print(f"{'ok ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""), flush=True)
    if not ok:
        failures.append(name)


async def run_case(model, rows, labels, probabilities):
    base = f"http://{args.url}"
    metadata = requests.get(f"{base}/v2/models/{model}", timeout=30).json()["inputs"]

    def request():
        made = []
        for meta in metadata:
            name = meta["name"]
            values = [row[name] if meta["datatype"] == "BYTES" else float(row[name]) for row in rows]
            made.append(InferInput(name, [len(rows)], meta["datatype"], data=values))
        return InferRequest(model_name=model, infer_inputs=made, request_id="conformance-kserve")

    def same_as_predict(outputs, label):
        by_name = {o.name: o for o in outputs}
        got = [v.decode() if isinstance(v, bytes) else str(v) for v in np.array(by_name["predict"].as_numpy()).ravel()]
        same = got == labels
        if probabilities is not None:
            same = same and np.array_equal(np.array(by_name["predict_proba"].as_numpy()).reshape(probabilities.shape), probabilities)
        check(label, same, f"{got[:3]}…")

    rest = InferenceRESTClient(RESTConfig(protocol="v2"))
    check(f"{model}: kserve REST live, ready, model ready",
          await rest.is_server_live(base) and await rest.is_server_ready(base) and await rest.is_model_ready(base, model))
    same_as_predict((await rest.infer(base, request(), model_name=model)).outputs, f"{model}: kserve InferenceRESTClient (V2)")
    v1 = InferenceRESTClient(RESTConfig(protocol="v1"))
    instances = [[row[m["name"]] if m["datatype"] == "BYTES" else float(row[m["name"]]) for m in metadata] for row in rows]
    answer = await v1.infer(base, {"instances": instances}, model_name=model)
    check(f"{model}: kserve InferenceRESTClient (V1)", answer.get("predictions") == labels, str(answer)[:200])
    client = InferenceGRPCClient(url=args.grpc)
    check(f"{model}: kserve gRPC live, ready, model ready",
          await client.is_server_live() and await client.is_server_ready() and await client.is_model_ready(model))
    same_as_predict((await client.infer(request())).outputs, f"{model}: kserve InferenceGRPCClient")


for case in args.case:
    model, features_path, expected_path = case.split(":")
    with open(features_path, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(expected_path, newline="") as f:
        expected = list(csv.DictReader(f))
    labels = [row["prediction"] for row in expected]
    classes = [name for name in expected[0] if name.startswith("probability_")]
    probabilities = np.array([[float(row[name]) for name in classes] for row in expected]) if classes else None
    asyncio.run(run_case(model, rows, labels, probabilities))

if failures:
    print(f"{len(failures)} check(s) failed: {', '.join(failures)}")
    sys.exit(1)
print("every kserve client check passed")
