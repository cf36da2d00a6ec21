"""The package's structure: one mode decision for every front-end, the registry as the
only source of what TorchScript may run, and no import circle."""
import ast
import pathlib

import pytest
import torch

import multi_lfilter
from multi_lfilter._call_mode import AUTOGRAD, EAGER, EXPORT, GRAPH, TRANSFORM, call_mode
from multi_lfilter.backends import dispatch

PACKAGE = pathlib.Path(multi_lfilter.__file__).parent


def _mode_inside(run, *tensors):
    """The mode ``call_mode`` reports for ``tensors`` inside ``run``."""
    seen = []

    def probe(x):
        seen.append(call_mode(list(tensors) if tensors else [x]))
        return x * 2

    run(probe)
    return seen[0]


def test_call_mode_names_each_way_a_call_runs():
    x = torch.ones(3)
    leaf = torch.ones(3, requires_grad=True)
    assert call_mode([x, None]) == EAGER
    assert call_mode([leaf]) == AUTOGRAD
    with torch.no_grad():
        assert call_mode([leaf]) == EAGER
    assert _mode_inside(lambda f: torch.func.vmap(f)(torch.ones(2, 3))) == TRANSFORM
    assert _mode_inside(lambda f: torch.func.grad(lambda y: f(y).sum())(x)) == TRANSFORM
    with torch.autograd.forward_ad.dual_level():
        assert call_mode([x]) == TRANSFORM
    assert _mode_inside(lambda f: torch.jit.trace(f, (x,))) == GRAPH

    class Probe(torch.nn.Module):
        def forward(self, y):
            modes.append(call_mode([y]))
            return y + 1

    modes = []
    torch.export.export(Probe(), (x,))
    assert modes and set(modes) == {EXPORT}
    modes.clear()
    torch._dynamo.reset()
    torch.compile(Probe(), backend="eager", fullgraph=True)(x)
    assert modes and set(modes) == {GRAPH}


@pytest.mark.parametrize("front_end", ["lfilter", "sosfilt"])
def test_every_front_end_asks_the_one_mode_function(front_end, monkeypatch):
    """Filters and cascades both route through ``call_mode``: a mode forced to
    ``export`` sends an eager call down the export door."""
    import multi_lfilter.cascades as cascades
    import multi_lfilter.functional as functional

    module = functional if front_end == "lfilter" else cascades
    monkeypatch.setattr(module, "call_mode", lambda tensors: EXPORT)
    exported = []
    if front_end == "lfilter":
        original = functional.exported_filter
        monkeypatch.setattr(functional, "exported_filter", lambda *args: exported.append(1) or original(*args))
        multi_lfilter.lfilter_bank(torch.randn(2, 50), torch.tensor([1.0, -0.5]), torch.tensor([1.0]))
    else:
        original = cascades.sections_one_by_one
        monkeypatch.setattr(cascades, "sections_one_by_one", lambda *args: exported.append(1) or original(*args))
        multi_lfilter.sosfilt_bank(torch.randn(2, 50), torch.tensor([[1.0, 0.0, 0.0, 1.0, -0.5, 0.0]] * 2))
    assert exported == [1]


def test_torchscript_accepts_exactly_the_scriptable_backends():
    scriptable = [backend.name for backend in dispatch.REGISTRY if backend.scriptable]
    assert dispatch.SCRIPTABLE_CHOICES.split(",") == ["auto"] + scriptable
    assert "triton" not in scriptable and "export" not in scriptable


def test_the_registry_declares_which_backends_fuse_cascades():
    fused = {backend.name for backend in dispatch.REGISTRY if backend.max_sections is not None}
    assert fused == {"native", "triton", "block"}
    for backend in dispatch.REGISTRY:
        assert (backend.max_sections is not None) == hasattr(backend.module, "cascade_forward")
        assert not backend.fuses(1)


def _imports(path: pathlib.Path) -> set:
    """The package modules ``path`` imports, at module level or inside functions (an
    import deferred into a function hides a circle; it does not remove it)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if path.name == "__init__.py":
        module = module.rsplit(".", 1)[0]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("multi_lfilter"):
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("multi_lfilter"))
    return found


def test_no_import_circle():
    """Imports between the package's modules form no cycle (packages importing their
    own submodules aside)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        name = name[: -len(".__init__")] if name.endswith(".__init__") else name
        modules[name] = path
    edges = {
        name: {
            target for target in _imports(path)
            if target in modules and target != name and not target.startswith(name + ".")
        }
        for name, path in modules.items()
    }
    # A submodule importing its own package's __init__ is how re-exports work; only
    # cycles between modules that are not each other's packages count.
    state = {}
    stack = []

    def visit(name):
        state[name] = "open"
        stack.append(name)
        for target in sorted(edges[name]):
            if name.startswith(target + "."):
                continue
            if state.get(target) == "open":
                cycle = stack[stack.index(target):] + [target]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[name] = "done"

    for name in sorted(modules):
        if name not in state:
            visit(name)
