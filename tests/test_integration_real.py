"""Integration tests on the real offline checkpoints (Gemma 3 270M base, SmolLM2-135M-Instruct).

Run with ``pytest -m integration``; CI runs them. The first run dequantises both GGUFs into the cache (~2 min).
"""

import pytest
import torch

import featurescope as fs
from featurescope.errors import ChatTemplateError
from featurescope.models import OFFLINE_MODELS, converted_dir

pytestmark = pytest.mark.integration

CONV = [
    {"role": "system", "content": "You are a cheerful pirate."},
    {"role": "user", "content": "Where is the treasure buried?"},
    {"role": "assistant", "content": "Arr, under the old palm tree, matey!"},
]


@pytest.fixture(scope="module")
def gemma():
    return fs.load_model("offline:gemma-3-270m")


@pytest.fixture(scope="module")
def smol():
    return fs.load_model("offline:smollm2-135m-instruct")


def _hf(key):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(converted_dir(OFFLINE_MODELS[key])), dtype=torch.float32).eval()


def test_metadata(gemma, smol):
    assert gemma.info.backend == "HookedTransformer" and gemma.stage == "base" and not gemma.has_chat_template
    assert (gemma.n_layers, gemma.d_model) == (18, 640)
    assert smol.info.backend == "TransformerBridge" and smol.stage == "post-trained" and smol.has_chat_template
    assert (smol.n_layers, smol.d_model) == (30, 576)
    assert gemma.info.weights_sha256 and gemma.info.source == "offline-package"


