"""Every input error: its type and its message."""
from pathlib import Path

import numpy as np
import pytest
import torch

from multi_lfilter import (
    ButterworthFilterBank,
    design,
    filtfilt_bank,
    freqz_bank,
    lfilter,
    lfilter_bank,
    lfilter_bank_with_state,
    lfilter_varying,
    lfilter_zi_bank,
    sosfilt_bank,
    sosfilt_zi_bank,
    sosfiltfilt_bank,
)

A = torch.tensor([[1.0, -0.5, 0.2], [1.0, 0.1, 0.0]])
B = torch.tensor([[0.5, 0.1, 0.0], [1.0, 0.0, 0.0]])
X = torch.randn(3, 1, 20)


def test_non_tensor_input_is_a_type_error():
    with pytest.raises(TypeError, match=r"expected waveform to be a torch.Tensor, got ndarray"):
        lfilter_bank(np.zeros((3, 20)), a_coeffs=A, b_coeffs=B)
    with pytest.raises(TypeError, match=r"expected a_coeffs to be a torch.Tensor, got list"):
        lfilter_bank(X, a_coeffs=[1.0, 0.5], b_coeffs=B)
    with pytest.raises(TypeError, match=r"expected zi to be a torch.Tensor or None, got float"):
        lfilter_bank(X, a_coeffs=A, b_coeffs=B, zi=0.0)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool], ids=str)
def test_unsupported_dtype_is_a_type_error(dtype):
    """Integer and bool tensors are refused; complex ones are filtered (tests/test_complex.py)."""
    complex_too = r" \(complex64 and complex128 are accepted too; convert integer inputs"
    with pytest.raises(TypeError, match=rf"expected waveform to be float32 or float64, got {dtype}{complex_too}"):
        lfilter_bank(X.to(dtype), a_coeffs=A, b_coeffs=B)
    with pytest.raises(TypeError, match=rf"expected b_coeffs to be float32 or float64, got {dtype}"):
        lfilter_bank(X, a_coeffs=A, b_coeffs=B.to(dtype))


def test_mixed_dtypes_are_a_type_error_naming_all_dtypes():
    message = r"expected one dtype for all inputs, got waveform torch.float32, a_coeffs torch.float64, b_coeffs torch.float32"
    with pytest.raises(TypeError, match=message):
        lfilter_bank(X, a_coeffs=A.double(), b_coeffs=B)
    with pytest.raises(TypeError, match=r"zi torch.float64"):
        lfilter_bank(X, a_coeffs=A, b_coeffs=B, zi=torch.zeros(2, 2, dtype=torch.float64))


def test_mixed_devices_are_a_value_error_naming_devices():
    meta_a = A.to("meta")
    with pytest.raises(ValueError, match=r"expected one device for all inputs, got waveform cpu, a_coeffs meta, b_coeffs cpu"):
        lfilter_bank(X, a_coeffs=meta_a, b_coeffs=B)


def test_scalars_and_empty_coefficients_are_value_errors():
    with pytest.raises(ValueError, match=r"expected waveform to have at least one dimension, got a scalar"):
        lfilter_bank(torch.tensor(1.0), a_coeffs=A, b_coeffs=B)
    with pytest.raises(ValueError, match=r"expected a_coeffs to have at least one dimension, got a scalar"):
        lfilter_bank(X, a_coeffs=torch.tensor(1.0), b_coeffs=B)
    with pytest.raises(ValueError, match=r"expected at least one coefficient .* a_coeffs \[2, 0\]"):
        lfilter_bank(X, a_coeffs=torch.zeros(2, 0), b_coeffs=B)


def test_shape_mismatch_names_both_shapes_and_suggests_unsqueeze():
    with pytest.raises(ValueError) as info:
        lfilter_bank(torch.randn(32, 100), a_coeffs=torch.rand(128, 3) + 1, b_coeffs=torch.rand(128, 3))
    message = str(info.value)
    assert "expected the leading dims of the inputs to broadcast" in message
    assert "waveform [32, 100]" in message and "a_coeffs [128, 3]" in message
    assert "waveform.unsqueeze(-2)" in message


def test_shape_mismatch_without_the_bank_hint():
    with pytest.raises(ValueError, match=r"waveform \[3, 1, 20\], a_coeffs \[2, 3\], b_coeffs \[4, 3\]"):
        lfilter_bank(X, a_coeffs=A, b_coeffs=torch.ones(4, 3))


def test_wrong_zi_length_is_a_value_error():
    with pytest.raises(ValueError, match=r"expected zi of shape \(\.\.\., 2\) for filters of order 2 .* got zi \[2, 3\]"):
        lfilter_bank_with_state(X, a_coeffs=A, b_coeffs=B, zi=torch.zeros(2, 3))


