"""The package layout and its layers (CONTRIBUTING.md): import-linter's layers contract holds,
no module is a giant, no flat prefix families come back, and the public API imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import fin_meta

PACKAGE = Path(fin_meta.__file__).parent
MAX_LINES = 350
PUBLIC = ["load_prices", "detect_regimes", "backtest", "TradingEnv", "VectorTradingEnv", "load_agent",
          "run_experiment", "DataError", "ConfigError", "AgentError", "StrategyError", "FinMetaError",
          "BacktestResult", "load_config", "segments", "synthetic_regimes", "seed_everything", "__version__"]


def test_layers_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_no_module_over_the_line_limit():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these modules (> {MAX_LINES} lines): {long}"


@pytest.mark.parametrize("prefix", ["tracking_", "regime_", "backtest_", "maml_", "rl2_", "ppo_", "config_"])
def test_no_flat_prefix_families(prefix):
    flat = sorted(p.name for p in [*PACKAGE.glob(f"{prefix}*.py"), *(PACKAGE / "agents").glob(f"{prefix}*.py")])
    assert not flat, f"{flat}: give the family a subpackage"


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_imports(name):
    value = getattr(fin_meta, name)
    assert value is not None and name in fin_meta.__all__
    if name not in {"__version__"}:
        assert callable(value)


def test_public_names_do_not_change_with_import_order():
    import fin_meta.backtest.engine  # noqa: F401  a subpackage import must not shadow the function
    import fin_meta.pipeline.run_job  # noqa: F401

    assert callable(fin_meta.backtest)
    assert fin_meta.run_experiment.__name__ == "run_experiment"
