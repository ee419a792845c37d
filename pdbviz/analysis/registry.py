"""The registry of sensitivity metrics: one registration per metric holds what it means and how it is computed.

A metric is registered once, with ``register_metric``: its name, what a larger
value means, its formula, how it becomes a cost (``predicted_loss``), its
source, its *scope* and its computation. Everything that lists or uses metrics
reads this registry: ``sensitivity_metrics``, ``metric_cost`` and
``predicted_loss`` (and so the front and ``allocate``), ``metric_info``,
``SENSITIVITY_METRICS`` and ``METRIC_INFO`` (live, read-only views).

Scopes and their computations:

``"local"``
    ``batch(LocalBatch) -> summary``: from one layer's float output ``Y``,
    the change ``D = Y - Y_q`` of one quantized weight or input (and, with
    ``needs_grad=True``, ``(dL/dY)^2``) on one batch; ``value(summaries, n)``
    turns the batches' summaries into the value.
``"network"``
    ``batch(NetworkBatch) -> summary``: from the float and the quantized
    logits of one batch with one layer changed; ``value(summaries, n)`` as above.
``"own"``
    ``compute(context) -> rows``: the metric takes its own passes (the Hessian
    trace of ``hawq``); ``context`` is ``metrics.Context``.
``"separability"``
    bit-independent, read from ``separability_profile``; its cost is the
    difficulty of ``difficulty`` times the noise power (``predicted_loss``).

A per-bit metric's ``to_cost`` maps values (an array) to costs that grow with
sensitivity. ``recalibrated`` (optional) replaces the computation when
``sensitivity_metrics(..., recalibrate=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import torch

from .._checks import did_you_mean

SCOPES = ("separability", "local", "network", "own")
_DIRECTIONS = ("more sensitive", "less sensitive")


@dataclass(frozen=True)
class MetricInfo:
    """How to read one sensitivity measure.

    Attributes:
        name: the ``metric`` value in the frame.
        per_bits: whether the value depends on a bit-width (else ``bits`` and ``operand`` are empty).
        higher: ``"more sensitive"`` or ``"less sensitive"``: what a larger value means.
        formula: what is computed.
        cost: how ``predicted_loss`` turns a value into a predicted loss increase.
        reference: where the measure comes from.
        scope: ``"separability"``, ``"local"`` (one layer recomputed),
            ``"network"`` (the rest of the network recomputed) or ``"own"`` (its own passes).
    """

    name: str
    per_bits: bool
    higher: str
    formula: str
    cost: str
    reference: str
    scope: str = "network"


@dataclass(frozen=True)
class LocalBatch:
    """What a local metric sees of one layer, one change and one batch.

    Attributes:
        Y: the layer's float output.
        D: ``Y - Y_q``, the change of the output with the weight (or input) quantized.
        grad2: ``(dL/dY)^2`` of the batch's summed loss (metrics registered with ``needs_grad``; else None).
        features: pooled features of an output (the same sketch for every change of the layer); ``features(Y)``
            is computed once per layer and batch.
    """

    Y: torch.Tensor
    D: torch.Tensor
    grad2: torch.Tensor | None
    features: Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class NetworkBatch:
    """What a network metric sees of one batch with one layer changed.

    Attributes:
        z: the float logits (float32, as the model computed them).
        z64: ``z`` in float64.
        logp: ``log_softmax(z64)``.
        zq: the logits with the one layer quantized (float64).
        y: the labels.
        loss: ``loss(logits, labels) -> summed loss`` (cross-entropy or the caller's loss).
    """

    z: torch.Tensor
    z64: torch.Tensor
    logp: torch.Tensor
    zq: torch.Tensor
    y: torch.Tensor
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Metric:
    """One registered metric: its ``info`` and its computation (see the module docstring)."""

    info: MetricInfo
    to_cost: Callable | None = None
    batch: Callable | None = None
    value: Callable | None = None
    compute: Callable | None = None
    needs_grad: bool = False
    recalibrated: Callable | None = None

    @property
    def name(self) -> str:
        """The metric's name, as ``sensitivity_metrics`` and schedule entries (``alloc:NAME:B``) use it."""
        return self.info.name

    @property
    def scope(self) -> str:
        """Where it is computed: ``local``, ``network``, ``own`` or ``separability``."""
        return self.info.scope


@dataclass
class Context:
    """What an ``"own"`` or ``recalibrated`` computation receives from ``sensitivity_metrics``.

    Attributes:
        setup: the prepared float model, sample and layers (``_prepare.Setup``; None after it is released).
        model, data: as the caller gave them.
        quantized: per layer ``[(bits, W_b)]``; quantizers: per layer ``[(a_bits, quantizer)]``.
        options: every other argument of ``sensitivity_metrics`` by name (``bits``, ``a_bits``, ``n_probes``, ...).
        depth: each layer's forward position.
    """

    setup: object
    model: object
    data: object
    quantized: dict
    quantizers: dict
    options: dict
    depth: dict

    def row(self, layer: str, metric: str, operand: str | None, bits: int | None, value: float) -> dict:
        """One row of the frame."""
        return {"layer": layer, "depth": self.depth[layer], "metric": metric, "operand": operand, "bits": bits,
                "value": value}


_METRICS: dict[str, Metric] = {}
_INFO: dict[str, MetricInfo] = {}
#: how to read each sensitivity measure: ``{name: MetricInfo}`` (a live, read-only view of the registry).
METRIC_INFO = MappingProxyType(_INFO)


class _Names(Sequence):
    """The registered names in registration order: a live, read-only sequence that compares equal to the tuple."""

    def __getitem__(self, i):
        return tuple(_METRICS)[i]

    def __len__(self) -> int:
        return len(_METRICS)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_METRICS))

    def __contains__(self, name) -> bool:
        return name in _METRICS

    def __eq__(self, other) -> bool:
        return isinstance(other, (tuple, _Names)) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


