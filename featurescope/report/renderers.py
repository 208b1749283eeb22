"""Report: registration of the renderers."""

from __future__ import annotations

from .registry import register
from .render_axis import axis_body, axis_numbers
from .render_features import (
    compare_body,
    compare_numbers,
    compare_title,
    crosscoder_body,
    crosscoder_numbers,
    crosscoder_title,
    interpret_body,
    interpret_numbers,
    interpret_title,
    shared_body,
    shared_numbers,
    shared_title,
    steer_body,
    steer_numbers,
    steer_title,
)
from .render_finetune import diff_body, diff_numbers, finetune_body, finetune_numbers
from .render_foundation import demo_body, demo_numbers, posttrain_body, posttrain_numbers, title_persona
from .render_persona import persona_body, persona_numbers
from .render_saes import decompose_body, decompose_numbers, sae_body, sae_numbers
from .render_stages import stages_body, stages_numbers

for _c in ("persona run", "persona extract", "persona rebuild", "persona steer", "persona monitor", "persona flag"):
    register(_c, "persona", persona_numbers, persona_body, title_persona)
register("decompose", "persona", decompose_numbers, decompose_body, title_persona)
register("sae train", "saes", sae_numbers, sae_body)
register("sae eval", "saes", sae_numbers, sae_body)
register("stages", "stages", stages_numbers, stages_body)
register("axis", "axis", axis_numbers, axis_body)
register("axis decompose", "axis", decompose_numbers, decompose_body)
register("posttrain", "posttrain", posttrain_numbers, posttrain_body)
register("demo", "foundation", demo_numbers, demo_body)
register("capture", "foundation", demo_numbers, demo_body)
register("finetune-shift", "finetune", finetune_numbers, finetune_body)
register("finetune-diff", "finetune", diff_numbers, diff_body)
register("features shared", "features", shared_numbers, shared_body, shared_title)
register("features interpret", "features", interpret_numbers, interpret_body, interpret_title)
register("features steer", "features", steer_numbers, steer_body, steer_title)
for _c in ("crosscoder train", "crosscoder eval"):
    register(_c, "features", crosscoder_numbers, crosscoder_body, crosscoder_title)
register("crosscoder compare", "features", compare_numbers, compare_body, compare_title)