def test_zi_that_does_not_broadcast_is_a_value_error():
    with pytest.raises(ValueError, match=r"zi \[5, 2\]"):
        lfilter_bank_with_state(X, a_coeffs=A, b_coeffs=B, zi=torch.zeros(5, 2))


def test_zero_leading_denominator_is_a_value_error():
    a = A.clone()
    a[1, 0] = 0.0
    with pytest.raises(ValueError, match=r"expected a_coeffs\[\.\.\., 0\] != 0 .* a_coeffs of shape \[2, 3\]"):
        lfilter_bank(X, a_coeffs=a, b_coeffs=B)


def test_unknown_backend_is_a_value_error_listing_the_available_ones():
    with pytest.raises(ValueError, match=r"expected backend to be 'auto' or one of \[.*'loop'.*\], got 'fastest'"):
        lfilter_bank(X, a_coeffs=A, b_coeffs=B, backend="fastest")


def test_lfilter_coefficient_shapes_must_match():
    with pytest.raises(ValueError, match=r"expected a_coeffs and b_coeffs of the same shape .* got a_coeffs \[2, 3\] and b_coeffs \[2, 2\]"):
        lfilter(X, A, B[:, :2])


def test_lfilter_coefficients_must_be_one_or_two_dimensional():
    with pytest.raises(ValueError, match=r"expected 1-D \(K,\) or 2-D \(C, K\) coefficients, got shape \[1, 2, 3\]"):
        lfilter(X, A[None], B[None])


def test_lfilter_batching_needs_a_channel_dim_of_the_bank_size():
    with pytest.raises(ValueError, match=r"expected waveform of shape \(\.\.\., 2, T\) with batching=True and 2 filters, got waveform \[3, 1, 20\]"):
        lfilter(X, A, B, batching=True)
    with pytest.raises(ValueError, match=r"got waveform \[20\]"):
        lfilter(torch.randn(20), A, B, batching=True)