#: the names of every sensitivity measure, in registration order (a live view; compares equal to the tuple).
SENSITIVITY_METRICS: Sequence[str] = _Names()


def register_metric(name: str, *, scope: str, higher: str, formula: str, cost: str, reference: str,
                    to_cost: Callable | None = None, batch: Callable | None = None, value: Callable | None = None,
                    compute: Callable | None = None, needs_grad: bool = False, recalibrated: Callable | None = None,
                    replace: bool = False) -> Metric:
    """Register a sensitivity metric: afterwards ``sensitivity_metrics``, ``predicted_loss``, the front and every
    list of metrics know it.

    Args:
        name: the metric's name (the ``metric`` value in the frame).
        scope: ``"local"``, ``"network"``, ``"own"`` or ``"separability"`` (see the module docstring).
        higher: ``"more sensitive"`` or ``"less sensitive"``.
        formula, cost, reference: what is computed, how the value becomes a cost, and its source (text).
        to_cost: values (an array) -> costs that grow with sensitivity (per-bit scopes).
        batch, value: the per-batch summary and the value from the summaries (``"local"``, ``"network"``).
        compute: ``context -> rows`` (``"own"``).
        needs_grad: a local metric that reads ``LocalBatch.grad2``.
        recalibrated: ``context -> rows`` used instead when ``recalibrate=True``.
        replace: allow replacing a registered metric of that name.

    Example:
        >>> import torch
        >>> m = register_metric("logit_mse", scope="network", higher="more sensitive",
        ...                     formula="mean squared change of the logits", cost="the value itself",
        ...                     reference="example", to_cost=lambda v: v,
        ...                     batch=lambda b: float((b.z64 - b.zq).pow(2).sum()), value=lambda s, n: sum(s) / n)
        >>> "logit_mse" in SENSITIVITY_METRICS
        True
        >>> unregister_metric("logit_mse"); "logit_mse" in SENSITIVITY_METRICS
        False
    """
    if not isinstance(name, str) or not name.strip() or ":" in name:
        raise ValueError(f"name must be a non-empty string without ':', got {name!r}")
    if name in _METRICS and not replace:
        raise ValueError(f"name: a metric {name!r} is registered already; pass replace=True to replace it")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if higher not in _DIRECTIONS:
        raise ValueError(f"higher must be one of {_DIRECTIONS}, got {higher!r}")
    needed = {"local": ("to_cost", "batch", "value"), "network": ("to_cost", "batch", "value"),
              "own": ("to_cost", "compute"), "separability": ()}[scope]
    given = {"to_cost": to_cost, "batch": batch, "value": value, "compute": compute}
    missing = [k for k in needed if not callable(given[k])]
    if missing:
        raise TypeError(f"a {scope!r} metric needs callables {', '.join(missing)}; got {given}")
    info = MetricInfo(name, scope != "separability", higher, formula, cost, reference, scope)
    metric = Metric(info, to_cost, batch, value, compute, bool(needs_grad), recalibrated)
    _METRICS[name] = metric
    _INFO[name] = info
    return metric


def unregister_metric(name: str) -> None:
    """Remove a registered metric (see ``register_metric``)."""
    get_metric(name)
    del _METRICS[name], _INFO[name]


def get_metric(name: str) -> Metric:
    """The registration of ``name``; ValueError naming the registered metrics when it is unknown."""
    if name not in _METRICS:
        names = tuple(_METRICS)
        raise ValueError(f"metrics: unknown metric {name!r}; available: {', '.join(names)}.{did_you_mean(name, names)}")
    return _METRICS[name]


def check_metric_names(metrics) -> tuple[str, ...]:
    """The metric names, distinct, each one registered."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(dict.fromkeys(metrics))
    if not metrics:
        raise ValueError(f"metrics is empty; choose from {tuple(_METRICS)}")
    for m in metrics:
        get_metric(m)
    return metrics
