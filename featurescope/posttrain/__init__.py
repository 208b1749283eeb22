"""Post-training: turn a base checkpoint into an Assistant with LoRA supervised fine-tuning (``peft``), evaluate it,
and optionally apply Chen et al.'s *preventative steering* (add ``alpha * v`` of a persona vector at one layer during
training, so the optimiser need not move the weights along ``v``).

The offline post-trained checkpoint ``offline:gemma-3-270m-sft`` is the real Gemma 3 270M base plus the adapter this
package trains on the project's own dialogues (``featurescope/data/dialogues``), formatted with the Gemma chat template
(the same format as the official ``google/gemma-3-270m-it``). Loss is on assistant tokens only, including the
``<end_of_turn>`` that closes each assistant turn, so the model learns to stop.

Core pieces are pure functions (``validate_dialogues``, ``sft_example``, ``assistant_format_ok``,
``calls_itself_ai``); :func:`posttrain` does the I/O (model, optimiser, adapter, summary).

Layout (one concept per module): ``data`` (dialogues, validation, chat template, SFT examples, batches), ``config``
(:class:`PosttrainConfig`), ``steering`` (the steering hook used during training: :func:`decoder_layers`,
:class:`AddToLayer`), ``train`` (:func:`train_adapter`: LoRA, learning-rate schedule, :func:`sft_loss`),
``evaluate`` (answers, Assistant-format / identity measures, trait projection), ``run`` (:func:`posttrain`).
Everything is re-exported here, so ``featurescope.posttrain.X`` keeps working.
"""

from .config import PosttrainConfig
from .data import (
    DIALOGUES,
    GEMMA_CHAT_TEMPLATE,
    ROLES,
    collate,
    ensure_chat_template,
    length_batches,
    read_dialogues,
    sft_example,
    validate_dialogues,
)
from .evaluate import (
    assistant_format_ok,
    calls_itself_ai,
    evaluate_assistant,
    generate_answers,
    mean_projection,
    trait_projection,
)
from .run import posttrain
from .steering import AddToLayer, _AddToLayer, _decoder_layers, decoder_layers
from .train import sft_loss, train_adapter

__all__ = [
    "DIALOGUES",
    "GEMMA_CHAT_TEMPLATE",
    "ROLES",
    "AddToLayer",
    "PosttrainConfig",
    "_AddToLayer",
    "_decoder_layers",
    "assistant_format_ok",
    "calls_itself_ai",
    "collate",
    "decoder_layers",
    "ensure_chat_template",
    "evaluate_assistant",
    "generate_answers",
    "length_batches",
    "mean_projection",
    "posttrain",
    "read_dialogues",
    "sft_example",
    "sft_loss",
    "train_adapter",
    "trait_projection",
    "validate_dialogues",
]
