"""Intervals over seeds and a shared test set: coverage on simulated experiments with a known truth, power and
sample sizes, and the compact storage of per-image correctness."""

import math

import numpy as np
import pytest
from scipy.special import ndtr

from pdbviz.stats import (Components, decode_correct, encode_correct, from_accuracies, paired_difference, t_quantile,
                          two_way, two_way_intervals)

# latent noise (standard deviations) of the simulated runs: image difficulty shared by every model, each
# schedule's own per-image preference, a seed effect shared by both schedules of a seed, each run's own seed
# effect; every (run, image) adds a unit normal.
SETTINGS = {"seed-dominated": dict(image=1.5, schedule_image=0.1, shared_seed=0.3, run_seed=0.3),
            "image-dominated": dict(image=1.5, schedule_image=0.8, shared_seed=0.3, run_seed=0.0),
            # no seed or image effect in the difference, only each run's own errors (as in a short comparison)
            "run-noise-dominated": dict(image=1.5, schedule_image=0.0, shared_seed=0.3, run_seed=0.0)}
THETA = (1.9, 1.75)  # the two schedules' latent accuracies


def simulate(rng, n_exp, seeds, images, image, schedule_image, shared_seed, run_seed):
    """Per-image correctness of two schedules (experiments x seeds x images) and the true difference (points):
    correct = [z_i + g_si + f_r + u_sr + e_sri + theta_s > 0], so P(correct) = Phi(theta_s / tau) over new seeds
    and images."""
    z = rng.standard_normal((n_exp, 1, images), dtype=np.float32) * image
    f = rng.standard_normal((n_exp, seeds, 1), dtype=np.float32) * shared_seed
    runs = []
    for theta in THETA:
        g = rng.standard_normal((n_exp, 1, images), dtype=np.float32) * schedule_image
        u = rng.standard_normal((n_exp, seeds, 1), dtype=np.float32) * run_seed
        e = rng.standard_normal((n_exp, seeds, images), dtype=np.float32)
        runs.append(z + g + f + u + e + theta > 0)
    tau = math.sqrt(image ** 2 + schedule_image ** 2 + shared_seed ** 2 + run_seed ** 2 + 1)
    return runs[0], runs[1], 100 * (ndtr(THETA[0] / tau) - ndtr(THETA[1] / tau))


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("seeds", [3, 5])
@pytest.mark.parametrize("images", [450, 1250])
def test_paired_intervals_cover_the_true_difference_95_percent_of_the_time(setting, seeds, images):
    rng = np.random.default_rng(seeds * 10_000 + images + len(setting))
    n_exp = 2000
    a, b, truth = simulate(rng, n_exp, seeds, images, **SETTINGS[setting])
    out = two_way_intervals(a.astype(np.int8) - b.astype(np.int8))
    coverage = np.mean((out["low"] <= truth) & (truth <= out["high"]))
    assert 0.925 <= coverage <= 0.975, (setting, seeds, images, coverage)
    if setting == "image-dominated":
        # the unpaired interval (seed spread + two independent binomials, normal quantile) is far too wide here
        acc_a, acc_b = a.mean(-1) * 100, b.mean(-1) * 100
        pa, pb = acc_a.mean(-1) / 100, acc_b.mean(-1) / 100
        se = np.sqrt((acc_a - acc_b).var(-1, ddof=1) / seeds + 1e4 * (pa * (1 - pa) + pb * (1 - pb)) / images)
        assert np.mean(np.abs((acc_a - acc_b).mean(-1) - truth) <= 1.96 * se) > 0.985
        assert np.median(out["high"] - out["low"]) < np.median(2 * 1.96 * se)


def test_a_single_schedules_accuracy_interval_covers_its_true_accuracy():
    rng = np.random.default_rng(7)
    a, _, _ = simulate(rng, 2000, 3, 450, **SETTINGS["image-dominated"])
    p = SETTINGS["image-dominated"]
    tau = math.sqrt(p["image"] ** 2 + p["schedule_image"] ** 2 + p["shared_seed"] ** 2 + p["run_seed"] ** 2 + 1)
    truth = 100 * ndtr(THETA[0] / tau)
    out = two_way_intervals(a)
    assert 0.925 <= np.mean((out["low"] <= truth) & (truth <= out["high"])) <= 0.975


def test_two_way_matches_the_anova_formula_and_the_batch_version():
    rng = np.random.default_rng(3)
    y = (rng.random((4, 60)) < 0.8).astype(float) - (rng.random((4, 60)) < 0.7)
    e = two_way(y)
    R, n = y.shape
    v = (np.var(y.mean(1), ddof=1) / R + np.var(y.mean(0), ddof=1) / n
         - ((y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()) ** 2).sum() / ((R - 1) * (n - 1))
         / (R * n))
    assert e.estimate == pytest.approx(100 * y.mean())
    assert e.se == pytest.approx(100 * math.sqrt(v))
    assert e.high - e.low == pytest.approx(2 * t_quantile(0.975, e.df) * e.se)
    batch = two_way_intervals(y[None])
    assert batch["low"][0] == pytest.approx(e.low) and batch["high"][0] == pytest.approx(e.high)


