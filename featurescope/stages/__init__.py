"""Feature reuse across training stages: what a base checkpoint's features become after post-training.

Given a base checkpoint, a post-trained checkpoint of the same architecture (same tokenizer), one hook and an SAE
for each stage, :func:`run_stages` measures five things and writes ``summary.json``, figures and ``cards.html``:

1. **SAE transfer** (Kissane et al. 2024): each SAE evaluated on both models' activations over the *same token ids*
   - held-out corpus text and chat-formatted held-out dialogues - with fraction of variance explained, CE-loss
   recovered and L0 (BOS / padding and the top 1% activation norms excluded, via :mod:`featurescope.saes`).
2. **Feature matching**: for every post-SAE latent the best decoder cosine with any base-SAE latent (and vice
   versa), computed in tiles that never materialise the ``n x m`` matrix (:func:`match_dictionaries`); the fraction
   reused (best cosine >= ``reuse_threshold``) next to random-dictionary baselines; unmatched ("new") latents with
   feature cards.
3. **Activation shift**: per latent, firing frequency and mean activation on Assistant-turn tokens in both models;
   the most up- and down-regulated latents, with cards.
4. **Persona vectors across stages**: per layer, the cosine between the base and the post-trained vector of each
   shipped trait, and the overlap of their top SAE features (decoder cosine, :mod:`featurescope.decompose`).
5. **Crosscoder model diff** (Minder et al. 2025): relative decoder norm classification (base-only / shared /
   post-only) and the Latent Scaling check against false post-only latents. No crosscoder library fits this
   project's pins (see :data:`CROSSCODER_STATUS`; :mod:`featurescope.crosscoder` trains one through sae-lens), so
   these are pure functions over decoder tensors and activations
   (:func:`relative_decoder_norm`, :func:`classify_latents`, :func:`latent_scaling`) plus a loader for the two common
   crosscoder checkpoint layouts (:func:`load_crosscoder`); :func:`run_stages` analyses a crosscoder when one is given.

The functions over tensors are pure; the model-driving ones (``prepare_*``, ``transfer_*``, ``persona_*``) and
:func:`run_stages` do the I/O.

Layout (one concept per module): ``constants`` (errors, parts, crosscoder status), ``config``
(:class:`StagesConfig`), ``matching`` (decoder matching, pure), ``shift`` (activation shift, pure), ``persona``
(persona vectors across stages), ``crosscoder`` (model diff: relative decoder norm, latent scaling), ``texts``
(held-out and chat rows, I/O), ``transfer`` (SAE transfer), ``figures``, ``run`` (:func:`run_stages`), ``results``
(its typed result :class:`StagesResult`: dict access as before, the headline numbers in Jupyter, ``plot()``,
``to_frame()``).
Everything is re-exported here, so ``featurescope.stages.X`` keeps working.
"""

from .config import StagesConfig
from .constants import CROSSCODER_STATUS, PARTS, DictionaryMismatchError, StageMismatchError, StagesError
from .crosscoder import (
    CrosscoderWeights,
    ScalingSums,
    classify_latents,
    crosscoder_report,
    latent_scaling,
    latent_scaling_sums,
    load_crosscoder,
    relative_decoder_norm,
)
from .figures import fig_crosscoder, fig_hist, fig_shift, fig_transfer
from .matching import (
    Matching,
    cosine_histogram,
    default_blocks,
    match_dictionaries,
    matching_report,
    random_rotation,
    random_unit_dictionary,
    reuse_fraction,
    rotated_dictionary,
)
from .persona import (
    feature_overlap,
    layer_cosines,
    load_persona_vectors,
    matched_overlap,
    persona_report,
    prompt_persona_vectors,
    top_features,
    trait_prompt_pairs,
)
from .results import StagesResult
from .run import run_stages
from .shift import FeatureActivity, activation_shift, encode_stats
from .texts import (
    TokenRows,
    capture_rows,
    check_pair,
    heldout_dialogues,
    pack_conversations,
    prepare_chat_rows,
    prepare_plain_rows,
)
from .transfer import transfer_metrics

__all__ = [
    "CROSSCODER_STATUS",
    "CrosscoderWeights",
    "DictionaryMismatchError",
    "FeatureActivity",
    "Matching",
    "PARTS",
    "ScalingSums",
    "StageMismatchError",
    "StagesConfig",
    "StagesError",
    "StagesResult",
    "TokenRows",
    "activation_shift",
    "capture_rows",
    "check_pair",
    "classify_latents",
    "cosine_histogram",
    "crosscoder_report",
    "default_blocks",
    "encode_stats",
    "feature_overlap",
    "fig_crosscoder",
    "fig_hist",
    "fig_shift",
    "fig_transfer",
    "heldout_dialogues",
    "latent_scaling",
    "latent_scaling_sums",
    "layer_cosines",
    "load_crosscoder",
    "load_persona_vectors",
    "match_dictionaries",
    "matched_overlap",
    "matching_report",
    "pack_conversations",
    "persona_report",
    "prepare_chat_rows",
    "prepare_plain_rows",
    "prompt_persona_vectors",
    "random_rotation",
    "random_unit_dictionary",
    "relative_decoder_norm",
    "reuse_fraction",
    "rotated_dictionary",
    "run_stages",
    "top_features",
    "trait_prompt_pairs",
    "transfer_metrics",
]
