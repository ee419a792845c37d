"""Data: named datasets, and one conversion from any form of data (``as_data``).

See ``pdbviz.data.convert`` for the accepted forms, ``pdbviz.data.split``
for how splits are batched and sampled, and ``pdbviz.data.core`` for ``Data``.
"""

from .convert import as_data
from .core import Data
from .named import DATASETS, DOWNLOADED, EMBEDDED, DownloadError, default_root, load_dataset, read_idx
from .split import Split, collate, input_tensor, label_tensor, stratified_indices

__all__ = ["DATASETS", "DOWNLOADED", "Data", "DownloadError", "EMBEDDED", "Split", "as_data", "collate",
           "default_root", "input_tensor", "label_tensor", "load_dataset", "read_idx", "stratified_indices"]
