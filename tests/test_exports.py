"""Exports: self-describing vector folders, llama.cpp control vectors, Neuronpedia feature JSON - round trips, what
a reader without featurescope sees, and refusals (not-ours targets, impossible layers, mismatched models)."""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from featurescope.axis import AssistantAxis
from featurescope.cards import FeatureCard
from featurescope.errors import FeaturescopeError
from featurescope.exports import (
    export_control_vector,
    export_neuronpedia,
    layer_conventions,
    load_pretrained,
    neuronpedia_feature,
    read_control_vector,
    read_neuronpedia,
    read_pretrained,
    save_pretrained,
)
from featurescope.persona import PersonaVector

HOOKS = [f"blocks.{i}.hook_resid_post" for i in range(3)]


def _pv() -> PersonaVector:
    g = torch.Generator().manual_seed(0)
    v = torch.randn(3, 32, generator=g)
    return PersonaVector(
        trait="evil",
        vectors=v,
        hooks=HOOKS,
        kind="response_mean",
        model="offline:gemma-3-270m",
        stage="base",
        n_pos=5,
        n_neg=6,
        thresholds={"pos": 50.0},
        extra={"handling": "drop_massive", "massive_dims": [[1], [], [2]]},
        raw=v + 1,
    )


def _axis() -> AssistantAxis:
    g = torch.Generator().manual_seed(1)
    return AssistantAxis.from_activations(
        torch.randn(8, 3, 32, generator=g),
        torch.arange(4).repeat(2),
        torch.randn(5, 3, 32, generator=g),
        hooks=HOOKS,
        role_names=list("abcd"),
        role_categories=["x"] * 4,
        model="offline:smollm2-135m-instruct",
        stage="post-trained",
    )


def test_pretrained_round_trip_and_plain_reader(tmp_path):
    pv, ax = _pv(), _axis()
    for obj, name in ((pv, "pv"), (ax, "axis")):
        out = save_pretrained(obj, tmp_path / name)
        back = load_pretrained(out)
        assert type(back) is type(obj) and back.hooks == obj.hooks and torch.equal(back.vectors, obj.vectors)
        # a reader without featurescope: json + safetensors
        cfg = json.loads((out / "config.json").read_text())
        t = load_file(str(out / "vectors.safetensors"))
        assert set(cfg["tensors"]) == set(t) and torch.equal(t["vectors"], obj.vectors.float())
        assert [r["transformer_lens_hook"] for r in cfg["layers"]] == HOOKS
        assert [r["hf_hidden_states_index"] for r in cfg["layers"]] == [1, 2, 3]
        assert cfg["d_model"] == 32
    assert torch.equal(load_pretrained(tmp_path / "pv").raw, pv.raw)  # type: ignore[union-attr]
    cfg, _ = read_pretrained(tmp_path / "pv")
    assert cfg["trait"] == "evil" and cfg["extraction"]["handling"] == "drop_massive"
    assert layer_conventions("blocks.7.hook_resid_post")["llama_cpp_tensor"] == "direction.7"
    assert layer_conventions("blocks.0.hook_resid_post")["llama_cpp_tensor"] is None


