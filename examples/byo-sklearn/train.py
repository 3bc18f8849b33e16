"""Trains the tumor classifier: the team's own feature step and a scikit-learn pipeline, saved for MLServer."""
import argparse, json, os, shutil

import joblib
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from features.ratios import AddRatios

parser = argparse.ArgumentParser()
parser.add_argument("--C", type=float, default=1.0)
args = parser.parse_args()

target = os.environ["STAGECRAFT_TARGET"]
train = pd.read_csv(os.environ["STAGECRAFT_TRAIN"])
model = make_pipeline(AddRatios(), StandardScaler(), LogisticRegression(C=args.C, max_iter=2000))
model.fit(train.drop(columns=target), train[target])
print(f"trained on {len(train)} rows, C={args.C}, classes {list(model.classes_)}")

out = os.environ["STAGECRAFT_OUTPUT"]
joblib.dump(model, os.path.join(out, "model.joblib"))
for name in ("model-settings.json", "settings.json"):
    shutil.copy(name, out)
shutil.copytree("features", os.path.join(out, "features"))  # the pickled pipeline imports it
print(json.dumps({"train_accuracy": model.score(train.drop(columns=target), train[target])}))
