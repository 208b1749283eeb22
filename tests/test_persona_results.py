"""The typed results of steering_sweep, steering_control and monitor_correlation: dict access as before, to_dict()
in the old layout, HTML with intervals, plots without files, data frames."""

import dataclasses
import json
from html import escape as html_escape
from typing import Any

import numpy as np
import pytest
import torch

from featurescope.judge import Score
from featurescope.persona import (
    MonitorCorrelation,
    PersonaVector,
    SteeringControl,
    SteeringRow,
    SteeringSweep,
    monitor_correlation,
    steering_control,
    steering_sweep,
)
from featurescope.runs import jsonable, read_summary, write_summary
from featurescope.stats import bootstrap

ALPHAS = (-1.0, 0.0, 1.0)
# The layouts the functions returned as plain dicts (key order included: summary.json keeps it).
SWEEP_KEYS = ["hook", "questions", "seeds", "rows"]
ROW_KEYS = ["alpha", "trait_score", "coherence", "scores", "logprob_per_token", "examples"]
CONTROL_KEYS = ["alpha", "share_on_massive", "massive_dims", "controls", "evidence"]
MONITOR_KEYS = [
    "hook",
    "r_samples",
    "r_samples_evidence",
    "r_projection_vs_level_evidence",
    "items",
    "r_levels",
    "per_level",
    "n",
    "seeds",
]


class TextJudge:
    """Deterministic scores that vary with the text, so intervals are not degenerate."""

    name = "text"

    def score_many(self, trait, questions, answers):
        return [
            Score(trait=float(sum(map(ord, q + a)) % 101), coherence=float(50 + len(a) % 50))
            for q, a in zip(questions, answers)
        ]


@pytest.fixture(scope="module")
def vector(tiny_chat):
    hooks = [tiny_chat.resid_hook(L) for L in range(tiny_chat.n_layers)]
    g = torch.Generator().manual_seed(3)
    return PersonaVector(
        "evil", torch.randn(len(hooks), 32, generator=g), hooks, "response_mean", "tiny-chat", "post", 1, 1
    )


@pytest.fixture(scope="module")
def results(tiny_chat, vector):
    kw: dict[str, Any] = {"hook": 1, "n_questions": 3, "max_new_tokens": 3}
    sw = steering_sweep(tiny_chat, vector, "evil", TextJudge(), alphas=ALPHAS, seeds=(0, 1), progress=False, **kw)
    ctl = steering_control(tiny_chat, vector, "evil", TextJudge(), sweep=sw, n_random=1, progress=False, **kw)
    greedy = steering_sweep(tiny_chat, vector, "evil", TextJudge(), alphas=(0.0, 1.0), progress=False, **kw)
    mon = monitor_correlation(tiny_chat, vector, "evil", TextJudge(), hook=1, n_questions=1, max_new_tokens=3)
    return sw, ctl, greedy, mon


def test_results_are_typed_and_frozen(results):
    sw, ctl, greedy, mon = results
    assert isinstance(sw, SteeringSweep) and isinstance(ctl, SteeringControl) and isinstance(mon, MonitorCorrelation)
    assert all(isinstance(r, SteeringRow) for r in sw.rows) and sw.alphas == list(ALPHAS)
    assert sw.hook == "blocks.1.hook_resid_post" and sw.seeds == (0, 1) and len(sw.questions) == 3
    assert sw.row(1.0) is sw.rows[2] and sw.control is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        sw.hook = "x"  # type: ignore[misc]
    with pytest.raises(TypeError, match="with_control"):
        sw["control"] = ctl
    both = sw.with_control(ctl)
    assert both.control is ctl and sw.control is None and both["control"] == ctl.to_dict()


def test_dict_access_still_works(results):
    sw, ctl, greedy, mon = results
    assert sw["rows"][0]["alpha"] == -1.0 and len(sw["rows"][2]["scores"]) == 3
    assert sw.get("control") is None and sw.get("control", 5) == 5 and "control" not in sw and "rows" in sw
    assert list(sw.keys()) == SWEEP_KEYS and list(sw) == SWEEP_KEYS and len(sw) == 4
    assert dict(sw.items()) == sw.to_dict() and dict(sw) == sw.to_dict()
    assert sw.rows[0]["trait_ci"]["n"] == 3 and "per_seed" in sw.rows[0]
    assert ctl["evidence"]["verdict"] == ctl.evidence.verdict and len(ctl["controls"]) == 1
    assert mon["r_samples"] == mon.r_samples and mon["n"] == 10 and len(mon["per_level"]) == 10
    assert mon["items"][0]["level"] == 0 and "items" in mon and list(mon.keys()) == MONITOR_KEYS
    # items() is the dict-style method; the per-response records are the field per_item
    assert dict(mon.items())["items"] == [dict(x) for x in mon.per_item]


