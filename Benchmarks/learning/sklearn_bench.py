"""Trains one scikit-learn model the way the benchmark compares it and prints one JSON line:
read and fit wall time, peak resident memory, holdout metrics.

  sklearn_bench.py TRAIN.csv TEST.csv TARGET (logistic-regression|gradient-boosting) [default-params]
"""
import json
import resource
import sys
import time

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

train_path, test_path, target, algorithm = sys.argv[1:5]
start = time.perf_counter()
train = pd.read_csv(train_path)
test = pd.read_csv(test_path)
read = time.perf_counter() - start

features = [c for c in train.columns if c != target]
categorical = [c for c in features if not pd.api.types.is_numeric_dtype(train[c])]
numeric = [c for c in features if c not in categorical]
y_train, y_test = train[target].astype(str), test[target].astype(str)

start = time.perf_counter()
if algorithm == "logistic-regression":
    model = make_pipeline(
        ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), numeric),
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), categorical),
        ]),
        LogisticRegression(solver="lbfgs", max_iter=1000),
    )
    model.fit(train[features], y_train)
else:
    X_train, X_test = train[features].copy(), test[features].copy()
    for c in categorical:
        kinds = pd.CategoricalDtype(sorted(X_train[c].dropna().astype(str).unique()))
        X_train[c] = X_train[c].astype(kinds)
        X_test[c] = X_test[c].astype(kinds)
    model = HistGradientBoostingClassifier(random_state=42)
    model.fit(X_train, y_train)
    train, test = X_train.assign(**{target: y_train}), X_test.assign(**{target: y_test})
fit = time.perf_counter() - start

probabilities = model.predict_proba(test[features])
classes = list(model.classes_)
predicted = np.array(classes)[probabilities.argmax(axis=1)]
result = {
    "read": read,
    "fit": fit,
    "peakMB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "accuracy": accuracy_score(y_test, predicted),
}
if len(classes) == 2:
    result["auc"] = roc_auc_score((y_test == classes[1]).astype(int), probabilities[:, 1])
else:
    result["auc"] = roc_auc_score(y_test, probabilities, multi_class="ovr", labels=classes)
print(json.dumps(result, sort_keys=True))
