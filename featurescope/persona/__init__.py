"""Persona vectors (Chen et al. 2025): extract, steer, monitor, flag data.

A persona vector for a trait is, per layer, mean activation on trait-expressing responses minus mean activation on
non-expressing ones (``response_mean``; the paper's default), or the same over prompt tokens (``prompt_mean``) or at
the last prompt token (``last_prompt``). Vectors are not normalised. Steering adds ``alpha * v`` to the residual
stream at one layer; monitoring projects the last prompt token onto the unit vector; data flagging compares a
dataset response's projection with the model's own response to the same prompt ("projection difference").

The functions over tensors (:func:`mean_difference`, :func:`project`, :func:`separation`) are pure; the rest
drive a model through :mod:`featurescope.capture` and :mod:`featurescope.generate`.

Layout (one concept per module): ``vector`` (mean differences, projection, separation, :class:`PersonaVector`),
``steering`` (the steering hook and context manager), ``monitoring`` (last-prompt monitoring, data flagging),
``extraction`` (Chen et al.'s pipeline and written-answer extraction), ``extraction_results`` (its typed result
:class:`PersonaExtraction`: dict access as before, a per-layer table of held-out separation with its null in
Jupyter, ``plot()``, ``to_frame()``), ``sweeps`` (steering sweep, monitor correlation, layer choice), ``results``
(their typed results: :class:`SteeringSweep`, :class:`SteeringControl`, :class:`MonitorCorrelation`; dict access as
before, Jupyter rendering, ``plot()``, ``to_frame()``), ``run`` (:func:`run_persona`: the whole experiment into a
run folder).
Everything is re-exported here, so ``featurescope.persona.X`` keeps working.
"""

from .extraction import (
    ExtractionConfig,
    extract,
    extract_written,
    load_written,
    rebuild,
    vectors_from_conversations,
)
from .extraction_results import PersonaExtraction
from .monitoring import check_flag_rows, flag_summary, monitor, projection_difference
from .results import MonitorCorrelation, SteeringControl, SteeringRow, SteeringSweep, evidence_from_dict
from .run import FLAG_DEMO, run_persona
from .run_result import PersonaRunResult
from .steering import steer, steering_hook
from .sweeps import choose_layer, monitor_correlation, steering_control, steering_sweep, unsteered_logprob
from .vector import PersonaVector, mean_difference, pearson, project, separation

__all__ = [
    "PersonaRunResult",
    "ExtractionConfig",
    "FLAG_DEMO",
    "MonitorCorrelation",
    "PersonaExtraction",
    "PersonaVector",
    "SteeringControl",
    "SteeringRow",
    "SteeringSweep",
    "check_flag_rows",
    "choose_layer",
    "evidence_from_dict",
    "extract",
    "extract_written",
    "load_written",
    "rebuild",
    "mean_difference",
    "monitor",
    "monitor_correlation",
    "pearson",
    "project",
    "projection_difference",
    "flag_summary",
    "run_persona",
    "separation",
    "steer",
    "steering_hook",
    "steering_control",
    "steering_sweep",
    "unsteered_logprob",
    "vectors_from_conversations",
]
