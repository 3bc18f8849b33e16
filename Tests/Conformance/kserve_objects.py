"""Loads Kubernetes objects rendered by `stagecraft render --target kserve` into the kserve SDK's own models
(V1beta1InferenceService, V1alpha1ClusterServingRuntime, and the Kubernetes models they hold) and serializes them back.

Strict: a field no model declares, or a value of a type the model does not take, is an error (the SDK's own
deserializer drops unknown fields silently, so this walks its models' `openapi_types` and `attribute_map` itself).
Usage: kserve_objects.py OBJECTS.json OBJECTS.yaml [...]   (pairs: the JSON List and the YAML documents of one render)
"""
import json
import re
import sys

import kserve.models as kserve_models
import kubernetes.client.models as kubernetes_models
import yaml
from kserve import ApiClient

KINDS = {"InferenceService": "V1beta1InferenceService", "ClusterServingRuntime": "V1alpha1ClusterServingRuntime"}


def model_class(name):
    found = getattr(kserve_models, name, None) or getattr(kubernetes_models, name, None)
    if found is None:
        raise TypeError(f"no SDK model named {name}")
    return found


def load(value, kind, path):
    if kind == "str":
        if not isinstance(value, str):
            raise TypeError(f"{path}: expected a string, found {value!r}")
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{path}: expected an integer, found {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise TypeError(f"{path}: expected a boolean, found {value!r}")
        return value
    if kind == "object":
        return value
    match = re.fullmatch(r"[lL]ist\[(.+)\]", kind)
    if match:
        if not isinstance(value, list):
            raise TypeError(f"{path}: expected a list, found {value!r}")
        return [load(item, match.group(1), f"{path}[{index}]") for index, item in enumerate(value)]
    match = re.fullmatch(r"(?:dict\(str, ?(.+)\)|Dict\[str, ?(.+)\])", kind)
    if match:
        if not isinstance(value, dict):
            raise TypeError(f"{path}: expected a map, found {value!r}")
        inner = match.group(1) or match.group(2)
        return {key: load(item, inner, f"{path}.{key}") for key, item in value.items()}
    cls = model_class(kind)
    if not isinstance(value, dict):
        raise TypeError(f"{path}: expected an object ({kind}), found {value!r}")
    by_key = {key: attr for attr, key in cls.attribute_map.items()}
    arguments = {}
    for key, item in value.items():
        if key not in by_key:
            raise TypeError(f"{path}: {kind} has no field '{key}'")
        attr = by_key[key]
        arguments[attr] = load(item, cls.openapi_types[attr], f"{path}.{key}")
    return cls(**arguments)


def check(document):
    kind = document.get("kind")
    if kind not in KINDS:
        raise TypeError(f"unexpected kind {kind!r}")
    model = load(document, KINDS[kind], kind)
    back = ApiClient().sanitize_for_serialization(model)
    if back != document:
        raise ValueError(f"{kind} does not serialize back to the same document:\n{json.dumps(back, sort_keys=True)}\n"
                         f"{json.dumps(document, sort_keys=True)}")
    return model


def main():
    files = sys.argv[1:]
    count = 0
    for json_path, yaml_path in zip(files[0::2], files[1::2]):
        with open(json_path) as handle:
            listed = json.load(handle)
        with open(yaml_path) as handle:
            documents = list(yaml.safe_load_all(handle))
        if listed.get("kind") != "List" or listed["items"] != documents:
            raise ValueError(f"{yaml_path} does not hold the documents of {json_path}")
        for document in listed["items"]:
            model = check(document)
            print(f"ok {type(model).__name__} {document['metadata']['name']}")
            count += 1
    print(f"{count} objects round-trip through the kserve SDK")


if __name__ == "__main__":
    main()