# The bad-input table of docs/errors.rst: (the call as the docs show it, the call).
# Each row's error type and message come from running the call;
# test_the_docs_error_table_is_current checks the docs against them.
A1 = torch.tensor([1.0, -0.5, 0.2])
B1 = torch.tensor([0.5, 0.1, 0.0])
TABLE = [
    ("lfilter_bank(np.zeros((3, 20)), a, b)", lambda: lfilter_bank(np.zeros((3, 20)), A1, B1)),
    ("lfilter_bank(x, [1.0, 0.5], b)", lambda: lfilter_bank(X, [1.0, 0.5], B1)),
    ("lfilter_bank(x.long(), a, b)", lambda: lfilter_bank(X.long(), A1, B1)),
    ("lfilter_bank(x, a.double(), b)", lambda: lfilter_bank(X, A1.double(), B1)),
    ("lfilter_bank(x, a.to(torch.complex128), b)", lambda: lfilter_bank(X, A1.to(torch.complex128), B1)),
    ("lfilter_bank(x.half(), a.to(torch.complex64), b)", lambda: lfilter_bank(X.half(), A1.to(torch.complex64), B1)),
    ("lfilter_bank(x, a.to(torch.complex64), b, backend='export')",
     lambda: lfilter_bank(X, A1.to(torch.complex64), B1, backend="export")),
    ("lfilter_bank(x, torch.tensor(1.0), b)", lambda: lfilter_bank(X, torch.tensor(1.0), B1)),
    ("lfilter_bank(x, torch.zeros(0), b)", lambda: lfilter_bank(X, torch.zeros(0), B1)),
    ("lfilter_bank(torch.randn(32, 100), a (128, 3), b (128, 3))",
     lambda: lfilter_bank(torch.randn(32, 100), torch.rand(128, 3) + 1, torch.rand(128, 3))),
    ("lfilter_bank_with_state(x, a, b, zi=torch.zeros(3))", lambda: lfilter_bank_with_state(X, A1, B1, zi=torch.zeros(3))),
    ("lfilter_bank(x, torch.tensor([0.0, 1.0]), b)", lambda: lfilter_bank(X, torch.tensor([0.0, 1.0]), B1)),
    ("lfilter(x, [1.0], [1.0])", lambda: lfilter(X, [1.0], [1.0])),
    ("lfilter(x.to(torch.complex64), a, b)", lambda: lfilter(X.to(torch.complex64), A1, B1)),
    ("sosfilt_bank(x, [[1, 0, 0, 1, 0, 0]])", lambda: sosfilt_bank(X, [[1.0, 0, 0, 1, 0, 0]])),
    ("sosfilt_bank(x, torch.zeros(0, 6))", lambda: sosfilt_bank(X, torch.zeros(0, 6))),
    ("sosfilt_bank(x, torch.ones(2, 6, dtype=torch.int64))", lambda: sosfilt_bank(X, torch.ones(2, 6, dtype=torch.int64))),
    ("sosfilt_bank(x, torch.zeros(2, 5))", lambda: sosfilt_bank(X, torch.zeros(2, 5))),
    ("filtfilt_bank(x, torch.tensor(1.0), b)", lambda: filtfilt_bank(X, torch.tensor(1.0), B1)),
    ("filtfilt_bank(torch.randn(5), a, b)", lambda: filtfilt_bank(torch.randn(5), A1, B1)),
    ("lfilter_zi_bank(a_coeffs=[1.0, -0.5], b_coeffs=b)", lambda: lfilter_zi_bank(a_coeffs=[1.0, -0.5], b_coeffs=B1)),
    ("lfilter_zi_bank(a_coeffs=torch.tensor([0.0, 1.0]), b_coeffs=b)",
     lambda: lfilter_zi_bank(a_coeffs=torch.tensor([0.0, 1.0]), b_coeffs=B1)),
    ("lfilter_zi_bank(a_coeffs=torch.zeros(0), b_coeffs=b)", lambda: lfilter_zi_bank(a_coeffs=torch.zeros(0), b_coeffs=B1)),
    ("lfilter_zi_bank(b, a)", lambda: lfilter_zi_bank(B1, A1)),
    ("freqz_bank(a_coeffs=a, b_coeffs=b, n_freqs=-1)", lambda: freqz_bank(a_coeffs=A1, b_coeffs=B1, n_freqs=-1)),
    ("freqz_bank(a_coeffs=a, b_coeffs=[0.5])", lambda: freqz_bank(a_coeffs=A1, b_coeffs=[0.5])),
    ("freqz_bank(b, a)", lambda: freqz_bank(B1, A1)),
    ("lfilter_bank(b, a, torch.randn(16000))  # scipy's order",
     lambda: lfilter_bank(B1, A1, torch.randn(16000))),
    ("design.biquad_coeffs('bandstop', 16000, 1000.0)", lambda: design.biquad_coeffs("bandstop", 16000, 1000.0)),
    ("design.biquad_coeffs('lowpass', 0, 1000.0)", lambda: design.biquad_coeffs("lowpass", 0, 1000.0)),
    ("design.biquad_coeffs('lowpass', 16000, torch.tensor([100.0, 9000.0]))",
     lambda: design.biquad_coeffs("lowpass", 16000, torch.tensor([100.0, 9000.0]))),
    ("design.biquad_coeffs('lowpass', 16000, 1000.0, q=0.0)", lambda: design.biquad_coeffs("lowpass", 16000, 1000.0, q=0.0)),
    ("design.biquad_coeffs('lowpass', 16000, torch.tensor([1000j]))",
     lambda: design.biquad_coeffs("lowpass", 16000, torch.tensor([1000j]))),
    ("design.center_frequencies(-1, 50.0, 8000.0)", lambda: design.center_frequencies(-1, 50.0, 8000.0)),
    ("design.center_frequencies(4, 0.0, 8000.0, scale='log')", lambda: design.center_frequencies(4, 0.0, 8000.0, scale="log")),
    ("design.butter_sos(4, 9000.0, sample_rate=16000)", lambda: design.butter_sos(4, 9000.0, sample_rate=16000)),
    ("design.butter_sos(4, 1000.0, 'bandpass', sample_rate=16000)",
     lambda: design.butter_sos(4, 1000.0, "bandpass", sample_rate=16000)),
    ("design.butter_sos(4, [0.3, 0.2], 'bandpass')", lambda: design.butter_sos(4, [0.3, 0.2], "bandpass")),
    ("design.butter_sos(4, 0.2, 'notch')", lambda: design.butter_sos(4, 0.2, "notch")),
    ("sosfilt_zi_bank([[1.0, 0, 0, 1, 0, 0]])", lambda: sosfilt_zi_bank([[1.0, 0, 0, 1, 0, 0]])),
    ("sosfiltfilt_bank(torch.randn(10), design.butter_sos(4, 0.2))",
     lambda: sosfiltfilt_bank(torch.randn(10), design.butter_sos(4, 0.2))),
    ("ButterworthFilterBank(2, 16000, torch.tensor([500.0]), torch.tensor([1200.0]))",
     lambda: ButterworthFilterBank(2, 16000, torch.tensor([500.0]), torch.tensor([1200.0]))),
    ("lfilter_varying(x, a.expand(5, 3), b[None])", lambda: lfilter_varying(X, A1.expand(5, 3), B1[None])),
    ("lfilter_varying(x, a.expand(2, 3), b[None], hop_length=8)",
     lambda: lfilter_varying(X, A1.expand(2, 3), B1[None], hop_length=8)),
    ("lfilter_varying(x, a[None], b[None], hop_length=0)", lambda: lfilter_varying(X, A1[None], B1[None], hop_length=0)),
    ("lfilter_varying(x, a[None], b[None], form='df3')", lambda: lfilter_varying(X, A1[None], B1[None], form="df3")),
    ("lfilter_varying(x, a[None], b[None], zi=torch.zeros(2), form='df1')",
     lambda: lfilter_varying(X, A1[None], B1[None], zi=torch.zeros(2), form="df1")),
    ("lfilter_varying(x, a[None] * 0, b[None])", lambda: lfilter_varying(X, A1[None] * 0, B1[None])),
]


