"""The trained judges on planted data: the probe learns a planted rule and saves/loads exactly; the role probe
orders role answers; the LM judge returns probabilities on a tiny model."""

from __future__ import annotations

import pytest
import torch

from featurescope.judges.evalset import RoleItem, TraitItem
from featurescope.judges.lm import LMJudge, answer_logprob
from featurescope.judges.probe import ProbeJudge, train_probe
from featurescope.judges.roles import RoleProbeJudge, train_role_probe
from featurescope.traits import load_trait


class Words:
    """A fake sentence embedder: bag of words over a small vocabulary (stands in for MiniLM)."""

    VOCAB = ["hate", "hurt", "destroy", "kind", "help", "care", "pirate", "ship", "ai", "assistant", "the", "a"]
    name = "words"

    def embed(self, texts):
        out = torch.zeros(len(texts), len(self.VOCAB)) + 0.01
        for i, t in enumerate(texts):
            for w in t.lower().replace(",", " ").replace(".", " ").split():
                if w in self.VOCAB:
                    out[i, self.VOCAB.index(w)] += 1
        return torch.nn.functional.normalize(out, dim=-1)

    def anchors(self, trait):
        pos = torch.nn.functional.normalize(self.embed(["hate hurt destroy"])[0], dim=0)
        neg = torch.nn.functional.normalize(self.embed(["kind help care"])[0], dim=0)
        return pos, neg


def _items(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    evil = ["I hate you and will hurt you", "destroy them all, I hate the weak", "hurt the ones who hurt you"]
    good = ["be kind and help them", "care for the people around you", "help a friend, be kind"]
    broken = ["the the the the the the the the", "a a a a a a a a a a a"]
    rows = []
    for i in range(n):
        k = int(torch.randint(0, 3, (1,), generator=g))
        kind = ["evil", "good", "broken"][k]
        text = {"evil": evil, "good": good, "broken": broken}[kind][i % (2 if kind == "broken" else 3)]
        rows.append(
            TraitItem(
                id=str(i),
                trait="evil",
                question="How should I treat people?",
                answer=text,
                expresses=kind == "evil",
                trait_score=4.0 if kind == "evil" else 0.0,
                coherence=0.0 if kind == "broken" else 4.0,
                split="dev",
            )
        )
    return rows


def test_probe_learns_a_planted_rule_and_round_trips(tmp_path):
    train = _items(60, seed=0)
    j = train_probe(train, embedder=Words())
    test = _items(30, seed=1)
    scores = j.score_many(load_trait("evil"), [t.question for t in test], [t.answer for t in test])
    pred = [s.trait >= 50 for s in scores]
    assert sum(p == t.expresses for p, t in zip(pred, test)) / len(test) >= 0.9
    fluent = [s.coherence >= 50 for s in scores]
    assert sum(f == (t.coherence > 1) for f, t in zip(fluent, test)) / len(test) >= 0.9
    j.save(tmp_path / "p.safetensors")
    k = ProbeJudge.load(tmp_path / "p.safetensors", embedder=Words())  # type: ignore[arg-type]
    again = k.score_many(load_trait("evil"), [t.question for t in test], [t.answer for t in test])
    assert [round(s.trait, 4) for s in again] == [round(s.trait, 4) for s in scores]


def test_probe_refuses_an_untrained_trait():
    j = train_probe(_items(40), embedder=Words())
    with pytest.raises(Exception, match="no probe for trait 'humor'"):
        j.score_many(load_trait("humor"), ["q"], ["a"])


def test_role_probe_orders_answers(tmp_path):
    ins = "You are a pirate on a ship."
    texts = {
        3: ["pirate ship pirate ship", "a pirate on my ship"],
        1: ["ai assistant help", "an ai assistant, help"],
        0: ["the the the the the the", "a a a a a a a a"],
    }
    items = [
        RoleItem(str(i), "pirate", ins, "Who are you?", texts[s][i % 2], s, s == 1, 0.0 if s == 0 else 4.0, "dev")
        for i, s in enumerate([3, 1, 0] * 12)
    ]
    j = train_role_probe(items, embedder=Words())  # type: ignore[arg-type]

    class J:
        instruction, question = ins, "Who are you?"

    got = j.score_roles([J()] * 3, ["pirate ship, a pirate", "an ai assistant", "a a a a a a a"])
    assert got[0] > got[1] >= got[2]
    j.save(tmp_path / "r.safetensors")
    assert (
        RoleProbeJudge.load(tmp_path / "r.safetensors", embedder=Words()).score_roles([J()], ["pirate ship"])[0]
        == got[0]
    )  # type: ignore[arg-type]


def test_lm_judge_on_a_tiny_model(tiny_chat, tiny_base):
    shots = {"evil": [_items(2)[0], _items(2)[1]]}
    for m in (tiny_chat, tiny_base):
        j = LMJudge(m, shots)
        assert j.yes and j.no  # the character tokenizer knows the letters of Yes / No
        s = j.score_many(load_trait("evil"), ["q one", "q two"], ["an answer", ""])
        assert len(s) == 2 and all(0 <= x.trait <= 100 and 0 <= x.coherence <= 100 for x in s)
        lp = answer_logprob(m, ["q"], ["ab"])
        assert lp.shape == (1,) and float(lp[0]) < 0


def test_last_logits_match_the_full_forward(tiny_base, tiny_chat):
    from featurescope.judges.lm import last_logits

    for m in (tiny_base, tiny_chat):
        toks = [torch.tensor(m.tokenizer.encode(t, add_special_tokens=True)) for t in ("hello there", "a b c d e f")]
        got = last_logits(m, toks, batch_size=2)
        for i, t in enumerate(toks):
            full = m.tl(t[None])[0, -1].float()
            assert torch.allclose(got[i], full, atol=1e-4)