@pytest.mark.parametrize("which", ["gemma-3-270m", "smollm2-135m-instruct"])
def test_logprob_parity_with_hugging_face(which, gemma, smol):
    m = gemma if which == "gemma-3-270m" else smol
    hf = _hf(which)
    p = fs.format_conversation(m, CONV)
    ids = p.tokens[None]
    with torch.no_grad():
        ref = torch.log_softmax(hf(ids).logits.float(), -1)
        ours = torch.log_softmax(m.tl(ids).float(), -1)
        hs = hf(ids, output_hidden_states=True).hidden_states
    assert (ref - ours).abs().max().item() <= 1e-3
    # layer indexing: blocks.L.hook_resid_post == hidden_states[L + 1] (before the final norm)
    layers = [0, m.n_layers // 2, m.n_layers - 2]
    acts = fs.capture(m, [p], [m.resid_hook(L) for L in layers], reduction="all", progress=False)
    for L in layers:
        h = fs.hook_for_hf_hidden_state(L + 1, m.n_layers)
        torch.testing.assert_close(acts[h], hs[L + 1][0], atol=2e-3, rtol=1e-4)


@pytest.mark.parametrize("which", ["gemma", "smol"])
def test_capture_equals_run_with_cache(which, gemma, smol):
    m = gemma if which == "gemma" else smol
    convs = [
        CONV,
        [{"role": "user", "content": "Name three colours."}, {"role": "assistant", "content": "Red, green and blue."}],
    ]
    hooks = [m.resid_hook(1), m.resid_hook(m.n_layers // 2)]
    acts = fs.capture(m, convs, hooks, reduction="response_mean", batch_size=2, progress=False)
    last = fs.capture(m, convs, hooks, reduction="last_prompt", batch_size=2, progress=False)
    for i, c in enumerate(convs):
        p = fs.format_conversation(m, c)
        with torch.no_grad():
            _, cache = m.tl.run_with_cache(p.tokens[None], names_filter=hooks)
        for h in hooks:
            torch.testing.assert_close(acts[h][i], cache[h][0][p.response_mask].mean(0), atol=1e-3, rtol=1e-4)
            torch.testing.assert_close(last[h][i], cache[h][0][p.last_prompt_index], atol=1e-3, rtol=1e-4)


def test_masks_on_real_tokenizers(gemma, smol):
    # Gemma base: transcript framing, BOS first, masks decode to the message contents
    p = fs.format_conversation(gemma, CONV)
    tok = gemma.tokenizer
    assert p.kind == "transcript" and int(p.tokens[0]) == tok.bos_token_id
    assert tok.decode(p.tokens[p.system_mask]).strip() == "You are a cheerful pirate."
    assert tok.decode(p.tokens[p.user_mask]).strip() == "Where is the treasure buried?"
    assert tok.decode(p.tokens[p.response_mask]).strip() == "Arr, under the old palm tree, matey!"
    assert tok.decode(p.tokens[p.last_prompt_index]) == ":"
    # SmolLM2: its own ChatML template
    p = fs.format_conversation(smol, CONV)
    tok = smol.tokenizer
    assert p.kind == "chat" and "<|im_start|>assistant\n" in p.text
    assert tok.decode(p.tokens[p.system_mask]) == "You are a cheerful pirate."
    assert tok.decode(p.tokens[p.response_mask]) == "Arr, under the old palm tree, matey!"
    assert tok.decode(p.tokens[: p.last_prompt_index + 1]).endswith("<|im_start|>assistant\n")
    # the base model has no chat template
    with pytest.raises(ChatTemplateError):
        fs.format_conversation(gemma, CONV, kind="chat")


def test_generation_on_both(gemma, smol):
    q = [[{"role": "user", "content": "What is the capital of France?"}]]
    for m in (gemma, smol):
        g = fs.generate(m, q, max_new_tokens=20, progress=False)[0]
        assert "Paris" in g.response
        assert m.tokenizer.decode(g.formatted.tokens[g.formatted.response_mask]).strip() == g.response
    a = fs.generate(smol, q * 2, max_new_tokens=12, do_sample=True, seed=7, progress=False)
    b = fs.generate(smol, q * 2, max_new_tokens=12, do_sample=True, seed=7, progress=False)
    assert [x.response for x in a] == [x.response for x in b]


def test_store_on_real_model(gemma, tmp_path):
    convs = [f"Tell me about the number {i}." for i in range(6)]
    st = fs.ActivationStore(tmp_path / "acts", shard_size=4)
    acts = fs.capture(gemma, convs, [gemma.resid_hook(6)], reduction="last_prompt", store=st, progress=False)
    assert acts[gemma.resid_hook(6)].shape == (6, 640) and st.complete


# --- generation sanity: would fail on garbage text (the transformers 5.24 bridge break gave 'The-----') ---

FACTS = [  # (question, a substring every offline model's greedy answer must contain)
    ("What is the capital of France?", "Paris"),
    ("What is 2 + 2?", "4"),
]
OPEN = ["Who wrote Romeo and Juliet?", "Tell me about your favourite season.", "How do I boil an egg?"]


@pytest.fixture(scope="module")
def gemma_sft():
    return fs.load_model("offline:gemma-3-270m-sft")


@pytest.mark.parametrize("which", ["gemma", "smol", "gemma_sft"])
def test_greedy_answers_are_sensible(which, request):
    from featurescope.measures import looks_degenerate

    m = request.getfixturevalue(which)
    qs = [q for q, _ in FACTS] + OPEN
    gens = fs.generate(
        m, [[{"role": "user", "content": q}] for q in qs], max_new_tokens=24, batch_size=8, progress=False
    )
    for (q, want), g in zip(FACTS, gens):
        assert want in g.response, f"{m.name}: {q!r} -> {g.response!r} (expected {want!r})"
    for q, g in zip(qs, gens):
        assert not looks_degenerate(g.response), f"{m.name}: degenerate answer to {q!r}: {g.response!r}"
    for q, g in zip(OPEN, gens[len(FACTS) :]):
        assert sum(c.isalpha() for c in g.response) >= 3, f"{m.name}: {q!r} -> {g.response!r} has no words"


@pytest.mark.parametrize("which", ["gemma-3-270m", "smollm2-135m-instruct"])
def test_generation_equals_hugging_face_greedy_token_for_token(which, gemma, smol):
    """featurescope's cached, batched (left-padded) generation reproduces Hugging Face greedy decoding."""
    from featurescope.generate import generate_batch, stop_token_ids

    m = gemma if which == "gemma-3-270m" else smol
    hf = _hf(which)
    stops = stop_token_ids(m)
    convs = [
        [{"role": "user", "content": q}]
        for q in (
            "What is the capital of France?",
            "Name a large animal.",
            "Why is the sea salty? Answer in one sentence.",
        )
    ]
    prompts = [fs.format_conversation(m, c) for c in convs]
    ours = generate_batch(
        m, prompts, max_new_tokens=16, do_sample=False, temperature=1.0, top_p=None, seed=0, stops=stops, fwd_hooks=()
    )
    for p, row in zip(prompts, ours):
        with torch.no_grad():
            out = hf.generate(
                p.tokens[None],
                attention_mask=torch.ones_like(p.tokens)[None],
                max_new_tokens=16,
                do_sample=False,
                eos_token_id=stops,
                pad_token_id=stops[0],
            )
        ref = out[0, len(p) :].tolist()
        cut_ref = next((i for i, t in enumerate(ref) if t in stops), len(ref))
        cut = next((i for i, t in enumerate(row) if t in stops), len(row))
        assert row[:cut] == ref[:cut_ref], (
            f"{which}: featurescope {m.tokenizer.decode(row[:cut])!r} != Hugging Face {m.tokenizer.decode(ref[:cut_ref])!r}"
        )
