"""Which sensitivity metric predicts? Allocate with each metric, fine-tune every allocation, rank-correlate.

The protocol of ``metric_study``, per seed:

1. train the float model (``experiment.train_float``, as ``compare`` does);
2. measure every metric on it (``analysis.sensitivity_metrics``) and turn
   each into the allocator's table (``analysis.predicted_loss``);
3. at every budget ``B`` (average weight bits), take from each metric's
   exact front (``analysis.pareto_front``) the point with the least predicted
   loss whose average bits are at most ``B``; add the uniform ``k``-bit
   schedule with the largest ``k <= B`` as a reference;
4. fine-tune every schedule from the float model of the seed
   (``experiment.run_schedule``; a schedule that two metrics both choose is
   trained once per seed) and measure its test accuracy.

Per metric, the predicted loss of each allocation is then compared with its
measured accuracy drop, ``drop = acc(float, seed) - acc(schedule, seed)``, by
Spearman's rank correlation (Spearman 1904): the Pearson correlation of the
ranks, ties given their average rank,

    rho = cov(rank(L), rank(D)) / (std(rank(L)) std(rank(D)))

over all the metric's runs (every budget and seed). A metric that predicts
well gives ``rho`` near +1: the allocations it expects to lose more do lose
more accuracy. The interval is a bootstrap (Efron & Tibshirani 1993): seeds
are drawn with replacement and each accuracy is redrawn from the binomial
distribution of a test set of its size (the two sources of
``pdbviz.claims``), and the 2.5 and 97.5 percentiles of ``rho`` are reported.
The per-seed correlations (mean and standard deviation) are reported beside
it. Since the predicted loss falls as the budget grows, ``rho`` rewards first
getting the order of the budgets right; the accuracy at each budget (mean over
seeds, 95% interval as in ``pdbviz.claims``) says which metric allocates best.

With ``interaction_aware=True`` each seed also measures the pairwise
interactions of its float model's layers and sets the interaction-aware
allocation against the additive one at every budget (``study.interaction``).
"""

from .correlation import CORRELATION_COLUMNS, rank_correlation, spearman
from .interaction import INTERACTION_COLUMNS, interaction_summary, interaction_text
from .protocol import DEFAULT_BUDGETS, DEFAULT_METRICS, metric_study
from .result import RUN_COLUMNS, STUDY_FORMAT_VERSION, SUMMARY_COLUMNS, MetricStudy

__all__ = ["CORRELATION_COLUMNS", "DEFAULT_BUDGETS", "DEFAULT_METRICS", "INTERACTION_COLUMNS", "MetricStudy",
           "RUN_COLUMNS", "STUDY_FORMAT_VERSION", "SUMMARY_COLUMNS", "interaction_summary", "interaction_text",
           "metric_study", "rank_correlation", "spearman"]
