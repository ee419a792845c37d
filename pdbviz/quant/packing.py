"""Bit-packed storage of quantized models: the memory a schedule promises, on disk.

File format (version 1), all integers little-endian::

    8 bytes   magic b"PDBVIZPK"
    2 bytes   format version (uint16)
    4 bytes   length H of the header (uint32)
    H bytes   zlib-compressed UTF-8 JSON header: pdbviz version, the schedule
              (``BitSchedule.to_dict``), and per tensor its name, shape, byte
              offset and length in the payload, and either its dtype (stored
              as raw bytes) or its bit-width, weight mode and scale (stored as
              integer codes packed at that bit-width)
    payload   the tensors, one after the other
    4 bytes   CRC-32 of everything before it

Weight codes: DoReFa k >= 2 stores ``q`` in 0..2^k-1 with ``w_q = 2 q / (2^k-1) - 1``;
DoReFa k = 1 stores the sign bit and one float scale ``mean|w|``; symmetric
stores ``q + m`` with ``w_q = q / m``, ``m = 2^(k-1) - 1``. Nothing is
unpickled on loading.
"""

from __future__ import annotations

import copy
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
from .convert import quantize, schedule_of
from .layers import is_quant_layer
from .quantizers import FULL_PRECISION, WEIGHT_QUANTIZERS
from .schedule import BitSchedule

MAGIC = b"PDBVIZPK"
PACKED_FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sHI")
_CRC = struct.Struct("<I")
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


def _encode(wq: torch.Tensor, bits: int, mode: str) -> tuple[np.ndarray, float | None]:
    if mode == "symmetric":
        m = 2 ** (bits - 1) - 1
        return (torch.round(wq * m).to(torch.int16) + m).to(torch.uint8).cpu().numpy(), None
    if bits == 1:
        return (wq >= 0).to(torch.uint8).cpu().numpy(), float(wq.abs().max())
    n = 2**bits - 1
    return torch.round((wq + 1) * (n / 2)).to(torch.uint8).cpu().numpy(), None


def _decode(codes: np.ndarray, shape, bits: int, mode: str, scale: float | None) -> torch.Tensor:
    q = torch.from_numpy(codes.astype(np.float32)).reshape(shape)
    if mode == "symmetric":
        m = float(2 ** (bits - 1) - 1)
        return (q - m).div_(m)
    if bits == 1:
        s = torch.tensor(scale, dtype=torch.float32)
        return torch.where(q > 0, s, -s)
    return 2 * q.div_(float(2**bits - 1)) - 1


def _latent(wq: torch.Tensor, bits: int, mode: str) -> torch.Tensor:
    """A float weight that the layer's quantizer maps back onto ``wq``."""
    if mode == "dorefa" and bits >= 2:
        return torch.atanh(0.5 * wq)
    latent = wq.clone()
    if mode == "dorefa" and bits == 1:
        # mean(|w|) of n copies of s can differ from s by rounding; nudge one
        # element until the quantizer's own scale comes out as s again.
        # A different element each round, so that rounding inside the sum cannot
        # swallow the same correction twice.
        s, flat = wq.abs().max(), latent.view(-1)
        for i in range(64):
            err = s - latent.abs().mean()
            if err == 0:
                break
            j = i % flat.numel()
            flat[j] = flat[j] + torch.sign(flat[j]) * err * flat.numel()
    return latent


