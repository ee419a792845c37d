"""Intervals, power and sample sizes for test accuracies measured over seeds on one shared test set.

**The estimand.** A run is one training seed of one schedule, scored image by
image on the test set that every run shares. What a comparison wants to know
is the accuracy (or the difference of two schedules' accuracies) that a *new*
seed would reach on *new* images from the same distribution: the expectation
over seeds and images, not the number on these particular images.

**The model.** Let ``y[r, i]`` be the value of seed ``r`` on image ``i``
(``R`` seeds, ``n`` images): a correctness (0 or 1) for one schedule, or the
paired difference ``c_A[r, i] - c_B[r, i]`` for two schedules trained from
the same float model of seed ``r``. A crossed random-effects model,
``y[r, i] = mu + a_r + b_i + e_ri``, gives the variance of the grand mean::

    Var(mean) = s_seed^2 / R + s_image^2 / n + s_resid^2 / (R n)

The image term is what pairing removes: two schedules that find the same
images hard have a small ``s_image^2`` in their difference, while treating
their accuracies as two independent binomials counts ``p (1 - p) / n`` twice.
The unbiased estimate from the two-way table (ANOVA mean squares ``MS``) is::

    V = (MS_seed + MS_image - MS_resid) / (R n)
      = var(seed means) / R + var(image means) / n - MS_resid / (R n)

(the residual term alone, ``MS_resid / (R n)``, in the rare case that this is
not positive). The interval is ``mean ± t(df) sqrt(V)`` with Satterthwaite's
degrees of freedom over the three terms (``R - 1``, ``n - 1`` and ``(R - 1)(n
- 1)`` degrees of freedom), taken at the mean squares that the non-negative
components imply (``M_seed = max(MS_seed, MS_resid)``, likewise ``M_image``)::

    df = (M_seed + M_image - MS_resid)^2
         / (M_seed^2 / (R - 1) + M_image^2 / (n - 1) + MS_resid^2 / ((R - 1)(n - 1)))

about ``R - 1`` when the seeds (or the per-run noise) dominate (a t quantile
of 4.30 for three seeds, not 1.96), and large when the images do. With one seed the seed term cannot be estimated
and the interval covers the images only.

Without per-image correctness (only each run's accuracy) the fallback is the
seed spread plus a binomial image term, ``var_seeds / R + sum p (1 - p) / n``
(one ``p`` per schedule), with the same t quantile: conservative for a paired
difference.

**Power.** With standard error ``SE`` and ``df`` degrees of freedom the
minimum detectable effect at power ``1 - beta`` and two-sided level ``alpha``
is ``MDE = (t(1 - alpha/2) + t(1 - beta)) SE``; the seeds (or images) needed
to detect an effect ``d`` are the fewest that bring ``MDE`` down to ``|d|``,
with ``Var(R', n') = (s_seed^2 + s_resid^2 / n') / R' + s_image^2 / n'``.

Per-image correctness is stored in a runs table as text (``encode_correct``):
the bits packed eight to a byte, base64, after the vector's length.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass

import numpy as np

#: confidence level of every interval pdbviz shows.
LEVEL = 0.95
#: power and two-sided level of the minimum detectable effect and of the sample sizes.
POWER, ALPHA = 0.8, 0.05
_MAX_SIZE = 10_000_000


def encode_correct(correct) -> str:
    """Per-image correctness (booleans, in the test set's order) as compact text: ``"<n>:<base64 of the bits>"``.

    Example:
        >>> text = encode_correct([True, False, True, True])
        >>> text, decode_correct(text).tolist()
        ('4:sA==', [True, False, True, True])
    """
    c = np.asarray(correct)
    if c.ndim != 1:
        raise ValueError(f"correct must be a 1-D vector of booleans, got shape {c.shape}")
    if c.size and not np.isin(c, (0, 1)).all():
        raise ValueError("correct must hold booleans (or 0/1), got other values")
    return f"{c.size}:" + base64.b64encode(np.packbits(c.astype(bool)).tobytes()).decode("ascii")


def decode_correct(text) -> np.ndarray | None:
    """The boolean vector of ``encode_correct``; None for a missing value (None, NaN or ``""``).

    Example:
        >>> decode_correct(encode_correct([1, 1, 0])).tolist(), decode_correct("")
        ([True, True, False], None)
    """
    if text is None or (isinstance(text, float) and math.isnan(text)) or text == "":
        return None
    if not isinstance(text, str) or ":" not in text:
        raise ValueError(f"correct must be text made by encode_correct ('<n>:<base64>'), got {text!r}")
    size, _, packed = text.partition(":")
    try:
        n = int(size)
        bits = np.unpackbits(np.frombuffer(base64.b64decode(packed, validate=True), dtype=np.uint8))
    except (ValueError, binascii.Error):
        raise ValueError(f"correct must be text made by encode_correct ('<n>:<base64>'), got {text!r}") from None
    if n < 0 or len(bits) < n or len(bits) - n >= 8:
        raise ValueError(f"correct: the text says {size} images but holds {len(bits)} bits")
    return bits[:n].astype(bool)


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (the normal's for infinite ``df``).

    Example:
        >>> round(t_quantile(0.975, 2), 3), round(t_quantile(0.975, math.inf), 3)
        (4.303, 1.96)
    """
    from scipy.special import ndtri, stdtrit

    if not math.isfinite(df) or df > 1e7:
        return float(ndtri(q))
    return float(stdtrit(max(float(df), 1.0), q))


def satterthwaite(terms) -> float:
    """Degrees of freedom of a sum of variance terms ``[(v_k, df_k), ...]``: ``(sum v)^2 / sum v^2 / df``.

    Example:
        >>> satterthwaite([(1.0, 2), (1.0, math.inf)])
        8.0
    """
    total = sum(v for v, _ in terms)
    denom = sum(v * v / d for v, d in terms if d > 0 and math.isfinite(d))
    if denom == 0:
        return math.inf
    return total * total / denom


@dataclass(frozen=True)
class Components:
    """Variance components of one observation (points squared): ``seed``, ``image`` and ``resid``.

    ``variance(R, n) = (seed + resid / n) / R + image / n`` is the variance of
    a mean over ``R`` seeds and ``n`` images; ``df(R, n)`` its Satterthwaite
    degrees of freedom.
    """

    seed: float
    image: float
    resid: float

    def variance(self, n_seeds: float, n_images: float) -> float:
        """Variance of the mean of ``n_seeds`` x ``n_images`` observations (points squared)."""
        return (self.seed + _per(self.resid, n_images)) / n_seeds + _per(self.image, n_images)

    def df(self, n_seeds: float, n_images: float) -> float:
        """Satterthwaite degrees of freedom of ``variance(n_seeds, n_images)``."""
        return satterthwaite([((self.seed + _per(self.resid, n_images)) / n_seeds, n_seeds - 1),
                              (_per(self.image, n_images), n_images - 1)])


def _per(value: float, n: float) -> float:
    return value / n if value else 0.0


@dataclass(frozen=True)
class Estimate:
    """A mean accuracy or a difference of two (points), its standard error and its interval.

    Attributes:
        estimate: the mean (points).
        se: its standard error (points).
        df: degrees of freedom of the t quantile.
        n_seeds, n_images: the experiment's size.
        method: ``"seeds x images"`` (per-image correctness), ``"images (one seed)"`` or
            ``"seeds + binomial"`` (accuracies only).
        components: the variance components, for power and sample sizes.
        level: the confidence level.
    """

    estimate: float
    se: float
    df: float
    n_seeds: int
    n_images: int
    method: str
    components: Components
    level: float = LEVEL

    @property
    def half_width(self) -> float:
        """Half-width of the interval: ``t(df) se``."""
        if not math.isfinite(self.se):
            return math.nan
        return t_quantile(0.5 + self.level / 2, self.df) * self.se

    @property
    def low(self) -> float:
        """Lower end of the interval (points)."""
        return self.estimate - self.half_width

    @property
    def high(self) -> float:
        """Upper end of the interval (points)."""
        return self.estimate + self.half_width

    def mde(self, power: float = POWER, alpha: float = ALPHA) -> float:
        """Minimum detectable effect (points): ``(t(1 - alpha/2) + t(power)) se``.

        Example:
            >>> e = from_accuracies([90.0, 91.0, 92.0], n_test=None)
            >>> round(e.mde(), 2)  # 3 seeds, seed std 1: (4.30 + 1.06) / sqrt(3)
            3.1
        """
        return (t_quantile(1 - alpha / 2, self.df) + t_quantile(power, self.df)) * self.se

    def needed(self, effect: float, power: float = POWER, alpha: float = ALPHA) -> dict:
        """Seeds (at this many images) and images (at this many seeds) to detect ``effect`` at ``power``.

        Returns ``{"seeds": int | None, "images": int | None}``; None where no
        number up to ten million would do (the other term alone is too large)
        or the effect is 0.

        Example:
            >>> e = from_accuracies([90.0, 91.0, 92.0], n_test=None)
            >>> e.needed(1.0)["seeds"]
            10
        """
        return {"seeds": self._smallest(effect, power, alpha, "seeds"),
                "images": self._smallest(effect, power, alpha, "images")}

    def _smallest(self, effect: float, power: float, alpha: float, which: str) -> int | None:
        effect = abs(float(effect))
        c = self.components
        if not (effect > 0 and math.isfinite(effect)) or not math.isfinite(self.se):
            return None
        if which == "seeds" and c.seed + c.resid == 0 or which == "images" and c.image + c.resid == 0:
            return None

        def ok(m: int) -> bool:
            r, n = (m, self.n_images or math.inf) if which == "seeds" else (self.n_seeds, m)
            df = c.df(r, n)
            return (t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * math.sqrt(c.variance(r, n)) <= effect

        lo = 2
        if which == "images" and not self.n_images or not ok(_MAX_SIZE):
            return None
        hi = _MAX_SIZE
        while lo < hi:
            mid = (lo + hi) // 2
            if ok(mid):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def to_dict(self) -> dict:
        """The numbers as a flat dict: estimate, se, df, low, high, mde, n_seeds, n_images, method."""
        return {"estimate": self.estimate, "se": self.se, "df": self.df, "low": self.low, "high": self.high,
                "mde": self.mde(), "n_seeds": self.n_seeds, "n_images": self.n_images, "method": self.method}


def _matrix(values, name: str) -> np.ndarray:
    y = np.asarray(values, dtype=float)
    if y.ndim != 2 or y.shape[0] < 1 or y.shape[1] < 2:
        raise ValueError(f"{name} must be a 2-D array (seeds x images) with at least 2 images, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return y


def _anova(y: np.ndarray) -> dict:
    """Grand mean, ANOVA variance of it, Satterthwaite df and components, for tables stacked on leading axes."""
    R, n = y.shape[-2:]
    grand = y.mean(axis=(-2, -1))
    seed_means, image_means = y.mean(axis=-1), y.mean(axis=-2)
    ms_image = R * ((image_means - grand[..., None]) ** 2).sum(axis=-1) / (n - 1)
    if R == 1:
        zero = np.zeros_like(grand)
        return {"mean": grand, "var": ms_image / n, "df": np.full_like(grand, n - 1.0), "seed": zero,
                "image": ms_image, "resid": zero}
    ms_seed = n * ((seed_means - grand[..., None]) ** 2).sum(axis=-1) / (R - 1)
    resid = y - seed_means[..., :, None] - image_means[..., None, :] + grand[..., None, None]
    ms_resid = (resid ** 2).sum(axis=(-2, -1)) / ((R - 1) * (n - 1))
    # V = (MS_seed + MS_image - MS_resid) / (R n), unbiased; when it is not positive (rare), the residual term
    raw = ms_seed + ms_image - ms_resid
    total = np.where(raw > 0, raw, ms_resid)
    # degrees of freedom: Satterthwaite on the mean squares the (non-negative) components imply
    e_seed, e_image = np.maximum(ms_seed, ms_resid), np.maximum(ms_image, ms_resid)
    denom = e_seed ** 2 / (R - 1) + e_image ** 2 / (n - 1) + ms_resid ** 2 / ((R - 1) * (n - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denom > 0, (e_seed + e_image - ms_resid) ** 2 / np.where(denom > 0, denom, 1.0), np.inf)
    return {"mean": grand, "var": total / (R * n), "df": df, "seed": np.maximum((ms_seed - ms_resid) / n, 0.0),
            "image": np.maximum((ms_image - ms_resid) / R, 0.0), "resid": ms_resid}


def two_way(values, level: float = LEVEL) -> Estimate:
    """Mean of a seeds x images table (0/1 correctness, or paired differences) in points, with its interval.

    The interval follows the module docstring: ANOVA variance of the grand
    mean over new seeds and new images, Satterthwaite degrees of freedom, t
    quantile.

    Example:
        Three seeds on 450 images, 85% of them easy (99% right) and the rest
        hard (50%):

        >>> rng = np.random.default_rng(1)
        >>> easy = rng.random(450) < 0.85
        >>> c = rng.random((3, 450)) < np.where(easy, 0.99, 0.5)
        >>> e = two_way(c)
        >>> round(e.estimate, 2), round(e.low, 2), round(e.high, 2), e.method
        (92.81, 91.01, 94.62, 'seeds x images')
    """
    y = _matrix(values, "values") * 100.0
    R, n = y.shape
    a = {k: float(v) for k, v in _anova(y).items()}
    method = "images (one seed)" if R == 1 else "seeds x images"
    return Estimate(a["mean"], math.sqrt(a["var"]), a["df"], R, n, method,
                    Components(a["seed"], a["image"], a["resid"]), level)


def two_way_intervals(values, level: float = LEVEL) -> dict[str, np.ndarray]:
    """``two_way`` for many experiments at once: ``values`` of shape (experiments, seeds, images).

    Returns arrays ``estimate``, ``low``, ``high``, ``se`` and ``df`` (points),
    one value per experiment; for simulations of whole experiments.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> out = two_way_intervals(rng.random((4, 3, 450)) < 0.9)
        >>> out["low"].shape, bool((out["low"] < out["estimate"]).all())
        ((4,), True)
    """
    y = np.asarray(values, dtype=float)
    if y.ndim != 3 or y.shape[-1] < 2:
        raise ValueError(f"values must have shape (experiments, seeds, images) with >= 2 images, got {y.shape}")
    a = _anova(y * 100.0)
    from scipy.special import stdtrit

    t = stdtrit(np.maximum(a["df"], 1.0), 0.5 + level / 2)
    se = np.sqrt(a["var"])
    return {"estimate": a["mean"], "low": a["mean"] - t * se, "high": a["mean"] + t * se, "se": se, "df": a["df"]}


def paired_difference(a, b, level: float = LEVEL) -> Estimate:
    """Accuracy of ``a`` minus ``b`` (points) from per-image correctness, paired by seed (row) and image (column).

    Example:
        >>> a = np.array([[1, 1, 1, 0], [1, 1, 0, 1]])
        >>> b = np.array([[1, 0, 1, 0], [1, 1, 0, 0]])
        >>> paired_difference(a, b).estimate
        25.0
    """
    a, b = _matrix(a, "a"), _matrix(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape (seeds x images), got {a.shape} and {b.shape}")
    return two_way(a - b, level)


def from_accuracies(accs, n_test: int | None, baseline=None, level: float = LEVEL) -> Estimate:
    """Mean accuracy (or the paired difference with ``baseline``, seed by seed) from per-run accuracies alone.

    ``var_seeds / R + sum p (1 - p) / n`` (module docstring) with a t
    quantile of Satterthwaite's degrees of freedom; ``n_test=None`` leaves
    the image term out. NaN estimate for no accuracies.

    Example:
        >>> e = from_accuracies([98.0, 98.4, 98.2], n_test=450)
        >>> round(e.estimate, 2), round(e.half_width, 2)
        (98.2, 1.25)
    """
    accs = np.asarray([float(v) for v in accs], dtype=float)
    ps = [accs.mean() / 100] if len(accs) else []
    if baseline is not None:
        base = np.asarray([float(v) for v in baseline], dtype=float)
        if base.shape != accs.shape:
            raise ValueError(f"baseline must hold one accuracy per seed, like accs ({len(accs)}), got {len(base)}")
        ps = [accs.mean() / 100, base.mean() / 100] if len(accs) else []
        accs = accs - base
    R = len(accs)
    if R == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, int(n_test or 0), "seeds + binomial",
                        Components(math.nan, math.nan, math.nan), level)
    seed_var = float(accs.var(ddof=1)) if R > 1 else 0.0
    n = int(n_test) if n_test else 0
    image = sum(1e4 * p * (1 - p) for p in ps) if n else 0.0
    terms = [(seed_var / R, R - 1)] + ([(image / n, n - 1)] if n else [])
    var = sum(v for v, _ in terms)
    df = satterthwaite(terms) if R > 1 or n else math.inf
    comp = Components(seed=seed_var, image=image, resid=0.0)
    return Estimate(float(accs.mean()), math.sqrt(var), df, R, n, "seeds + binomial", comp, level)


__all__ = ["ALPHA", "Components", "Estimate", "LEVEL", "POWER", "decode_correct", "encode_correct", "from_accuracies",
           "paired_difference", "satterthwaite", "t_quantile", "two_way", "two_way_intervals"]
