"""Predictive scores: what a person is likely to buy, spend, do next, and what to show them.

Pure logic: arrays and values in, arrays and values out; no I/O, no clock (every "as of" is an
argument), randomness only from a seed the caller passes.

The numerical modules need numpy and scipy, which the shared runtime layer does not carry
(docs/predictions.md); importing this package imports neither, so the runtime layer can read
model cards, recommend from a fitted item model and compute lead scores without them:

- `summary`          transactions -> per-person sufficient statistics (x, t_x, T, spend)   numpy
- `bgnbd`            BG/NBD: fit, expected purchases, P(alive), P(purchase in t)         numpy, scipy
- `gamma_gamma`      Gamma-Gamma order value and discounted CLV                          numpy, scipy
- `holdout`          predicted vs actual repeat purchases per calibration frequency       numpy
- `propensity`       "does X within N days": features, logistic model, calibration       numpy, scipy
- `metrics`          AUC, lift, calibration per decile, log loss                         numpy
- `co_occurrence`    item-to-item model from co-purchase and co-view, popularity          numpy, scipy
- `recommendations`  next products for a person from a fitted item-to-item model         pure Python
- `lead_score`       configurable points with decay, plus a propensity                   pure Python
- `cards`            the versioned model card of each fit                                pure Python
- `traits`           scores as `predicted.*` values and percentiles                      numpy
- `refit`            what a scheduled refit calls: fit, back-test, score, card            numpy, scipy
"""
