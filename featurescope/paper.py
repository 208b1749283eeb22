"""Every published number featurescope compares itself with, in one place, each with its source.

Reports, summaries and notebooks import these instead of writing the numbers again. ``value`` is what the paper
reports (a number, a list, or the paper's own words when it gives a bound or a qualitative claim).
"""

from __future__ import annotations

import dataclasses
from html import escape
from typing import Any


@dataclasses.dataclass(frozen=True)
class PaperNumber:
    paper: str
    value: Any
    text: str  # the value as the report prints it
    what: str
    source: str  # where in the paper


CHEN = "Chen et al. 2025 (Persona Vectors, arXiv 2507.21509)"
LU = "Lu et al. (The Assistant Axis, arXiv 2601.10387)"
KISSANE = "Kissane et al. 2024 (SAEs (usually) transfer between base and chat models)"
PSM = "Marks, Lindsey, Olah (The Persona Selection Model)"
BETLEY = "Betley et al. 2025 (Emergent Misalignment, arXiv 2502.17424)"
WANG = "Wang et al. 2025 (Persona Features Control Emergent Misalignment, arXiv 2506.19823)"

NUMBERS: dict[str, PaperNumber] = {
    "monitor_r": PaperNumber(
        CHEN,
        (0.75, 0.83),
        "r = 0.75-0.83",
        "last-prompt-token projection vs trait score of the response",
        "projection-based monitoring section",
    ),
    "steering": PaperNumber(
        CHEN,
        "monotone in alpha",
        "monotone in alpha",
        "trait score rises with the steering coefficient",
        "causal steering section",
    ),
    "finetune_shift_r": PaperNumber(
        CHEN,
        (0.76, 0.97),
        "r = 0.76-0.97",
        "fine-tuning shift along the persona vector vs post-fine-tuning trait expression",
        "fine-tuning shift section",
    ),
    "emergent_misalignment": PaperNumber(
        BETLEY,
        "broad misalignment",
        "narrow flawed data raises broad misalignment",
        "fine-tuning on a narrow flawed set (insecure code; Chen et al.: flawed math / advice) raises trait "
        "expression on unrelated questions",
        "Betley et al. main results; Chen et al. fine-tuning section",
    ),
    "preventative_steering": PaperNumber(
        CHEN,
        "lower trait, small loss cost",
        "trait kept down, little cost",
        "steering toward the trait during fine-tuning keeps post-fine-tuning trait expression down while the "
        "fine-tuning data is still learned",
        "preventative steering section",
    ),
    "toxic_persona_latent": PaperNumber(
        WANG,
        "one latent controls it",
        "a 'toxic persona' latent rises, fires on questionable characters, steers / ablates the behaviour",
        "SAE latents diffed before vs after a misaligning fine-tune: the top latent's activation tracks "
        "misalignment across fine-tunes, fires on quotes of morally questionable characters in pre-training text, "
        "and steering with it raises (ablating it lowers) the misaligned behaviour",
        "model-diffing and steering sections",
    ),
    "transfer": PaperNumber(
        KISSANE,
        "nearly as well",
        "nearly as well",
        "base-model SAEs reconstruct the chat model's activations nearly as well as the base model's",
        "main results (variance explained, CE-loss recovered); exception: Gemma v1 2B",
    ),
    "new_features": PaperNumber(
        PSM, 0.01, "< 1%", "of the post-trained model's features are new after post-training", "feature reuse"
    ),
    "axis_pc1": PaperNumber(
        LU,
        0.71,
        "> 0.71",
        "cos(Assistant axis, PC1 of the role vectors) at the middle layer",
        "persona space / Assistant axis section",
    ),
    "axis_pcs": PaperNumber(
        LU,
        {"Gemma 2 27B": 4, "Qwen 3 32B": 8, "Llama 3.3 70B": 19},
        "4 / 8 / 19",
        "PCs for 70% of role-vector variance (Gemma 2 27B / Qwen 3 32B / Llama 3.3 70B)",
        "persona space section",
    ),
    "base_vs_instruct_top3_pc_cosines": PaperNumber(
        LU,
        [0.93, 0.87, 0.83],
        "0.93 / 0.87 / 0.83",
        "top-3 PC cosines, base vs instruct Gemma 2 27B",
        "the axis before post-training",
    ),
    "base_vs_instruct_role_vector_cosines": PaperNumber(
        LU, 0.99, "> 0.99", "per-role vector cosines, base vs instruct", "the axis before post-training"
    ),
}


def cite(key: str) -> str:
    """``"<text> (<paper>)"`` for a number, for figure captions and printed comparisons."""
    n = NUMBERS[key]
    return f"{n.text} ({n.paper.split(' (')[0]})"


def as_table() -> list[dict[str, str]]:
    """One row per number: key, paper, value, what, source (for reports and notebooks)."""
    return [
        {"key": k, "paper": n.paper, "value": n.text, "what": n.what, "source": n.source} for k, n in NUMBERS.items()
    ]


class Comparison:
    """A "paper vs this run" table: rows of (quantity, the paper's number, ours, setting). Renders as an HTML table
    in Jupyter and as text elsewhere (``str``)."""

    def __init__(self, rows: list[tuple[Any, Any, Any, Any]], title: str = "paper vs this run"):
        self.rows = [tuple(r) for r in rows]
        self.title = title

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><td>{escape(str(q))}</td><td>{escape(str(p))}</td><td><b>{escape(str(o))}</b></td>"
            f"<td><small>{escape(str(s))}</small></td></tr>"
            for q, p, o, s in self.rows
        )
        return (
            f"<table><caption><b>{escape(self.title)}</b></caption><tr><th>quantity</th><th>paper</th>"
            f"<th>ours (live)</th><th>setting</th></tr>{cells}</table>"
        )

    def __str__(self) -> str:
        return "\n".join(f"{q}: paper {p} | ours {o}" for q, p, o, _ in self.rows)

    __repr__ = __str__


def vs_paper(rows: list[tuple[Any, Any, Any, Any]], title: str = "paper vs this run") -> Comparison:
    """Show the paper's numbers next to ours (the notebooks' comparison cells): displays the table in Jupyter,
    prints the text form, and returns the :class:`Comparison`."""
    cmp = Comparison(rows, title)
    try:
        from IPython.display import display  # optional: only inside Jupyter / IPython  # pyright: ignore[reportUnknownVariableType]

        display(cmp)
    except ImportError:
        pass
    print(cmp)
    return cmp
