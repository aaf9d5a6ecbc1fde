"""Convolution and pooling workloads a-g of BENCHMARKS.md, tinygrad_nd side by side with PyTorch.

Usage::

    python benchmarks/bench_conv.py                    # CPU, 2 threads for both, markdown table
    python benchmarks/bench_conv.py --threads 1
    python benchmarks/bench_conv.py --device cuda      # CuPy and torch.cuda, batch 256 for b, c, f
    python benchmarks/bench_conv.py --only b,e --repeat 50

Every workload is float32 forward + backward (gradients of the input and of the weights); f adds
an SGD update, g measures per-op overhead in microseconds. Each figure is the median of repeated
runs after warm-up, with the min-max range; GFLOP/s counts 3 * the forward FLOPs (BENCHMARKS.md).

Threads: numpy parallelises only inside BLAS (OpenBLAS), torch in its own pool. ``--threads N``
sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS before numpy is imported, and
``torch.set_num_threads(N)``, so both sides get the same count. Peak memory of workload b's step
is measured three ways: tracemalloc (numpy allocations, which numpy reports to it), torch's
profiler (tensor allocations of the step, replayed in time order; mkldnn scratch is not seen),
and, for both alike, how far the resident set rises during one step (Linux only: a fresh
subprocess, one warm-up step, glibc returning freed buffers to the OS at once).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

WORKLOADS = "abcdefg"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=2, help="threads for numpy's BLAS and torch")
    p.add_argument("--only", default=WORKLOADS, help="workload ids, e.g. 'b,e' (default all)")
    p.add_argument("--repeat", type=int, default=0,
                   help="timed runs per workload (default: as many as fit in ~2 s, 7 to 100)")
    p.add_argument("--no-torch", action="store_true", help="time tinygrad_nd alone")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)  # internal: one RSS measurement
    return p.parse_args(argv)


ARGS = parse_args()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)  # before numpy (and its BLAS) is loaded

import numpy as np  # noqa: E402

import tinygrad_nd as tnd  # noqa: E402
import tinygrad_nd.nn.functional as F  # noqa: E402
from tinygrad_nd import backend  # noqa: E402
from tinygrad_nd.nn import functional_conv  # noqa: E402

if not hasattr(F, "conv2d"):  # until functional re-exports the conv/pool wrappers
    for _name in functional_conv.__all__:
        setattr(F, _name, getattr(functional_conv, _name))

try:
    import torch
except ImportError:
    torch = None


# ----------------------------------------------------------------------------- workloads
def conv_flops(batch, c_in, c_out, kernel, out, groups=1):
    """Forward FLOPs of a convolution: 2 * batch * C_out * (C_in / groups) * prod(k) * prod(out)."""
    return 2 * batch * c_out * (c_in // groups) * int(np.prod(kernel)) * int(np.prod(out))


class Side:
    """One framework's tensors and functions, so that each workload is written once."""

    def __init__(self, name, device):
        self.name, self.device = name, device
        self.torch = name == "torch"

    def tensor(self, array, requires_grad=False):
        if self.torch:
            t = torch.from_numpy(array).to(self.device)
            return t.requires_grad_(requires_grad)
        return tnd.tensor(array, device=self.device, requires_grad=requires_grad)

    @property
    def F(self):
        return torch.nn.functional if self.torch else F

    def no_grad(self):
        return torch.no_grad() if self.torch else tnd.no_grad()

    def sync(self):
        if self.device == "cpu":
            return
        if self.torch:
            torch.cuda.synchronize()
        else:
            backend.synchronize("cuda:0")

    def sgd(self, params, lr):
        with self.no_grad():
            for p in params:
                if self.torch:
                    p -= lr * p.grad
                else:
                    p.data -= lr * p.grad.data
                p.grad = None


def _rng_arrays(seed, *shapes, scale=1.0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s) * scale).astype(np.float32) for s in shapes]


