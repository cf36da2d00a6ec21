"""Test helpers: random stable filters, scipy references, devices and backends.

Imported by the test modules (``from helpers import ...``); conftest holds only the
fixtures and the hook that parametrises ``backend`` and ``device``.
"""
import numpy as np
import scipy.signal
import torch

import multi_lfilter

# torchaudio is optional beside some torch builds: tests that compare with it skip with
# this reason where it cannot load.
try:
    import torchaudio.functional as torchaudio_functional
except Exception as error:  # torchaudio raises OSError/ImportError when its build does not match torch
    torchaudio_functional = None
    TORCHAUDIO_ERROR = f"torchaudio cannot load beside this torch: {error!r}"
else:
    TORCHAUDIO_ERROR = ""

ORDERS = list(range(1, 9))


def spreads_through_blocks(backend, device):
    """Whether a non-finite input spoils its whole block (and everything after) on this
    backend and device: always in an exported graph, which has no loop to fall back
    on, and with the block algorithm on GPUs, which skip the finiteness check that
    would read values (``docs/errors.rst``)."""
    return backend == "export" or (backend == "block" and device != "cpu")
# Backends that multiply whole blocks by matrices: they round a little differently from
# the recurrence, and a non-finite input spreads through its block (the block backend
# hands such inputs to the loop; an exported graph has no loop to hand them to).
MATRIX_BACKENDS = ("block", "export")


def random_stable_filter(order, rng, max_radius=0.999):
    """``(a, b)`` float64 numpy arrays of ``order + 1`` taps with every pole inside ``max_radius``.

    Poles come in conjugate pairs (plus one real pole for odd orders); the largest radius is
    exactly ``max_radius`` so the hardest case is always exercised.
    """
    radii = rng.uniform(0.3, max_radius, size=(order + 1) // 2)
    radii[0] = max_radius
    angles = rng.uniform(0.05, np.pi - 0.05, size=order // 2)
    poles = [r * np.exp(1j * t) for r, t in zip(radii, angles)]
    poles += [np.conj(p) for p in poles]
    if order % 2:
        poles.append(radii[-1] * rng.choice([-1.0, 1.0]))
    a = np.real(np.poly(poles))
    b = rng.normal(size=order + 1)
    # A non-unit a0 checks the normalisation.
    scale = rng.uniform(0.5, 2.0)
    return a * scale, b * scale


def random_filter_bank(order, n_filters, rng, max_radius=0.999):
    """``(a, b)`` float64 tensors ``(n_filters, order + 1)``."""
    pairs = [random_stable_filter(order, rng, max_radius) for _ in range(n_filters)]
    a = torch.tensor(np.stack([p[0] for p in pairs]))
    b = torch.tensor(np.stack([p[1] for p in pairs]))
    return a, b


def scipy_lfilter_rows(waveform, a_coeffs, b_coeffs, zi=None):
    """scipy.signal.lfilter in float64, row by row over the broadcast batch.

    Returns ``(y, zf)`` float64 tensors of the broadcast shape.
    """
    x = waveform.detach().double().numpy()
    a = a_coeffs.detach().double().numpy()
    b = b_coeffs.detach().double().numpy()
    order = max(a.shape[-1], b.shape[-1]) - 1
    shapes = [x.shape[:-1], a.shape[:-1], b.shape[:-1]]
    z = None
    if zi is not None:
        z = zi.detach().double().numpy()
        shapes.append(z.shape[:-1])
    batch = np.broadcast_shapes(*shapes)
    x = np.broadcast_to(x, batch + x.shape[-1:])
    a = np.broadcast_to(a, batch + a.shape[-1:])
    b = np.broadcast_to(b, batch + b.shape[-1:])
    if z is not None:
        z = np.broadcast_to(z, batch + (order,))
    y = np.zeros(batch + x.shape[-1:])
    zf = np.zeros(batch + (order,))
    for index in np.ndindex(*batch):
        if order == 0:
            y[index] = scipy.signal.lfilter(b[index], a[index], x[index])
            continue
        state = np.zeros(order) if z is None else z[index]
        if x.shape[-1] == 0:
            # scipy returns a zero state for an empty signal; filtering nothing should
            # leave the state as it was, which is what multi_lfilter returns.
            zf[index] = state
            continue
        y[index], zf[index] = scipy.signal.lfilter(b[index], a[index], x[index], zi=state)
    return torch.from_numpy(y), torch.from_numpy(zf)


def make_layout_problem(waveform_shape, a_shape, b_shape, zi_shape, length, rng):
    """Random ``(waveform, a, b, zi)`` float64 tensors of the given leading shapes (the
    waveform's last dim replaced by ``length``), with ``a[..., 0] = 1`` and small
    feedback taps (stable for the orders these layouts use)."""
    a_coeffs = torch.from_numpy(rng.uniform(-0.3, 0.3, size=a_shape))
    a_coeffs[..., 0] = 1.0
    b_coeffs = torch.from_numpy(rng.normal(size=b_shape))
    waveform = torch.from_numpy(rng.normal(size=tuple(waveform_shape[:-1]) + (length,)))
    zi = torch.from_numpy(rng.normal(size=zi_shape)) if zi_shape else None
    return waveform, a_coeffs, b_coeffs, zi


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# On CPU the Triton kernels run in the interpreter, far slower than compiled: they get
# small cases of their own (test_triton.py) instead of every test here.
_CPU_ONLY_IN_TEST_TRITON = {"triton"}


def to_device(device, *tensors):
    """``tensors`` on ``device`` (``None`` stays ``None``), as a list."""
    return [tensor.to(device) if tensor is not None else None for tensor in tensors]


def backends_on(device):
    """The backends that run tensors of ``device`` in this process."""
    available = multi_lfilter.available_backends()
    if device == "cpu":
        return [name for name in available if name not in _CPU_ONLY_IN_TEST_TRITON]
    return [name for name in available if name != "native"]


class LogEnergies(torch.nn.Module):
    """The deployment tests' model: a learnable bank of 16 biquads on ``(B, T)``
    audio, then the log energy per filter, ``(B, 16)``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.bank = multi_lfilter.BiquadFilterBank(16, 16000)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        filtered = self.bank(waveform)  # (B, T) -> (B, C, T)
        return torch.log(filtered.pow(2).mean(-1) + 1e-6)
