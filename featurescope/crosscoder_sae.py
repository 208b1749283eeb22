"""The BatchTopK crosscoder as an sae-lens architecture (imports sae-lens; registered when this module is imported).

A two-model acausal crosscoder (Lindsey et al. 2024) reads the concatenation ``[h_base; h_post]`` of the two models'
activations at one hook for one token (``d_in = 2 * d_model``), has one shared latent code, and one decoder row per
latent and model (the two halves of an sae-lens ``W_dec`` row). It is sae-lens' BatchTopK training SAE with one
change, the one that makes it a crosscoder in Minder et al. (2025) / ``dictionary_learning``'s
``BatchTopKCrossCoder``: latents are ranked - for the batch top-k, for the auxiliary dead-latent loss and for the
learned JumpReLU threshold - by activation x the **sum over models of the per-model decoder-row norms**
``||d_j^base|| + ||d_j^post||``, not by the norm of the concatenated row. sae-lens' ``rescale_acts_by_decoder_norm``
already treats the decoder as normalised by a per-latent norm; here that norm is the sum of the two halves' norms.

Per-model activation normalisation (each half scaled to an expected norm of sqrt(d_model) during training; the
scales live in the ``activation_scales`` buffer, so checkpoints carry them) is folded into the weights when the
inference crosscoder is saved, so the saved JumpReLU crosscoder reads raw activations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, no_type_check

import torch
from sae_lens.registry import (
    SAE_CLASS_REGISTRY,
    SAE_TRAINING_CLASS_REGISTRY,
    register_sae_class,
    register_sae_training_class,
)
from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
from sae_lens.saes.sae import SAEConfig
from sae_lens.saes.topk_sae import calculate_topk_aux_acts
from torch import Tensor
from typing_extensions import override

TRAINING_ARCHITECTURE = "batchtopk_crosscoder"
INFERENCE_ARCHITECTURE = "jumprelu_crosscoder"
N_MODELS = 2  # model 0 = base, model 1 = post-trained: W_dec[:, :d] / W_dec[:, d:]


def code_norm(W_dec: Tensor) -> Tensor:
    """Per latent, the sum over models of its decoder-row norms: ``[d_sae, 2 * d]`` -> ``[d_sae]``."""
    return W_dec.unflatten(-1, (N_MODELS, -1)).norm(dim=-1).sum(-1)


def _check_crosscoder_cfg(cfg: SAEConfig) -> None:
    if cfg.d_in % N_MODELS:
        raise ValueError(f"a {N_MODELS}-model crosscoder needs an even d_in (2 x d_model), got d_in={cfg.d_in}")
    if cfg.normalize_activations != "none":
        raise ValueError(
            "a crosscoder normalises each model's half with its own scale (activation_scales), not with sae-lens' "
            f"single scale: normalize_activations must be 'none', got {cfg.normalize_activations!r}"
        )


# no_type_check: sae-lens' from_dict passes ``metadata`` to the constructor as a dict before it wraps it, so the
# dataclass annotations are not what sae-lens calls them with (a run-time checker would refuse a valid config)
@no_type_check
@dataclass
class JumpReLUCrosscoderConfig(JumpReLUSAEConfig):
    """Inference config of a two-model crosscoder: a JumpReLU SAE over ``[h_base; h_post]`` (``d_in = 2 d_model``)."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return INFERENCE_ARCHITECTURE

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_crosscoder_cfg(self)


class JumpReLUCrosscoder(JumpReLUSAE):
    """The saved (inference) crosscoder: sae-lens' JumpReLU SAE over the concatenated activations, with the
    per-model view of its decoder. Reads raw activations (the training scales are folded in)."""

    cfg: JumpReLUCrosscoderConfig  # pyright: ignore[reportIncompatibleVariableOverride]

    @property
    def d_model(self) -> int:
        return self.cfg.d_in // N_MODELS

    def decoder_per_model(self) -> Tensor:
        """``[2, d_sae, d_model]``: the base and post-trained decoder rows of every latent."""
        return self.W_dec.unflatten(-1, (N_MODELS, -1)).transpose(0, 1)


