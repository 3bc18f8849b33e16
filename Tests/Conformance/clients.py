"""Client conformance: the real clients of the field, unchanged, against a running Stagecraft server.

    python clients.py --url 127.0.0.1:PORT [--grpc 127.0.0.1:GRPC_PORT --token TOKEN] --case MODEL:FEATURES.csv:EXPECTED.csv [--case ...]

FEATURES.csv holds the rows to send (a header, the model's feature columns, no missing values); EXPECTED.csv is
`stagecraft predict` on the same rows (its `prediction` and `probability_<class>` columns). Every client's predictions
must equal it: labels exactly, numbers bit for bit. Prints one line per check; exits 1 when any fails.
"""
import argparse, csv, json, sys

import grpc
import numpy as np
import requests
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.service_pb2 as pb
import tritonclient.grpc.service_pb2_grpc as pb_grpc
import tritonclient.http as triton

parser = argparse.ArgumentParser()
parser.add_argument("--url", required=True)
parser.add_argument("--case", action="append", required=True)
parser.add_argument("--grpc", help="the gRPC address, when the server offers gRPC")
parser.add_argument("--token", help="the admin token, for the repository calls over gRPC")
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

    if args.grpc:
        # tritonclient's gRPC client: raw input contents and raw outputs, as it sends by default.
        gclient = triton_grpc.InferenceServerClient(url=args.grpc)
        check(f"{model}: tritonclient grpc live, ready, model ready",
              gclient.is_server_live() and gclient.is_server_ready() and gclient.is_model_ready(model))
        gmeta = gclient.get_model_metadata(model)
        check(f"{model}: tritonclient grpc metadata names every feature", [i.name for i in gmeta.inputs] == list(rows[0].keys()))
        made = []
        for meta in inputs_meta:
            name = meta["name"]
            data = (np.array([row[name].encode() for row in rows], dtype=np.object_) if meta["datatype"] == "BYTES"
                    else np.array([float(row[name]) for row in rows], dtype=np.float64))
            tensor = triton_grpc.InferInput(name, [len(rows)], meta["datatype"])
            tensor.set_data_from_numpy(data)
            made.append(tensor)
        result = gclient.infer(model, made, request_id="conformance-grpc")
        got_labels = [v.decode() for v in result.as_numpy("predict").ravel()]
        same = got_labels == labels
        if probabilities is not None:
            same = same and np.array_equal(result.as_numpy("predict_proba"), probabilities)
        check(f"{model}: tritonclient grpc, raw contents", same, f"{got_labels[:3]}…")
        check(f"{model}: tritonclient grpc, names the version", result.get_response().model_version != "")
        # Typed contents, as other clients send them, through the protocol's own stub.
        stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(args.grpc))
        request = pb.ModelInferRequest(model_name=model, id="typed")
        for meta in inputs_meta:
            tensor = request.inputs.add(name=meta["name"], datatype=meta["datatype"], shape=[len(rows)])
            if meta["datatype"] == "BYTES":
                tensor.contents.bytes_contents.extend(row[meta["name"]].encode() for row in rows)
            else:
                tensor.contents.fp64_contents.extend(float(row[meta["name"]]) for row in rows)
        response = stub.ModelInfer(request)
        outputs_by_name = {o.name: o for o in response.outputs}
        typed_labels = [b.decode() for b in outputs_by_name["predict"].contents.bytes_contents] if outputs_by_name["predict"].datatype == "BYTES" \
            else [repr(v) for v in outputs_by_name["predict"].contents.fp64_contents]
        same = typed_labels == labels
        if probabilities is not None:
            proba = np.array(outputs_by_name["predict_proba"].contents.fp64_contents).reshape(probabilities.shape)
            same = same and np.array_equal(proba, probabilities)
        check(f"{model}: gRPC typed contents", same and len(response.raw_output_contents) == 0, f"{typed_labels[:3]}…")

