"""KAN layers and networks (nnft.expressivity.kan.layer / network; PHYSICS.md §9, arXiv:2404.19756).

Checks:
  (a) forward = a naive loop over edges φ_ij(x_i) = mask (scale_base SiLU + scale_sp Σ c B), to 1e-12 in
      float64, for k ∈ {0, 1, 3}, every base function, points inside and outside the grid, uniform and
      adaptive grids, through both kernel families (torch; fused numba for small CPU layers), which
      also agree with each other (float64 1e-12, float32 2e-5); edge_activations sums to forward;
      gradients by torch.autograd.gradcheck;
  (b) the forward pass saves nothing of size batch × n_in × n_out;
  (c) out-of-range policies (extend: only the base survives beyond [a − kh, b + kh]; clamp; error);
  (d) grid extension G → G': nested uniform grids (G' = 2G, 3G, 4G) reproduce each edge on [a, b] to
      1e-12 — the "derived; verify numerically" claim of PHYSICS.md §9 — while a non-nested G' leaves a
      stated residual; update_grid preserves the function on the samples (exactly when the grid does
      not move, to the spline approximation error otherwise);
  (e) seeds, state_dict round trips (also across G), dtype conversion, and bad input.
"""

from __future__ import annotations

import math

import pytest
import torch

from nnft import ConfigError
from nnft.expressivity.kan import KAN, KANLayer
from nnft.expressivity.kan import layer as layer_module

F64 = torch.float64


@pytest.fixture(params=["torch", "numba"])
def path(request, monkeypatch) -> str:
    """Force the torch kernels (large layers, any device; uniform or adaptive grid) or the fused numba
    kernel (small CPU layers), whatever the layer size."""
    monkeypatch.setattr(layer_module, "_SMALL_WORK", -1 if request.param == "torch" else 1 << 62)
    return request.param


@torch.no_grad()
def naive_forward(model: KAN, x: torch.Tensor) -> torch.Tensor:
    """Slow oracle: loop over layers and edges, one 1-D edge evaluation each."""
    h = x
    for layer in model.layers:
        cols = []
        for j in range(layer.out_dim):
            cols.append(sum(layer.edge(h[:, i], i, j) for i in range(layer.in_dim)))
        h = torch.stack(cols, dim=1)
    return h


def _randomised(model: KAN, seed: int = 0) -> KAN:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.layers:
            layer.coef.copy_(torch.randn(layer.coef.shape, generator=g, dtype=F64))
            layer.scale_base.copy_(torch.randn(layer.scale_base.shape, generator=g, dtype=F64))
            layer.scale_sp.copy_(1 + 0.3 * torch.randn(layer.scale_sp.shape, generator=g, dtype=F64))
    return model


@pytest.mark.parametrize("k", [0, 1, 3])
@pytest.mark.parametrize("base_fn", ["silu", "identity", "zero"])
@torch.no_grad()
def test_forward_matches_naive_edge_loop(k: int, base_fn: str, path: str) -> None:
    model = _randomised(KAN([3, 4, 2], G=4, k=k, seed=1, base_fn=base_fn))
    g = torch.Generator().manual_seed(2)
    x_in = torch.rand(300, 3, generator=g, dtype=F64) * 1.8 - 0.9          # inside [a, b]
    x_out = torch.rand(300, 3, generator=g, dtype=F64) * 8 - 4              # everywhere
    for x in (x_in, x_out):
        y = model(x)
        assert y.shape == (300, 2)
        assert float((y - naive_forward(model, x)).abs().max()) < 1e-12
    trace = model(x_out, return_activations=True)
    assert torch.equal(trace.output, model(x_out)) and len(trace.inputs) == 2
    for layer, h in zip(model.layers, trace.inputs):
        edges = layer.edge_activations(h)
        assert edges.shape == (300, layer.in_dim, layer.out_dim)
        assert float((edges.sum(1) - layer(h)).abs().max()) < 1e-12


@torch.no_grad()
def test_forward_matches_naive_on_adaptive_grid_with_mask(path: str) -> None:
    model = _randomised(KAN([2, 3, 1], G=5, k=3, seed=0))
    g = torch.Generator().manual_seed(3)
    model.update_grid(torch.randn(500, 2, generator=g, dtype=F64) * 0.5, grid_eps=0.3)
    assert not model.layers[0].uniform
    with torch.no_grad():
        model.layers[0].mask[1, 2] = 0.0
    x = torch.randn(200, 2, generator=g, dtype=F64)
    assert float((model(x) - naive_forward(model, x)).abs().max()) < 1e-12


