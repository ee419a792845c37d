import json

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from pdbviz import BitSchedule, BitSpec

LAYERS = ["conv1", "conv2", "conv3", "fc1", "fc2", "fc3"]


def test_bitspec_defaults_and_validation():
    assert BitSpec() == BitSpec(32, 32, "dorefa")
    assert BitSpec(None, None).is_float
    assert not BitSpec(4).is_float
    with pytest.raises(ValueError, match="w_bits must be an integer in 1..8 or 32.*got 0"):
        BitSpec(0)
    with pytest.raises(ValueError, match="a_bits must be an integer in 1..8 or 32.*got 33"):
        BitSpec(4, 33)
    with pytest.raises(ValueError, match="w_bits.*got 3.5"):
        BitSpec(3.5)
    with pytest.raises(ValueError, match="weight_mode must be one of"):
        BitSpec(4, weight_mode="ternary")
    with pytest.raises(ValueError, match="w_bits must be an integer in 2..8"):
        BitSpec(1, weight_mode="lsq")
    assert BitSpec(1, weight_mode="symmetric").w_bits == 1  # binary, the thesis family's 1-bit member
    with pytest.raises(AttributeError):
        BitSpec(4).w_bits = 2  # frozen


def test_uniform_and_list():
    s = BitSchedule.uniform(LAYERS, 4)
    assert s.layers == LAYERS and s.w_bits == [4] * 6 and s.a_bits == [32] * 6
    s = BitSchedule.uniform(LAYERS, 2, a_bits=4)
    assert s.a_bits == [4] * 6
    s = BitSchedule.from_list(LAYERS, [8, 6, 4, 2, 2, 1], a_bits=[8, 8, 8, 4, 4, 4])
    assert s["conv2"] == BitSpec(6, 8)
    with pytest.raises(ValueError, match="w_bits has 2 values for 6 layers"):
        BitSchedule.from_list(LAYERS, [8, 4])


def test_decreasing_halving_linear_and_groups():
    assert BitSchedule.decreasing(LAYERS).w_bits == [8, 4, 2, 1, 1, 1]
    assert BitSchedule.decreasing(LAYERS, start=8, end=2).w_bits == [8, 4, 2, 2, 2, 2]
    assert BitSchedule.decreasing(LAYERS, ramp="linear").w_bits == [8, 7, 5, 4, 2, 1]
    # ResNet-style: halve once per stage
    groups = [0, 1, 1, 2, 2, 3]
    assert BitSchedule.decreasing(LAYERS, groups=groups).w_bits == [8, 4, 4, 2, 2, 1]
    bits = BitSchedule.decreasing(LAYERS, ramp="linear").w_bits
    assert all(a >= b for a, b in zip(bits, bits[1:]))
    with pytest.raises(ValueError, match="ramp must be 'halving' or 'linear', got 'cosine'"):
        BitSchedule.decreasing(LAYERS, ramp="cosine")
    with pytest.raises(ValueError, match="groups is only used with ramp='halving'"):
        BitSchedule.decreasing(LAYERS, ramp="linear", groups=groups)
    with pytest.raises(ValueError, match="start >= end"):
        BitSchedule.decreasing(LAYERS, start=2, end=8)


def test_increasing_is_the_mirror_of_decreasing():
    inc = BitSchedule.increasing(LAYERS)
    assert inc.w_bits == [1, 1, 1, 2, 4, 8]
    assert inc.w_bits == BitSchedule.decreasing(LAYERS).w_bits[::-1]
    assert BitSchedule.increasing(LAYERS, ramp="linear").w_bits == [1, 2, 4, 5, 7, 8]


@pytest.mark.parametrize("method", ["decreasing", "increasing"])
def test_kind_is_the_deprecated_name_of_ramp(method):
    build = getattr(BitSchedule, method)
    with pytest.warns(DeprecationWarning, match=rf"BitSchedule.{method}\(kind=...\) is deprecated; use ramp="):
        assert build(LAYERS, kind="linear") == build(LAYERS, ramp="linear")
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="kind must be 'halving' or 'linear'"):
        build(LAYERS, kind="cosine")


def test_presets_name_a_schedules_shape():
    from torch import nn

    from pdbviz.quant import presets

    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    shapes = [presets.resolve_preset(e, net).shape for e in ("float", "halving", "linear", "increasing", "2", "2-8-4")]
    assert shapes == ["float", "decreasing", "decreasing", "increasing", "uniform", "custom"]
    assert set(shapes) <= set(presets.SHAPES)
    assert presets.schedule_shape(BitSchedule.from_list(LAYERS, [8, 8, 4, 4, 2, 1])) == "decreasing"
    named = presets.resolve_preset("halving", net)
    with pytest.warns(DeprecationWarning, match="NamedSchedule.kind is deprecated; use NamedSchedule.shape"):
        assert named.kind == "decreasing"
    with pytest.warns(DeprecationWarning, match="use schedule_shape"):
        assert presets.schedule_kind(named.schedule) == "decreasing"
    with pytest.warns(DeprecationWarning, match="use SHAPES"):
        assert presets.KINDS == presets.SHAPES
    with pytest.warns(DeprecationWarning, match="use Preset.shape"):
        assert presets.PRESETS["increasing"].kind == "increasing"


