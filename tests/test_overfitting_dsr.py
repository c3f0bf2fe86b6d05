"""The probabilistic and deflated Sharpe ratios (`fin_meta.overfitting.dsr`): the paper's worked
example computed by hand, vectorbt's conventions (per-bar Sharpe, variance of Sharpes, plain
kurtosis, T) checked against its own returns accessor, and the PSR's monotonicity and limits."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fin_meta.errors import DataError
from fin_meta.metrics import annualised_sharpe
from fin_meta.overfitting import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    sharpe_moments,
)


def test_dsr_matches_the_papers_worked_example_by_hand():
    """Bailey & López de Prado (2014), the numerical example: N = 100 trials whose annualised
    Sharpes have variance 1/2; the chosen one has an annualised Sharpe of 2.5 over T = 1250
    daily returns (250 a year) with skew -3 and kurtosis 10 (plain, not excess). By hand:

        SR   = 2.5 / sqrt(250)                      = 0.158114 per day
        V    = 0.5 / 250 = 0.002, sqrt(V)           = 0.044721
        Phi^-1(1 - 1/100)                           = 2.326348
        Phi^-1(1 - 1/(100 e)) = Phi^-1(0.996321)    = 2.680210
        SR0  = 0.044721 (0.422784 x 2.326348 + 0.577216 x 2.680210)
             = 0.044721 x (0.983543 + 1.547059)     = 0.113172 per day  (the paper: 0.1132)
        z    = (0.158114 - 0.113172) sqrt(1249) / sqrt(1 + 3 x 0.158114 + 9/4 x 0.158114^2)
             = 1.588300 / sqrt(1.530592)            = 1.283816
        DSR  = Phi(1.283816)                         = 0.900397           (the paper: 0.9004)
    """
    sharpe, variance = 2.5 / math.sqrt(250), 0.5 / 250
    assert expected_max_sharpe(100, variance) == pytest.approx(0.113172, abs=1e-6)
    dsr = deflated_sharpe_ratio(sharpe, 1250, -3.0, 10.0, n_trials=100, sharpe_variance=variance)
    assert dsr == pytest.approx(0.900397, abs=1e-6)
    # the DSR is the PSR against SR0
    psr_at_sr0 = probabilistic_sharpe_ratio(sharpe, 1250, -3.0, 10.0, benchmark=expected_max_sharpe(100, variance))
    assert dsr == pytest.approx(psr_at_sr0, rel=1e-12)


def test_psr_by_hand():
    """SR = 0.1 per bar, T = 252 (T - 1 = 251), normal returns (skew 0, kurtosis 3):
    z = 0.1 x sqrt(251) / sqrt(1 + (3 - 1)/4 x 0.01) = 1.584298 / 1.002497 = 1.580352,
    PSR = Phi(1.580352) = 0.942987. Excess kurtosis (0) in place of plain would give
    sqrt(1 - 0.0025) in the denominator and 0.944..., so the convention shows."""
    assert probabilistic_sharpe_ratio(0.1, 252) == pytest.approx(0.942987, abs=1e-6)
    assert probabilistic_sharpe_ratio(0.1, 252, 0.0, 0.0) != pytest.approx(0.942987, abs=1e-4)


def test_conventions_agree_with_vectorbts_returns_accessor():
    """vectorbt's accessor takes annualised Sharpes (its `var_sharpe` is the variance of the
    annualised Sharpes) and divides by the annualisation; ours takes everything per bar. Both
    must give the same DSR on the same returns (skewed, fat-tailed, seeded)."""
    import vectorbt  # noqa: F401 - registers the .vbt accessor

    rng = np.random.default_rng(3)
    returns = pd.DataFrame(rng.standard_t(5, (600, 4)) * 0.01 + 0.0005,
                           index=pd.date_range("2020-01-01", periods=600, freq="D"))
    acc = returns.vbt.returns(freq="1D", year_freq="252 days")
    m = sharpe_moments(returns.to_numpy())
    np.testing.assert_allclose(m.sharpe * math.sqrt(252), acc.sharpe_ratio().to_numpy(), rtol=1e-12)
    ours = deflated_sharpe_ratio(m.sharpe, m.n_bars, m.skew, m.kurtosis, n_trials=7, sharpe_variance=0.3 / 252)
    np.testing.assert_allclose(ours, acc.deflated_sharpe_ratio(var_sharpe=0.3, nb_trials=7).to_numpy(), rtol=1e-10)
    # its defaults: N = the columns, V = their Sharpes' sample variance (annualised)
    pooled = deflated_sharpe_ratio(m.sharpe, m.n_bars, m.skew, m.kurtosis, 4, float(np.var(m.sharpe, ddof=1)))
    np.testing.assert_allclose(pooled, acc.deflated_sharpe_ratio().to_numpy(), rtol=1e-10)
    assert np.all(m.kurtosis > 3.5)  # fat tails, plain kurtosis: the test separates the conventions


def test_sharpe_moments_of_a_known_series():
    r = np.array([0.01, -0.02, 0.03, 0.0, 0.02])
    m = sharpe_moments(r)
    centred = r - r.mean()
    m2 = np.mean(centred**2)
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1))
    assert m.sharpe == pytest.approx(annualised_sharpe(r, 252) / math.sqrt(252))
    assert m.skew == pytest.approx(np.mean(centred**3) / m2**1.5)
    assert m.kurtosis == pytest.approx(np.mean(centred**4) / m2**2)
    assert m.n_bars == 5
    flat = sharpe_moments(np.zeros(10))
    assert math.isnan(flat.sharpe) and (flat.skew, flat.kurtosis) == (0.0, 3.0)
    assert math.isnan(probabilistic_sharpe_ratio(flat.sharpe, 10, flat.skew, flat.kurtosis))


def test_psr_is_monotonic_with_the_right_limits():
    sharpes = np.linspace(-0.2, 0.2, 41)
    psr = probabilistic_sharpe_ratio(sharpes, 500)
    assert np.all(np.diff(psr) > 0) and np.all((psr > 0) & (psr < 1))
    assert probabilistic_sharpe_ratio(0.05, 500, benchmark=0.05) == pytest.approx(0.5)
    lengths = np.array([10, 100, 1_000, 100_000])
    assert np.all(np.diff(probabilistic_sharpe_ratio(0.05, lengths)) > 0)  # more evidence for a positive SR
    assert np.all(np.diff(probabilistic_sharpe_ratio(-0.05, lengths)) < 0)
    assert probabilistic_sharpe_ratio(0.05, 10**7) > 0.999999 and probabilistic_sharpe_ratio(-0.05, 10**7) < 1e-6
    # negative skew and fat tails make a positive Sharpe less certain
    assert probabilistic_sharpe_ratio(0.1, 252, -2.0) < probabilistic_sharpe_ratio(0.1, 252, 0.0)
    assert probabilistic_sharpe_ratio(0.1, 252, 0.0, 10.0) < probabilistic_sharpe_ratio(0.1, 252, 0.0, 3.0)
    # a variance factor <= 0 (huge positive skew x Sharpe) has no PSR
    assert math.isnan(probabilistic_sharpe_ratio(0.5, 252, 5.0, 3.0))


def test_dsr_deflates_more_with_more_trials_and_reduces_to_the_psr():
    args = (0.12, 750, -0.5, 5.0)
    dsr = [deflated_sharpe_ratio(*args, n_trials=n, sharpe_variance=0.002) for n in (1, 2, 10, 100, 1000)]
    assert dsr[0] == pytest.approx(probabilistic_sharpe_ratio(*args))  # one trial: nothing to deflate
    assert np.all(np.diff(dsr) < 0)
    assert deflated_sharpe_ratio(*args, n_trials=50, sharpe_variance=0.0) == pytest.approx(dsr[0])
    sr0 = [expected_max_sharpe(n, 0.002) for n in (2, 10, 100)]
    assert sr0[0] > 0 and np.all(np.diff(sr0) > 0)
    assert expected_max_sharpe(10, 4 * 0.002) == pytest.approx(2 * expected_max_sharpe(10, 0.002))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"n_trials": 0, "sharpe_variance": 0.1}, "n_trials"), ({"n_trials": 2.5, "sharpe_variance": 0.1}, "n_trials"),
     ({"n_trials": 3, "sharpe_variance": -1.0}, "sharpe_variance"),
     ({"n_trials": 3, "sharpe_variance": float("nan")}, "sharpe_variance")],
)
def test_bad_trials_are_one_clear_error(kwargs, needle):
    with pytest.raises(DataError, match=needle):
        deflated_sharpe_ratio(0.1, 252, 0.0, 3.0, **kwargs)


def test_bad_returns_are_one_clear_error():
    with pytest.raises(DataError, match="NaN"):
        sharpe_moments([0.01, float("nan"), 0.02])
    with pytest.raises(DataError, match="n_bars"):
        probabilistic_sharpe_ratio(0.1, 1)