@pytest.mark.parametrize("adaptive", [False, True])
def test_gradcheck(adaptive: bool, path: str) -> None:
    layer = KANLayer(2, 3, G=3, k=3, seed=0)
    with torch.no_grad():
        layer.coef.normal_(generator=torch.Generator().manual_seed(1))
    if adaptive:
        layer.update_grid(torch.linspace(-1, 1, 40, dtype=F64)[:, None].expand(-1, 2) ** 3, grid_eps=0.2)
        assert not layer.uniform
    # points inside, in the boundary cells and outside the support, away from knots (kinks of SiLU-free k=3
    # splines are C², so finite differences are accurate everywhere except exactly at the support ends)
    x = torch.tensor([[-0.93, 0.41], [0.12, -1.7], [1.9, 0.77], [-3.2, 5.1], [0.55, -0.05]], dtype=F64,
                     requires_grad=True)
    params = (layer.coef, layer.scale_base, layer.scale_sp)

    def f(x, coef, sb, sp):
        return torch.func.functional_call(layer, {"coef": coef, "scale_base": sb, "scale_sp": sp}, (x,))

    inputs = (x,) + tuple(p.detach().clone().requires_grad_() for p in params)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("policy,adaptive", [("extend", False), ("clamp", False), ("extend", True)])
def test_numba_and_torch_kernels_agree(dtype, tol, policy, adaptive, monkeypatch) -> None:
    """The fused numba kernel and the torch kernels give the same outputs and gradients (inputs inside,
    in the boundary cells, beyond the knots and exactly on knots; uniform and adaptive grids)."""
    model = _randomised(KAN([3, 4, 2], G=5, k=3, seed=4, out_of_range=policy))
    if adaptive:
        model.update_grid(torch.randn(400, 3, generator=torch.Generator().manual_seed(1), dtype=F64), grid_eps=0.1)
        assert not any(layer.uniform for layer in model.layers)
    model = model.to(dtype)
    knots = model.layers[0].grid[0]
    x = torch.cat([torch.rand(60, 3, generator=torch.Generator().manual_seed(0), dtype=F64) * 7 - 3.5,
                   knots[:, None].expand(-1, 3).double()]).to(dtype)
    results = []
    for small in (-1, 1 << 62):
        monkeypatch.setattr(layer_module, "_SMALL_WORK", small)
        xr = x.clone().requires_grad_()
        y = model(xr)
        grads = torch.autograd.grad((y ** 2).sum(), [xr] + list(model.parameters()))
        results.append((y.detach(), [g.detach() for g in grads]))
    (y_t, g_t), (y_n, g_n) = results
    scale = float(y_t.abs().max())
    assert float((y_t - y_n).abs().max()) <= tol * scale
    for a, b in zip(g_t, g_n):
        assert float((a - b).abs().max()) <= tol * float(a.abs().max()) + tol


def test_forward_saves_no_batch_by_edge_tensor(path: str) -> None:
    """The activations kept for backward are O(batch × n_in × (G + k)), never batch × n_in × n_out."""
    batch, n_in, n_out = 256, 8, 64
    layer = KANLayer(n_in, n_out, G=5, k=3, seed=0)
    x = (torch.rand(batch, n_in, dtype=F64) * 3 - 1.5).requires_grad_()
    sizes = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
        y = layer(x)
    y.sum().backward()
    assert max(sizes) <= batch * n_in * (layer.G + 2 * layer.k + 2) < batch * n_in * n_out


@torch.no_grad()
def test_out_of_range_policies(path: str) -> None:
    G, k = 4, 3
    h = 2.0 / G
    x = torch.tensor([[-1 - k * h - 0.01], [-1.3], [0.2], [1.2], [1 + k * h + 0.5]], dtype=F64)
    ext = _randomised(KAN([1, 2], G=G, k=k, seed=0))
    layer = ext.layers[0]
    y = ext(x)
    base_only = torch.nn.functional.silu(x) * layer.scale_base * layer.mask
    assert float((y[[0, 4]] - base_only[[0, 4]]).abs().max()) < 1e-15  # splines vanish beyond a − kh, b + kh
    assert float((y[[1, 3]] - base_only[[1, 3]]).abs().min()) > 1e-6    # but not in the boundary cells

    clamp = _randomised(KAN([1, 2], G=G, k=k, seed=0, out_of_range="clamp"))
    expected = torch.nn.functional.silu(x) @ (layer.scale_base * layer.mask) + \
        ext.layers[0].spline_values(x.clamp(-1, 1))[:, 0] * layer.scale_sp[0]
    assert float((clamp(x) - expected).abs().max()) < 1e-12

    err = KAN([1, 2], G=G, k=k, seed=0, out_of_range="error")
    err(x[[2]])  # inside: fine
    with pytest.raises(ConfigError, match=r"KAN.layers\[0\].x: got '4 of 5 values outside the grid range"):
        err(x)


