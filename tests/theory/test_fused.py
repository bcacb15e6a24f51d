"""Fused numba NNGP/NTK recursion vs a plain vectorised numpy reference."""

import numpy as np
import pytest

from nnft.theory._fused import fused_nngp_ntk


def reference(x1, x2, sw2, sb2, activation):
    """Straightforward recursion over full matrices (NTK parameterization, see _fused's docstring)."""
    d = x1.shape[1]
    sym = x2 is None
    x2 = x1 if sym else x2
    a = sb2[0] + sw2[0] * np.sum(x1 * x1, axis=1) / d
    b = sb2[0] + sw2[0] * np.sum(x2 * x2, axis=1) / d
    c = sb2[0] + sw2[0] * (x1 @ x2.T) / d
    th = c.copy()
    for l in range(1, len(sw2)):
        if sym:  # Sigma(x, x) from the diagonal recursion: rho = 1 exactly (arccos is singular there)
            np.fill_diagonal(c, a)
        if activation == "relu":
            sab = np.sqrt(np.outer(a, b))
            rho = np.clip(c / sab, -1.0, 1.0)
            theta = np.arccos(rho)
            k = sab / (2 * np.pi) * (np.sqrt(1 - rho**2) + (np.pi - theta) * rho)
            kdot = (np.pi - theta) / (2 * np.pi)
            ka, kb = a / 2, b / 2
        else:
            den = np.outer(1 + 2 * a, 1 + 2 * b)
            k = 2 / np.pi * np.arcsin(np.clip(2 * c / np.sqrt(den), -1.0, 1.0))
            kdot = 4 / np.pi / np.sqrt(den - 4 * c**2)
            ka = 2 / np.pi * np.arcsin(2 * a / (1 + 2 * a))
            kb = 2 / np.pi * np.arcsin(2 * b / (1 + 2 * b))
        c = sb2[l] + sw2[l] * k
        th = th * sw2[l] * kdot + c
        a, b = sb2[l] + sw2[l] * ka, sb2[l] + sw2[l] * kb
    return c, th


def close(got, want, rtol=1e-11):
    # atol only for entries that cancel to ~0 (erf kernels change sign); relative to the matrix scale
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-13 * np.abs(want).max())


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(12345)
    return rng.standard_normal((300, 7)), rng.standard_normal((170, 7)) * 1.5


@pytest.mark.parametrize("activation", ["relu", "erf"])
@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("sym", [True, False])
def test_matches_reference(data, activation, depth, sym):
    x1, x2 = data
    x2 = None if sym else x2
    sw2 = [1.3, 2.0, 1.7, 1.96][: depth + 1]
    sb2 = [0.1, 0.05, 0.2, 0.01][: depth + 1]
    K, T = fused_nngp_ntk(x1, x2, sw2, sb2, activation)
    Kr, Tr = reference(x1, x2, sw2, sb2, activation)
    assert K.shape == T.shape == Kr.shape and K.dtype == T.dtype == np.float64
    close(K, Kr)
    close(T, Tr)
    K2, none = fused_nngp_ntk(x1, x2, sw2, sb2, activation, ntk=False)
    assert none is None
    np.testing.assert_array_equal(K2, K)


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_symmetric_psd(data, activation):
    x1 = data[0]
    K, T = fused_nngp_ntk(x1, None, [1.96] * 4, [0.01] * 4, activation)
    for M in (K, T):
        np.testing.assert_array_equal(M, M.T)
        ev = np.linalg.eigvalsh(M)
        assert ev[0] >= -1e-10 * ev[-1]
    # the symmetric path equals the explicit two-argument path off the diagonal
    K2, T2 = fused_nngp_ntk(x1, x1.copy(), [1.96] * 4, [0.01] * 4, activation)
    off = ~np.eye(len(x1), dtype=bool)
    close(K2[off], K[off])
    close(T2[off], T[off], rtol=1e-6)  # relu: arccos is ill-conditioned at rho -> 1 (diagonal)


def test_depth_zero_and_degenerate_inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 3))
    K, T = fused_nngp_ntk(x, None, [2.0], [0.5], "relu")
    close(K, 0.5 + 2.0 * x @ x.T / 3)
    np.testing.assert_array_equal(K, T)
    # exactly (anti)parallel points and a zero point with no bias: rho = +-1 and a = 0, no NaN
    y = np.vstack([x[:5], -x[:5], 3 * x[:5], np.zeros((1, 3))])
    for act in ("relu", "erf"):
        K, T = fused_nngp_ntk(y, None, [1.0, 2.0, 2.0], [0.0, 0.0, 0.0], act)
        assert np.all(np.isfinite(K)) and np.all(np.isfinite(T))


def test_rejects_bad_input():
    x = np.ones((4, 2))
    with pytest.raises(ValueError, match="activation"):
        fused_nngp_ntk(x, None, [1.0, 1.0], [0.0, 0.0], "tanh")
    with pytest.raises(ValueError):
        fused_nngp_ntk(x, None, [1.0, 1.0], [0.0], "relu")
    with pytest.raises(ValueError):
        fused_nngp_ntk(x, np.ones((3, 5)), [1.0, 1.0], [0.0, 0.0], "relu")
    with pytest.raises(ValueError):
        fused_nngp_ntk(np.full((4, 2), np.nan), None, [1.0, 1.0], [0.0, 0.0], "erf")
