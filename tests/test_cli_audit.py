"""`fin-meta audit` and the look-ahead refusal of user strategies, end to end through the CLI;
plus the help-text and data-source hints a new user meets first."""

from __future__ import annotations

import re

from fin_meta.agents import make_agent
from tests.test_cli import PERIOD, cli, one_line_error

PEEK = "def positions(prices):\n    return (prices['close'].shift(-1) > prices['close']).astype(float)\n"


def test_audit_a_builtin_strategy_is_clean(capsys):
    code, out, _ = cli(capsys, "audit", "momentum", *PERIOD, "-p", "lookback=20")
    assert code == 0 and "strategy 'momentum': no look-ahead found" in out


def test_audit_and_backtest_of_a_peeking_user_strategy(capsys, tmp_path):
    (tmp_path / "peek.py").write_text(PEEK)
    code, out, _ = cli(capsys, "audit", "peek", "--strategies-dir", str(tmp_path), *PERIOD)
    assert code == 1 and re.search(r"strategy 'peek' looks ahead: its position at \d{4}-\d\d-\d\d changed", out)
    code, out, err = cli(capsys, "backtest", "-s", "peek", "--strategies-dir", str(tmp_path), *PERIOD, "--no-track")
    assert code == 2 and "looks ahead" in one_line_error(err) and "peek.py" in err


def test_audit_a_saved_agent_folder(capsys, tmp_path):
    agent = make_agent("ppo", {"window": 8}, {"hidden_sizes": [8], "num_envs": 4, "device": "cpu"})
    folder = agent.save(tmp_path / "agent")
    code, out, _ = cli(capsys, "audit", str(folder), "--start", "2016-01-01", "--end", "2016-12-31", "--cuts", "2")
    assert code == 0 and "ppo agent" in out and "no look-ahead found" in out


def test_audit_unknown_target_is_one_line_with_a_hint(capsys, tmp_path):
    code, _, err = cli(capsys, "audit", "momentun", *PERIOD)
    assert code == 2 and "did you mean the strategy 'momentum'" in one_line_error(err)
    assert not (tmp_path / "mlflow.db").exists()


def test_help_text_has_no_eaten_defaults_and_documents_debug(capsys):
    code, out, _ = cli(capsys, "backtest", "--help")
    text = " ".join(out.replace("│", " ").split())  # the help box, unwrapped
    assert code == 0 and "(default: $MLFLOW_TRACKING_URI" in text and "URI ." not in text
    code, out, _ = cli(capsys, "--help")
    assert "--debug" in out


def test_a_plain_path_or_a_folder_gets_a_hint(capsys, tmp_path):
    file = tmp_path / "prices.csv"
    file.write_text("date,close\n2020-01-01,1\n")
    code, _, err = cli(capsys, "data", "show", str(file))
    assert code == 2 and f"write it as csv:{file}" in one_line_error(err)
    code, _, err = cli(capsys, "data", "show", f"csv:{tmp_path}")
    assert code == 2 and "is a folder" in one_line_error(err)


def test_ctrl_c_prints_interrupted_and_exits_130(capsys, monkeypatch):
    """typer/click used to swallow Ctrl-C ("Aborted!", exit 1) before our handler could say so."""
    import fin_meta.data

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fin_meta.data, "load_prices", interrupted)
    code, _, err = cli(capsys, "data", "show", "sample:sp500")
    assert code == 130 and err.strip().splitlines()[-1] == "interrupted"


def test_param_errors_name_the_flag_the_user_typed(capsys):
    code, _, err = cli(capsys, "regimes", "sample:sp500", *PERIOD, "-p", "trend_window")
    line = one_line_error(err)
    assert code == 2 and "--param 'trend_window'" in line and "--set" not in line


def test_audit_with_an_unknown_parameter_is_one_line(capsys):
    code, _, err = cli(capsys, "audit", "momentum", *PERIOD, "-p", "lookbak=20")
    assert code == 2 and "has no parameter(s) 'lookbak'" in one_line_error(err)