def test_a_negative_variance_estimate_falls_back_to_the_residual_term():
    # seed means and image means all equal: MS_seed = MS_image = 0, MS_resid = 4 * 0.5^2 / 1 (points / 100)
    e = two_way([[1, 0], [0, 1]])
    assert e.se == pytest.approx(100 * math.sqrt(1.0 / 4))
    assert e.df == pytest.approx(1 / 3)  # three equal mean squares on 1 degree of freedom each: (3 M)^2 / (27 M^2)
    assert e.components == Components(seed=0.0, image=0.0, resid=pytest.approx(1e4))


def test_pairing_removes_the_shared_image_difficulty():
    rng = np.random.default_rng(0)
    hard = rng.random(1000) < 0.1  # the same hard images for both schedules
    a = np.tile(~hard, (3, 1))
    b = a.copy()
    b[:, :10] = ~b[:, :10]  # b differs on 10 images, the same for every seed
    e = paired_difference(a, b)
    assert e.estimate == pytest.approx(100 * (a.mean() - b.mean()))
    # the image term only: the spread of the per-image differences (10 of 1000 images), no seed spread
    assert e.se == pytest.approx(100 * np.std((a[0].astype(int) - b[0]), ddof=1) / math.sqrt(1000))
    unpaired = from_accuracies(a.mean(1) * 100, 1000, baseline=b.mean(1) * 100)
    assert unpaired.se > 3 * e.se


def test_one_seed_gives_an_image_only_interval():
    e = two_way(np.array([[1, 0, 1, 1, 0, 1, 1, 1]]))
    assert e.method == "images (one seed)" and e.df == 7
    assert e.se == pytest.approx(100 * np.std([1, 0, 1, 1, 0, 1, 1, 1], ddof=1) / math.sqrt(8))


def test_minimum_detectable_effect_and_sample_sizes():
    e = from_accuracies([90.0, 91.0, 92.0], n_test=None)  # seed std 1, 3 seeds, df 2
    assert e.mde() == pytest.approx((t_quantile(0.975, 2) + t_quantile(0.8, 2)) / math.sqrt(3))
    need = e.needed(1.0)
    r = need["seeds"]  # the fewest seeds whose MDE is at most 1 point
    mde = lambda k: (t_quantile(0.975, k - 1) + t_quantile(0.8, k - 1)) / math.sqrt(k)  # noqa: E731
    assert mde(r) <= 1.0 < mde(r - 1)
    assert need["images"] is None  # no image term: more images cannot help
    assert e.needed(0.0) == {"seeds": None, "images": None}
    # a larger effect needs fewer seeds
    assert e.needed(2.0)["seeds"] < r


def test_images_needed_when_the_image_term_dominates():
    c = Components(seed=0.0, image=400.0, resid=0.0)  # points^2 per image
    from pdbviz.stats import Estimate

    e = Estimate(1.0, math.sqrt(c.variance(3, 450)), c.df(3, 450), 3, 450, "seeds x images", c)
    n = e.needed(0.5)["images"]
    assert (t_quantile(0.975, n - 1) + t_quantile(0.8, n - 1)) * math.sqrt(400 / n) <= 0.5
    assert (t_quantile(0.975, n - 2) + t_quantile(0.8, n - 2)) * math.sqrt(400 / (n - 1)) > 0.5
    assert e.needed(0.5)["seeds"] is None  # the image term alone is above the target


def test_correctness_round_trips_compactly():
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 8, 9, 450, 10_000):
        c = rng.random(n) < 0.9
        text = encode_correct(c)
        assert np.array_equal(decode_correct(text), c)
        assert len(text) <= len(str(n)) + 1 + 4 * math.ceil(math.ceil(n / 8) / 3)
    assert decode_correct(None) is None and decode_correct(float("nan")) is None


@pytest.mark.parametrize("bad", ["abc", "3:!!", "20:sA==", 5])
def test_bad_correctness_text_is_refused(bad):
    with pytest.raises(ValueError, match="correct"):
        decode_correct(bad)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="correct must be a 1-D"):
        encode_correct([[True]])
    with pytest.raises(ValueError, match="booleans"):
        encode_correct([0, 2])
    with pytest.raises(ValueError, match="seeds x images"):
        two_way([1, 0, 1])
    with pytest.raises(ValueError, match="same shape"):
        paired_difference(np.ones((2, 5)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="baseline"):
        from_accuracies([1.0, 2.0], 100, baseline=[1.0])
