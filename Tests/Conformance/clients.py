"""Client conformance: the real clients of the field, unchanged, against a running Stagecraft server.

    python clients.py --url 127.0.0.1:PORT --case MODEL:FEATURES.csv:EXPECTED.csv [--case ...]

FEATURES.csv holds the rows to send (a header, the model's feature columns, no missing values); EXPECTED.csv is
`stagecraft predict` on the same rows (its `prediction` and `probability_<class>` columns). Every client's predictions
must equal it: labels exactly, numbers bit for bit. Prints one line per check; exits 1 when any fails.
"""
import argparse, csv, json, sys

import numpy as np
import requests
import tritonclient.http as triton

parser = argparse.ArgumentParser()
parser.add_argument("--url", required=True)
parser.add_argument("--case", action="append", required=True)
args = parser.parse_args()
failures = []


def check(name, ok, detail=""):
    print(f"{'ok ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""), flush=True)
    if not ok:
        failures.append(name)


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows


client = triton.InferenceServerClient(url=args.url)
check("tritonclient: server live", client.is_server_live())
check("tritonclient: server ready", client.is_server_ready())

for case in args.case:
    model, features_path, expected_path = case.split(":")
    rows = read_csv(features_path)
    expected = read_csv(expected_path)
    labels = [row["prediction"] for row in expected]
    class_columns = [name for name in expected[0] if name.startswith("probability_")]
    probabilities = np.array([[float(row[name]) for name in class_columns] for row in expected]) if class_columns else None
    check(f"{model}: tritonclient model ready", client.is_model_ready(model))
    metadata = client.get_model_metadata(model)
    inputs_meta = metadata["inputs"]
    check(f"{model}: metadata names every feature", [i["name"] for i in inputs_meta] == list(rows[0].keys()),
          f"{[i['name'] for i in inputs_meta]} vs {list(rows[0].keys())}")
    outputs = [o["name"] for o in metadata["outputs"]]

    def tensors(binary):
        made = []
        for meta in inputs_meta:
            name = meta["name"]
            if meta["datatype"] == "BYTES":
                data = np.array([row[name].encode() for row in rows], dtype=np.object_)
            else:
                data = np.array([float(row[name]) for row in rows], dtype=np.float64)
            tensor = triton.InferInput(name, [len(rows)], meta["datatype"])
            tensor.set_data_from_numpy(data, binary_data=binary)
            made.append(tensor)
        return made

    for binary_in in (True, False):
        for binary_out in (True, False, None):
            label = f"{model}: tritonclient http, {'binary' if binary_in else 'JSON'} inputs, " + \
                    {True: "binary outputs", False: "JSON outputs", None: "default outputs"}[binary_out]
            requested = None if binary_out is None else [triton.InferRequestedOutput(o, binary_data=binary_out) for o in outputs]
            result = client.infer(model, tensors(binary_in), outputs=requested, request_id=f"conformance-{binary_in}-{binary_out}")
            got = result.as_numpy("predict")
            got_labels = [v.decode() if isinstance(v, bytes) else str(v) for v in got.ravel()]
            same = got_labels == labels
            if probabilities is not None:
                proba = result.as_numpy("predict_proba")
                same = same and proba is not None and proba.shape == probabilities.shape and np.array_equal(proba, probabilities)
            check(label, same, f"{got_labels[:3]}… vs {labels[:3]}…")
            check(label + ", names the version", (result.get_response().get("model_version") or "") != "")

    # MLflow scoring as `requests` posts it: the two pandas formats.
    columns = list(rows[0].keys())
    def typed(row, name):
        meta = next(m for m in inputs_meta if m["name"] == name)
        return row[name] if meta["datatype"] == "BYTES" else float(row[name])
    split = {"dataframe_split": {"columns": columns, "data": [[typed(row, c) for c in columns] for row in rows]}}
    records = {"dataframe_records": [{c: typed(row, c) for c in columns} for row in rows]}
    as_lists = [[typed(row, c) for c in columns] for row in rows]
    as_objects = [{c: typed(row, c) for c in columns} for row in rows]
    as_columns = {c: [typed(row, c) for row in rows] for c in columns}
    bodies = (("dataframe_split", split), ("dataframe_records", records), ("instances as lists", {"instances": as_lists}),
              ("instances as objects", {"instances": as_objects}), ("inputs as lists", {"inputs": as_lists}),
              ("inputs as a column dict", {"inputs": as_columns}))
    for name, body in bodies:
        response = requests.post(f"http://{args.url}/invocations", params={"model": model}, json=body, timeout=30)
        predictions = response.json().get("predictions") if response.status_code == 200 else None
        check(f"{model}: MLflow {name} via requests", predictions == labels, f"{response.status_code} {response.text[:200]}")
    text = ",".join(columns) + "\n" + "".join(",".join(row[c] for c in columns) + "\n" for row in rows)
    response = requests.post(f"http://{args.url}/invocations?model={model}", data=text.encode(), headers={"Content-Type": "text/csv"}, timeout=30)
    check(f"{model}: MLflow CSV via requests", response.status_code == 200 and response.json().get("predictions") == labels,
          f"{response.status_code} {response.text[:200]}")

    # KServe V1, as its clients post it.
    response = requests.get(f"http://{args.url}/v1/models/{model}", timeout=30)
    check(f"{model}: KServe V1 model ready", response.status_code == 200 and response.json() == {"name": model, "ready": True}, response.text[:200])
    for name, instances in (("lists", as_lists), ("objects", as_objects)):
        response = requests.post(f"http://{args.url}/v1/models/{model}:predict", json={"instances": instances}, timeout=30)
        check(f"{model}: KServe V1 predict, instances as {name}",
              response.status_code == 200 and response.json().get("predictions") == labels, f"{response.status_code} {response.text[:200]}")

    # Metadata a client builds requests from: the class order of predict_proba, each categorical input's levels.
    if class_columns:
        proba_meta = next(o for o in metadata["outputs"] if o["name"] == "predict_proba")
        check(f"{model}: metadata gives predict_proba's class order",
              proba_meta.get("parameters", {}).get("classes") == [c[len("probability_"):] for c in class_columns], str(proba_meta))
    for meta in inputs_meta:
        if meta["datatype"] == "BYTES":
            levels = meta.get("parameters", {}).get("levels")
            check(f"{model}: metadata gives input '{meta['name']}' its levels",
                  isinstance(levels, list) and all(row[meta["name"]] in levels for row in rows), str(meta))

if failures:
    print(f"{len(failures)} check(s) failed: {', '.join(failures)}")
    sys.exit(1)
print("every client check passed")