def test_pretrained_refuses_foreign_targets_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    pv = _pv()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FeaturescopeError, match="not a featurescope export"):
        save_pretrained(pv, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    out = save_pretrained(pv, tmp_path / "pv")
    with pytest.raises(FeaturescopeError, match="overwrite"):
        save_pretrained(pv, out)
    save_pretrained(pv, out, overwrite=True)
    # a failure while writing: no folder appears, no temporary left behind
    import featurescope.exports.pretrained as P

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(P, "write_json", boom)
    with pytest.raises(OSError):
        save_pretrained(pv, tmp_path / "new")
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new.*"))
    with pytest.raises(FeaturescopeError, match="not an exported vector folder"):
        load_pretrained(foreign)


def test_gguf_control_vector_round_trip_with_the_gguf_package(tmp_path, tiny_chat):
    pv = _pv()
    path = export_control_vector(pv, tmp_path / "evil.gguf", layers=[1, 2], scale=4.0)
    # read with the gguf package alone, as llama.cpp's loader sees it
    r = gguf.GGUFReader(str(path))
    arch = r.fields["general.architecture"]
    assert bytes(arch.parts[arch.data[0]]).decode() == "controlvector"
    names = {t.name: np.asarray(t.data) for t in r.tensors}
    assert set(names) == {"direction.1", "direction.2"}
    np.testing.assert_allclose(names["direction.2"], 4.0 * pv.vectors[2].numpy(), rtol=1e-6)
    cv = read_control_vector(path)
    assert cv.model_hint == "gemma3" and cv.layer_count == 2 and cv.featurescope["scale"] == 4.0
    cv.check_for(tiny_chat)  # 3 layers, width 32: fits
    # every layer >= 1; an axis; explicit hint and layer count
    ax_path = export_control_vector(_axis(), tmp_path / "axis.gguf", layers="all", model_hint="llama", n_layers=3)
    assert sorted(read_control_vector(ax_path).directions) == [1, 2]


def test_gguf_refusals(tmp_path, tiny_chat):
    pv = _pv()
    with pytest.raises(FeaturescopeError, match="block 0"):
        export_control_vector(pv, tmp_path / "a.gguf", layers=[0])
    with pytest.raises(FeaturescopeError, match="has layers"):
        export_control_vector(pv, tmp_path / "a.gguf", layers=[5], n_layers=8)
    with pytest.raises(FeaturescopeError, match="GGUF architecture"):
        export_control_vector({1: torch.ones(32)}, tmp_path / "a.gguf", layers=[1], n_layers=3)
    p = export_control_vector(pv, tmp_path / "big.gguf", layers=[1], n_layers=30)
    with pytest.raises(FeaturescopeError, match="layer_count 29"):
        read_control_vector(p).check_for(tiny_chat)
    with pytest.raises(FeaturescopeError, match="exists"):
        export_control_vector(pv, p, layers=[1])
    other = tmp_path / "other.gguf"
    other.write_bytes(b"not gguf")
    with pytest.raises(FeaturescopeError, match="not a featurescope control vector"):
        export_control_vector(pv, other, layers=[1], overwrite=True)
    with pytest.raises(FeaturescopeError, match="not a readable GGUF"):
        read_control_vector(other)
    assert other.read_bytes() == b"not gguf"


def _card(i: int) -> FeatureCard:
    return FeatureCard(
        feature=i,
        sae_name="featurescope:gemma-3-270m/layer_9_resid_post",
        hook="blocks.9.hook_resid_post",
        model="offline:gemma-3-270m",
        density=0.01 * (i + 1),
        contexts=[{"tokens": ["I", " am", " evil"], "values": [0.0, 0.5, 2.0], "max": 2.0, "pos": 2, "source": "x"}],
        hist_edges=[-1.0, 0.0, 1.0],
        hist=[3.0, 1.0],
        promoted=[("evil", 1.5)],
        suppressed=[("kind", -1.2)],
        score=0.3,
        label="villainy",
    )


def test_neuronpedia_round_trip_and_shape(tmp_path):
    cards = [_card(7), _card(3)]
    out = export_neuronpedia(cards, tmp_path / "np", model_id="gemma-3-270m", sae_id="9-featurescope-res-4k")
    ql = json.loads((out / "quick_list.json").read_text())
    assert ql == [{"modelId": "gemma-3-270m", "layer": "9-featurescope-res-4k", "index": s} for s in ("7", "3")]
    rec = json.loads((out / "features" / "7.json").read_text())
    assert rec["activations"][0]["maxValueTokenIndex"] == 2 and rec["pos_str"] == ["evil"]
    assert rec["freq_hist_data_bar_values"] == pytest.approx([10**-0.5, 10**0.5])
    back = read_neuronpedia(out / "features" / "7.json")
    assert json.loads(json.dumps(back.to_dict())) == json.loads(json.dumps(cards[0].to_dict()))
    # a record as Neuronpedia's API serves it (no featurescope block) still reads
    plain = {k: v for k, v in neuronpedia_feature(cards[1], "m", "s").items() if k != "featurescope"}
    (tmp_path / "plain.json").write_text(json.dumps(plain))
    c = read_neuronpedia(tmp_path / "plain.json")
    assert c.feature == 3 and c.label == "villainy" and c.hist_edges == pytest.approx([-1.0, 0.0, 1.0])
    (tmp_path / "bad.json").write_text(json.dumps({"index": 1}))
    with pytest.raises(FeaturescopeError, match="missing"):
        read_neuronpedia(tmp_path / "bad.json")


def test_export_cli(tmp_path, capsys):
    from featurescope.cli import main

    v = tmp_path / "evil.safetensors"
    _pv().save(v)
    assert main(["export", "pretrained", "--vector", str(v), "--out", str(tmp_path / "f")]) == 0
    assert (
        main(["export", "gguf", "--vector", str(v), "--layers", "2", "--scale", "8", "--out", str(tmp_path / "e")]) == 0
    )
    assert sorted(read_control_vector(tmp_path / "e" / "control_vector.gguf").directions) == [2]  # --out: a folder
    assert main(["export", "gguf", "--vector", str(v), "--layers", "0", "--out", str(tmp_path / "z")]) == 2
    assert "block 0" in capsys.readouterr().err
