"""Post-training: dataset validation, label masks in the Gemma chat template, LoRA SFT on a tiny model, steering."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from featurescope.errors import DataError
from featurescope.posttrain import (
    GEMMA_CHAT_TEMPLATE,
    PosttrainConfig,
    _AddToLayer,
    _decoder_layers,
    assistant_format_ok,
    calls_itself_ai,
    length_batches,
    read_dialogues,
    sft_example,
    train_adapter,
    validate_dialogues,
)


def _rows(*convs):
    return [(f"t.jsonl:{i + 1}", {"messages": c}) for i, c in enumerate(convs)]


GOOD = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]


@pytest.mark.parametrize(
    "bad, needle",
    [
        ([{"role": "narrator", "content": "x"}, {"role": "assistant", "content": "y"}], "unknown role 'narrator'"),
        ([{"role": "user", "content": "  "}, {"role": "assistant", "content": "y"}], "is empty"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "two user turns"),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "system message may only come first"),
        ([{"role": "user", "content": "a"}], "no assistant turn"),
    ],
)
def test_validation_names_the_row(bad, needle):
    with pytest.raises(DataError) as e:
        validate_dialogues(_rows(GOOD, GOOD, bad))
    assert "t.jsonl:3" in str(e.value) and needle in str(e.value)


def test_turn_over_context_is_refused(char_tok):
    long = [{"role": "user", "content": "x" * 300}, {"role": "assistant", "content": "ok"}]
    validate_dialogues(_rows(GOOD), char_tok, max_len=100)
    with pytest.raises(DataError, match=r"t.jsonl:2: message 0 \(user\) is 300 tokens, over the context length 100"):
        validate_dialogues(_rows(GOOD, long), char_tok, max_len=100)


def test_shipped_dialogues_are_valid_and_big_enough():
    rows = read_dialogues(PosttrainConfig().data)
    validate_dialogues(rows)
    assert len(rows) >= 1000
    assert sum(r["messages"][0]["role"] == "system" for _, r in rows) > 0
    assert sum(sum(m["role"] == "assistant" for m in r["messages"]) > 1 for _, r in rows) > 0


def test_read_dialogues_reports_bad_json(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"messages": GOOD}) + "\n{not json\n")
    with pytest.raises(DataError, match="d.jsonl row 2"):
        read_dialogues(f)


@pytest.fixture
def gemma_tok(char_tok):
    tok = copy.deepcopy(char_tok)
    tok.chat_template = GEMMA_CHAT_TEMPLATE
    return tok


def test_labels_cover_assistant_tokens_and_end_of_turn(gemma_tok, conv):
    ids, labels = sft_example(gemma_tok, conv, max_len=10_000)
    text = gemma_tok.apply_chat_template(conv, tokenize=False)
    # Gemma has no system role: the system prompt is merged into the first user turn
    assert text.startswith("<bos><start_of_turn>user\nYou are terse.\n\nHi there?<end_of_turn>")
    sup = ids[labels != -100]
    assert gemma_tok.decode(sup) == "Hello.<end_of_turn>Blue, mostly.<end_of_turn>"
    assert (labels[labels != -100] == ids[labels != -100]).all()


def test_length_batches_cover_everything_once():
    b = length_batches([5, 1, 9, 3, 7, 2, 8], batch_size=3, seed=0)
    assert sorted(i for x in b for i in x) == list(range(7))
    assert b == length_batches([5, 1, 9, 3, 7, 2, 8], batch_size=3, seed=0)


def test_format_and_identity_measures():
    assert assistant_format_ok([5, 6, 99], end_of_turn_id=99, start_of_turn_id=98)
    assert not assistant_format_ok([5, 6, 7], 99, 98)  # never ends its turn
    assert not assistant_format_ok([99], 99, 98)  # empty answer
    assert not assistant_format_ok([5, 98, 6, 99], 99, 98)  # writes another turn first
    assert calls_itself_ai("I am an AI assistant made to help.")
    assert calls_itself_ai("I'm a large language model.")
    assert not calls_itself_ai("I am a farmer from Ohio.")


def _tiny_llama(tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    # a larger init than the default 0.02, so that a 32-wide random model's logits can move at all
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
        initializer_range=0.3,
    )
    return LlamaForCausalLM(cfg)


def test_lora_sft_learns_and_saves_a_compact_adapter(gemma_tok, tmp_path):
    hf = _tiny_llama(gemma_tok)
    ex = [
        sft_example(
            gemma_tok,
            [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "Always the same answer."}],
            256,
        )
        for i in range(8)
    ]
    cfg = PosttrainConfig(epochs=6, lr=3e-2, batch_size=4, lora_r=4, lora_alpha=8, lora_dropout=0.0, warmup_steps=1)
    model, tr = train_adapter(hf, gemma_tok, ex, cfg, tmp_path / "ad", device="cpu", progress=False)
    assert tr["steps"] == 12 and tr["trainable_parameters"] > 0
    assert sum(tr["losses"][-2:]) / 2 < 0.5 * sum(tr["losses"][:2]) / 2
    from safetensors.torch import load_file

    w = load_file(str(tmp_path / "ad" / "adapter_model.safetensors"))
    assert w and all(v.dtype == torch.float16 for v in w.values())
    # the turn markers' embedding rows are trained too (peft trainable tokens), so the model can learn to stop
    assert any("trainable_tokens" in k for k in w), sorted(w)[:5]
    assert (tmp_path / "ad" / "adapter_config.json").exists()


def test_sft_loss_matches_the_full_logits_loss(gemma_tok):
    from featurescope.posttrain import collate, sft_loss

    hf = _tiny_llama(gemma_tok)
    ex = [
        sft_example(
            gemma_tok,
            [{"role": "user", "content": "q" * (i + 1)}, {"role": "assistant", "content": "An answer" + "!" * i}],
            256,
        )
        for i in range(3)
    ]
    b = collate(ex, gemma_tok.pad_token_id)
    ref = hf(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss
    got = sft_loss(hf, b["input_ids"], b["attention_mask"], b["labels"])
    assert torch.allclose(got, ref, atol=1e-5), (got, ref)


def test_preventative_steering_hook_adds_alpha_v(tiny_hf_folder):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(tiny_hf_folder))
    layers = _decoder_layers(hf)
    ids = torch.tensor([[2, 10, 11, 12]])
    seen = {}
    probe = layers[1].register_forward_pre_hook(
        lambda m, args, kwargs: seen.__setitem__("x", args[0] if args else kwargs["hidden_states"]), with_kwargs=True
    )
    with torch.no_grad():
        logits0 = hf(input_ids=ids).logits
        h0 = seen["x"].clone()
        v = torch.zeros(h0.shape[-1])
        v[3] = 1.0
        handle = layers[0].register_forward_hook(_AddToLayer(v, 5.0))
        logits1 = hf(input_ids=ids).logits
        handle.remove()
    probe.remove()
    # the next block receives h + 5 v (TransformerLens: blocks.0.hook_resid_post + alpha * v), and the output moves
    assert torch.allclose(seen["x"] - h0, 5.0 * v.expand_as(h0), atol=1e-5)
    assert not torch.allclose(logits0, logits1)


def test_baseline_adapter_needs_a_steering_vector_and_a_real_folder(tmp_path):
    from featurescope.errors import FeaturescopeError
    from featurescope.posttrain import posttrain

    with pytest.raises(FeaturescopeError, match="steer_vector too"):
        posttrain(PosttrainConfig(baseline_adapter=str(tmp_path)), tmp_path / "out")
    with pytest.raises(FeaturescopeError, match="adapter_config.json missing"):
        posttrain(
            PosttrainConfig(baseline_adapter=str(tmp_path), steer_vector="v.safetensors", steer_layer=2),
            tmp_path / "out",
        )