def test_to_dict_is_the_old_layout_field_by_field(results):
    sw, ctl, greedy, mon = results
    d = sw.to_dict()
    assert list(d) == SWEEP_KEYS and d["hook"] == sw.hook
    assert d["questions"] == list(sw.questions) and d["seeds"] == [0, 1]
    for r, row in zip(d["rows"], sw.rows):
        assert list(r) == ROW_KEYS + ["per_seed", "trait_ci"]
        assert r["alpha"] == row.alpha and r["trait_score"] == row.trait_score and r["coherence"] == row.coherence
        assert r["scores"] == list(row.scores) and r["examples"] == list(row.examples)
        assert r["logprob_per_token"] == row.logprob_per_token and r["per_seed"] == list(row.per_seed or ())
        # what the old code computed: the mean over questions and the bootstrap over questions
        assert r["trait_score"] == pytest.approx(float(np.mean(r["scores"])))
        assert r["trait_ci"] == bootstrap(np.mean, np.asarray(r["scores"])).to_dict()
        assert np.mean(r["per_seed"]) == pytest.approx(r["trait_score"])
    # greedy: no per-seed means and no stored interval, as before
    for r in greedy.to_dict()["rows"]:
        assert list(r) == ROW_KEYS
    c = ctl.to_dict()
    assert list(c) == CONTROL_KEYS and c["alpha"] == 1.0 and c["evidence"] == ctl.evidence.to_dict()
    assert c["massive_dims"] == list(ctl.massive_dims) and c["share_on_massive"] == ctl.share_on_massive
    assert list(c["controls"][0]) == ["seed", "rows"]
    assert [list(x) for x in c["controls"][0]["rows"]] == [["alpha", "trait_score", "coherence", "scores"]] * 3
    m = mon.to_dict()
    assert list(m) == MONITOR_KEYS and m["r_samples_evidence"] == mon.r_samples_evidence.to_dict()
    assert m["r_projection_vs_level_evidence"] == mon.r_projection_vs_level_evidence.to_dict()
    assert m["items"] == list(mon.per_item) and m["per_level"] == list(mon.per_level) and m["seeds"] == []
    assert m["r_samples"] == m["r_samples_evidence"]["estimate"]["value"]
    # to_dict() hands out copies: editing one does not change the result
    m["items"][0]["level"] = 99
    c["controls"][0]["rows"][0]["alpha"] = 99
    assert mon.per_item[0]["level"] == 0 and ctl.controls[0]["rows"][0]["alpha"] == -1.0
    # plain JSON, identical to the serialised dict
    for x in (sw.with_control(ctl), ctl, greedy, mon):
        assert json.dumps(jsonable(x)) == json.dumps(jsonable(x.to_dict()))


def test_control_accepts_the_sweep_as_a_dict(tiny_chat, vector, results):
    sw, ctl, greedy, mon = results
    again = steering_control(
        tiny_chat,
        vector,
        "evil",
        TextJudge(),
        hook=1,
        sweep=sw.with_control(ctl).to_dict(),
        n_random=1,
        n_questions=3,
        max_new_tokens=3,
        progress=False,
    )
    assert json.dumps(jsonable(again)) == json.dumps(jsonable(ctl))  # (the null's p-value is nan: compare as JSON)


def test_write_summary_serialises_the_results(results, tmp_path):
    sw, ctl, greedy, mon = results
    write_summary(
        tmp_path, "t", inputs={}, results={"steering": sw.with_control(ctl), "monitor": mon}, timings={"total": 0}
    )
    s = read_summary(tmp_path)["results"]
    assert s["steering"] == jsonable(sw.with_control(ctl).to_dict()) and s["monitor"] == jsonable(mon.to_dict())


