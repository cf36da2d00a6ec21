"""``nn.Module`` front-ends: banks of filters that drop into a model.

Each Module applies ``C`` filters to every input signal, ``(..., T) -> (..., C, T)``,
by calling the functional API (so every backend, the adjoint, TorchScript and
``torch.compile`` work the same way). ``forward_with_state`` takes and returns the
filters' state, so a long signal can be filtered chunk by chunk. One bank per file:

- :class:`LFilterBank` (``lfilter_bank.py``): coefficients of any order, as given;
- :class:`BiquadFilterBank` (``biquad_bank.py``): cookbook biquads learnt through
  frequency, ``Q`` and gain;
- :class:`SOSFilterBank` (``sos_bank.py``) and :class:`ButterworthFilterBank`
  (``butterworth_bank.py``): cascades of sections, on the shared
  :class:`CascadeFilterBank` (``cascade_bank.py``).
"""
from .biquad_bank import GAIN_KINDS, BiquadFilterBank
from .butterworth_bank import ButterworthFilterBank
from .cascade_bank import CascadeFilterBank
from .lfilter_bank import LFilterBank
from .sos_bank import SOSFilterBank

__all__ = ["BiquadFilterBank", "ButterworthFilterBank", "CascadeFilterBank", "GAIN_KINDS", "LFilterBank", "SOSFilterBank"]