@no_type_check  # as JumpReLUCrosscoderConfig
@dataclass
class BatchTopKCrosscoderTrainingSAEConfig(BatchTopKTrainingSAEConfig):
    """Training config of the BatchTopK crosscoder; ``d_in = 2 * d_model``. Decoder-norm rescaling is what makes the
    ranking use the crosscoder norm, so it must stay on."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return TRAINING_ARCHITECTURE

    @override
    def get_inference_config_class(self) -> type[SAEConfig]:
        return JumpReLUCrosscoderConfig

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_crosscoder_cfg(self)
        if not self.rescale_acts_by_decoder_norm:
            raise ValueError(
                "the crosscoder ranks latents by activation x (sum of per-model decoder norms): "
                "rescale_acts_by_decoder_norm must be True"
            )


class BatchTopKCrosscoderTrainingSAE(BatchTopKTrainingSAE):
    """sae-lens' BatchTopK training SAE with the crosscoder decoder norm (see the module docstring). Overrides only
    where sae-lens uses the concatenated row norm: ``get_W_dec_norm`` (used when folding the norm into the saved
    weights), ``encode_with_hidden_pre`` / ``decode`` (the ranking and its inverse) and ``calculate_topk_aux_loss``;
    and ``process_state_dict_for_saving_inference`` folds the per-model activation scales into the saved weights."""

    cfg: BatchTopKCrosscoderTrainingSAEConfig  # pyright: ignore[reportIncompatibleVariableOverride]
    activation_scales: Tensor

    def __init__(self, cfg: BatchTopKCrosscoderTrainingSAEConfig, use_error_term: bool = False):
        super().__init__(cfg, use_error_term)
        # activations are multiplied by these (per model) before they reach the crosscoder during training
        self.register_buffer("activation_scales", torch.ones(N_MODELS, dtype=self.dtype, device=self.W_dec.device))

    @property
    def d_model(self) -> int:
        return self.cfg.d_in // N_MODELS

    def code_norm(self) -> Tensor:
        """``||d_j^base|| + ||d_j^post||`` per latent (differentiable)."""
        return code_norm(self.W_dec)

    @override
    @torch.no_grad()
    def get_W_dec_norm(self) -> Tensor:
        return self.code_norm().clamp(min=1e-8)

    @override
    def encode_with_hidden_pre(self, x: Tensor) -> tuple[Tensor, Tensor]:
        sae_in = self.process_sae_in(x)
        hidden_pre = self.hook_sae_acts_pre(sae_in @ self.W_enc + self.b_enc) * self.code_norm()
        return self.hook_sae_acts_post(self.activation_fn(hidden_pre)), hidden_pre

    @override
    def decode(self, feature_acts: Tensor) -> Tensor:
        out = (feature_acts / self.code_norm().clamp(min=1e-8)) @ self.W_dec + self.b_dec
        out = self.run_time_activation_norm_fn_out(self.hook_sae_recons(out))
        return self.reshape_fn_out(out, self.d_head)

    @override
    def calculate_topk_aux_loss(
        self, sae_in: Tensor, sae_out: Tensor, hidden_pre: Tensor, dead_neuron_mask: Tensor | None
    ) -> Tensor:
        """sae-lens' auxiliary loss (the top ``k_aux`` dead latents reconstruct the residual), with dead latents
        ranked by the crosscoder-scaled pre-activation and ``k_aux = d_model // 2`` (``dictionary_learning``'s
        per-model ``activation_dim // 2``; sae-lens' ``d_in // 2`` would double it for the concatenated input)."""
        if dead_neuron_mask is None or (num_dead := int(dead_neuron_mask.sum())) == 0:
            return sae_out.new_tensor(0.0)
        residual = (sae_in - sae_out).detach()
        k_aux = max(1, self.d_model // 2)
        scale = min(num_dead / k_aux, 1.0)
        auxk_acts = calculate_topk_aux_acts(
            k_aux=min(k_aux, num_dead), hidden_pre=hidden_pre, dead_neuron_mask=dead_neuron_mask
        )
        recons = (auxk_acts / self.code_norm().clamp(min=1e-8)) @ self.W_dec
        return self.cfg.aux_loss_coefficient * scale * (recons - residual).pow(2).sum(dim=-1).mean()

    @override
    def process_state_dict_for_saving_inference(self, state_dict: dict[str, Any]) -> None:
        """sae-lens' BatchTopK -> JumpReLU conversion (crosscoder norm folded in, top-k threshold -> JumpReLU
        threshold), then the per-model activation scales folded in so the saved crosscoder reads raw activations:
        with ``x = s * x_raw``, ``W_enc <- s W_enc``, ``W_dec <- W_dec / s``, ``b_dec <- b_dec / s`` (the
        pre-activations, hence the threshold, are unchanged)."""
        scales = state_dict.pop("activation_scales")
        super().process_state_dict_for_saving_inference(state_dict)
        s = scales.to(state_dict["W_dec"].dtype).repeat_interleave(self.d_model)
        state_dict["W_enc"] = state_dict["W_enc"] * s[:, None]
        state_dict["W_dec"] = state_dict["W_dec"] / s
        state_dict["b_dec"] = state_dict["b_dec"] / s


def register() -> None:
    """Register both classes with sae-lens (idempotent), so its ``save_model`` / ``load_from_disk`` know them."""
    if TRAINING_ARCHITECTURE not in SAE_TRAINING_CLASS_REGISTRY:
        register_sae_training_class(
            TRAINING_ARCHITECTURE, BatchTopKCrosscoderTrainingSAE, BatchTopKCrosscoderTrainingSAEConfig
        )
    if INFERENCE_ARCHITECTURE not in SAE_CLASS_REGISTRY:
        register_sae_class(INFERENCE_ARCHITECTURE, JumpReLUCrosscoder, JumpReLUCrosscoderConfig)


register()
