"""The Assistant axis (Lu et al., "The Assistant Axis", arXiv 2601.10387): persona space, drift and capping.

The method, as implemented here:

1. **Role library** (data, ``featurescope/data/roles/``): >= 120 character archetypes with 5 role-play system
   prompts each, the default-Assistant condition (5 neutral prompts, the first ``""`` = no system prompt), >= 40
   shared questions. A user YAML with the same ``roles:`` schema is merged with the shipped one
   (:func:`load_role_library`). Prompts are formatted per stage by :mod:`featurescope.formatting` (chat template for
   a post-trained checkpoint - a template without a system role, like Gemma's, merges the system prompt into the first
   user turn itself; transcript with a narrator's preface for a base checkpoint).
2. **Role vectors**: every (role, question) pair is asked under one of the role's 5 prompts (``instructions="cycle"``:
   question j of role r uses prompt (j + r) mod 5, so every prompt is used once n_questions >= 5; ``"all"`` asks all
   5) and answered by batched generation. A role judge scores 0-3 how fully the answer stays in role
   (:class:`LLMRoleJudge` with an OpenAI-compatible endpoint, or the offline proxy :class:`EmbeddingRoleJudge`). The
   role vector is the mean activation over response tokens (``response_mean``; ``prompt_mean`` as an option) of the
   answers scoring 3 (falling back to >= 2, then to all answers, for a role with fewer than ``min_kept``; the
   threshold used is recorded per role). All answers are captured (streamed to an
   :class:`featurescope.store.ActivationStore`, resumable), so re-filtering never recomputes activations.
3. **The axis**, per layer: ``axis_L = mean(default-Assistant activations) - mean_r(role vector_r)``; it points
   *toward* the Assistant. Separately, PCA over the role vectors (explained variance, how many PCs reach 70%, PC1
   oriented so that ``cos(axis, PC1) >= 0``), where the default Assistant falls on PC1, roles ranked by projection.
4. **Steering** ``h <- h + alpha * axis_L`` (alpha in units of the axis itself: alpha = 1 moves an activation by the
   whole default-minus-roles gap; alpha > 0 toward the Assistant, alpha < 0 away), measured by the fraction of answers
   to "Who are you?"-style questions that identify as an AI (:func:`identifies_as_ai`) and by the projection of the
   steered answers read back without steering.
5. **Drift**: the mean projection of each Assistant turn onto the unit axis over multi-turn scripts.
6. **Capping** (sign convention): with ``v_hat`` the unit axis (toward the Assistant), drifting away lowers
   ``<h, v_hat>``. Capping keeps the projection from falling below ``tau``::

       h <- h + v_hat * max(tau - <h, v_hat>, 0)        (= h - v_hat * min(<h, v_hat> - tau, 0))

   at a band of middle-to-late layers, with ``tau_L`` the ``percentile`` (default 25th) of the default Assistant's
   own per-token response projections at layer L. Tokens with a norm over ``skip_outliers`` x the median norm of
   their forward pass (attention sinks such as BOS, norms ~100x the rest in Gemma) are left alone.
7. **Across stages**: :func:`compare_axes` (axis cosine per layer, top-3 PC cosines, per-role vector cosines raw and
   centred, where one model's default Assistant falls on the other's axis) and :func:`prefill_test` (steer a base
   checkpoint along an axis; classify its completions of "I am a ..." prefills with the shipped helpful / fantastical
   archetype word lists).

Pure functions over tensors are at the top (:func:`group_means`, :func:`axis_from_means`, :func:`pca`,
:func:`cap_activations`, ...); the functions that drive a model are below them; :func:`run_axis` writes a run folder.

Layout (one concept per module): ``constants`` (role-library limits, categories, paper numbers), ``roles`` (the role
library: data and loading), ``text`` (completion classes, text measures), ``pca`` (pure tensor functions: means,
axis, PCA, projections, capping), ``vector`` (:class:`AssistantAxis`), ``judges`` (jobs, role judges, what is kept),
``collect`` (drives a model: answers, activations, role vectors), ``steer`` (steering, capping, drift, base-model
prefills), ``compare`` (across stages and SAE features), ``figures``, ``run`` (:func:`run_axis`, a run folder),
``commands`` (one call per ``featurescope axis`` action: :func:`axis_collect`, :func:`axis_steer`, ..., each writing
its run folder and ``summary.json``).
Everything is re-exported here, so ``featurescope.axis.X`` keeps working.
"""

