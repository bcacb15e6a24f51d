"""KAN training step (forward + backward + Adam step): nnft vs pykan 0.2.8, measured in the same run.

Configurations (those of /work/shared/peers/pykan_step.py): shape [2, 5, 1] at batch 1000 and
[10, 64, 64, 1] at batch 1024, G = 5, k = 3, x ~ U(−1, 1), y = sin(Σ x), MSE, Adam(lr = 1e-3),
3 warm-up steps, then the mean of 20 steps, torch's default thread count (2 on the reference machine).
pykan runs as a subprocess of its own venv: float32 at 2 threads through the peer script itself,
float64 (or another --threads) through the same code with torch.set_default_dtype(float64) /
set_num_threads. Rounds alternate nnft and pykan so both see the same machine load; the per-round
ratios (pykan ms / nnft ms) are reported with their spread.

Memory: the peak of live CPU tensor memory during one step, from torch.profiler allocation events
(an estimate: allocations are attributed to operator boundaries), and the largest single allocation.
nnft runs small layers (batch·n_in·n_out·(k+2) <= 2^17, e.g. all of [2, 5, 1]) through its fused numba
kernel and larger ones through the torch kernel (nnft.expressivity.kan.layer).

    python benchmarks/bench_kan.py [--rounds 3] [--threads N] [--skip-pykan] [--skip-memory] [--pykan-python PATH]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

try:
    from nnft.expressivity.kan import KAN
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from nnft.expressivity.kan import KAN

PYKAN_PYTHON = "/work/.peers/torch/bin/python"
PYKAN_SCRIPT = "/work/shared/peers/pykan_step.py"
CONFIGS = (((2, 5, 1), 1000), ((10, 64, 64, 1), 1024))
N_STEPS, N_WARM = 20, 3

# pykan step with the peer script's conventions, parameterised by dtype; prints one JSON line
PYKAN_CODE = r"""
import json, sys, time, torch
from kan import KAN
dtype = {"float32": torch.float32, "float64": torch.float64}[sys.argv[1]]
torch.set_default_dtype(dtype)
mode = sys.argv[2]
torch.set_num_threads(int(sys.argv[3]))
out = {}
for width, batch in (([2, 5, 1], 1000), ([10, 64, 64, 1], 1024)):
    d_in = width[0]
    m = KAN(width=list(width), grid=5, k=3, seed=0, auto_save=False, symbolic_enabled=False)
    x = torch.rand(batch, d_in) * 2 - 1; y = torch.sin(x.sum(1, keepdim=True))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    def step():
        opt.zero_grad(); loss = ((m(x) - y) ** 2).mean(); loss.backward(); opt.step()
    for _ in range(3): step()
    key = str(list(width))
    if mode == "time":
        t = time.perf_counter(); n = 20
        for _ in range(n): step()
        out[key] = (time.perf_counter() - t) / n * 1e3
    else:
        exec(sys.argv[4])
        out[key] = step_memory(step)
print(json.dumps(out))
"""


def step_memory(step) -> dict:
    """Peak live CPU tensor memory (MiB) during one call of step(), and the largest single allocation.

    Also sent (as source) to the pykan subprocess, whose venv has no nnft: keep it self-contained."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    cur = peak = biggest = 0
    for e in events:
        cur += e.self_cpu_memory_usage
        peak = max(peak, cur)
        biggest = max(biggest, e.self_cpu_memory_usage if e.name != "[memory]" else 0)
    return {"peak_mib": peak / 2**20, "largest_alloc_mib": biggest / 2**20}


def nnft_step(shape, batch: int, dtype: torch.dtype):
    model = KAN(list(shape), G=5, k=3, seed=0, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, shape[0], generator=g, dtype=torch.float64) * 2 - 1).to(dtype)
    y = torch.sin(x.sum(1, keepdim=True))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()

    for _ in range(N_WARM):
        step()
    return step


def time_nnft(dtype: torch.dtype) -> dict:
    out = {}
    for shape, batch in CONFIGS:
        step = nnft_step(shape, batch, dtype)
        t = time.perf_counter()
        for _ in range(N_STEPS):
            step()
        out[str(list(shape))] = (time.perf_counter() - t) / N_STEPS * 1e3
    return out