@pytest.mark.parametrize(
    "text, w, a",
    [
        ("4", [4] * 6, [32] * 6),
        ("8-4-2-1", [8, 4, 2, 1, 1, 1], [32] * 6),
        ("8,6,4,2,2,1", [8, 6, 4, 2, 2, 1], [32] * 6),
        ("32-1", [32, 1, 1, 1, 1, 1], [32] * 6),
        ("4/4", [4] * 6, [4] * 6),
        ("8-4-2-1/8-4", [8, 4, 2, 1, 1, 1], [8, 4, 4, 4, 4, 4]),
        (" 8 - 4 / 8 ", [8, 4, 4, 4, 4, 4], [8] * 6),
    ],
)
def test_from_string_forms(text, w, a):
    s = BitSchedule.from_string(text, LAYERS)
    assert s.w_bits == w and s.a_bits == a


def test_from_string_mode_prefix():
    s = BitSchedule.from_string("symmetric:2", LAYERS)
    assert all(spec.weight_mode == "symmetric" for spec in s.values())
    assert s.to_string() == "symmetric:2"


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "weight bits are empty"),
        ("8-x-2", "token 'x'"),
        ("8-4,2", "either '-'.*or ','"),
        ("8,4,2", "3 comma-separated weight values for 6 layers"),
        ("8-4-2-1-1-1-1", "7 weight values for only 6 layers"),
        ("0", "1..8 or 32"),
        ("9", "1..8 or 32"),
        ("3.5", "token '3.5'"),
        ("-4", "token ''"),
        ("4/4/4", "found 2 '/'"),
        ("4/", "input bits are empty"),
        ("binary:1", "unknown weight mode 'binary'"),
        ("lsq:1", "2..8"),
    ],
)
def test_from_string_errors_name_the_token(text, match):
    with pytest.raises(ValueError, match=match):
        BitSchedule.from_string(text, LAYERS)


def test_from_string_accepts_a_model_and_rejects_other_things(small_cnn):
    s = BitSchedule.from_string("8-4-2", small_cnn)
    assert s.layers == ["conv1", "conv2", "head"]
    with pytest.raises(TypeError, match="layers must be a torch model or a list"):
        BitSchedule.from_string("4", "conv1")
    with pytest.raises(TypeError, match="schedule text must be a str"):
        BitSchedule.from_string(4, LAYERS)
    with pytest.raises(ValueError, match="more than once"):
        BitSchedule.uniform(["a", "a"], 4)


bits_st = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 32])


@settings(max_examples=100, deadline=None)
@given(w=st.lists(bits_st, min_size=1, max_size=8), a=st.one_of(st.none(), st.lists(bits_st, min_size=8, max_size=8)))
def test_string_and_dict_round_trip(w, a):
    names = [f"l{i}" for i in range(len(w))]
    s = BitSchedule.from_list(names, w, None if a is None else a[: len(w)])
    text = s.to_string()
    assert BitSchedule.from_string(text, names) == s
    data = json.loads(json.dumps(s.to_dict()))
    assert data["format_version"] == 2
    assert BitSchedule.from_dict(data) == s


def test_to_string_is_shortest():
    assert BitSchedule.from_list(LAYERS, [8, 4, 2, 1, 1, 1]).to_string() == "8-4-2-1"
    assert BitSchedule.from_list(LAYERS, [2] * 6).to_string() == "2"
    assert BitSchedule.from_list(LAYERS, [1, 1, 2, 4, 8, 8]).to_string() == "1-1-2-4-8"


def test_from_dict_rejects_other_versions_and_keys():
    data = BitSchedule.uniform(LAYERS, 4).to_dict()
    with pytest.raises(ValueError, match="format_version 99"):
        BitSchedule.from_dict({**data, "format_version": 99})
    bad = {**data, "layers": [{"name": "conv1", "w_bits": 4, "colour": "red"}]}
    with pytest.raises(ValueError, match="unknown keys \\['colour'\\]"):
        BitSchedule.from_dict(bad)
    with pytest.raises(ValueError, match="w_bits must be an integer"):
        BitSchedule.from_dict({**data, "layers": [{"name": "conv1", "w_bits": 12}]})


def test_mapping_behaviour_and_replace():
    s = BitSchedule.decreasing(LAYERS)
    assert list(s) == LAYERS and len(s) == 6
    t = s.replace("fc3", w_bits=8)
    assert t["fc3"].w_bits == 8 and s["fc3"].w_bits == 1
    assert t != s and s == BitSchedule.decreasing(LAYERS)
    with pytest.raises(KeyError, match="'nope' is not in this schedule"):
        s["nope"]
    assert "8-4-2-1" in repr(s)