if args.grpc:
    # Bad requests: each its exact gRPC code and message, never INTERNAL.
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(args.grpc))
    def infer(**fields):
        request = pb.ModelInferRequest(model_name=fields.pop("model", "penguins"), id=fields.pop("id", ""))
        for name, datatype, shape, values in fields.pop("inputs", []):
            tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
            if values is not None:
                getattr(tensor.contents, {"BYTES": "bytes_contents", "FP64": "fp64_contents", "INT32": "int_contents", "BOOL": "bool_contents"}[datatype]).extend(values)
        for raw in fields.pop("raw", []):
            request.raw_input_contents.append(raw)
        for output in fields.pop("outputs", []):
            request.outputs.add(name=output)
        return request
    good = [("island", "BYTES", [1], [b"Biscoe"]), ("bill_length_mm", "FP64", [1], [45.2]), ("bill_depth_mm", "FP64", [1], [14.8]),
            ("flipper_length_mm", "FP64", [1], [212.0]), ("body_mass_g", "FP64", [1], [5200.0]), ("sex", "BYTES", [1], [b"female"])]
    def replaced(index, tensor):
        return good[:index] + [tensor] + good[index + 1:]
    features = "island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, sex"
    cases = [
        ("unknown model", infer(model="whales", inputs=good), grpc.StatusCode.NOT_FOUND, "no model 'whales' (loaded: breast-cancer, penguins)"),
        ("unknown version", pb.ModelInferRequest(model_name="penguins", model_version="ffffffffffff", inputs=infer(inputs=good).inputs),
         grpc.StatusCode.NOT_FOUND, None),
        ("no inputs", infer(), grpc.StatusCode.INVALID_ARGUMENT, "the request has no inputs"),
        ("unnamed input", infer(inputs=replaced(0, ("", "BYTES", [1], [b"Biscoe"]))), grpc.StatusCode.INVALID_ARGUMENT, "input 0 has no name"),
        ("empty shape", infer(inputs=replaced(1, ("bill_length_mm", "FP64", [], [45.2]))), grpc.StatusCode.INVALID_ARGUMENT,
         "input 'bill_length_mm': shape must be a list of non-negative integers, such as [2] or [2, 1]"),
        ("negative shape", infer(inputs=replaced(1, ("bill_length_mm", "FP64", [-1], [45.2]))), grpc.StatusCode.INVALID_ARGUMENT,
         "input 'bill_length_mm': shape must be a list of non-negative integers, such as [2] or [2, 1]"),
        ("unknown datatype", infer(inputs=replaced(1, ("bill_length_mm", "FP99", [1], None))), grpc.StatusCode.INVALID_ARGUMENT,
         "input 'bill_length_mm': datatype must be one of BOOL, INT8…INT64, UINT8…UINT64, FP16, FP32, FP64, BYTES, not 'FP99'"),
        ("too few values", infer(inputs=replaced(1, ("bill_length_mm", "FP64", [2], [45.2]))), grpc.StatusCode.INVALID_ARGUMENT,
         "input 'bill_length_mm': shape [2] needs 2 values, its FP64 contents have 1"),
        ("values of another type", infer(inputs=replaced(1, ("bill_length_mm", "FP64", [1], None))), grpc.StatusCode.INVALID_ARGUMENT,
         "input 'bill_length_mm': shape [1] needs 1 values, its FP64 contents have 0"),
        ("BYTES for a numeric feature", infer(inputs=replaced(1, ("bill_length_mm", "BYTES", [1], [b"45.2"]))), grpc.StatusCode.INVALID_ARGUMENT,
         "input 'bill_length_mm': feature 'bill_length_mm' is numeric, so the datatype must be numeric (FP32, FP64, INT*, BOOL), not BYTES"),
        ("BYTES not UTF-8", infer(inputs=replaced(0, ("island", "BYTES", [1], [b"\xff\xfe"]))), grpc.StatusCode.INVALID_ARGUMENT,
         "input 'island': BYTES element 0 is not UTF-8 text"),
        ("FP16 as typed contents", infer(inputs=replaced(1, ("bill_length_mm", "FP16", [1], None))), grpc.StatusCode.INVALID_ARGUMENT,
         "input 'bill_length_mm': FP16 has no typed contents; send it in raw_input_contents"),
        ("missing input", infer(inputs=good[1:]), grpc.StatusCode.INVALID_ARGUMENT,
         f"missing input 'island' (the model needs one tensor per feature: {features})"),
        ("unknown input", infer(inputs=good + [("fins", "FP64", [1], [2.0])]), grpc.StatusCode.INVALID_ARGUMENT,
         f"unknown input 'fins' (expected one of: {features})"),
        ("input twice", infer(inputs=good + [good[1]]), grpc.StatusCode.INVALID_ARGUMENT, "input 'bill_length_mm' is given twice"),
        ("rows differ", infer(inputs=replaced(1, ("bill_length_mm", "FP64", [2], [45.2, 40.0]))), grpc.StatusCode.INVALID_ARGUMENT,
         "input 'bill_length_mm' has 2 rows, input 'island' has 1"),
        ("unknown output", infer(inputs=good, outputs=["logits"]), grpc.StatusCode.INVALID_ARGUMENT,
         "unknown output 'logits' (expected one of: predict, predict_proba)"),
        ("raw count differs", infer(inputs=[(n, d, s, None) for n, d, s, _ in good], raw=[b"\x06\x00\x00\x00Biscoe"]), grpc.StatusCode.INVALID_ARGUMENT,
         "raw_input_contents has 1 entries, the request has 6 inputs: one each, in order"),
        ("raw and typed", infer(inputs=good, raw=[b"x"] * 6), grpc.StatusCode.INVALID_ARGUMENT,
         "input 'island' has contents, but the request sends raw_input_contents: send every input one way"),
        ("raw size not a multiple", infer(inputs=[(n, d, s, None) for n, d, s, _ in good],
                                          raw=[b"\x06\x00\x00\x00Biscoe", b"\x00" * 12] + [b"\x00" * 8] * 3 + [b"\x06\x00\x00\x00female"]),
         grpc.StatusCode.INVALID_ARGUMENT, "input 'bill_length_mm': binary_data_size 12 is not a multiple of FP64's 8 bytes"),
        ("raw BYTES past its end", infer(inputs=[(n, d, s, None) for n, d, s, _ in good],
                                         raw=[b"\x60\x00\x00\x00Biscoe"] + [b"\x00" * 8] * 4 + [b"\x06\x00\x00\x00female"]),
         grpc.StatusCode.INVALID_ARGUMENT, "input 'island': BYTES element 0 is 96 bytes long, past the 6 bytes left of its binary data"),
        ("not finite", infer(inputs=replaced(1, ("bill_length_mm", "FP64", [1], [float("inf")]))), grpc.StatusCode.INVALID_ARGUMENT,
         "input 'bill_length_mm': value 0 is not finite"),
    ]
    for name, request, code, message in cases:
        try:
            stub.ModelInfer(request)
            check(f"gRPC bad request: {name}", False, "answered OK")
        except grpc.RpcError as error:
            check(f"gRPC bad request: {name} is {code.name}", error.code() == code and (message is None or error.details() == message),
                  f"{error.code().name}: {error.details()}")
    try:
        stub.ModelInfer(infer(inputs=[("island", "BYTES", [1], [b"x" * (9 << 20)])] + good[1:]))
        check("gRPC bad request: over the size limit", False, "answered OK")
    except grpc.RpcError as error:
        check("gRPC bad request: over the size limit is RESOURCE_EXHAUSTED", error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, f"{error.code().name}: {error.details()}")
    # The repository calls: the admin token in the `authorization` metadata.
    for metadata, code in ((None, grpc.StatusCode.UNAUTHENTICATED), ((("authorization", "Bearer wrong"),), grpc.StatusCode.UNAUTHENTICATED)):
        try:
            stub.RepositoryIndex(pb.RepositoryIndexRequest(), metadata=metadata)
            check("gRPC repository index without the token", False, "answered OK")
        except grpc.RpcError as error:
            check(f"gRPC repository index {'without' if metadata is None else 'with a wrong'} token is UNAUTHENTICATED", error.code() == code, error.code().name)
    if args.token:
        index = stub.RepositoryIndex(pb.RepositoryIndexRequest(), metadata=(("authorization", f"Bearer {args.token}"),))
        check("gRPC repository index with the token", sorted({m.name for m in index.models}) == ["breast-cancer", "penguins"], str(index))
        # Loading runs off the event loop: a version that is not built is NOT_FOUND; the serving one loads again.
        auth = (("authorization", f"Bearer {args.token}"),)
        def parameters(version, default=None):
            chosen = {"version": pb.ModelRepositoryParameter(string_param=version)}
            if default is not None:
                chosen["default"] = pb.ModelRepositoryParameter(bool_param=default)
            return chosen
        try:
            stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="penguins", parameters=parameters("f" * 12)), metadata=auth)
            check("gRPC load of a version that is not built", False, "answered OK")
        except grpc.RpcError as error:
            check("gRPC load of a version that is not built is NOT_FOUND",
                  error.code() == grpc.StatusCode.NOT_FOUND and error.details().startswith("cannot load version ffffffffffff of 'penguins': "),
                  f"{error.code().name}: {error.details()}")
        serving = [m.version for m in index.models if m.name == "penguins"][0]
        stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="penguins", parameters=parameters(serving, True)), metadata=auth)
        ready = stub.ModelReady(pb.ModelReadyRequest(name="penguins", version=serving)).ready
        check("gRPC load of the serving version answers OK and it stays ready", ready, str(ready))
        try:
            stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="penguins", parameters=parameters("e" * 12)), metadata=auth)
            check("gRPC unload of a version that is not loaded", False, "answered OK")
        except grpc.RpcError as error:
            check("gRPC unload of a version that is not loaded is NOT_FOUND", error.code() == grpc.StatusCode.NOT_FOUND,
                  f"{error.code().name}: {error.details()}")

if failures:
    print(f"{len(failures)} check(s) failed: {', '.join(failures)}")
    sys.exit(1)
print("every client check passed")
