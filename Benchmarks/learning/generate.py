"""Writes the synthetic benchmark data set: 1,000,000 rows, 20 numeric + 2 categorical columns (10 levels each),
a binary target from a logistic ground truth with noise; the first 800,000 rows are train, the rest test.
Deterministic: numpy's PCG64 with seed 20261123."""
import sys
import numpy as np
import pandas as pd

out = sys.argv[1]
rng = np.random.default_rng(20261123)
n = 1_000_000
numeric = rng.normal(size=(n, 20)) * rng.uniform(0.5, 20, size=20) + rng.uniform(-50, 50, size=20)
levels = [f"L{i}" for i in range(10)]
cat_a = rng.integers(0, 10, size=n)
cat_b = rng.integers(0, 10, size=n)
weights = rng.normal(size=20) / (np.abs(numeric).mean(axis=0) + 1)
effect_a = rng.normal(scale=0.8, size=10)
effect_b = rng.normal(scale=0.8, size=10)
centered = numeric - numeric.mean(axis=0)
logit = centered @ weights * 3 + effect_a[cat_a] + effect_b[cat_b]  # the noise is the Bernoulli draw below
probability = 1 / (1 + np.exp(-logit))
target = (rng.uniform(size=n) < probability).astype(int)
frame = pd.DataFrame(np.round(numeric, 4), columns=[f"x{i}" for i in range(20)])
frame["a"] = np.array(levels)[cat_a]
frame["b"] = np.array(levels)[cat_b]
frame["y"] = np.where(target == 1, "yes", "no")
frame.iloc[:800_000].to_csv(f"{out}/train.csv", index=False)
frame.iloc[800_000:].to_csv(f"{out}/test.csv", index=False)
