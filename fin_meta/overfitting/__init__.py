"""How much a backtest's result owes to the number of things tried: the probabilistic and the
deflated Sharpe ratio (`dsr`: Bailey & López de Prado 2014, computed by vectorbt) and the
probability of backtest overfitting by CSCV (`pbo`: Bailey, Borwein, López de Prado & Zhu 2015).

Pure numpy on per-bar returns (scipy and vectorbt imported inside the functions); every Sharpe
here is per bar, not annualised. `fin_meta.tracking.trials` counts the trials from MLflow.
"""

from fin_meta.overfitting.dsr import (
    SharpeMoments,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    sharpe_moments,
)
from fin_meta.overfitting.pbo import (
    DEFAULT_BLOCKS,
    MAX_BLOCKS,
    PBOResult,
    check_blocks,
    probability_of_backtest_overfitting,
)

__all__ = [
    "DEFAULT_BLOCKS",
    "MAX_BLOCKS",
    "PBOResult",
    "SharpeMoments",
    "check_blocks",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "sharpe_moments",
]
