import struct

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from pdbviz import (BitSchedule, PackedFormatError, load_packed, memory_report, memory_summary, memory_table, quantize,
                    save_packed, schedule_of)
from pdbviz.quant.packing import pack_codes, unpack_codes


def test_memory_table_against_hand_count(small_cnn):
    q = quantize(small_cnn, "8-4-1/4")
    report = memory_report(q)
    table = report.table
    assert list(table.layer) == ["conv1", "conv2", "head"]
    assert list(table.kind) == ["Conv2d", "Conv2d", "Linear"]
    params = [8 * 1 * 9, 16 * 8 * 9, 10 * 256]
    bits = [8, 4, 1]
    assert list(table.params) == params
    assert list(table.a_bits) == [32, 4, 4]
    assert int(table.weight_bits.sum()) == sum(p * b for p, b in zip(params, bits))
    s = report.summary
    assert s.quantized_weight_kib == pytest.approx(sum(p * b for p, b in zip(params, bits)) / 8192)
    assert s.float32_weight_kib == pytest.approx(sum(params) * 32 / 8192)
    assert s.compression == pytest.approx(sum(params) * 32 / sum(p * b for p, b in zip(params, bits)))
    assert s.avg_bits == pytest.approx(sum(p * b for p, b in zip(params, bits)) / sum(params))
    # biases (8 + 16 + 10), BN weight/bias/mean/var (4*8 + 4*16) at 32 bits, 2 int64 counters
    assert s.other_params == 34 + 96 + 2
    assert s.other_kib == pytest.approx(((34 + 96) * 32 + 2 * 64) / 8192)


def test_memory_table_of_float_model_and_with_schedule(small_cnn):
    table = memory_table(small_cnn)
    assert list(table.w_bits) == [32, 32, 32] and memory_summary(small_cnn).compression == 1
    planned = memory_table(small_cnn, BitSchedule.from_string("8-4-2", small_cnn))
    built = memory_table(quantize(small_cnn, "8-4-2"))
    assert planned.equals(built)
    with pytest.raises(ValueError, match="does not have"):
        memory_table(small_cnn, BitSchedule.uniform(["x"], 2))


@settings(max_examples=50, deadline=None)
@given(bits=st.integers(1, 8), n=st.integers(1, 200), seed=st.integers(0, 10**6))
def test_pack_unpack_round_trip(bits, n, seed):
    codes = np.random.default_rng(seed).integers(0, 2**bits, n).astype(np.uint8)
    blob = pack_codes(codes, bits)
    assert len(blob) == (n * bits + 7) // 8
    assert np.array_equal(unpack_codes(blob, n, bits), codes)


@pytest.mark.parametrize("text", ["8-4-2", "3/5", "symmetric:4-2/8", "1/1", "32-2"])
def test_packed_round_trip_is_exact(tmp_path, small_cnn, text):
    q = quantize(small_cnn, text)
    x = torch.randn(3, 1, 16, 16)
    q.train()
    q(x)  # move BN statistics away from their initial values
    q.eval()
    with torch.no_grad():
        expected = q(x)
    path = save_packed(q, tmp_path / "m.pdbq")
    loaded = load_packed(path, small_cnn)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)
    assert torch.equal(loaded(x), q(x))  # also with autograd on
    assert schedule_of(loaded) == schedule_of(q)
    # loading from a quantized architecture works too
    with torch.no_grad():
        assert torch.equal(load_packed(path, q)(x), expected)


def test_packed_size_matches_memory_table(tmp_path):
    model = torchvision.models.resnet18(num_classes=10)
    q = quantize(model, "8-4-2-1")
    path = save_packed(q, tmp_path / "r18.pdbq")
    total = memory_summary(q).total_kib * 1024
    size = path.stat().st_size
    assert total <= size <= total * 1.02 + 4096


def _corrupt(path, offset, value=0xFF):
    data = bytearray(path.read_bytes())
    data[offset] ^= value
    path.write_bytes(bytes(data))


def test_packed_file_validation(tmp_path, small_cnn):
    q = quantize(small_cnn, "4")
    good = save_packed(q, tmp_path / "good.pdbq")
    raw = good.read_bytes()

    p = tmp_path / "flip.pdbq"
    p.write_bytes(raw)
    _corrupt(p, len(raw) - 10)
    with pytest.raises(PackedFormatError, match="checksum mismatch"):
        load_packed(p, small_cnn)

    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(PackedFormatError, match="truncated"):
        load_packed(p, small_cnn)

    p.write_bytes(raw[:5])
    with pytest.raises(PackedFormatError, match="truncated or not a pdbviz packed file"):
        load_packed(p, small_cnn)

    p.write_bytes(b"NOTPDBVZ" + raw[8:])
    with pytest.raises(PackedFormatError, match="not a pdbviz packed file"):
        load_packed(p, small_cnn)

    p.write_bytes(raw[:8] + struct.pack("<H", 7) + raw[10:])
    with pytest.raises(PackedFormatError, match="format version 7; this pdbviz reads version 2"):
        load_packed(p, small_cnn)

    with pytest.raises(FileNotFoundError, match="not found"):
        load_packed(tmp_path / "absent.pdbq", small_cnn)

    other = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Linear(8, 2))
    with pytest.raises(ValueError, match="written for another model"):
        load_packed(good, other)


def test_save_packed_is_atomic_on_failure(tmp_path, small_cnn, monkeypatch):
    q = quantize(small_cnn, "2")
    path = save_packed(q, tmp_path / "m.pdbq")
    before = path.read_bytes()
    import pdbviz.quant.packing as packing

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(packing, "pack_codes", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        save_packed(quantize(small_cnn, "8"), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pdbq"]


def test_memory_total_is_the_packed_files_size(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Linear(16, 3))
    net.register_buffer("scratch", torch.zeros(100), persistent=False)  # not stored, not counted
    for schedule in ("2-1/4", "8-4", "32"):
        q = quantize(net, schedule)
        size = save_packed(q, tmp_path / "m.pdbq").stat().st_size
        summary = memory_summary(q)
        assert summary.file_bytes == size and summary.total_kib * 1024 == size
        assert "scratch" not in {f.name for f in summary.left_float}


def test_memory_total_of_a_transformer_is_its_packed_size(tmp_path):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                  vocab_size=100, max_position_embeddings=32)
    bert = transformers.BertModel(cfg).eval()
    q = quantize(bert, "8-4-2-1", example_input=torch.randint(0, 100, (2, 8)))
    size = save_packed(q, tmp_path / "b.pdbq").stat().st_size
    assert memory_summary(q).total_kib * 1024 == size
