"""The gallery examples run, with small settings (SKVAE_EXAMPLES_FAST=1)."""

import runpy
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("plot_*.py"))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(path, monkeypatch, tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    plt.switch_backend("Agg")
    monkeypatch.setenv("SKVAE_EXAMPLES_FAST", "1")
    monkeypatch.chdir(tmp_path)  # anything an example writes stays out of the repo
    try:
        runpy.run_path(str(path), run_name="__main__")
        assert plt.get_fignums(), f"{path.name} drew no figure"
    finally:
        plt.close("all")


def test_demo_runs(monkeypatch, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    demo = Path(__file__).resolve().parents[1] / "demo.py"
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(demo))
    namespace["main"](str(tmp_path / "demo.png"))
    out = capsys.readouterr().out
    assert "AutoencoderTransformer" in out and "AUROC" in out
    assert (tmp_path / "demo.png").stat().st_size > 10_000