def save_packed(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model`` with each quantized weight bit-packed at its bit-width.

    Everything else (biases, BatchNorm, float layers) is stored as raw bytes of
    its dtype. The file is written atomically. Returns the path.

    Example:
        >>> q = quantize(nn.Sequential(nn.Linear(64, 10)), "2")
        >>> p = save_packed(q, "model.pdbq")  # doctest: +SKIP
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    path = Path(path)
    schedule = schedule_of(model)
    state = model.state_dict()
    coded = {}
    for name, m in model.named_modules():
        if name and is_quant_layer(m) and m.spec.w_bits != FULL_PRECISION:
            coded[f"{name}.weight"] = m
    entries, chunks, offset = [], [], 0
    for key, tensor in state.items():
        if key in coded:
            spec = coded[key].spec
            with torch.no_grad():
                wq = WEIGHT_QUANTIZERS[spec.weight_mode](tensor.detach().float(), spec.w_bits)
            codes, scale = _encode(wq, spec.w_bits, spec.weight_mode)
            if not torch.equal(_decode(codes, wq.shape, spec.w_bits, spec.weight_mode, scale), wq.cpu()):
                raise RuntimeError(f"internal error: codes of {key!r} do not reproduce its quantized weight")
            blob = pack_codes(codes, spec.w_bits)
            entry = {"name": key, "shape": list(tensor.shape), "bits": spec.w_bits, "mode": spec.weight_mode,
                     "scale": scale}
        else:
            dtype = str(tensor.dtype).removeprefix("torch.")
            if dtype not in _DTYPES:
                raise TypeError(f"cannot store {key!r} of dtype {dtype}; supported: {sorted(_DTYPES)}")
            blob = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            entry = {"name": key, "shape": list(tensor.shape), "dtype": dtype}
        entry.update(offset=offset, nbytes=len(blob))
        entries.append(entry)
        chunks.append(blob)
        offset += len(blob)
    header = {
        "pdbviz_version": __version__,
        "model": type(model).__name__,
        "schedule": schedule.to_dict() if schedule is not None else None,
        "tensors": entries,
        "payload_nbytes": offset,
    }
    head = zlib.compress(json.dumps(header, separators=(",", ":")).encode("utf-8"), 9)
    body = _PREFIX.pack(MAGIC, PACKED_FORMAT_VERSION, len(head)) + head + b"".join(chunks)
    with atomic_write(path, "wb") as fh:
        fh.write(body)
        fh.write(_CRC.pack(zlib.crc32(body)))
    return path


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
        new = quantize(model, schedule) if schedule is not None else copy.deepcopy(model)
    except ValueError as err:
        raise ValueError(f"{path} was written for another model: {err}") from None
    state = new.state_dict()
    names = {e.get("name") for e in header["tensors"]}
    missing = [k for k in state if k not in names]
    if missing:
        raise ValueError(f"{path} was written for another model: it lacks {missing[:5]}")
    modules = dict(new.named_modules())
    pins = []
    with torch.no_grad():
        for e in header["tensors"]:
            key = e["name"]
            if key not in state:
                raise ValueError(f"{path} was written for another model: {type(model).__name__} has no {key!r}")
            target, shape = state[key], tuple(e["shape"])
            if tuple(target.shape) != shape:
                raise ValueError(f"{path}: {key!r} has shape {shape} in the file and {tuple(target.shape)} in the model")
            blob = payload[e["offset"]: e["offset"] + e["nbytes"]]
            n = int(np.prod(shape, dtype=np.int64))
            if "bits" in e:
                bits, mode = e["bits"], e["mode"]
                if len(blob) != (n * bits + 7) // 8:
                    raise PackedFormatError(f"{path}: {key!r} holds {len(blob)} bytes, expected {(n * bits + 7) // 8}")
                wq = _decode(unpack_codes(blob, n, bits), shape, bits, mode, e.get("scale"))
                target.copy_(_latent(wq, bits, mode))
                pins.append((modules[key.rsplit(".", 1)[0]], wq))
            else:
                dtype = _DTYPES.get(e.get("dtype"))
                if dtype is None:
                    raise PackedFormatError(f"{path}: {key!r} has unsupported dtype {e.get('dtype')!r}")
                if len(blob) != n * torch.empty((), dtype=dtype).element_size():
                    raise PackedFormatError(f"{path}: {key!r} holds {len(blob)} bytes, expected {n} values")
                target.copy_(torch.frombuffer(bytearray(blob), dtype=dtype).reshape(shape))
    new.eval()
    for layer, wq in pins:
        layer._pin_quantized_weight(wq)
    return new
