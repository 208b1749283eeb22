"""The interval of the stages SAE-transfer FVE: per text row sums, a bootstrap over rows (items, not tokens), and the
paired post-minus-base difference - on tiny tensors, no models.

Planted rows: activations whose first ``SPAN`` coordinates an SAE with latents +-e_0..+-e_{SPAN-1} reconstructs
exactly, plus noise in the remaining coordinates (what it cannot reconstruct: the SSE). Each row has its own signal
and noise scale (rows differ in difficulty, as texts do), shared by the two "models"; the tokens' noise is drawn
independently for each model. Equal noise scales: no difference (the interval contains 0 in most seeds); the post
"model" with 1.25x the noise: a lower FVE, the interval excludes 0."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig

from featurescope.saes import reconstruction_metrics
from featurescope.stages.transfer import (
    fve_bootstrap,
    fve_difference_bootstrap,
    fve_difference_evidence,
    per_row_reconstruction,
)
from featurescope.stats import Estimate

# 48 rows, as the plain set has: there the row bootstrap covers about 95% (300 seeds: 95.3%); with 24 rows it
# undercovers (about 90%), as percentile intervals do on few items
D, SPAN, N_ROWS, CTX = 12, 8, 48, 16


def span_sae() -> StandardSAE:
    E = torch.eye(D)[:SPAN]
    W = torch.cat([E, -E])
    sae = StandardSAE(StandardSAEConfig(d_in=D, d_sae=W.shape[0]))
    with torch.no_grad():
        sae.W_dec.copy_(W)
        sae.W_enc.copy_(W.T)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    sae.requires_grad_(False)
    return sae


def planted_pair(seed: int, noise_ratio: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(acts of the base "model", acts of the post "model", keep): the same rows; ``noise_ratio`` scales the post
    model's noise. Token 0 of every row is a BOS position (dropped by ``keep``)."""
    g = torch.Generator().manual_seed(seed)
    scale = 0.5 + 1.5 * torch.rand(N_ROWS, 1, 1, generator=g)
    noise = 0.2 + 0.8 * torch.rand(N_ROWS, 1, 1, generator=g)
    signal = torch.randn(N_ROWS, CTX, SPAN, generator=g) * scale
    pad = torch.zeros(N_ROWS, CTX, D - SPAN)

    def model(r: float) -> torch.Tensor:
        x = torch.cat([signal, pad], -1)
        x[..., SPAN:] = torch.randn(N_ROWS, CTX, D - SPAN, generator=g) * noise * r
        return x.reshape(N_ROWS * CTX, D)

    keep = torch.ones(N_ROWS, CTX, dtype=torch.bool)
    keep[:, 0] = False
    return model(1.0), model(noise_ratio), keep.reshape(-1)


@pytest.mark.parametrize("q", [0.0, 0.05])
def test_pooled_row_sums_reproduce_reconstruction_metrics(q):
    """Pooling the per-row sums gives reconstruction_metrics' FVE (same tokens: kept, top-q norms dropped); each row's
    sums are that row's tokens only."""
    sae = span_sae()
    acts, _, keep = planted_pair(0)
    acts[5 * CTX + 3] *= 40  # an outlier norm in row 5 (dropped when q > 0)
    rec = reconstruction_metrics(sae, acts[keep], outlier_quantile=q)
    pr = per_row_reconstruction(sae, acts, keep, N_ROWS, outlier_quantile=q)
    assert len(pr["sse"]) == len(pr["sst"]) == len(pr["n_tokens"]) == N_ROWS
    pooled = 1 - sum(pr["sse"]) / sum(pr["sst"])
    assert pooled == pytest.approx(rec["fraction_variance_explained"], rel=1e-6)
    assert sum(pr["n_tokens"]) == rec["n_tokens"]
    assert fve_bootstrap(pr["sse"], pr["sst"]).value == pytest.approx(rec["fraction_variance_explained"], rel=1e-6)
    # by hand, row by row: the unreconstructed coordinates are the SSE; SST about the pooled mean of the kept tokens
    x = acts.reshape(N_ROWS, CTX, D)
    k = keep.reshape(N_ROWS, CTX).clone()
    if q > 0:
        n = x.norm(dim=-1)
        k &= n <= torch.quantile(n[k], 1 - q)
    assert q == 0 or not k[5, 3]
    mean = x[k].mean(0)
    for i in range(N_ROWS):
        xi = x[i][k[i]]
        assert pr["n_tokens"][i] == len(xi)
        assert pr["sse"][i] == pytest.approx(float((xi[:, SPAN:] ** 2).sum()), rel=1e-5)
        assert pr["sst"][i] == pytest.approx(float(((xi - mean) ** 2).sum()), rel=1e-5)


