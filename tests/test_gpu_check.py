"""benchmarks/gpu_check.sh: its `--dry-run` (the same steps on the CPU, tiny sizes) runs every
step and prints one summary table with a status and a parsed figure for each; bad options and a
bad interpreter are one line, exit 2. The GPU run itself needs a GPU machine (see the README)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
STEPS = ["cuda_tests", "env", "agents", "sweep"]


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "FIN_META_PYTHON": sys.executable, **env}
    full_env.pop("OUT", None)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=900)


def _table(summary: str) -> dict[str, tuple[str, str]]:
    """{step: (status, key figure)} from the summary table."""
    lines = summary.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("step "))
    status_at = lines[header].index("status")
    figure_at = lines[header].index("key figure")
    rows = {}
    for line in lines[header + 1:]:
        rows[line.split()[0]] = (line[status_at:figure_at].rsplit(None, 1)[0].strip(), line[figure_at:].strip())
    return rows


def test_dry_run_runs_every_step_and_prints_one_table(tmp_path):
    out = tmp_path / "out"
    done = _run("--dry-run", "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = (out / "summary.txt").read_text()
    assert summary in done.stdout.replace("\r", "")  # printed once, at the end, and saved
    assert done.stdout.count("key figure") == 1
    rows = _table(summary)
    assert list(rows) == STEPS
    for step, (status, figure) in rows.items():
        if step == "sweep" and status.startswith("skipped"):
            assert status == "skipped: fin-meta sweep not available"
            continue
        assert status == "ok", (step, status, figure)
        assert figure and figure != "-" and not figure.startswith("no "), (step, figure)
        assert (out / f"{step}.log").stat().st_size > 0
    assert "0 failed" in rows["cuda_tests"][1] and " passed" in rows["cuda_tests"][1]
    assert "position diff" in rows["cuda_tests"][1]
    assert "env-steps/s" in rows["env"][1] and "1e9 target" in rows["env"][1]
    for algo in ("rl2", "ppo", "maml"):
        assert f"{algo} " in rows["agents"][1]
    if rows["sweep"][0] == "ok":
        assert "FINISHED" in rows["sweep"][1] and "agent.device=cpu" in rows["sweep"][1]
    env = json.loads((out / "env_throughput.json").read_text())
    agents = json.loads((out / "agent_throughput.json").read_text())
    assert env["largest_n"] == 1024 and env["largest_n_env_steps_per_s"] > 0
    assert {row["algo"] for row in agents["rows"]} == {"rl2", "ppo", "maml"}
    assert all(row["env_steps_per_s"] > 0 for row in agents["rows"])
    assert len(list(out.iterdir())) <= 8  # what the device tool brings back


@pytest.mark.parametrize(("args", "env", "needle"), [
    (["--bogus"], {}, "unknown option '--bogus'"),
    (["--out"], {}, "--out needs a folder"),
    (["--dry-run"], {"FIN_META_PYTHON": "/nonexistent/python"}, "FIN_META_PYTHON=/nonexistent/python"),
])
def test_bad_options_are_one_line_exit_2(tmp_path, args, env, needle):
    done = _run(*args, *([] if args == ["--out"] else ["--out", str(tmp_path)]), **env)
    assert done.returncode == 2
    assert needle in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
