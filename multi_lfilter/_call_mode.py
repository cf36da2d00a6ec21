"""How one call runs: the single place that decides a filter or cascade call's mode.

Every front-end (``functional`` for filters, ``cascades`` for cascades) asks
:func:`call_mode` and sends the call through the door for that mode:

============  ==============================================  ==============================
mode          when                                            door
============  ==============================================  ==============================
``script``    TorchScript compiles the caller                 ``dispatch.scripted_filter``
``export``    ``torch.export`` traces the caller              ``dispatch.exported_filter``
``graph``     ``torch.compile`` or ``torch.jit.trace``        the opaque op, resolved when it
                                                              runs (``_op.graph_filter``)
``transform`` a ``torch.func`` transform or a forward-mode    the op's ``autograd.Function``
              dual level is active
``autograd``  grad mode on and an input requiring grad        the op with its adjoint
``eager``     nothing to differentiate                        the backend's kernel directly
============  ==============================================  ==============================

TorchScript compiles only the branch under a literal ``if torch.jit.is_scripting():``,
so scripted front-ends test that first and call this function only outside it; the
function still answers ``"script"`` there, for callers that are never scripted.
"""
from typing import List, Optional

import torch
from torch import Tensor

from ._validation import transforms_active

SCRIPT = "script"
EXPORT = "export"
GRAPH = "graph"
TRANSFORM = "transform"
AUTOGRAD = "autograd"
EAGER = "eager"


def needs_graph(tensors: List[Optional[Tensor]]) -> bool:
    """Whether autograd must record a call on ``tensors``: grad mode on and one of them
    requiring grad (``None`` entries are skipped). Scriptable."""
    if not torch.is_grad_enabled():
        return False
    for tensor in tensors:
        if tensor is not None and tensor.requires_grad:
            return True
    return False


@torch.jit.unused
def call_mode(tensors: List[Optional[Tensor]]) -> str:
    """The mode of a call on ``tensors`` (its inputs): one of the module's constants.

    Example:
        >>> import torch
        >>> from multi_lfilter._call_mode import call_mode
        >>> x = torch.zeros(3)
        >>> call_mode([x, None]), call_mode([x.requires_grad_()])
        ('eager', 'autograd')
        >>> with torch.no_grad():
        ...     call_mode([x])
        'eager'
    """
    if torch.jit.is_scripting():
        return SCRIPT
    if torch.compiler.is_exporting():
        return EXPORT
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return GRAPH
    if transforms_active():
        return TRANSFORM
    return AUTOGRAD if needs_graph(tensors) else EAGER


@torch.jit.unused
def backward_builds_graph(tensors: List[Optional[Tensor]]) -> bool:
    """Whether a backward pass over ``tensors`` (incoming gradients and saved inputs)
    is itself recorded: ``create_graph=True``, double backward, or a transform. The
    adjoint must then be made of differentiable filter calls, not the backend's opaque
    adjoint kernel."""
    return transforms_active() or needs_graph(tensors)