from ..measures import DEFAULT_AI_TERMS, identifies_as_ai
from .collect import collect_axis, format_all, generate_cached, token_projections
from .commands import (
    analysis_figures,
    axis_analyze,
    axis_cap,
    axis_collect,
    axis_compare,
    axis_decompose,
    axis_drift,
    axis_prefill,
    axis_roles,
    axis_steer,
)
from .compare import axis_features_across_stages, compare_axes, compare_decompositions, decompose_axis
from .constants import (
    CATEGORIES,
    GROUPS,
    MIN_QUESTIONS,
    MIN_ROLES,
    N_INSTRUCTIONS,
    NAME_RE,
    NON_ROLE_FILES,
    PAPER,
    ROLES_DIR,
)
from .drift import (
    DRIFT_NULL_DIRECTIONS,
    drift,
    drift_change_evidence,
    drift_null_directions,
    drift_projections,
    run_drift,
    turn_intervals,
)
from .figures import (
    CAT_COLORS,
    plot_compare,
    plot_drift,
    plot_explained_variance,
    plot_layers,
    plot_pc_scatter,
    plot_prefill,
    plot_ranked_roles,
    plot_steering,
)
from .judges import (
    ASSISTANT_ANCHORS,
    ROLE_RUBRIC,
    AxisConfig,
    EmbeddingRoleJudge,
    Job,
    KeepAllJudge,
    LLMRoleJudge,
    RoleJudge,
    build_jobs,
    keep_mask,
    role_judge,
)
from .pca import (
    PCAResult,
    axis_from_means,
    cap_activations,
    cosine,
    default_cap_layers,
    group_means,
    n_components_for,
    outlier_positions,
    pca,
    percentile_rank,
    project,
    turn_spans,
    unit,
)
from .results import AxisRunResult, DriftResult, ScriptDrift
from .roles import DriftScript, Role, RoleLibrary, load_role_library, load_scripts, parse_roles, spread
from .run import run_axis
from .sections import drift_section, drift_summary, prefill_section, steering_section
from .steer import (
    CapStats,
    ai_fraction,
    axis_steering_control,
    axis_steering_sweep,
    cap,
    capping_hook,
    complete_prefills,
    prefill_test,
    steer_axis,
)
from .text import classify_completion, distinct_bigram_ratio
from .vector import AssistantAxis

__all__ = [
    "analysis_figures",
    "axis_analyze",
    "axis_cap",
    "axis_collect",
    "axis_compare",
    "axis_decompose",
    "axis_drift",
    "axis_prefill",
    "axis_roles",
    "axis_steer",
    "drift_section",
    "drift_summary",
    "prefill_section",
    "steering_section",
    "ASSISTANT_ANCHORS",
    "AssistantAxis",
    "AxisConfig",
    "CATEGORIES",
    "CAT_COLORS",
    "CapStats",
    "DEFAULT_AI_TERMS",
    "DriftScript",
    "EmbeddingRoleJudge",
    "GROUPS",
    "Job",
    "KeepAllJudge",
    "LLMRoleJudge",
    "MIN_QUESTIONS",
    "MIN_ROLES",
    "NAME_RE",
    "NON_ROLE_FILES",
    "N_INSTRUCTIONS",
    "PAPER",
    "PCAResult",
    "ROLES_DIR",
    "ROLE_RUBRIC",
    "Role",
    "RoleJudge",
    "RoleLibrary",
    "ai_fraction",
    "axis_features_across_stages",
    "axis_from_means",
    "axis_steering_control",
    "axis_steering_sweep",
    "build_jobs",
    "cap",
    "cap_activations",
    "capping_hook",
    "classify_completion",
    "collect_axis",
    "compare_axes",
    "compare_decompositions",
    "complete_prefills",
    "cosine",
    "decompose_axis",
    "default_cap_layers",
    "distinct_bigram_ratio",
    "drift",
    "drift_projections",
    "DriftResult",
    "AxisRunResult",
    "ScriptDrift",
    "DRIFT_NULL_DIRECTIONS",
    "drift_change_evidence",
    "drift_null_directions",
    "turn_intervals",
    "format_all",
    "generate_cached",
    "group_means",
    "identifies_as_ai",
    "keep_mask",
    "load_role_library",
    "load_scripts",
    "n_components_for",
    "outlier_positions",
    "parse_roles",
    "pca",
    "percentile_rank",
    "plot_compare",
    "plot_drift",
    "plot_explained_variance",
    "plot_layers",
    "plot_pc_scatter",
    "plot_prefill",
    "plot_ranked_roles",
    "plot_steering",
    "prefill_test",
    "project",
    "role_judge",
    "run_axis",
    "run_drift",
    "spread",
    "steer_axis",
    "token_projections",
    "turn_spans",
    "unit",
]