def _make_smooth(layer: KANLayer) -> KANLayer:
    """Coefficients of sin((j + 1) x) + x²/2 on every edge (least squares on the grid range)."""
    xs = torch.linspace(-1, 1, 200, dtype=F64)[:, None].expand(-1, layer.in_dim)
    ys = torch.stack([torch.sin((j + 1) * xs) + 0.5 * xs ** 2 for j in range(layer.out_dim)], -1)
    with torch.no_grad():
        layer.coef.copy_(layer._fit_coef(layer.grid, xs, ys))
    return layer


def _smooth_layer(G: int, k: int, n_in: int = 2, n_out: int = 3) -> KANLayer:
    return _make_smooth(KANLayer(n_in, n_out, G, k, seed=0))


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("G,G_new", [(5, 10), (4, 12), (3, 12)])
@torch.no_grad()
def test_nested_grid_extension_reproduces_function(k: int, G: int, G_new: int) -> None:
    """PHYSICS.md §9 (derived; verify numerically): G' a multiple of G on the same [a, b] → round-off."""
    g = torch.Generator().manual_seed(k)
    layer = KANLayer(2, 3, G, k, seed=0)
    with torch.no_grad():
        layer.coef.copy_(torch.randn(layer.coef.shape, generator=g, dtype=F64))  # a rough spline
    x = torch.linspace(-1, 1, 1001, dtype=F64)[:, None].expand(-1, 2)
    before = layer.spline_values(x)
    residual = layer.extend_grid(G_new)
    assert layer.G == G_new and layer.coef.shape == (2, 3, G_new + k) and layer.uniform
    assert residual < 1e-12
    assert float((layer.spline_values(x) - before).abs().max()) < 1e-12


@torch.no_grad()
def test_non_nested_grid_extension_leaves_residual() -> None:
    """G = 5 → 7 is not nested: the smooth test spline moves by ~3e-3 (cubic) — small but not round-off."""
    layer = _smooth_layer(5, 3)
    x = torch.linspace(-1, 1, 1001, dtype=F64)[:, None].expand(-1, 2)
    before = layer.spline_values(x)
    layer.extend_grid(7)
    change = float((layer.spline_values(x) - before).abs().max())
    assert 1e-5 < change < 1e-2


@torch.no_grad()
def test_network_grid_extension_with_samples() -> None:
    """Single-layer KAN, samples inside [a, b]: the network function is reproduced to round-off."""
    model = _randomised(KAN([2, 3], G=5, k=3, seed=0))
    x = torch.rand(400, 2, generator=torch.Generator().manual_seed(0), dtype=F64) * 2 - 1
    y = model(x)
    residuals = model.extend_grid(10, x)
    assert model.G == 10 and max(residuals) < 1e-12
    assert float((model(x) - y).abs().max()) < 1e-12


@torch.no_grad()
def test_update_grid_preserves_function_on_samples() -> None:
    # grid unchanged (uniform samples spanning exactly [-1, 1], grid_eps = 1): round-off
    layer = _smooth_layer(5, 3)
    x = torch.linspace(-1, 1, 301, dtype=F64)[:, None].expand(-1, 2)
    before = layer.spline_values(x)
    assert layer.update_grid(x, grid_eps=1.0) < 1e-12
    assert float((layer.spline_values(x) - before).abs().max()) < 1e-12
    # a moved grid: residual = spline approximation error, falling like G^{-(k+1)}
    g = torch.Generator().manual_seed(0)
    xs = torch.rand(1000, 2, generator=g, dtype=F64) * 1.7 - 0.8
    res = {}
    for G in (10, 20):
        layer = _smooth_layer(G, 3)
        before = layer.spline_values(xs)
        res[G] = layer.update_grid(xs, grid_eps=0.02)
        assert not layer.uniform
        assert abs(float((layer.spline_values(xs) - before).abs().max()) - res[G]) < 1e-12
        lo, hi = layer.grid_range[:, 0], layer.grid_range[:, 1]
        assert torch.equal(lo, xs.min(0).values) and torch.equal(hi, xs.max(0).values)
    assert res[10] < 1e-3 and res[20] < res[10] / 8  # G^{-4} would be 16


@torch.no_grad()
def test_update_grid_network() -> None:
    model = KAN([2, 4, 1], G=10, k=3, seed=0)
    for layer in model.layers:
        _make_smooth(layer)
    model.layers[0].scale_base.zero_()
    model.layers[0].scale_sp.fill_(0.35)  # keeps the hidden layer inside [-1, 1], where the splines are smooth
    x = torch.rand(500, 2, generator=torch.Generator().manual_seed(5), dtype=F64) * 1.6 - 0.8
    y, (_, hidden) = model(x, return_activations=True)
    assert float(hidden.abs().max()) < 1
    residuals = model.update_grid(x)
    assert len(residuals) == 2 and max(residuals) < 1e-2
    assert float((model(x) - y).abs().max()) < 1e-2 * float(y.abs().max())