def test_fve_bootstrap_known_answers():
    sse, sst = [1.0, 2.0, 3.0], [10.0, 10.0, 10.0]
    e = fve_bootstrap(sse, sst, n_boot=500)
    assert isinstance(e, Estimate) and e.n == 3 and e.value == pytest.approx(0.8) and e.lo <= 0.8 <= e.hi
    assert fve_bootstrap([0.0] * 4, [0.0] * 4).value != fve_bootstrap([0.0] * 4, [0.0] * 4).value  # no variance: nan
    same = fve_difference_bootstrap(sse, sst, sse, sst, n_boot=200)
    assert (same.value, same.lo, same.hi) == (0.0, 0.0, 0.0)
    # paired: a constant per-row offset shared by both models cancels; the interval is the difference's alone
    rng = np.random.default_rng(0)
    base = rng.uniform(1, 100, 40)  # rows differ a lot in difficulty
    d = fve_difference_bootstrap(base, base * 10, base * 1.1, base * 10)
    assert d.value == pytest.approx(-0.01) and d.lo == pytest.approx(-0.01) and d.hi == pytest.approx(-0.01)


def _paired(seed: int, ratio: float) -> Estimate:
    sae = span_sae()
    a, b, keep = planted_pair(seed, ratio)
    pa = per_row_reconstruction(sae, a, keep, N_ROWS, outlier_quantile=0.01)
    pb = per_row_reconstruction(sae, b, keep, N_ROWS, outlier_quantile=0.01)
    return fve_difference_bootstrap(pa["sse"], pa["sst"], pb["sse"], pb["sst"], n_boot=1000, seed=seed)


def test_paired_difference_planted_both_ways():
    """No difference planted: the post-minus-base interval contains 0 in >= 90% of 20 seeds. The post model with
    1.25x the noise in every row (FVE about 0.06 lower): the interval lies below 0 in every seed."""
    null = [_paired(s, 1.0) for s in range(20)]
    assert sum(e.contains(0.0) for e in null) >= 18, [str(e) for e in null]
    assert all(math.isfinite(e.lo) and e.lo < e.hi for e in null)
    worse = [_paired(s, 1.25) for s in range(20)]
    assert all(e.hi < 0 for e in worse), [str(e) for e in worse]


def test_difference_evidence_record():
    sae = span_sae()
    a, b, keep = planted_pair(3, 1.6)
    pa = per_row_reconstruction(sae, a, keep, N_ROWS, outlier_quantile=0.0)
    pb = per_row_reconstruction(sae, b, keep, N_ROWS, outlier_quantile=0.0)
    ev = fve_difference_evidence("base SAE FVE, post-trained minus base model (plain)", pa, pb, n_boot=500)
    json.dumps(ev)
    assert ev["verdict"] == "distinguishable from the null" and ev["estimate"]["hi"] < 0 == ev["null"]["mean"]
    assert ev["estimate"]["n"] == N_ROWS and "rows" in ev["how"]
    same = fve_difference_evidence("same", pa, pa, n_boot=200)
    assert same["verdict"] == "not distinguishable from the null"