def make_conv(side, n, batch, c_in, c_out, spatial, kernel, padding):
    """A conv step: y = conv(x, w); y.backward(gy); both gradients are computed."""
    out = tuple(s + 2 * padding - k + 1 for s, k in zip(spatial, kernel))
    x, w, gy = _rng_arrays(0, (batch, c_in, *spatial), (c_out, c_in, *kernel),
                           (batch, c_out, *out))
    x, w, gy = side.tensor(x, True), side.tensor(w, True), side.tensor(gy)
    conv = getattr(side.F, f"conv{n}d")

    def step():
        y = conv(x, w, padding=padding)
        y.backward(gy)
        x.grad = w.grad = None

    return step, 3 * conv_flops(batch, c_in, c_out, kernel, out)


def make_pool(side, batch):
    (x,) = _rng_arrays(1, (batch, 32, 32, 32))
    x = side.tensor(x, True)
    (gy,) = _rng_arrays(2, (batch, 32, 16, 16))
    gy = side.tensor(gy)

    def step():
        y = side.F.max_pool2d(x, 2, 2)
        y.backward(gy)
        x.grad = None

    return step, None


def make_lenet(side, batch):
    """conv 3x3 (1->8) -> pool 2 -> sigmoid -> conv 3x3 (8->16) -> pool 2 -> sigmoid -> linear."""
    images, w1, b1, w2, b2, w3, b3 = _rng_arrays(3, (batch, 1, 28, 28), (8, 1, 3, 3), (8,),
                                                 (16, 8, 3, 3), (16,), (10, 400), (10,), scale=0.3)
    target = np.eye(10, dtype=np.float32)[np.arange(batch) % 10]
    images, target = side.tensor(images), side.tensor(target)
    params = [side.tensor(a, True) for a in (w1, b1, w2, b2, w3, b3)]
    Fn = side.F

    def step():
        w1, b1, w2, b2, w3, b3 = params
        h = Fn.max_pool2d(Fn.conv2d(images, w1, b1), 2).sigmoid()  # (batch, 8, 13, 13)
        h = Fn.max_pool2d(Fn.conv2d(h, w2, b2), 2).sigmoid()  # (batch, 16, 5, 5)
        loss = Fn.mse_loss(Fn.linear(h.reshape(batch, -1), w3, b3), target)
        loss.backward()
        side.sgd(params, 0.1)

    flops = 3 * (conv_flops(batch, 1, 8, (3, 3), (26, 26)) + conv_flops(batch, 8, 16, (3, 3), (11, 11))
                 + 2 * batch * 400 * 10)
    return step, flops


def make_small_net(side):
    """5x5 -> conv 2x2 -> 4x4 -> max pool 2 -> sigmoid -> linear 4->2 -> linear 2->2 -> MSE."""
    x, wc, bc, w1, b1, w2, b2 = _rng_arrays(4, (1, 1, 5, 5), (1, 1, 2, 2), (1,), (2, 4), (2,),
                                            (2, 2), (2,), scale=0.5)
    x, target = side.tensor(x), side.tensor(np.array([[0.0, 1.0]], np.float32))
    params = [side.tensor(a, True) for a in (wc, bc, w1, b1, w2, b2)]
    Fn = side.F

    def step():
        wc, bc, w1, b1, w2, b2 = params
        h = Fn.max_pool2d(Fn.conv2d(x, wc, bc), 2).sigmoid()  # (1, 1, 2, 2)
        h = Fn.linear(Fn.linear(h.reshape(1, 4), w1, b1), w2, b2)
        Fn.mse_loss(h, target).backward()
        for p in params:
            p.grad = None

    return step, None