def render_error_table():
    """The docs' list-table, from running every call in TABLE."""
    lines = [".. list-table::", "   :header-rows: 1", "", "   * - Call", "     - Raises", "     - Message"]
    for text, call in TABLE:
        try:
            call()
        except (TypeError, ValueError) as error:
            lines += [f"   * - ``{text}``", f"     - ``{type(error).__name__}``", f"     - {error}"]
        else:
            raise AssertionError(f"{text} raised nothing")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text, call", TABLE, ids=[text for text, _ in TABLE])
def test_bad_input_raises_a_type_or_value_error(text, call):
    """Never an AttributeError, IndexError or RuntimeError from inside."""
    with pytest.raises((TypeError, ValueError)):
        call()


def test_the_docs_error_table_is_current():
    docs = (Path(__file__).resolve().parent.parent / "docs" / "errors.rst").read_text()
    table = render_error_table()
    assert table in docs, "docs/errors.rst is out of date; its table should read:\n\n" + table


def test_integer_frequencies_are_converted_not_truncating_the_q():
    """An integer centre frequency used to set the dtype for q too (0.7071 became 0)."""
    from_int = design.biquad_coeffs("lowpass", 16000, torch.tensor([1000]), q=0.7071)
    from_float = design.biquad_coeffs("lowpass", 16000, torch.tensor([1000.0]), q=0.7071)
    torch.testing.assert_close(from_int.a, from_float.a)
    torch.testing.assert_close(from_int.b, from_float.b)


def test_empty_requests_give_empty_results():
    """Zero frequencies or filters is an empty answer, as in scipy, not an error."""
    freqs, response = freqz_bank(a_coeffs=A1, b_coeffs=B1, n_freqs=0)
    assert freqs.shape == (0,) and response.shape == (0,)
    assert design.center_frequencies(0, 50.0, 8000.0).shape == (0,)


def test_meta_inputs_skip_the_data_checks():
    y, zf = lfilter_bank_with_state(X.to("meta"), A1.to("meta"), B1.to("meta"))
    assert y.shape == (3, 1, 20) and y.device.type == "meta" and zf.shape == (3, 1, 2)


def test_scripted_errors_name_dtypes_not_enum_numbers():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(lfilter_bank)
    with pytest.raises(torch.jit.Error, match=r"expected waveform to be float32 or float64, got torch.int64"):
        scripted(X.long(), A, B)
    with pytest.raises(torch.jit.Error, match=r"got waveform torch.float32, a_coeffs torch.float64"):
        scripted(X, A.double(), B)


@pytest.mark.parametrize("bank_dtype, input_dtype", [(torch.float32, torch.float64), (torch.float64, torch.float32)], ids=["float32-bank", "float64-bank"])
def test_a_module_names_itself_not_its_coefficients_on_a_dtype_mismatch(bank_dtype, input_dtype):
    from multi_lfilter import BiquadFilterBank, LFilterBank, SOSFilterBank

    banks = [
        BiquadFilterBank(4, 16000, dtype=bank_dtype),
        LFilterBank(A.to(bank_dtype), B.to(bank_dtype)),
        SOSFilterBank(torch.tensor([[[0.2, 0.4, 0.2, 1.0, -0.6, 0.3]]], dtype=bank_dtype)),
    ]
    message = rf"expected a waveform of the bank's dtype {bank_dtype}, got {input_dtype}; convert the bank \(bank.double\(\), bank.float\(\)\)"
    for bank in banks:
        with pytest.raises(TypeError, match=message):
            bank(torch.zeros(2, 10, dtype=input_dtype))


def test_value_checks_run_for_cpu_tensors_only():
    """Checks that read values (a zero a0, non-finite inputs for the block algorithm)
    run on the CPU; on a GPU each would be a host-device sync (docs/errors.rst), and
    meta tensors have no values (fake CUDA tensors: test_fake_cuda.py)."""
    from multi_lfilter._validation import value_checks_allowed

    assert value_checks_allowed(torch.zeros(1))
    assert not value_checks_allowed(torch.zeros(1, device="meta"))
