"""The examples run, and the learning example learns (short modes, as CI runs them)."""
import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_learning_example_lowers_the_loss_twentyfold():
    example = load_example("learn_filterbank")
    model, target, _, losses = example.train(**example.SHORT, show_progress=False)
    assert losses[0] > 0.5  # the target starts far from the model
    assert losses[-1] < losses[0] / 20  # measured: 44x lower
    # Learning moved every centre frequency towards the target's.
    initial, _ = example.make_banks()
    before = (initial.center_freq / target.center_freq).log().abs()
    after = (model.center_freq / target.center_freq).log().abs()
    assert after.mean() < before.mean() / 5


def test_sweep_example_equaliser_learns():
    example = load_example("sweep")
    _, losses = example.train_equaliser(**example.SHORT, show_progress=False)
    assert losses[-1] < losses[0] / 10  # measured: 27x lower


# examples/export.py is not here: what it does (export, ONNX, running without the
# package) is tests/test_export.py's, and CI (.ci/run) runs the example itself.
@pytest.mark.parametrize("name", ["streaming", "export_torchscript", "quickstart"])
def test_example_runs_in_short_mode(name, capsys):
    load_example(name).main(["--short"])
    assert capsys.readouterr().out