def build(workload, side):
    big = 256 if side.device != "cpu" else None
    if workload == "a":
        return make_conv(side, 2, 64, 1, 8, (28, 28), (3, 3), 0)
    if workload == "b":
        return make_conv(side, 2, big or 32, 16, 32, (32, 32), (3, 3), 1)
    if workload == "c":
        return make_conv(side, 3, big or 8, 4, 8, (16, 16, 16), (3, 3, 3), 1)
    if workload == "d":
        return make_conv(side, 1, 64, 8, 16, (256,), (5,), 0)
    if workload == "e":
        return make_pool(side, 32)
    if workload == "f":
        return make_lenet(side, big or 64)
    if workload == "g":
        return make_small_net(side)
    raise ValueError(workload)


DESCRIPTIONS = {
    "a": "conv2d 64x1->8 28x28 k3",
    "b": "conv2d {b}x16->32 32x32 k3 p1",
    "c": "conv3d {b}x4->8 16^3 k3 p1",
    "d": "conv1d 64x8->16 L256 k5",
    "e": "max pool 2x2 s2, 32x32x32x32",
    "f": "LeNet-like step, batch {b}",
    "g": "small net, 1 example",
}


# ----------------------------------------------------------------------------- timing
def time_steps(steps, syncs, repeat):
    """Median, min and max seconds per step of each framework. The frameworks alternate run by
    run, so that a noisy neighbour on the machine slows both alike."""
    for step, sync in zip(steps, syncs):
        for _ in range(3):  # warm-up: caches, allocator, BLAS threads
            step()
        sync()
    if not repeat:
        start = time.perf_counter()
        for step, sync in zip(steps, syncs):
            step()
            sync()
        once = time.perf_counter() - start
        repeat = int(min(100, max(7, 2.0 / max(once, 1e-6))))
    times = [[] for _ in steps]
    for _ in range(repeat):
        for step, sync, record in zip(steps, syncs, times):
            start = time.perf_counter()
            step()
            sync()
            record.append(time.perf_counter() - start)
    return [dict(median=statistics.median(t), min=min(t), max=max(t), runs=repeat) for t in times]


# ----------------------------------------------------------------------------- memory
def tracemalloc_peak(step):
    """Peak bytes allocated through Python's allocators (numpy reports its buffers) in a step."""
    import tracemalloc

    step()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def torch_profiler_peak(step):
    """Peak of torch's tensor allocations during a step, replayed from its profiler in time
    order (allocations counted inside ops, frees as '[memory]' events)."""
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = []
    for e in prof.events():
        amount = e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage
        if amount:
            events.append((e.time_range.start, amount))
    current = peak = 0
    for _, amount in sorted(events):
        current += amount
        peak = max(peak, current)
    return peak


def _proc_status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_child(which):
    """In a fresh process, after one warm-up step: how far the resident set rises above its
    level before the step (Linux: VmHWM, reset through /proc/self/clear_refs, minus VmRSS)."""
    side = Side(which, "cpu")
    if side.torch:
        torch.set_num_threads(ARGS.threads)
    step, _ = build("b", side)
    step()
    before = _proc_status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak (VmHWM) to the current resident size
    step()
    print(json.dumps({"rss_rise_bytes": (_proc_status_kib("VmHWM") - before) * 1024}))


def rss_rise(which):
    """Peak-RSS rise of one step of b in a subprocess; glibc's mmap threshold is fixed at 64 KiB
    there, so freed buffers go back to the OS at once and both frameworks are measured alike."""
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", which,
           "--threads", str(ARGS.threads)]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    except (subprocess.CalledProcessError, OSError) as exc:  # e.g. no /proc (not Linux)
        print(f"peak-RSS measurement failed for {which}: {exc}", file=sys.stderr)
        return None
    return json.loads(out.strip().splitlines()[-1])["rss_rise_bytes"]


def memory_report(have_torch):
    tnd_side = Side("tinygrad_nd", "cpu")
    step, _ = build("b", tnd_side)
    rows = {"tinygrad_nd": {"tracemalloc": tracemalloc_peak(step), "rss_rise": rss_rise("tinygrad_nd"),
                            "work_arrays": backend.scratch_bytes()}}
    if have_torch:
        step, _ = build("b", Side("torch", "cpu"))
        rows["torch"] = {"profiler": torch_profiler_peak(step), "rss_rise": rss_rise("torch")}
    return rows


