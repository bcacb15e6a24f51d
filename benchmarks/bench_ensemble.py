"""Networks/s of the Erf-net 4-point measurement: nnft.measure against one torch module per network.

Workload (the NN-QFT Erf-net experiment, arXiv:2008.08601): a single-hidden-layer Erf-net, d = 1, inputs
x = [-1, -0.6, -0.2, 0.2, 0.6, 1], widths 10, 100, 1000, moments up to order 4 (G^(2), G_c^(4)).

  * loop: what research scripts do: build two torch.nn.Linear modules per network, initialise them with
    torch.nn.init.normal_, evaluate erf-net at the 6 inputs, stack the outputs (the loop of
    /work/shared/peers/ensemble_rate.py, reimplemented here; it computes no moments, which favours it);
  * nnft plain / readout: nnft.measure(erf_net(width), x, EnsembleConfig(..., max_order=4, estimator=...,
    dtype="float32")), which also accumulates all float64 monomials up to order 4 and the jackknife errors.

Everything runs in one process with torch.set_num_threads(2); the three are measured in interleaved rounds
and each reports its best round, so that a burst of load from elsewhere on the machine hits all of them
alike. Ratios are taken within this run (absolute rates move from run to run). On a loaded machine torch's
2-thread OpenMP regions can stall for a scheduler quantum (ms) even on tiny tensors, which slows the
loop's per-network modules by up to 20x at some widths; so the loop is timed with 1 and with 2 torch
threads and the faster is its rate (conservative for the ratios). nnft always runs with 2 threads.

Precision per second: for each nnft run, ε = mean-over-tuples stderr of G_c^(4) / |mean-over-tuples of the
exact G_c^(4)| (nnft.theory.single_layer; mean(stderr) bounds the stderr of the tuple mean from above), and
ε·√T with T the run's wall time: the relative error one second of that estimator buys (lower is better;
seconds to 1 % = (ε√T / 0.01)²).

Correctness (the benchmark fails, exit status 1, if any check fails): every nnft run's measured G^(2)
matches the NNGP kernel nnft.kernels(spec, x).nngp, max over the 21 input pairs of |z| < 5, and its tuple
mean of G_c^(4) matches the exact finite-width value, |z| < 5 (with the conservative mean(stderr)).

Usage:  python benchmarks/bench_ensemble.py [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import torch

import nnft
from nnft import EnsembleConfig, InProcess
from nnft.theory.single_layer import single_layer_correlators

X = np.array([-1.0, -0.6, -0.2, 0.2, 0.6, 1.0])
WIDTHS = (10, 100, 1000)
# networks per timed nnft run (each ~0.3-1 s here); the loop runs for LOOP_SECONDS (at most LOOP_NETS) per round
NNFT_NETS = {10: 400_000, 100: 200_000, 1000: 40_000}
LOOP_NETS, LOOP_SECONDS = 2_000, 0.4
# chunk_size 400: the float64 monomial accumulation of a chunk then stays in cache (measured ~4x faster per
# network than at 500 and above on this machine); batch_chunks: ~3200 networks per vectorized evaluation,
# fewer at width 1000 (the readout estimator materializes B x 6 x 1000 float64 hidden values)
CHUNK_SIZE, N_BLOCKS = 400, 20
BATCH_CHUNKS = {10: 8, 100: 8, 1000: 2}
Z_MAX = 5.0
TARGET = {10: 100.0, 100: 100.0, 1000: 10.0}


def loop(n_nets: int, width: int) -> torch.Tensor:
    """One torch module per network (the research-script loop of ensemble_rate.py)."""
    xs = torch.tensor(X, dtype=torch.float32)[:, None]
    outs = []
    for _ in range(n_nets):
        l0 = torch.nn.Linear(1, width)
        l1 = torch.nn.Linear(width, 1)
        torch.nn.init.normal_(l0.weight, 0, 1.0)
        torch.nn.init.normal_(l0.bias, 0, 1.0)
        torch.nn.init.normal_(l1.weight, 0, 1 / math.sqrt(width))
        torch.nn.init.normal_(l1.bias, 0, 1.0)
        with torch.no_grad():
            outs.append(l1(torch.erf(l0(xs))).squeeze(-1))
    return torch.stack(outs)


def loop_rate(width: int, max_nets: int, seconds: float) -> float:
    """Networks/s of :func:`loop`, run in batches of 100 for about ``seconds`` (at most ``max_nets``)."""
    done, t0 = 0, time.perf_counter()
    while done < max_nets and (done == 0 or time.perf_counter() - t0 < seconds):
        loop(100, width)
        done += 100
    return done / (time.perf_counter() - t0)


def run_nnft(width: int, n_nets: int, estimator: str, seed: int) -> tuple[float, nnft.Measurement]:
    cfg = EnsembleConfig(n_networks=n_nets, chunk_size=CHUNK_SIZE, n_blocks=N_BLOCKS, seed=seed, max_order=4,
                         estimator=estimator, dtype="float32")
    t0 = time.perf_counter()
    m = nnft.measure(nnft.erf_net(width), X, cfg, executor=InProcess(batch_chunks=BATCH_CHUNKS[width]))
    return time.perf_counter() - t0, m


def check(width: int, m: nnft.Measurement, nngp: np.ndarray, exact_c4: np.ndarray) -> tuple[float, float]:
    """(max |z| of G^(2) against the NNGP kernel, z of the tuple mean of G_c^(4) against the exact value)."""
    g2 = m.moments[2]
    t = g2.tuples
    z2 = np.abs(g2.values - nngp[t[:, 0], t[:, 1]]) / g2.stderr
    c4 = m.connected[4]
    z4 = (c4.values.mean() - exact_c4.mean()) / c4.stderr.mean()
    return float(z2.max()), float(z4)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (best one is reported)")
    ap.add_argument("--quick", action="store_true", help="a tenth of the networks (smoke test)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    scale = 0.1 if args.quick else 1.0
    nnft_nets = {w: max(N_BLOCKS * CHUNK_SIZE, int(n * scale)) for w, n in NNFT_NETS.items()}
    loop_nets = max(200, int(LOOP_NETS * scale))  # per round and thread count, at most
    t_start = time.perf_counter()
    print(f"nnft {nnft.__version__}, torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (before)")
    print(f"nnft: chunk_size={CHUNK_SIZE}, InProcess(batch_chunks={BATCH_CHUNKS} by width), n_blocks={N_BLOCKS}, "
          f"float32, max_order=4; networks per run {nnft_nets}; loop ~{LOOP_SECONDS} s per round and thread count")

    # warm-up: compiles / loads the numba kernels and touches every code path once
    for w in WIDTHS:
        loop(20, w)
        for est in ("plain", "readout"):
            run_nnft(w, N_BLOCKS * CHUNK_SIZE, est, seed=99)

    t_warm = time.perf_counter()
    theory = {}
    for w in WIDTHS:
        spec = nnft.erf_net(w)
        theory[w] = (nnft.kernels(spec, X).nngp.numpy(), single_layer_correlators(spec, X, 4).connected[4].values)

    t_theory = time.perf_counter()
    best = {}  # (width, method) -> best rate
    runs = {}  # (width, estimator) -> (wall, measurement) of the best round
    for r in range(args.rounds):
        for w in WIDTHS:
            for threads in (1, 2):
                torch.set_num_threads(threads)
                best[(w, "loop")] = max(best.get((w, "loop"), 0.0), loop_rate(w, loop_nets, LOOP_SECONDS))
            torch.set_num_threads(2)
            for est in ("plain", "readout"):
                wall, m = run_nnft(w, nnft_nets[w], est, seed=r)
                rate = nnft_nets[w] / wall
                if rate > best.get((w, est), 0.0):
                    best[(w, est)] = rate
                    runs[(w, est)] = (wall, m)

    print()
    print(f"{'width':>5} | {'loop nets/s':>11} | {'plain nets/s':>12} | {'readout nets/s':>14} | "
          f"{'plain/loop':>10} | {'readout/loop':>12} | {'target  met':>12} | {'plain eps*sqrt(s)':>17} | "
          f"{'readout eps*sqrt(s)':>19}")
    print("-" * 140)
    ok = True
    checks = []
    for w in WIDTHS:
        loop_r = best[(w, "loop")]
        cells, eps = [], []
        for est in ("plain", "readout"):
            wall, m = runs[(w, est)]
            nngp, exact_c4 = theory[w]
            z2, z4 = check(w, m, nngp, exact_c4)
            good = z2 < Z_MAX and abs(z4) < Z_MAX
            ok &= good
            checks.append(f"  width {w:4d} {est:7s}: G2 vs NNGP max|z| = {z2:4.2f}, mean G_c4 vs exact z = {z4:+5.2f}"
                          f"  {'ok' if good else 'FAIL'}")
            rel = float(m.connected[4].stderr.mean() / abs(exact_c4.mean()))
            eps.append(rel * math.sqrt(wall))
            cells.append(best[(w, est)])
        ratios = [c / loop_r for c in cells]
        met = "both" if min(ratios) >= TARGET[w] else ("plain" if ratios[0] >= TARGET[w] else
                                                       ("readout" if ratios[1] >= TARGET[w] else "no"))
        print(f"{w:>5} | {loop_r:>11,.0f} | {cells[0]:>12,.0f} | {cells[1]:>14,.0f} | {ratios[0]:>9.0f}x | "
              f"{ratios[1]:>11.0f}x | {TARGET[w]:>4.0f}x {met:>7} | {eps[0]:>17.2e} | {eps[1]:>19.2e}")
    print("target: >= 100x the loop at widths 10-100, >= 10x at 1000 (met by: both / plain / readout / no). "
          "eps*sqrt(s): relative error of the tuple-mean G_c^(4) bought by one second (lower is better).")
    print("\ncorrectness (best round of each):")
    print("\n".join(checks))
    print(f"\nload average {os.getloadavg()[0]:.1f} (after); total {time.perf_counter() - t_start:.0f} s "
          f"(warm-up {t_warm - t_start:.0f} s, theory {t_theory - t_warm:.0f} s)")
    print("PASS" if ok else "FAIL: a measured correlator disagrees with theory")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
