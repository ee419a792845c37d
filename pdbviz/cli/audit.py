"""``pdbviz audit``: run a quantized model under the dispatch recorder and check each weight against its report."""

from __future__ import annotations

from pathlib import Path

from .common import positive_int


def _cmd_audit(args) -> int:
    import torch

    from ..auditing import audit_command
    from .models import named_model

    model = named_model(args.model, args.input_shape, args.num_classes)
    example = torch.randn(args.batch, *args.input_shape, generator=torch.Generator().manual_seed(0))
    text = audit_command(model, example, schedule=args.schedule, packed=args.packed, onnx_path=args.onnx)
    print(text)
    return 0 if text.rstrip().endswith(" 0 lies") else 1


def add_parsers(sub) -> None:
    """The ``audit`` command."""
    from ..models import MODELS

    a = sub.add_parser("audit", help="check what a quantized model really computes with, weight by weight",
                       description="Run the model quantized by --schedule (or loaded from --packed) in train and "
                                   "eval mode under a dispatch-level recorder, and report for every weight the bits "
                                   "reported, each op where it met the data, the distinct values it had there and a "
                                   "verdict. Exits 1 when a weight is used with more values than its bits allow.")
    a.add_argument("--model", default="lenet",
                   help=f"a pdbviz model ({', '.join(MODELS)}) or a torchvision model name (default %(default)s)")
    a.add_argument("--schedule", default="8-4-2-1",
                   help="one-line bit schedule to quantize the model with (default %(default)s)")
    a.add_argument("--packed", type=Path, default=None,
                   help="audit the model that load_packed rebuilds from this file instead (same --model)")
    a.add_argument("--onnx", type=Path, default=None,
                   help="also audit the weights stored in this exported ONNX or QONNX file")
    a.add_argument("--input-shape", type=positive_int, nargs=3, default=(1, 28, 28), metavar=("C", "H", "W"),
                   help="input channels, height and width (default 1 28 28)")
    a.add_argument("--num-classes", type=positive_int, default=10, help="number of classes (default %(default)s)")
    a.add_argument("--batch", type=positive_int, default=8,
                   help="samples in the random example batch (default %(default)s)")
    a.set_defaults(func=_cmd_audit)
