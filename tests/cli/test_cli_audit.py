"""``pdbviz audit`` on the command line: a table per weight, the summary line, the exit status."""

import pytest

from pdbviz.cli import main


def test_audit_command_prints_every_weight_and_exits_zero_without_lies(capsys):
    assert main(["audit", "--model", "lenet", "--schedule", "8-4-2-1/8", "--input-shape", "1", "8", "8",
                 "--batch", "4"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1] == "audit: 5 weights, 10 uses, 0 lies"
    for layer in ("conv1", "conv2", "fc1", "fc2", "fc3"):
        assert layer in out


def test_audit_command_audits_a_packed_file_and_its_onnx_export(tmp_path, capsys):
    pytest.importorskip("onnx")
    import torch

    import pdbviz
    from pdbviz import export

    q = pdbviz.quantize(pdbviz.build_model("lenet", (1, 8, 8), 10), "4-2")
    packed = pdbviz.save_packed(q, tmp_path / "m.pdbq")
    onnx_path = tmp_path / "m.onnx"
    export.to_onnx(q.eval(), onnx_path, example_input=torch.randn(2, 1, 8, 8))
    assert main(["audit", "--model", "lenet", "--packed", str(packed), "--onnx", str(onnx_path),
                 "--input-shape", "1", "8", "8", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert f"packed file {packed}:" in out and f"ONNX file {onnx_path}:" in out
    assert out.rstrip().endswith(" 0 lies")


def test_audit_command_names_a_bad_model(capsys):
    assert main(["audit", "--model", "no-such-net"]) == 2
    assert "unknown --model 'no-such-net'" in capsys.readouterr().err
