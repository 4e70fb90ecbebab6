"""The experiments plane's logic: statistics, engines, checks, planning and assignment.

Pure (no I/O, no clock, no randomness) and pure Python (`math`, `statistics`), so it runs in
the admin Lambda without numpy or scipy. It reproduces gbstats 0.8.0 (GrowthBook's engine) to
1e-6 on the same sufficient statistics; tests/unit/test_experiments_gbstats.py holds it to that.

- `statistics`: per-arm sufficient statistics (proportion, mean, ratio, CUPED) and pooled θ;
- `engines`: Bayesian, frequentist (Welch) and sequential comparisons of two arms;
- `srm`: the sample ratio mismatch check;
- `corrections`: Holm and Benjamini-Hochberg over a chosen family;
- `planning`: sample size, minimum detectable effect, power, days to decision;
- `assignment`: arms by hash, the global control group, exposures across merges;
- `lifecycle`: start, stop and the frozen-at-start rule (phases);
- `distributions`: the normal, Student t and chi-square functions underneath.
"""
