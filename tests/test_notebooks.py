"""The tutorial notebooks in notebooks/.

Fast checks (always run): every notebook is stored without outputs, and has exactly one config cell near the top -
the only cell naming models / SAEs, with ``ONLINE = False`` - whose online branch names the flagship pair.

Integration (``pytest -m integration``): each notebook executed top to bottom with nbclient on the offline
default (kernel ``python3``, cwd ``notebooks/``), as a reader would run it. On a 2-core CPU the five take about
ten minutes together; the per-notebook time is printed (``-s``) and the slowest fits well inside the cell timeout.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NB_DIR = REPO / "notebooks"
EXPECTED = [
    "00_quickstart.ipynb",
    "01_persona_vectors.ipynb",
    "02_sae_decomposition.ipynb",
    "03_feature_reuse_across_stages.ipynb",
    "04_assistant_axis.ipynb",
    "05_finetune_shift.ipynb",
]
NOTEBOOKS = [NB_DIR / n for n in EXPECTED]
SLOW_NOTEBOOKS = {"01_persona_vectors", "04_assistant_axis", "05_finetune_shift"}
CELL_TIMEOUT_S = 1200  # per cell; generous for a loaded 2-core machine
FLAGSHIP = ("google/gemma-3-270m", "google/gemma-3-270m-it")
# strings only the config cell may contain: model names, SAE releases / folders and the ONLINE switch
CONFIG_ONLY = re.compile(r"offline:|google/|gemma-scope|saes/|^\s*ONLINE\s*=", re.M)


def _read(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb


def _config_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if "config" in c.get("metadata", {}).get("tags", [])]


def test_the_notebooks_are_there():
    assert sorted(p.name for p in NB_DIR.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_without_outputs(path):
    nb = _read(path)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has stored outputs (clear them before committing)"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    assert "widgets" not in nb.metadata


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_one_config_cell_switches_offline_to_online(path):
    nb = _read(path)
    cfg = _config_cells(nb)
    assert len(cfg) == 1, f"{path.name}: expected exactly one cell tagged 'config', found {len(cfg)}"
    cfg = cfg[0]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert cfg.cell_type == "code" and code.index(cfg) == 0, f"{path.name}: the config cell must be the first code cell"
    assert re.search(r"^ONLINE = False\b", cfg.source, re.M), f"{path.name}: the config cell must set ONLINE = False"
    for i, c in enumerate(code[1:], 1):
        hit = CONFIG_ONLY.search(c.source)
        assert hit is None, (
            f"{path.name} code cell {i} names {hit.group(0)!r}: model / SAE names belong in the config cell"
        )

    def run_config(online: bool) -> dict:
        ns: dict = {}
        exec(cfg.source.replace("ONLINE = False", f"ONLINE = {online}", 1), ns)  # noqa: S102 - our own notebook
        return {k: v for k, v in ns.items() if not k.startswith("__")}

    def names(ns: dict) -> list[str]:
        out = []
        for v in ns.values():
            for x in v if isinstance(v, tuple) else (v,):
                if isinstance(x, str):
                    out.append(x)
        return out

    offline, online = run_config(False), run_config(True)
    assert offline.keys() == online.keys(), f"{path.name}: both settings must define the same names"
    off_models = [s for s in names(offline) if s.startswith("offline:") or s.startswith("google/")]
    on_models = [s for s in names(online) if s.startswith("offline:") or s.startswith("google/")]
    assert off_models and all(s.startswith("offline:") for s in off_models), (
        f"{path.name}: offline setting {off_models}"
    )
    assert on_models and set(on_models) <= set(FLAGSHIP), f"{path.name}: online setting {on_models}"
    off_saes = [s for s in names(offline) if "saes/" in s or "gemma-scope" in s]
    on_saes = [s for s in names(online) if "saes/" in s or "gemma-scope" in s]
    assert all(s.startswith("saes/") for s in off_saes)
    assert set(on_saes) <= {"gemma-scope-2-270m-pt-res", "gemma-scope-2-270m-it-res"}
    assert len(on_saes) == len(off_saes)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_offline(path, monkeypatch):
    pytest.importorskip("ipykernel")
    if path.stem in SLOW_NOTEBOOKS and os.environ.get("FEATURESCOPE_SKIP_SLOW_NOTEBOOKS"):
        pytest.skip(f"{path.name} takes minutes (steering on SmolLM2); FEATURESCOPE_SKIP_SLOW_NOTEBOOKS is set")
    from nbclient import NotebookClient

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the kernel inherits it: the offline default must not touch the hub
    nb = _read(path)
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(NB_DIR)}}
    )
    t0 = time.time()
    client.execute()  # raises CellExecutionError (with the cell and traceback) if any cell fails
    seconds = time.time() - t0
    timing = [
        ln
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        for ln in o.get("text", "").splitlines()
        if ln.startswith("notebook ran in")
    ]
    print(f"{path.name}: executed in {seconds:.0f} s; {timing[-1] if timing else ''}")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "paper" in text and "ours" in text, f"{path.name} printed no paper-vs-ours comparison"


def test_publish_writes_executed_html_and_an_index(tmp_path):
    """`featurescope notebooks publish` on a small notebook: the HTML holds the executed outputs (text and an embedded
    figure), index.html links it, summary.json records it; the source notebook stays without outputs; a failing cell
    and an unknown name are clear errors."""
    pytest.importorskip("ipykernel")
    from featurescope.errors import FeaturescopeError
    from featurescope.notebooks import notebook_paths, publish

    src = tmp_path / "nb"
    src.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A tiny tutorial"),
        nbformat.v4.new_code_cell("print('answer', 6 * 7)"),
        nbformat.v4.new_code_cell(
            "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n%matplotlib inline\n"
            "fig, ax = plt.subplots(); ax.plot([0, 1], [1, 0]); plt.show()"
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, src / "00_tiny.ipynb")
    out = tmp_path / "html"
    rows = publish(out, folder=src, timeout=120, progress=False)
    page = (out / "00_tiny.html").read_text()
    assert "answer 42" in page and "data:image/png;base64" in page
    # the template CSS every page shares is written once and linked, not repeated in each page
    assert '<link rel="stylesheet" href="notebook.css">' in page and "<style" not in page
    assert len((out / "notebook.css").read_text()) > 10_000
    assert '<a href="00_tiny.html">' in (out / "index.html").read_text()
    assert rows["00_tiny"]["figures"] == 1 and json.loads((out / "summary.json").read_text())["command"]
    assert all(c.get("outputs", []) == [] for c in nbformat.read(src / "00_tiny.ipynb", as_version=4).cells)
    with pytest.raises(FeaturescopeError, match="no notebook named"):
        notebook_paths(src, ["99"])
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 / 0")]), src / "01_bad.ipynb")
    with pytest.raises(FeaturescopeError, match="01_bad.ipynb failed"):
        publish(out, folder=src, only=["01"], timeout=60, progress=False)
