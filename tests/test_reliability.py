"""Faults (killed writers, interrupted training), safety (no unpickling, no eval), determinism."""

import ast
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pdbviz

PACKAGE = Path(pdbviz.__file__).resolve().parent

# A child process that starts one of pdbviz's writers, stops half-way through the bytes, says
# "ready" and waits to be killed. Every writer goes through the same atomic file opener.
CHILD = textwrap.dedent("""
    import contextlib, sys, time
    import pdbviz, pdbviz._io as io_
    real = io_.atomic_write

    @contextlib.contextmanager
    def stalling(path, mode="wb", encoding=None):
        with real(path, mode, encoding) as fh:
            class Half:
                def write(self, data):
                    fh.write(data[: max(1, len(data) // 2)])
                    fh.flush()
                    print("ready", flush=True)
                    time.sleep(600)
                def __getattr__(self, name):
                    return getattr(fh, name)
            yield Half()

    for module in ("pdbviz.quant.packing", "pdbviz.checkpoint", "pdbviz.results", "pdbviz.plot.export",
                   "pdbviz.report"):
        __import__(module)
        setattr(sys.modules[module], "atomic_write", stalling)
    kind, target = sys.argv[1], sys.argv[2]
    model = pdbviz.quantize(pdbviz.build_model("lenet"), "2")
    if kind == "packed":
        pdbviz.save_packed(model, target)
    elif kind == "checkpoint":
        pdbviz.save_model(model, target)
    elif kind == "results":
        r = pdbviz.compare("digits", schedules=["2"], epochs=1, finetune_epochs=1, progress=False, n_samples=60)
        r.save(target)
    elif kind == "figure":
        import plotly.graph_objects as go
        pdbviz.plot.save(go.Figure(), target, formats=("html",))
""")


def _previous(kind, target: Path):
    model = pdbviz.quantize(pdbviz.build_model("lenet", seed=5), "8")
    if kind == "packed":
        pdbviz.save_packed(model, target)
        return [target]
    if kind == "checkpoint":
        pdbviz.save_model(model, target)
        return [target]
    if kind == "results":
        r = pdbviz.compare("digits", schedules=["4"], epochs=1, finetune_epochs=1, progress=False, n_samples=60)
        r.save(target)
        return sorted(target.iterdir())
    import plotly.graph_objects as go

    pdbviz.plot.save(go.Figure(layout={"title": "previous"}), target, formats=("html",))
    return [target.with_suffix(".html")]


@pytest.mark.parametrize("kind", ["packed", "checkpoint", "results", "figure"])
def test_killed_writer_leaves_previous_file_intact(kind, tmp_path):
    target = tmp_path / {"packed": "m.pdbq", "checkpoint": "m.pt", "results": "res", "figure": "fig"}[kind]
    before = {p: p.read_bytes() for p in _previous(kind, target)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, kind, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", f"the writer did not start: {line!r}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    for path, data in before.items():
        assert path.read_bytes() == data, f"{path.name} changed"
    # what was left behind is a hidden temporary file, never a half-written target
    if kind == "packed":
        assert pdbviz.load_packed(target, pdbviz.build_model("lenet")) is not None
    if kind == "checkpoint":
        assert pdbviz.load_model(target) is not None
    if kind == "results":
        assert pdbviz.Results.load(target).table.schedule.tolist() == ["uniform 4-bit"]


def test_interrupted_fit_leaves_a_usable_model_and_history():
    data = pdbviz.load_dataset("digits")
    model = pdbviz.quantize(pdbviz.build_model("lenet"), "8-4-2-1")

    def interrupt(state):
        if state.epoch == 2 and state.batch == 5:
            raise KeyboardInterrupt

    h = pdbviz.fit(model, data, epochs=4, progress=False, callbacks=[pdbviz.LambdaCallback(on_batch_end=interrupt)])
    assert h.stop_reason == "interrupted" and [r["complete"] for r in h.records] == [True, False]
    frame = h.to_frame()
    assert frame.epoch.tolist() == [1, 2] and frame.test_acc.notna().all()
    assert not model.training and pdbviz.evaluate(model, data)["accuracy"] > 0.5
    # and training can simply go on
    h2 = pdbviz.fit(model, data, epochs=1, progress=False)
    assert len(h2) == 1 and h2.stop_reason is None


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def test_no_unpickling_and_no_eval_in_the_package():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for call in _calls(tree):
            func = call.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            assert name not in ("eval", "exec", "compile") or isinstance(func, ast.Attribute), \
                f"{path.name}:{call.lineno} calls {name}()"
            if name == "load" and isinstance(func, ast.Attribute):
                owner = ast.unparse(func.value)
                if owner == "torch":
                    kw = {k.arg: ast.unparse(k.value) for k in call.keywords}
                    assert kw.get("weights_only") == "True", f"{path.name}:{call.lineno} torch.load without weights_only"
                assert owner not in ("pickle", "joblib", "dill"), f"{path.name}:{call.lineno} unpickles"
        # only the CIFAR reader may unpickle, through an Unpickler that overrides find_class
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any("Unpickler" in ast.unparse(b) for b in node.bases):
                assert path.name == "named.py", f"{path.name} defines an unpickler"
                assert any(isinstance(f, ast.FunctionDef) and f.name == "find_class" for f in node.body)
            if isinstance(node, ast.Attribute) and node.attr == "Unpickler" and path.name != "named.py":
                raise AssertionError(f"{path.name} uses pickle.Unpickler")


def test_schedule_parser_does_not_evaluate_text():
    with pytest.raises(ValueError, match="token"):
        pdbviz.BitSchedule.from_string("__import__('os').system('true')", ["a", "b"])
    with pytest.raises(ValueError):
        pdbviz.BitSchedule.from_string("2**3", ["a"])


def test_same_seed_same_numbers_and_same_packed_bytes(tmp_path):
    runs = []
    for i in range(2):
        r = pdbviz.compare("digits", schedules=["float", "8-4-2-1", "alloc:1.5"], epochs=2, finetune_epochs=1,
                           progress=False, n_samples=200)
        q = r.models[("8-4-2-1", 0)]
        path = pdbviz.save_packed(q, tmp_path / f"{i}.pdbq")
        runs.append((r, path.read_bytes()))
    (a, pa), (b, pb) = runs
    cols = ["schedule", "w_bits", "kib", "acc_mean"]
    assert a.table[cols].equals(b.table[cols])
    assert a.history.drop(columns="seconds").equals(b.history.drop(columns="seconds"))
    assert a.profiles.equals(b.profiles)
    assert pa == pb
    other = pdbviz.compare("digits", schedules=["8-4-2-1"], epochs=2, finetune_epochs=1, seeds=(1,), progress=False,
                           n_samples=200)
    assert not other.history.loss.equals(a.history[a.history.schedule == "8-4-2-1"].loss.reset_index(drop=True))


def test_lab_never_binds_beyond_localhost_by_default():
    from pdbviz.cli import build_parser

    args = build_parser().parse_args(["lab"])
    assert args.ip == "127.0.0.1" and args.token is None
