"""Symbolic snapping of KAN edges (nnft.expressivity.kan.symbolic; arXiv:2404.19756 §2.5.1, PHYSICS.md §9).

Checks:
  (a) the library: each entry's torch and sympy functions agree to 1e-13 on admissible points, and each
      canonical form (parity, homogeneity, period, exp's b = 0) is the same function of x to 1e-12;
  (b) fitting raw samples: planted y = c f(a x + b) + d are recovered in canonical form to 1e-6 and ranked
      first by ``suggest`` (R² ≥ 1 − 1e-10); an unfittable function (log of an argument that cannot stay
      positive) gets R² = −inf; bad input is a one-line ConfigError;
  (c) on a KAN: planted symbolic edges give a sympy formula that evaluates (float64) to the network output
      to 1e-10 on random points; a partly symbolic network names its non-symbolic edges; fix/unfix restore
      the spline; a trained [2, 1, 1] KAN on exp(sin(πx) + y²) is snapped to sin, x², exp and, after
      fine-tuning the affine parameters, its formula matches the target to 1e-4 on fresh points.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
import torch

from nnft import ConfigError
from nnft.expressivity.kan import symbolic as S

X = torch.linspace(-1.0, 1.0, 400, dtype=torch.float64)


def _points(name: str) -> torch.Tensor:
    """Admissible evaluation points for library function ``name``."""
    u = torch.linspace(-0.95, 0.95, 57, dtype=torch.float64)
    if name in ("log", "1/x", "1/x^2"):
        return u.abs() + 0.05
    if name == "sqrt":
        return u.abs()
    return u * 3 if name not in ("arcsin", "arctanh") else u


@pytest.mark.parametrize("name", list(S.LIBRARY))
def test_torch_and_sympy_functions_agree(name: str) -> None:
    fn = S.LIBRARY[name]
    u = _points(name)
    s = sympy.Symbol("u", real=True)
    lam = sympy.lambdify(s, fn.sympy_fn(s), "numpy")
    want = np.broadcast_to(np.asarray(lam(u.numpy()), dtype=np.float64), u.shape)
    np.testing.assert_allclose(fn.torch_fn(u).numpy(), want, rtol=1e-13, atol=1e-13)
    if fn.admissible is not None:
        assert bool(fn.admissible(u))


@pytest.mark.parametrize("name", [n for n in S.LIBRARY if S.LIBRARY[n].inner_affine])
def test_canonical_form_is_the_same_function(name: str) -> None:
    fn = S.LIBRARY[name]
    x = _points(name)
    for a, b in ((-1.7, 0.3), (0.6, -0.2), (-0.5, -0.1)):
        if name in ("log", "1/x", "1/x^2", "sqrt"):  # keep a x + b admissible: x > 0 here, so b > |a|-safe
            b = abs(b) + (abs(a) if a < 0 else 0.0) + 0.05
        if name in ("arcsin", "arctanh"):
            a, b = a / 3, b / 3
        p = (a, b, 1.3, -0.4)
        q = fn.canonical(p)
        f_p = p[2] * fn.torch_fn(p[0] * x + p[1]) + p[3]
        f_q = q[2] * fn.torch_fn(q[0] * x + q[1]) + q[3]
        np.testing.assert_allclose(f_q.numpy(), f_p.numpy(), rtol=1e-12, atol=1e-12, err_msg=f"{name} {p} -> {q}")
        assert q[0] >= 0 or name in ("exp", "sqrt", "log"), (name, q)


PLANTED = [  # name, (a, b, c, d) in canonical form
    ("sin", (math.pi, 0.3, 0.7, -0.2)),
    ("x^2", (1.0, -0.3, 2.0, 1.0)),
    ("exp", (0.8, 0.0, 1.5, 0.1)),
    ("log", (1.0, 1.5, 1.0, 0.0)),
    ("tanh", (2.0, -0.5, -1.2, 0.3)),
    ("gaussian", (1.5, 0.4, 2.0, -1.0)),
]


@pytest.mark.parametrize("name,params", PLANTED, ids=[p[0] for p in PLANTED])
def test_fit_recovers_planted_parameters(name: str, params) -> None:
    a, b, c, d = params
    y = c * S.LIBRARY[name].torch_fn(a * X + b) + d
    fit = S.fit_affine(X, y, name)
    assert fit.r2 > 1 - 1e-12
    np.testing.assert_allclose((fit.a, fit.b, fit.c, fit.d), params, atol=1e-6)
    np.testing.assert_allclose(fit(X).numpy(), y.numpy(), atol=1e-9)


def test_suggest_ranks_the_planted_function_first() -> None:
    lib = ["x", "x^2", "x^3", "exp", "sin", "tanh", "log", "gaussian", "0"]
    for name, (a, b, c, d) in PLANTED:
        y = c * S.LIBRARY[name].torch_fn(a * X + b) + d
        fits = S.suggest(X, y, lib=lib, topk=3)
        assert fits[0].name == name, (name, [(f.name, f.r2) for f in fits])
        assert fits[0].r2 > 1 - 1e-10
        assert [f.loss for f in fits] == sorted(f.loss for f in fits)
    # a straight line: 'x' (complexity 1) beats the curved functions that also reach R² ~ 1 by flattening
    assert S.suggest(X, 3 * X - 1, lib=lib, topk=1)[0].name == "x"
    # pure noise-free constant: the zero function (complexity 0) wins
    assert S.suggest(X, torch.full_like(X, 0.5), lib=lib, topk=1)[0].name == "0"


def test_unfittable_function_and_bad_input() -> None:
    wide = torch.linspace(-1000.0, 1000.0, 50, dtype=torch.float64)
    fit = S.fit_affine(wide, wide**2, "log")  # a x + b > 0 on [−1e3, 1e3] with |b| ≤ 10 needs |a| < 0.01:
    assert fit.r2 == -math.inf and fit.loss == math.inf  # only a = 0 on the grid, a constant: no fit
    with pytest.raises(ConfigError, match="name"):
        S.fit_affine(X, X, "sinh")
    with pytest.raises(ConfigError, match="x, y"):
        S.fit_affine(X, X[:-1], "x")
    with pytest.raises(ConfigError, match="x, y"):
        S.fit_affine(torch.tensor([0.0, 1.0, float("nan"), 2.0]), torch.zeros(4), "x")
    with pytest.raises(ConfigError, match="lib"):
        S.suggest(X, X, lib=["x", "bogus"])
    with pytest.raises(ConfigError, match="weight_simple"):
        S.suggest(X, X, weight_simple=1.5)


# ------------------------------------------------------------------------------------------ on a KAN
def _planted(seed: int = 0):
    """A [2, 3, 1] KAN with every edge symbolic (random affine parameters) except one pruned edge."""
    from nnft.expressivity.kan import KAN

    model = KAN([2, 3, 1], seed=seed)
    rng = np.random.default_rng(seed)
    names = [["sin", "x^2", "exp"], ["tanh", "x", "gaussian"]]
    for i in range(2):
        for j in range(3):
            S.fix_symbolic(model, 0, i, j, names[i][j], params=rng.uniform(-1, 1, 4))
    for i, name in enumerate(["x^2", "sin", None]):
        if name is None:
            with torch.no_grad():
                model.layers[1].mask[i, 0] = 0.0  # pruned: contributes nothing
        else:
            S.fix_symbolic(model, 1, i, 0, name, params=rng.uniform(-0.5, 0.5, 4))
    return model


def test_formula_equals_network_to_round_off() -> None:
    model = _planted()
    x, y = sympy.symbols("x y", real=True)
    expr = S.formula(model, [x, y])
    assert expr.free_symbols == {x, y}
    assert expr.has(sympy.sin) and expr.has(sympy.tanh)
    assert not expr.has(sympy.exp)  # hidden node 2 (exp, gaussian edges) feeds only the pruned edge
    pts = np.random.default_rng(1).uniform(-1.5, 1.5, (400, 2))
    lam = sympy.lambdify((x, y), expr, "numpy")
    net = model(torch.from_numpy(pts))[:, 0].detach().numpy()
    assert np.abs(lam(pts[:, 0], pts[:, 1]) - net).max() < 1e-10
    unsimplified = S.formula(model, ["u", "v"], simplify=False)
    assert sympy.lambdify(sorted(unsimplified.free_symbols, key=str), unsimplified)(pts[:, 0], pts[:, 1]) \
        == pytest.approx(net, abs=1e-10)


def test_partial_network_names_its_spline_edges() -> None:
    from nnft.expressivity.kan import KAN

    model = _planted()
    S.unfix_symbolic(model, 0, 1, 2)
    assert S.non_symbolic_edges(model) == [(0, 1, 2)]
    with pytest.raises(ConfigError, match=r"got 1 non-symbolic edge\(s\) \(l, i, j\): \(0, 1, 2\); allowed"):
        S.formula(model)
    with pytest.raises(ConfigError, match=r"9 non-symbolic .*\(1, 2, 0\); allowed"):
        S.formula(KAN([2, 3, 1]))
    with pytest.raises(ConfigError, match="variables"):
        S.formula(_planted(), ["x"])
    with pytest.raises(ConfigError, match="output"):
        S.formula(_planted(), output=1)


def test_fix_and_unfix_restore_the_spline_edge() -> None:
    from nnft.expressivity.kan import KAN

    model = KAN([2, 2, 1], seed=3)
    x = torch.rand(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    before = model(x).detach()
    xs, ys = S.edge_samples(model, 0, 1, 0, x)
    fit = S.fix_symbolic(model, 0, 1, 0, "x^3", x)
    assert float(model.layers[0].mask[1, 0]) == 0.0 and S.non_symbolic_edges(model).count((0, 1, 0)) == 0
    xs2, ys2 = S.edge_samples(model, 0, 1, 0, x)               # the edge is now the fitted cubic
    torch.testing.assert_close(ys2, fit(xs2), rtol=1e-12, atol=1e-12)
    assert fit.r2 == pytest.approx(S.fit_affine(xs, ys, "x^3").r2, abs=1e-12)
    S.unfix_symbolic(model, 0, 1, 0)
    torch.testing.assert_close(model(x).detach(), before, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="name"):
        S.fix_symbolic(model, 0, 0, 0, "cosh")
    with pytest.raises(ConfigError, match="j"):
        S.fix_symbolic(model, 0, 0, 5, "sin")
    with pytest.raises(ConfigError, match="params"):
        S.fix_symbolic(model, 0, 0, 0, "sin", params=(1.0, 2.0))


def test_copies_and_checkpoints_keep_symbolic_edges(tmp_path) -> None:
    import copy

    from nnft.expressivity.kan import io

    model = _planted()
    x = torch.rand(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.layers[1].symbolic_edges.affine[0, 0, 2] += 1.0   # c of edge (1, 0, 0) in the copy only
    assert float((twin(x) - model(x)).detach().abs().min()) > 1e-3  # the copy's hook uses the copy's parameters
    io.save_model(model, tmp_path / "ckpt")
    loaded, meta = io.load_model(tmp_path / "ckpt")
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert meta["kan"]["symbolic"][0] == [0, 0, 0, "sin"]
    assert str(S.formula(loaded)) == str(S.formula(model))


def test_recover_exp_sin_plus_square() -> None:
    """f(x, y) = exp(sin(πx) + y²) (the KAN paper's example): train a [2, 1, 1] KAN, snap, fine-tune."""
    from nnft.expressivity.kan import KAN

    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 2, dtype=torch.float64, generator=g) * 2 - 1
    y = torch.exp(torch.sin(math.pi * x[:, :1]) + x[:, 1:] ** 2)
    model = KAN([2, 1, 1], G=5, k=3, seed=0, noise_scale=0.0)
    for _ in range(5):                                   # train, adapting the grids to the data as we go
        model.update_grid(x)
        S.fine_tune(model, x, y, steps=20, which="all")
    lib = ["x", "x^2", "x^3", "exp", "sin", "tanh", "log", "sqrt", "gaussian", "abs"]
    report = S.auto_symbolic(model, x, lib=lib, r2_threshold=0.99)
    assert [(r.l, r.i, r.j, r.status, r.fit.name) for r in report] == [
        (0, 0, 0, "fixed", "sin"), (0, 1, 0, "fixed", "x^2"), (1, 0, 0, "fixed", "exp")]
    assert abs(report[0].fit.a - math.pi) < 0.01                 # sin(a x + b) with a ≈ π before fine-tuning
    history = S.fine_tune(model, x, y, steps=100)
    assert history[-1] < 1e-12
    u, v = sympy.symbols("x y", real=True)
    expr = S.formula(model, [u, v])
    pts = np.random.default_rng(5).uniform(-1, 1, (1000, 2))
    got = sympy.lambdify((u, v), expr)(pts[:, 0], pts[:, 1])
    assert np.abs(got - np.exp(np.sin(np.pi * pts[:, 0]) + pts[:, 1] ** 2)).max() < 1e-4
    assert str(S.round_floats(expr, 2, chop=1e-6)) in ("exp(y**2 + sin(3.1*x))", "exp(sin(3.1*x) + y**2)")
