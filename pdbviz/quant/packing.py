"""Bit-packed storage of quantized models: the memory a schedule promises, on disk.

File format (version 2), all integers little-endian::

    8 bytes   magic b"PDBVIZPK"
    2 bytes   format version (uint16)
    4 bytes   length H of the header (uint32)
    H bytes   zlib-compressed UTF-8 JSON header: pdbviz version, the model's class
              name and (optional, for zoo models) its ``build_model`` arguments, the schedule
              (``BitSchedule.to_dict``), and per tensor its name, shape, byte
              offset and length in the payload, and either its dtype (stored
              as raw bytes) or its bit-width, weight mode and scale (stored as
              integer codes packed at that bit-width)
    payload   the tensors, one after the other
    4 bytes   CRC-32 of everything before it

Each quantized weight is stored once, as the codes its quantizer class
defines (``WeightQuantizer.encode``), however many modules share it; every
other parameter and buffer is stored once as raw bytes under its
``state_dict`` name (with the names of the modules that share it). Nothing is
unpickled on loading.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._io import atomic_write
from .._version import __version__
from .convert import _original as _float_weight
from .convert import copy_model, quantize, schedule_of
from .discovery import discover
from .layers import weight_quant
from .protocol import model_info
from .schedule import BitSchedule

MAGIC = b"PDBVIZPK"
PACKED_FORMAT_VERSION = 2
_PREFIX = struct.Struct("<8sHI")
_CRC = struct.Struct("<I")
#: bytes of a packed file besides its header and payload: magic, version, header length, checksum
FRAMING_BYTES = _PREFIX.size + _CRC.size
_DTYPES = {
    str(d).removeprefix("torch."): d
    for d in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32,
              torch.int16, torch.int8, torch.uint8, torch.bool)
}


class PackedFormatError(ValueError):
    """A packed file that is not valid: wrong magic, version, sizes or checksum."""


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """Pack unsigned integer codes (each < 2^bits) into ``ceil(n * bits / 8)`` bytes."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1)
    if bits == 8:
        return codes.tobytes()
    planes = (codes[:, None] >> np.arange(bits, dtype=np.uint8)) & 1
    return np.packbits(planes.reshape(-1), bitorder="little").tobytes()


def unpack_codes(buf: bytes, n: int, bits: int) -> np.ndarray:
    """Inverse of ``pack_codes``."""
    raw = np.frombuffer(buf, dtype=np.uint8)
    if bits == 8:
        return raw[:n].copy()
    planes = np.unpackbits(raw, count=n * bits, bitorder="little").reshape(n, bits)
    return (planes << np.arange(bits, dtype=np.uint8)).sum(axis=1, dtype=np.uint8)


def _quantized_entries(model: nn.Module) -> list[tuple]:
    """``(entry, module, pname, WeightQuant)`` of each weight quantized below 32 bits."""
    modules = dict(model.named_modules())
    out = []
    for entry in discover(model).entries:
        path, pname = entry.owners[0]
        wq = weight_quant(modules[path], pname)
        if wq is not None and wq.weight_quantizer is not None:
            out.append((entry, modules[path], pname, wq))
    return out