def test_html_shows_estimates_with_intervals_and_verdicts(results):
    sw, ctl, greedy, mon = results
    page = sw.with_control(ctl)._repr_html_()
    for r in sw.rows:
        assert r.trait_ci is not None and f"[{r.trait_ci.lo:.1f}, {r.trait_ci.hi:.1f}]" in page
        assert f"{r.coherence:.1f}" in page
    e, n = ctl.evidence.estimate, ctl.evidence.null
    for h in (page, ctl._repr_html_()):
        assert f"{e.value:+.1f} [{e.lo:+.1f}, {e.hi:+.1f}]" in h and f"{n.mean:+.1f} [{n.lo:+.1f}, {n.hi:+.1f}]" in h
        assert ctl.evidence.verdict in h
    g = greedy._repr_html_()  # greedy: the same bootstrap over the per-question scores
    for r in greedy.rows:
        ci = bootstrap(np.mean, np.asarray(r.scores))
        assert r.interval() == ci and f"[{ci.lo:.1f}, {ci.hi:.1f}]" in g
    h = mon._repr_html_()
    for ev in (mon.r_samples_evidence, mon.r_projection_vs_level_evidence):
        e, n = ev.estimate, ev.null
        assert f"{e.value:.2f} [{e.lo:.2f}, {e.hi:.2f}]" in h and f"{n.mean:.2f} [{n.lo:.2f}, {n.hi:.2f}]" in h
        assert ev.verdict in h
    assert f"{mon.r_levels:.2f}" in h


