"""Shared fixtures: a character-level tokenizer with a Gemma-style chat template and tiny random models."""

from __future__ import annotations

import os
import string

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A report renderer that fails on a summary raises in the tests (and in notebook kernels, which inherit this)
# instead of showing "renderer failed" (featurescope.report.page.strict_default).
os.environ.setdefault("FEATURESCOPE_REPORT_STRICT", "1")

# jaxtyping shape annotations are checked at run time in the tests (beartype), so a wrong shape fails a test.
# The hook must be installed before any featurescope module is imported. FEATURESCOPE_NO_SHAPE_CHECKS=1 skips it.
if os.environ.get("FEATURESCOPE_NO_SHAPE_CHECKS") != "1":
    import importlib

    from jaxtyping import install_import_hook

    importlib.import_module("tests._typecheck")  # the hook resolves "tests._typecheck.checker" by attribute
    install_import_hook("featurescope", "tests._typecheck.checker")

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}<sys>{{ m['content'] }}</sys>"
    "{% else %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
SPECIALS = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>", "<sys>", "</sys>"]


def make_char_tokenizer(chat: bool = True, folder=None):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = list(string.printable)
    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    vocab["<unk>"] = len(vocab)
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=SPECIALS[3:],
    )
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    if folder is not None:  # TransformerLens re-loads tokenizers by name_or_path, so give it a real folder
        tok.save_pretrained(folder)
        tok = PreTrainedTokenizerFast.from_pretrained(str(folder))
    return tok


def make_tiny_tl(tokenizer, n_layers: int = 3, d_model: int = 32, seed: int = 0, n_ctx: int = 512):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_ctx=n_ctx,
        d_head=8,
        n_heads=4,
        d_mlp=4 * d_model,
        d_vocab=len(tokenizer),
        act_fn="gelu",
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_dim=8,
        seed=seed,
        device="cpu",
        default_prepend_bos=False,
    )
    tl = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    tl.eval()
    return tl


@pytest.fixture(scope="session")
def char_tok(tmp_path_factory):
    return make_char_tokenizer(chat=True, folder=tmp_path_factory.mktemp("tok_chat"))


@pytest.fixture(scope="session")
def char_tok_plain(tmp_path_factory):
    return make_char_tokenizer(chat=False, folder=tmp_path_factory.mktemp("tok_plain"))


@pytest.fixture(scope="session")
def tiny_chat(char_tok):
    import featurescope as fs

    return fs.from_hooked_transformer(
        make_tiny_tl(char_tok), name="tiny-chat", stage="post-trained", tokenizer=char_tok
    )


@pytest.fixture(scope="session")
def tiny_base(char_tok_plain):
    import featurescope as fs

    return fs.from_hooked_transformer(
        make_tiny_tl(char_tok_plain, seed=1), name="tiny-base", stage="base", tokenizer=char_tok_plain
    )


@pytest.fixture(scope="session")
def tiny_hf_folder(tmp_path_factory, char_tok):
    """A tiny random Llama checkpoint saved as a local Hugging Face folder (with a chat template)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(char_tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=char_tok.bos_token_id,
        eos_token_id=char_tok.eos_token_id,
        pad_token_id=char_tok.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg)
    d = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(d)
    char_tok.save_pretrained(d)
    return d


CONV = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi there?"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Name a color."},
    {"role": "assistant", "content": "Blue, mostly."},
]


@pytest.fixture
def conv():
    return [dict(m) for m in CONV]


@pytest.fixture
def tiny_pair(tiny_hf_folder, char_tok):
    """(HF causal LM, chat tokenizer, PersonaVector class) for the fine-tuning tests."""
    import copy

    from transformers import AutoModelForCausalLM

    from featurescope.formatting import GEMMA_CHAT_TEMPLATE
    from featurescope.persona import PersonaVector

    hf = AutoModelForCausalLM.from_pretrained(str(tiny_hf_folder))
    tok = copy.deepcopy(char_tok)
    tok.chat_template = GEMMA_CHAT_TEMPLATE
    return hf, tok, PersonaVector
