"""featurescope.notebook: the tutorial notebooks' shared set-up (root, temp folder, seed, clock) and the errors for a
missing input - no models loaded, no notebook executed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
import pytest
import torch

from featurescope.errors import FeaturescopeError
from featurescope.notebook import find_root, missing_sae_message, require_path, require_sae, setup

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_find_root_walks_up_to_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_root(deep) == tmp_path.resolve()
    assert find_root(REPO / "notebooks") == REPO


def test_find_root_outside_a_checkout_is_an_error(tmp_path):
    if any((p / "pyproject.toml").exists() for p in (tmp_path, *tmp_path.parents)):
        pytest.skip("the temp folder sits inside a project")
    with pytest.raises(FeaturescopeError, match="no pyproject.toml"):
        find_root(tmp_path)


def test_setup_from_the_notebooks_folder(monkeypatch, capsys):
    monkeypatch.chdir(REPO / "notebooks")
    with warnings.catch_warnings():
        s = setup(seed=3, keep_out=True)
        a = torch.rand(4)
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("library noise", DeprecationWarning, stacklevel=1)
        assert caught == []  # the notebooks' warnings filter
    torch.manual_seed(3)
    assert torch.equal(a, torch.rand(4))  # seeded
    assert s.root == REPO and s.seed == 3
    assert s.out.is_dir() and not any(s.out.iterdir()) and REPO not in s.out.parents
    assert s.sae  # a bound shortcut to require_sae
    s.report_time()
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(r"notebook ran in \d+ s wall-clock, \d+ s CPU \(\d+ torch threads\)", line), line
    s.out.rmdir()


def test_two_sessions_get_separate_folders():
    with warnings.catch_warnings():
        a, b = setup(root=REPO), setup(root=REPO)
    assert a.out != b.out and a.root == b.root == REPO


def test_missing_shipped_sae_says_how_to_get_it(tmp_path):
    spec = ("saes/gemma-3-270m/layer_9_resid_post", None)
    (tmp_path / "saes" / "gemma-3-270m").mkdir(parents=True)
    cmd = "featurescope sae train --model offline:gemma-3-270m --layers 2,9 --seed 42 --out saes/gemma-3-270m"
    (tmp_path / "saes" / "gemma-3-270m" / "summary.json").write_text(
        json.dumps({"results": {"blocks.9.hook_resid_post": {"retrain": cmd}}})
    )
    with pytest.raises(FeaturescopeError) as e:
        require_sae(spec, tmp_path)
    msg = str(e.value)
    assert str(tmp_path / spec[0]) in msg and "saes/README.md" in msg and "git checkout -- " + spec[0] in msg
    assert cmd in msg  # the retrain command from the SAE's summary
    assert "random" in msg  # no stand-in


def test_missing_sae_without_a_summary_names_the_plain_train_command(tmp_path):
    msg = missing_sae_message("saes/smollm2-135m-instruct/layer_15_resid_post", tmp_path)
    assert "featurescope sae train --model offline:smollm2-135m-instruct --layers 15" in msg
    msg = missing_sae_message("saes/some-model/whatever", tmp_path)
    assert "featurescope sae train" not in msg and "git checkout" in msg


def test_missing_real_shipped_sae_names_the_command_that_trained_it():
    where = "saes/gemma-3-270m/layer_9_resid_post"
    msg = missing_sae_message(where, REPO)
    summary = json.loads((REPO / "saes" / "gemma-3-270m" / "summary.json").read_text())
    assert summary["results"]["blocks.9.hook_resid_post"]["retrain"] in msg
    # a layer that was never trained: its siblings' command, narrowed to that layer
    msg = missing_sae_message("saes/gemma-3-270m/layer_5_resid_post", REPO)
    assert "--model offline:gemma-3-270m --layers 5 " in msg and "--out saes/gemma-3-270m" in msg


def test_specs_go_to_load_sae(monkeypatch, tmp_path):
    import featurescope.saes

    calls = []
    monkeypatch.setattr(featurescope.saes, "load_sae", lambda *a: calls.append(a) or "SAE")
    assert require_sae(("gemma-scope-2-270m-pt-res", "layer_9"), tmp_path) == (
        "SAE",
        "gemma-scope-2-270m-pt-res/layer_9",
    )
    assert require_sae("featurescope:gemma-3-270m/layer_9_resid_post") == (
        "SAE",
        "featurescope:gemma-3-270m/layer_9_resid_post",
    )
    (tmp_path / "saes" / "m" / "layer_1").mkdir(parents=True)
    (tmp_path / "saes" / "m" / "layer_1" / "cfg.json").write_text("{}")
    assert require_sae(("saes/m/layer_1", None), tmp_path) == ("SAE", "saes/m/layer_1")
    assert calls == [
        ("gemma-scope-2-270m-pt-res", "layer_9"),
        ("featurescope:gemma-3-270m/layer_9_resid_post",),
        (tmp_path / "saes" / "m" / "layer_1",),
    ]


def test_require_path(tmp_path):
    assert require_path(tmp_path, "never said") == tmp_path
    with pytest.raises(FeaturescopeError, match=r"is not in this checkout: run X"):
        require_path(tmp_path / "nope", "run X")


def test_importing_it_adds_nothing_heavy():
    code = (
        "import sys, featurescope; before = set(sys.modules); import featurescope.notebook; "
        "print(sorted(set(sys.modules) - before))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    added = eval(r.stdout.strip().splitlines()[-1])  # noqa: S307 - our own subprocess' list of names
    assert set(added) <= {"featurescope.notebook", "atexit", "shutil", "tempfile"}, added


# The notebooks themselves (source only): no library code in their cells, no stand-ins, progress bars on, the
# shipped SAE folders their configs name are here, and their links into docs/ and benchmarks/ resolve.


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_cells_hold_calls_not_library_code(path):
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(_code(nb))
    assert not re.search(r"^\s*(def|class) ", code, re.M), f"{path.name} defines a function or class"
    for bad in ("STAND-IN", "stand_in", "progress=False", "tempfile", "warnings.filterwarnings", "except Exception"):
        assert bad not in code, f"{path.name} still has {bad!r}"
    assert "setup(" in code and "session.report_time()" in code


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_offline_saes_are_shipped(path):
    nb = nbformat.read(path, as_version=4)
    for folder in re.findall(r"\"(saes/[^\"]+)\"", _code(nb)[0]):
        assert (REPO / folder / "cfg.json").is_file(), f"{path.name} names {folder}, which is not in saes/"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_links_the_full_scale_results(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    links = re.findall(r"\]\((\.\./[^)\s]+)\)", text)
    assert any(link.startswith("../docs/") for link in links), f"{path.name} links nothing in docs/"
    for link in links:
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve()
        assert file.exists(), f"{path.name} links {link}, which does not exist"
        if anchor:
            heads = [_anchor(h) for h in re.findall(r"^#+ (.+)$", file.read_text(), re.M)]
            assert anchor in heads, f"{path.name} links {link}: no such heading"