def test_plots_return_figures_and_write_nothing(results, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    monkeypatch.chdir(tmp_path)
    sw, ctl, greedy, mon = results
    open_before = plt.get_fignums()
    figs = [sw.plot(), sw.with_control(ctl).plot(), greedy.plot(), ctl.plot(), mon.plot()]
    assert all(isinstance(f, Figure) for f in figs)
    assert plt.get_fignums() == open_before and list(tmp_path.iterdir()) == []
    fig, ax = plt.subplots()
    try:
        assert sw.plot(ax=ax) is fig and mon.plot(ax=ax) is fig
    finally:
        plt.close(fig)
    ax0 = figs[0].axes[0]
    assert len(ax0.containers) == 1  # the error bars over questions
    assert ax0.get_xlabel().startswith("steering coefficient alpha")


def test_to_frame(results):
    pytest.importorskip("pandas")
    sw, ctl, greedy, mon = results
    df = sw.to_frame()
    assert len(df) == len(ALPHAS) and list(df["alpha"]) == list(ALPHAS)
    assert list(df["trait_lo"]) == [r.interval().lo for r in sw.rows]
    assert list(df["trait_hi"]) == [r.interval().hi for r in sw.rows] and set(df["n_questions"]) == {3}
    assert len(greedy.to_frame()) == 2
    assert len(ctl.to_frame()) == len(ALPHAS) and set(ctl.to_frame()["seed"]) == {0}
    assert len(mon.to_frame()) == mon.n and len(mon.to_frame("level")) == 10


# -- extraction: PersonaExtraction ---------------------------------------------------------------------------------
EXTRACT_KEYS = ["vectors", "responses", "separation", "counts", "timings"]
FRAME_COLUMNS = [
    "layer",
    "hook",
    "pos_mean",
    "neg_mean",
    "gap",
    "cohens_d",
    "held_out_d",
    "held_out_lo",
    "held_out_hi",
    "null_mean",
    "null_lo",
    "null_hi",
    "p_value",
    "verdict",
    "chosen",
]


class SideJudge:
    """extract() generates (pos, neg) alternately: even answers score high, odd low, so both sides are kept."""

    name = "side"

    def score_many(self, trait, questions, answers):
        return [Score(trait=90.0 if i % 2 == 0 else 10.0, coherence=100.0) for i in range(len(answers))]


@pytest.fixture(scope="module")
def extraction(tiny_chat, tmp_path_factory):
    """One `persona extract` run (4 questions: the held-out split applies) and the typed result extract() gave it,
    and a written-answer extraction."""
    from featurescope.persona import ExtractionConfig, commands, extract_written

    out = tmp_path_factory.mktemp("persona_extract")
    cfg = ExtractionConfig(n_questions=4, n_pairs=1, max_new_tokens=3)
    seen = []
    real = commands.extract

    def spy(*a, **k):
        seen.append(real(*a, **k))
        return seen[-1]

    commands.extract = spy
    try:
        results = commands.persona_extract(tiny_chat, "evil", SideJudge(), out, cfg)
    finally:
        commands.extract = real
    rows = [{"id": f"w{i}", "question": f"Question {i}?", "pos": f"Yes {i}!!!", "neg": f"No {i}."} for i in range(4)]
    written = extract_written(tiny_chat, "evil", rows, source="rows")
    return seen[0], results, read_summary(out), written


def test_extraction_is_typed_with_dict_access(extraction):
    from featurescope.persona import PersonaExtraction

    ex, results, summary, written = extraction
    assert isinstance(ex, PersonaExtraction) and isinstance(written, PersonaExtraction)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ex.kept_pos = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        ex["counts"] = {}
    # what the README does
    v = ex["vectors"]["response_mean"]
    assert v is ex.vector and isinstance(v, PersonaVector) and set(ex["vectors"]) == set(ex.vectors)
    assert list(ex.keys()) == EXTRACT_KEYS and list(ex) == EXTRACT_KEYS and "separation" in ex
    assert ex["counts"] == {"generated_per_side": 4, "kept_pos": 4, "kept_neg": 4} == dict(ex.to_dict()["counts"])
    assert ex.kept_pos == 4 and ex.generated_per_side == 4 and ex.written_pairs is None
    assert len(ex["responses"]) == 8 and all("messages" in r for r in ex["responses"])
    assert ex["separation"]["cohens_d"] == list(ex.cohens_d) and len(ex.cohens_d) == len(ex.hooks) == 3
    assert ex.held_out is not None and len(ex["separation"]["held_out"]) == 3
    assert set(ex["timings"]) == {"generate", "judge", "total"}
    # written answers: the counts name the pairs
    assert list(written["counts"]) == ["written_pairs", "kept_pos", "kept_neg"] and written.written_pairs == 4
    assert written.generated_per_side is None and written.held_out is not None
    assert all(r["instruction"] is None for r in written["responses"])
    # to_dict() hands out copies of the responses
    d = ex.to_dict()
    d["responses"][0]["kept"] = "edited"
    assert ex.responses[0]["kept"] is True


def test_extraction_to_dict_is_what_the_summary_holds(extraction):
    from featurescope.persona import PersonaExtraction

    ex, results, summary, written = extraction
    s = summary["results"]
    d = ex.to_dict()
    assert s["separation"] == jsonable(d["separation"]) and s["counts"] == jsonable(d["counts"])
    assert list(s["separation"]) == ["pos_mean", "neg_mean", "gap", "cohens_d", "held_out"]
    assert s["best_separation_layer"] == ex.chosen_layer and results["counts"] == d["counts"]
    assert s["vector_norms"] == pytest.approx(ex.vector.norms)
    for e, ev in zip(d["separation"]["held_out"], ex.held_out or ()):
        assert e == ev.to_dict() and list(e) == ["name", "estimate", "null", "verdict"]
    # a round trip through the dict layout (nan compared as JSON)
    for x in (ex, written):
        again = PersonaExtraction.from_dict(x.to_dict())
        assert json.dumps(jsonable(again.to_dict()["separation"])) == json.dumps(jsonable(x.to_dict()["separation"]))
        assert again.to_dict()["counts"] == x.to_dict()["counts"]


def test_extraction_html_shows_held_out_separation_with_null_and_verdict(extraction):
    from featurescope.evidence.nulls import EFFECT, evidence_text
    from featurescope.stats import NOT_DISTINGUISHABLE

    ex, results, summary, written = extraction
    for x in (ex, written):
        page = x._repr_html_()
        assert x.held_out is not None
        for ev in x.held_out:
            e, n = ev.estimate, ev.null
            assert (
                f"{e.value:.2f} [{e.lo:.2f}, {e.hi:.2f}]" in page and f"{n.mean:.2f} [{n.lo:.2f}, {n.hi:.2f}]" in page
            )
            assert ev.verdict in (EFFECT, NOT_DISTINGUISHABLE) and ev.verdict in page
        c = x.chosen_layer
        assert c is not None and "chosen" in page
        assert html_escape(evidence_text(x.held_out[c].to_dict())) in page
    assert "kept 4 positive / 4 negative of 4" in ex._repr_html_() and "4 written answer pairs" in written._repr_html_()


def test_extraction_plot_and_frame(extraction, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    monkeypatch.chdir(tmp_path)
    ex, results, summary, written = extraction
    open_before = plt.get_fignums()
    fig = ex.plot()
    assert isinstance(fig, Figure) and isinstance(written.plot(), Figure)
    assert plt.get_fignums() == open_before and list(tmp_path.iterdir()) == []
    ax = fig.axes[0]
    assert ax.get_xlabel() == "layer" and len(ax.collections) == 2  # the held-out CI band and the null band
    f2, a2 = plt.subplots()
    try:
        assert ex.plot(ax=a2) is f2
    finally:
        plt.close(f2)
    pytest.importorskip("pandas")
    df = ex.to_frame()
    assert list(df.columns) == FRAME_COLUMNS and len(df) == 3 and list(df["layer"]) == [0, 1, 2]
    assert list(df["chosen"]).count(True) == 1 and int(df.index[df["chosen"]][0]) == ex.chosen_layer
    assert list(df["held_out_d"]) == pytest.approx([e.estimate.value for e in ex.held_out or ()], nan_ok=True)
    assert list(df["verdict"]) == [e.verdict for e in ex.held_out or ()]