def run_pykan(python: str, dtype: str, mode: str = "time", threads: int | None = None) -> tuple[dict | None, str]:
    """pykan ms/step per shape (float32: the peer script itself; float64: the same code, float64 default)."""
    if not Path(python).exists():
        return None, f"pykan peer not found ({python}): skipped"
    if dtype == "float32" and mode == "time" and threads in (None, 2) and Path(PYKAN_SCRIPT).exists():
        cmd = [python, PYKAN_SCRIPT]
    else:
        cmd = [python, "-c", PYKAN_CODE, dtype, mode, str(threads or 2), inspect.getsource(step_memory)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    except subprocess.TimeoutExpired:
        return None, "pykan peer timed out (900 s): skipped"
    if p.returncode != 0:
        tail = (p.stdout + p.stderr).strip().splitlines()[-3:]
        return None, f"pykan peer failed (rc={p.returncode}): " + " | ".join(tail)
    if cmd[1] == PYKAN_SCRIPT:
        found = re.findall(r"width=(\[[\d, ]+\]) batch=\d+: ([\d.]+) ms/step", p.stdout)
        return ({w: float(ms) for w, ms in found} or None), p.stdout.strip().replace("\n", " | ")
    return json.loads(p.stdout.strip().splitlines()[-1]), "ok"


def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values):7.1f}x  [{min(values):.1f}, {max(values):.1f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pykan-python", default=PYKAN_PYTHON)
    ap.add_argument("--skip-pykan", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for both sides (default: torch's default; the peer script sets 2)")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(f"KAN training step, G = 5, k = 3, Adam; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.rounds} rounds (nnft and pykan alternate)\n")
    ours = {d: [] for d in ("float32", "float64")}
    peer = {d: [] for d in ("float32", "float64")}
    for r in range(args.rounds):
        for dname, dtype in (("float32", torch.float32), ("float64", torch.float64)):
            ours[dname].append(time_nnft(dtype))
            if not args.skip_pykan:
                res, msg = run_pykan(args.pykan_python, dname, threads=args.threads)
                if res is None:
                    print(f"round {r} {dname}: {msg}")
                else:
                    peer[dname].append(res)
            print(f"round {r} {dname}: nnft " + ", ".join(f"{k} {v:.2f} ms" for k, v in ours[dname][-1].items())
                  + ("; pykan " + ", ".join(f"{k} {v:.1f} ms" for k, v in peer[dname][-1].items())
                     if peer[dname] and len(peer[dname]) == len(ours[dname]) else ""), flush=True)

    print(f"\n{'shape, batch':<22} {'dtype':<8} {'nnft ms/step':>16} {'pykan ms/step':>17} "
          f"{'pykan/nnft per round: median [min, max]':>41} {'best/best':>10}")
    for shape, batch in CONFIGS:
        key = str(list(shape))
        for dname in ("float32", "float64"):
            o = [run[key] for run in ours[dname]]
            p = [run[key] for run in peer[dname] if key in run]
            ratios = [pp / oo for pp, oo in zip(p, o)]
            o_txt = f"{statistics.median(o):7.2f} ({min(o):.2f})"
            p_txt = f"{statistics.median(p):8.1f} ({min(p):.1f})" if p else "n/a"
            best = f"{min(p) / min(o):9.1f}x" if p else "n/a"
            print(f"{key + ', ' + str(batch):<22} {dname:<8} {o_txt:>16} {p_txt:>17} {spread(ratios):>41} {best:>10}")
    print("ms/step: median over rounds (min in parentheses); ratio > 1 means nnft is faster; best/best = "
          "fastest pykan round / fastest nnft round (the estimate least affected by other load on the machine).")

    if not args.skip_memory:
        print("\nMemory during one float32 step (torch.profiler allocation events; MiB):")
        from nnft.expressivity.kan.layer import _SMALL_WORK

        for shape, batch in CONFIGS:
            m = step_memory(nnft_step(shape, batch, torch.float32))
            key = str(list(shape))
            layer_max = max(shape[i] * batch * (5 + 3 + 1) for i in range(len(shape) - 1)) * 4 / 2**20
            kernels = ["numba" if batch * shape[i] * shape[i + 1] * (3 + 2) <= _SMALL_WORK else "torch"
                       for i in range(len(shape) - 1)]
            print(f"  nnft  {key:<16} peak {m['peak_mib']:7.2f}  largest allocation {m['largest_alloc_mib']:6.2f}"
                  f"  (basis batch x n_in x (G+k+1) float32 = {layer_max:.2f}; layer kernels {kernels})")
        print("  (the numba kernel keeps x, the spline input and the cell index per (batch, input); its "
              "O(n_in (G+k) n_out) scratch arrays are not torch tensors and not counted)")
        if not args.skip_pykan:
            res, msg = run_pykan(args.pykan_python, "float32", mode="memory")
            if res is None:
                print(f"  pykan: {msg}")
            else:
                for (shape, batch) in CONFIGS:
                    key = str(list(shape))
                    m = res[key]
                    edge = max(shape[i] * shape[i + 1] * batch for i in range(len(shape) - 1)) * 4 / 2**20
                    print(f"  pykan {key:<16} peak {m['peak_mib']:7.2f}  largest allocation "
                          f"{m['largest_alloc_mib']:6.2f}  (edges batch x n_in x n_out float32 = {edge:.2f})")


if __name__ == "__main__":
    main()
