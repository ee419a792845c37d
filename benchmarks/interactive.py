"""The latencies a person feels, each printed as min / median / max.

Run: python benchmarks/interactive.py [--repeats 5] [--skip-demo]

Targets (2-core laptop CPU): slider move to memory read-out <= 50 ms;
fine-tune on digits for 3 epochs <= 3 s; separability profile on digits
<= 2 s; UMAP of one layer <= 3 s warm (cold includes numba's compile);
Train press to a new point in the BitAllocator <= 5 s; `pdbviz demo` <= 60 s;
`import pdbviz` / `import torch` <= 1.3.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

import torch


def stats(label: str, values: list[float], unit: str = "s", target: str = "") -> None:
    scale = 1000 if unit == "ms" else 1
    v = [x * scale for x in values]
    print(f"{label:<46} min {min(v):8.3f}  median {statistics.median(v):8.3f}  max {max(v):8.3f} {unit}"
          f"   (n={len(v)}{', target ' + target if target else ''})")


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def import_time(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-demo", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    r = args.repeats

    import pdbviz
    from pdbviz.analysis import embed_layers
    from pdbviz.widgets import BitAllocator

    print(f"pdbviz {pdbviz.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    data = pdbviz.load_dataset("digits")
    model = pdbviz.build_model("lenet", data.input_shape, data.num_classes)
    pdbviz.fit(model, data, epochs=15, lr=3e-3, progress=False)

    ba = BitAllocator(model, data, epochs=3)
    moves = []
    for i in range(20 * r):
        layer = ba.layers[i % len(ba.layers)]
        ba.w_sliders[layer].value = (1, 2, 4, 8)[i % 4]
        moves.append(ba.last_readout_ms / 1000)
    stats("slider move -> memory read-out", moves, "ms", "<= 50 ms")

    stats("fine-tune lenet on digits, 3 epochs", [timed(lambda: pdbviz.finetune(
        model, "8-4-2-1", data, epochs=3, progress=False)) for _ in range(r)], target="<= 3 s")
    stats("separability profile on digits (4 measures)", [timed(lambda: pdbviz.separability_profile(
        model, data)) for _ in range(r)], target="<= 2 s")

    mnist = pdbviz.load_dataset("mnist5k")
    m28 = pdbviz.build_model("lenet", mnist.input_shape, 10)
    umap = [timed(lambda i=i: embed_layers(m28, mnist, layers=["fc1"], n_samples=1000, include_logits=False,
                                            cache=None, seed=i)) for i in range(r + 1)]
    stats("UMAP of one layer, 1,000 points, cold", umap[:1], target="compile included")
    stats("UMAP of one layer, 1,000 points, warm", umap[1:], target="<= 3 s")

    presses = []
    for i in range(r):
        ba.set_schedule(("8-4-2-1", "2", "4/4", "1", "8-2-1")[i % 5])
        t0 = time.perf_counter()
        ba.train()
        ba.wait()
        presses.append(time.perf_counter() - t0)
        assert len(ba.scatter.data[0].x) == min(i + 1, 5)  # one point per schedule
    stats("Train press -> new scatter point (digits)", presses, target="<= 5 s")

    imports = {"torch": [], "pdbviz": []}
    for _ in range(r):
        for mod in imports:
            imports[mod].append(import_time(mod))
    stats("import torch", imports["torch"])
    stats("import pdbviz", imports["pdbviz"])
    ratio = statistics.median(imports["pdbviz"]) / statistics.median(imports["torch"])
    print(f"{'import pdbviz / import torch (medians)':<46} {ratio:.2f}   (target <= 1.3)")

    if not args.skip_demo:
        demos = []
        for _ in range(min(r, 3)):
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "pdbviz.cli", "demo", "--out", out, "--quiet"], check=True,
                               capture_output=True)
                demos.append(time.perf_counter() - t0)
        stats("pdbviz demo, wall time (process included)", demos, target="<= 60 s")


if __name__ == "__main__":
    main()