# ----------------------------------------------------------------------------- main
def setup_device():
    if ARGS.device == "cpu":
        return "cpu"
    try:
        backend.cupy_module()
    except RuntimeError as exc:
        sys.exit(f"bench_conv.py --device cuda needs CuPy and a CUDA GPU for tinygrad_nd: {exc}")
    if torch is not None and not ARGS.no_torch and not torch.cuda.is_available():
        sys.exit("bench_conv.py --device cuda: this torch build has no CUDA; install a CUDA "
                 "build of torch or pass --no-torch")
    return "cuda:0"


def mib(nbytes):
    return "n/a" if nbytes is None else f"{nbytes / 2**20:.1f}"


def fmt_ms(seconds, micro=False):
    return f"{seconds * 1e6:.0f} us" if micro else f"{seconds * 1e3:.2f}"


def main():
    if ARGS.memory_child:
        rss_child(ARGS.memory_child)
        return
    device = setup_device()
    have_torch = torch is not None and not ARGS.no_torch
    if have_torch:
        torch.set_num_threads(ARGS.threads)
    sides = [Side("tinygrad_nd", device)] + ([Side("torch", device)] if have_torch else [])
    results = {}
    for w in [c for c in ARGS.only if c in WORKLOADS]:
        built = [build(w, side) for side in sides]
        timings = time_steps([step for step, _ in built], [side.sync for side in sides],
                             ARGS.repeat)
        results[w] = {side.name: dict(t, flops=flops)
                      for side, t, (_, flops) in zip(sides, timings, built)}

    batch = 256 if device != "cpu" else None
    print(f"device {device}, {ARGS.threads} thread(s); numpy {np.__version__}"
          + (f", torch {torch.__version__}" if have_torch else "")
          + "; median of repeated runs after warm-up\n")
    head = "| id | workload | tinygrad_nd ms (min-max) | GFLOP/s |"
    head += " torch ms (min-max) | GFLOP/s | ratio |" if have_torch else ""
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for w, per in results.items():
        desc = DESCRIPTIONS[w].format(b=batch or {"b": 32, "c": 8, "f": 64}.get(w, ""))
        cells = [w, desc]
        for side in sides:
            r = per[side.name]
            micro = w == "g"
            span = f"{fmt_ms(r['median'], micro)} ({fmt_ms(r['min'], micro)}-{fmt_ms(r['max'], micro)})"
            gflops = f"{r['flops'] / r['median'] / 1e9:.1f}" if r["flops"] else "-"
            cells += [span, gflops]
        if have_torch:
            cells.append(f"{per['tinygrad_nd']['median'] / per['torch']['median']:.2f}x")
        print("| " + " | ".join(cells) + " |")

    memory = None
    if device == "cpu" and not ARGS.no_memory and "b" in ARGS.only:
        memory = memory_report(have_torch)
        print("\nPeak memory of workload b's step (MiB):")
        t = memory["tinygrad_nd"]
        print(f"- tinygrad_nd: tracemalloc peak {mib(t['tracemalloc'])}, "
              f"peak-RSS rise {mib(t['rss_rise'])}, plus work arrays kept between steps "
              f"{mib(t['work_arrays'])}")
        if have_torch:
            t = memory["torch"]
            print(f"- torch: profiler tensor peak {mib(t['profiler'])}, "
                  f"peak-RSS rise {mib(t['rss_rise'])}")
    if ARGS.json:
        with open(ARGS.json, "w") as f:
            json.dump({"device": device, "threads": ARGS.threads, "results": results,
                       "memory": memory}, f, indent=1)


if __name__ == "__main__":
    main()