def save_packed(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model`` with each quantized weight bit-packed at its bit-width.

    Everything else (biases, BatchNorm, float weights, buffers) is stored as
    raw bytes of its dtype. The file is written atomically. Returns the path.

    Example:
        >>> q = quantize(nn.Sequential(nn.Linear(64, 10)), "2")
        >>> p = save_packed(q, "model.pdbq")  # doctest: +SKIP
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    path = Path(path)
    data = _serialize(model)
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return path


def packed_size(model: nn.Module) -> int:
    """The size in bytes of the file ``save_packed(model, ...)`` writes (header and checksum included).

    Example:
        >>> packed_size(quantize(nn.Sequential(nn.Linear(64, 10)), "2")) > (640 * 2 + 10 * 32) // 8
        True
    """
    return len(_serialize(model))


def _serialize(model: nn.Module) -> bytes:
    """The packed file's bytes."""
    schedule = schedule_of(model)
    entries, chunks, offset, stored = [], [], 0, set()

    def add(entry: dict, blob: bytes) -> None:
        nonlocal offset
        entry.update(offset=offset, nbytes=len(blob))
        entries.append(entry)
        chunks.append(blob)
        offset += len(blob)

    with torch.no_grad():
        for entry, module, pname, wq in _quantized_entries(model):
            quantizer = wq.weight_quantizer
            was_training = wq.training
            wq.eval()
            try:
                values = getattr(module, pname).detach().float().cpu()
            finally:
                wq.train(was_training)
            codes, scale = quantizer.encode(values, _float_weight(module, pname).float().cpu())
            if not torch.equal(quantizer.decode(codes, values.shape, scale), values):
                raise RuntimeError(f"internal error: codes of {entry.name!r} do not reproduce its quantized weight")
            plist = module.parametrizations[pname]
            stored.update(id(t) for t in plist.parameters(recurse=False))
            add({"name": entry.name, "owner": [*entry.owners[0]], "shape": list(values.shape),
                 "bits": quantizer.bits, "mode": quantizer.name, "scale": scale}, pack_codes(codes, quantizer.bits))
    names: dict[int, list[str]] = {}
    tensors: dict[int, torch.Tensor] = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in stored:
            continue
        names.setdefault(id(tensor), []).append(key)
        tensors[id(tensor)] = tensor
    for tid, keys in names.items():
        tensor = tensors[tid].detach()
        dtype = str(tensor.dtype).removeprefix("torch.")
        if dtype not in _DTYPES:
            raise TypeError(f"cannot store {keys[0]!r} of dtype {dtype}; supported: {sorted(_DTYPES)}")
        blob = tensor.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        add({"name": keys[0], "aliases": keys[1:], "shape": list(tensor.shape), "dtype": dtype}, blob)
    header = {
        "pdbviz_version": __version__,
        "model": type(model).__name__,
        "config": dict(model_info(model).config or {}) or None,  # how to rebuild it (zoo models)
        "schedule": schedule.to_dict() if schedule is not None else None,
        "tensors": entries,
        "payload_nbytes": offset,
    }
    head = zlib.compress(json.dumps(header, separators=(",", ":")).encode("utf-8"), 9)
    body = _PREFIX.pack(MAGIC, PACKED_FORMAT_VERSION, len(head)) + head + b"".join(chunks)
    return body + _CRC.pack(zlib.crc32(body))


def read_packed_header(path: str | os.PathLike) -> tuple[dict, bytes]:
    """Validate a packed file and return its header and payload."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"packed model file not found: {path}")
    data = path.read_bytes()
    if len(data) < _PREFIX.size + _CRC.size:
        raise PackedFormatError(f"{path} is truncated or not a pdbviz packed file ({len(data)} bytes)")
    magic, version, head_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise PackedFormatError(f"{path} is not a pdbviz packed file (magic {magic!r}, expected {MAGIC!r})")
    if version != PACKED_FORMAT_VERSION:
        raise PackedFormatError(
            f"{path} has packed format version {version}; this pdbviz reads version {PACKED_FORMAT_VERSION}"
        )
    body, (crc,) = data[: -_CRC.size], _CRC.unpack_from(data, len(data) - _CRC.size)
    start = _PREFIX.size + head_len
    if start > len(body):
        raise PackedFormatError(f"{path} is truncated: its header needs {start} bytes, the file has {len(data)}")
    try:
        header = json.loads(zlib.decompress(body[_PREFIX.size:start]))
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PackedFormatError(f"{path} has a corrupted header ({err})") from None
    payload = body[start:]
    expected = header.get("payload_nbytes")
    if expected != len(payload):
        raise PackedFormatError(f"{path} is truncated or padded: payload is {len(payload)} bytes, header says {expected}")
    if zlib.crc32(body) != crc:
        raise PackedFormatError(f"{path} is corrupted: checksum mismatch")
    return header, payload


def load_packed(path: str | os.PathLike, model: nn.Module) -> nn.Module:
    """Rebuild the quantized model saved by ``save_packed``.

    ``model`` gives the architecture (float or quantized; it is not changed).
    Returns a new model, quantized with the file's schedule and in eval mode,
    whose outputs are identical to those of the model that was saved.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    header, payload = read_packed_header(path)
    schedule = BitSchedule.from_dict(header["schedule"]) if header.get("schedule") else None
    try:
        new = quantize(model, schedule) if schedule is not None else copy_model(model)
    except ValueError as err:
        raise ValueError(f"{path} was written for another model: {err}") from None
    state = new.state_dict()
    quantized = {entry.name: (module, pname, wq) for entry, module, pname, wq in _quantized_entries(new)}
    coded = {id(t) for module, pname, _ in quantized.values()
             for t in module.parametrizations[pname].parameters(recurse=False)}
    expected = {k for k, v in new.state_dict(keep_vars=True).items() if id(v) not in coded}
    raw_names = {n for e in header["tensors"] if "dtype" in e for n in [e["name"], *e.get("aliases", [])]}
    coded_names = {e["name"] for e in header["tensors"] if "bits" in e}
    missing = sorted((expected - raw_names) | (set(quantized) - coded_names))
    if missing:
        raise ValueError(f"{path} was written for another model: it lacks {missing[:5]}")
    pins = []
    with torch.no_grad():
        for e in header["tensors"]:
            key, shape = e["name"], tuple(e["shape"])
            blob = payload[e["offset"]: e["offset"] + e["nbytes"]]
            n = int(np.prod(shape, dtype=np.int64))
            if "bits" in e:
                if key not in quantized:
                    raise ValueError(f"{path} was written for another model: {type(model).__name__} has no "
                                     f"quantized weight {key!r}")
                module, pname, wq = quantized[key]
                quantizer, bits = wq.weight_quantizer, e["bits"]
                if (quantizer.name, quantizer.bits) != (e["mode"], bits):
                    raise PackedFormatError(f"{path}: {key!r} is {e['mode']} at {bits} bits in the tensor table "
                                            f"but {quantizer.name} at {quantizer.bits} in the schedule")
                if len(blob) != (n * bits + 7) // 8:
                    raise PackedFormatError(f"{path}: {key!r} holds {len(blob)} bytes, expected {(n * bits + 7) // 8}")
                values = quantizer.decode(unpack_codes(blob, n, bits), shape, e.get("scale"))
                plist = module.parametrizations[pname]
                if tuple(values.shape) != tuple(getattr(module, pname).shape):
                    raise ValueError(f"{path}: {key!r} has shape {shape} in the file and "
                                     f"{tuple(getattr(module, pname).shape)} in the model")
                plist.right_inverse(quantizer.latent(values).to(plist.original.dtype if hasattr(plist, "original")
                                                                else values.dtype))
                pins.append((wq, plist, values))
                continue
            dtype = _DTYPES.get(e.get("dtype"))
            if dtype is None:
                raise PackedFormatError(f"{path}: {key!r} has unsupported dtype {e.get('dtype')!r}")
            if len(blob) != n * torch.empty((), dtype=dtype).element_size():
                raise PackedFormatError(f"{path}: {key!r} holds {len(blob)} bytes, expected {n} values")
            value = torch.frombuffer(bytearray(blob), dtype=dtype).reshape(shape)
            for name in (key, *e.get("aliases", [])):
                if name not in state:
                    raise ValueError(f"{path} was written for another model: {type(model).__name__} has no {name!r}")
                if tuple(state[name].shape) != shape:
                    raise ValueError(f"{path}: {name!r} has shape {shape} in the file and "
                                     f"{tuple(state[name].shape)} in the model")
                state[name].copy_(value)
    new.eval()
    for wq, plist, values in pins:
        wq.pin(tuple(plist.parameters(recurse=False)) + tuple(plist.buffers(recurse=False)), values)
    return new