@torch.no_grad()
def test_seed_determinism_and_no_global_rng() -> None:
    state = torch.random.get_rng_state()
    a, b, c = KAN([3, 5, 2], seed=7), KAN([3, 5, 2], seed=7), KAN([3, 5, 2], seed=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.layers[0].scale_base, c.layers[0].scale_base)
    # initialisation (pykan 0.2.8): scale_sp = 1/√n_in, |scale_base| ≤ 1/√n_in, spline ≈ 0
    layer = a.layers[0]
    assert torch.allclose(layer.scale_sp, torch.full((3, 5), 1 / math.sqrt(3), dtype=F64))
    assert float(layer.scale_base.abs().max()) <= 1 / math.sqrt(3)
    x = torch.linspace(-1, 1, 101, dtype=F64)[:, None].expand(-1, 3)
    assert float(layer.spline_values(x).abs().max()) < 0.3 / 5


@torch.no_grad()
def test_state_dict_round_trip_and_dtype() -> None:
    model = _randomised(KAN([2, 3, 1], G=5, k=3, seed=0))
    x = torch.rand(50, 2, dtype=F64) * 4 - 2
    model.update_grid(x)
    model.extend_grid(10)
    fresh = KAN([2, 3, 1], G=5, k=3, seed=123)  # different G and seed: shapes adopted from the state
    fresh.load_state_dict(model.state_dict())
    assert fresh.G == 10 and fresh.layers[0].uniform == model.layers[0].uniform
    assert torch.equal(fresh(x), model(x))
    as32 = KAN([2, 3, 1], seed=0).to(torch.float32)
    ref = KAN([2, 3, 1], seed=0)
    assert as32.dtype == torch.float32 and as32(x).dtype == torch.float32
    assert float((as32(x).double() - ref(x)).abs().max()) < 1e-5
    built32 = KAN([2, 3, 1], seed=0, dtype=torch.float32)
    assert float((built32(x).double() - ref(x)).abs().max()) < 1e-5
    assert model.n_params == sum(l.in_dim * l.out_dim * (l.G + l.k + 2) for l in model.layers)


@torch.no_grad()
def test_edge_accessors_and_subset() -> None:
    model = _randomised(KAN([3, 4], G=5, k=2, seed=0))
    layer = model.layers[0]
    x = torch.linspace(-1.5, 1.5, 41, dtype=F64)
    X = x[:, None].expand(-1, 3)
    edges = layer.edge_activations(X)
    assert torch.allclose(layer.edge(x, 2, 1), edges[:, 2, 1], atol=1e-14, rtol=0)
    assert torch.allclose(layer.spline(x, 0, 3), layer.spline_values(X)[:, 0, 3], atol=1e-14, rtol=0)
    sub = layer.subset([2, 0], [1])
    assert (sub.in_dim, sub.out_dim) == (2, 1)
    assert torch.allclose(sub.edge_activations(X[:, :2])[:, :, 0], edges[:, [2, 0], 1], atol=1e-14, rtol=0)
    chained = KAN.from_layers([layer.subset([0, 1, 2], [0, 1]), KANLayer(2, 1, seed=0)])
    assert chained.shape == (3, 2, 1)


def test_bad_input_raises_config_error() -> None:
    cases = [
        (lambda: KAN([2, 5, 1], G=0), "KANLayer.G"),
        (lambda: KAN([2, 5, 1], k=-1), "KANLayer.k"),
        (lambda: KAN([2]), "KAN.shape"),
        (lambda: KAN([2, 0, 1]), "KAN.shape"),
        (lambda: KAN([2, 1], grid_range=(1, -1)), "KANLayer.grid_range"),
        (lambda: KAN([2, 1], out_of_range="wrap"), "KANLayer.out_of_range"),
        (lambda: KAN([2, 1], base_fn="relu"), "KANLayer.base_fn"),
        (lambda: KAN([2, 1], dtype=torch.int64), "KANLayer.dtype"),
        (lambda: KAN([2, 1], grid_eps=2.0), "KANLayer.grid_eps"),
        (lambda: KAN([2, 1])(torch.zeros(4, 3)), r"x.shape: got \(4, 3\)"),
        (lambda: KAN([2, 1])(torch.tensor([[0.0, float("nan")]])), "x: got 'NaN values'"),
        (lambda: KAN([2, 1]).extend_grid(0), r"extend_grid.G_new"),
        (lambda: KAN([2, 1]).update_grid(torch.zeros(1, 2)), "x.shape"),
        (lambda: KAN([2, 1]).layers[0].edge(torch.zeros(3), 2, 0), r"layers\[0\].i"),
        (lambda: KAN.from_layers([KANLayer(2, 3), KANLayer(2, 1)]), r"layers\[1\].in_dim"),
    ]
    for make, pattern in cases:
        with pytest.raises(ConfigError, match=pattern):
            make()
