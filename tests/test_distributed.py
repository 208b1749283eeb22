"""Distributed collection on a local 2-worker Ray cluster: capture shards and an axis collection give the
single-process result, also when a worker is killed mid-run; unreachable clusters fail fast (issue 21)."""

from __future__ import annotations

import json
import os

import pytest
import torch

pytest.importorskip("ray")
# a Ray cluster and two model-holding actors take ~1-2 minutes to start on 2 cores: the slow tier
pytestmark = pytest.mark.slow

from featurescope import axis as A  # noqa: E402
from featurescope.capture import as_prompts, capture  # noqa: E402
from featurescope.distributed import ModelSpec, RayCluster, WorkerPool, capture_on_pool  # noqa: E402
from featurescope.errors import FeaturescopeError  # noqa: E402
from featurescope.models import load_model  # noqa: E402
from featurescope.store import ActivationStore  # noqa: E402
from tests.test_axis import _tiny_library  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    with RayCluster(None, n_cpus=2) as c:
        yield c


@pytest.fixture(scope="module")
def pool(cluster, tiny_hf_folder):
    with WorkerPool(ModelSpec(name=str(tiny_hf_folder)), n_workers=2) as p:
        yield p


def _killer(state: dict):
    """on_result callback: after the first finished task, kill worker 0 (its in-flight task must be retried)."""
    import ray

    def fn(pool, i, result):
        if not state.get("killed"):
            state["pid"] = ray.get(pool.actors[0].pid.remote())
            ray.kill(pool.actors[0], no_restart=False)
            state["killed"] = True

    return fn


def test_capture_on_two_ray_workers_survives_a_killed_worker(pool, tiny_hf_folder, tmp_path):
    import ray

    model = load_model(str(tiny_hf_folder))
    prompts = as_prompts(model, [f"Question number {i}? " + "x" * (i % 5) for i in range(12)])
    hooks = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    single = capture(model, prompts, hooks, reduction="prompt_mean", store=ActivationStore(tmp_path / "one", 2))
    state: dict = {}
    store = ActivationStore(tmp_path / "ray", shard_size=2)
    dist = capture_on_pool(
        pool, model, prompts, hooks, store, reduction="prompt_mean", progress=False, on_result=_killer(state)
    )
    assert state["killed"]
    assert ray.get(pool.actors[0].pid.remote()) != state["pid"]  # Ray restarted the killed actor
    for h in hooks:
        assert torch.equal(dist[h], single[h])  # greedy float32: the very same numbers
    m = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert m["complete"] and [s["index"] for s in m["shards"]] == list(range(6))  # none lost, none twice
    assert not [f for f in os.listdir(tmp_path / "ray") if f.startswith(".")]  # no half-written shard left
    # resuming a complete store computes nothing
    again = capture_on_pool(pool, model, prompts, hooks, store, reduction="prompt_mean", progress=False)
    assert torch.equal(again[hooks[0]], single[hooks[0]])


def test_axis_collection_on_ray_equals_single_process(pool, tiny_hf_folder, tmp_path):
    model = load_model(str(tiny_hf_folder))
    lib = _tiny_library(4)
    cfg = A.AxisConfig(n_roles=4, n_questions=2, max_new_tokens=3, shard_size=4, chunk=5, min_kept=1, min_score=0)
    one, _ = A.collect_axis(model, lib, cfg, judge="none", out_dir=tmp_path / "one", progress=False)
    state: dict = {}
    pool.on_result = _killer(state)  # kill a worker after the first generation chunk comes back
    try:
        dist, _ = A.collect_axis(model, lib, cfg, judge="none", out_dir=tmp_path / "ray", progress=False, pool=pool)
    finally:
        pool.on_result = None
    assert torch.equal(dist.vectors, one.vectors) and torch.equal(dist.role_vectors, one.role_vectors)
    gen_one = (tmp_path / "one" / "generations.jsonl").read_text().splitlines()
    gen_ray = (tmp_path / "ray" / "generations.jsonl").read_text().splitlines()
    key = lambda rows: sorted((json.loads(r).get("i", -1), json.loads(r).get("response")) for r in rows)  # noqa: E731
    assert key(gen_one) == key(gen_ray)
    assert state["killed"]


def test_unreachable_cluster_and_missing_connection_fail_clearly(tiny_hf_folder):
    with pytest.raises(FeaturescopeError, match="cannot reach the Ray cluster"):
        with RayCluster("127.0.0.1:1"):
            pass
    with pytest.raises(FeaturescopeError, match="not HOST:PORT"):
        with RayCluster("nonsense"):
            pass


def test_workers_that_cannot_load_the_model_fail_naming_it(cluster, tmp_path):
    # num_cpus=0: the module's pool already holds both CPUs of the local cluster
    with pytest.raises(FeaturescopeError, match="could not start.*does not exist"):
        WorkerPool(ModelSpec(name=str(tmp_path / "no-such-model"), num_cpus=0), n_workers=1, start_timeout=120)


class _SideJudge:
    name = "side"

    def score_many(self, trait, questions, answers):
        from featurescope.judges.base import Score

        return [Score(trait=90.0 if i % 2 == 0 else 10.0, coherence=100.0) for i in range(len(answers))]


def test_persona_extraction_generates_on_ray_like_one_process(pool, tiny_hf_folder, monkeypatch):
    """Extraction's answers come from the same chunks on the workers: the same answers and the same vectors."""
    import featurescope.persona.extraction as X
    from featurescope.persona import ExtractionConfig, extract

    monkeypatch.setattr(X, "GENERATION_CHUNK", 3)  # several chunks, so several workers take part
    model = load_model(str(tiny_hf_folder))
    cfg = ExtractionConfig(n_questions=2, n_pairs=2, max_new_tokens=4)
    one = extract(model, "evil", _SideJudge(), config=cfg, progress=False)
    dist = extract(model, "evil", _SideJudge(), config=cfg, progress=False, pool=pool)
    assert [r["response"] for r in one["responses"]] == [r["response"] for r in dist["responses"]]
    for k in one["vectors"]:
        assert torch.equal(one["vectors"][k].vectors, dist["vectors"][k].vectors)
