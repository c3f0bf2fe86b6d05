#!/usr/bin/env bash
# The prepared GPU check of fin-meta (issue 14): one script, one summary table, <= 8 min on one H200.
#
#   bash benchmarks/gpu_check.sh [--out DIR]     # on a machine with an NVIDIA GPU
#   bash benchmarks/gpu_check.sh --dry-run       # the same steps on the CPU, tiny sizes (the test suite runs it)
#
# Steps (each logs to DIR; a failing step does not stop the others; its status is recorded):
#   1 cuda_tests   pytest tests/test_cuda_equivalence.py tests/test_envs_vector.py: the torch env on
#                  CUDA = the gymnasium env; agents trained on the CPU, loaded onto CUDA, trade the
#                  same positions (tolerances in that file); the max differences are printed below
#   2 env          benchmarks/env_throughput.py --device cuda --max-n 1048576 (target >= 1e9 env-steps/s at N = 2^20)
#   3 agents       benchmarks/agent_throughput.py --device cuda: RL², PPO, MAML, learning included
#                  (target: RL² >= 1e6 env-steps/s)
#   4 sweep        one trial of `fin-meta sweep experiments/quickstart.yaml --space S --trials 1
#                  --set agent.device=cuda` on a tiny budget ("skipped" when `fin-meta sweep --help` fails)
#   then ONE summary table (step, status, seconds, key figure), also in DIR/summary.txt.
#
# Output DIR: --out DIR, else $OUT when set, else ./gpu_check_out. It gets at most 7 files (the
# device tool brings back 8): <step>.log for the 4 steps, env_throughput.json,
# agent_throughput.json, summary.txt. Scratch (the sweep's MLflow store, the junit XML) lives in a
# temporary folder that is removed at the end. Exit status: 0 when every step is ok or skipped,
# 1 when one failed or timed out, 2 on bad options or no usable Python / no CUDA.
#
# What it needs (the machine has no network, so say where Python is):
#   - FIN_META_PYTHON=/path/to/python: a Python >= 3.11 with torch (a CUDA build) and fin-meta's
#     dependencies (pyproject.toml: numpy pandas gymnasium vectorbt numba mlflow arch hmmlearn
#     yfinance typer pydantic pyyaml matplotlib pyarrow tqdm filelock, and pytest). fin-meta itself
#     need not be installed: the repo is put first on PYTHONPATH.
#   - else ./.venv/bin/python when it exists;
#   - else it creates .venv and runs `pip install -c constraints.txt -e ".[dev]"` (needs the network).
#   - FIN_META_WHEELS=DIR (optional): wheels of missing packages, installed without the network
#     (`pip install --no-index --no-deps --target <scratch>`) and put on PYTHONPATH after the repo.
# On the lent H200 (its python3 has torch + CUDA, numpy, pandas, numba, scipy, matplotlib, pyarrow,
# typer, pytest, but not gymnasium, vectorbt, mlflow, arch, hmmlearn, yfinance, pydantic): download
# those wheels here for Python 3.12 into .whl (see the device tool's README), carry .whl, and run
#   FIN_META_PYTHON=python3 FIN_META_WHEELS=.whl bash benchmarks/gpu_check.sh
# The preflight line lists any module still missing.
set -euo pipefail

usage="usage: bash benchmarks/gpu_check.sh [--dry-run] [--out DIR]"
dry_run=0
out_dir="${OUT:-./gpu_check_out}"
while (($#)); do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --out)
            (($# >= 2)) || { echo "gpu_check.sh: --out needs a folder; $usage" >&2; exit 2; }
            out_dir="$2"; shift ;;
        --out=*) out_dir="${1#--out=}" ;;
        -h | --help) sed -n '2,37p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown option '$1'; $usage" >&2; exit 2 ;;
    esac
    shift
done
[[ -n "$out_dir" ]] || { echo "gpu_check.sh: --out needs a folder; $usage" >&2; exit 2; }

# Timeouts per step (seconds): together 8 minutes at most on the GPU; the dry run only guards
# against a hang (a loaded 2-core CPU runs its tiny steps slowly).
T_TESTS=90
T_ENV=90
T_AGENTS=180
T_SWEEP=120
if ((dry_run)); then
    T_TESTS=300 T_ENV=300 T_AGENTS=300 T_SWEEP=300
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"
# paths given relative to where the script was started from
py=""
if [[ -n "${FIN_META_PYTHON:-}" ]]; then
    py="$(command -v "$FIN_META_PYTHON" || true)"
    [[ -n "$py" && -x "$py" ]] || {
        echo "gpu_check.sh: FIN_META_PYTHON=$FIN_META_PYTHON is not an executable Python; point it at one (e.g. /usr/bin/python3)" >&2
        exit 2
    }
    [[ "$py" == /* ]] || py="$PWD/$py"
fi
wheels=""
if [[ -n "${FIN_META_WHEELS:-}" ]]; then
    if ! wheels="$(cd "$FIN_META_WHEELS" 2>/dev/null && pwd)" || ! compgen -G "$wheels/*.whl" >/dev/null; then
        echo "gpu_check.sh: FIN_META_WHEELS=$FIN_META_WHEELS is not a folder of .whl files; point it at one" >&2
        exit 2
    fi
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/fin_meta_gpu_check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$repo"

# -- the interpreter ---------------------------------------------------------------------------
if [[ -z "$py" && -x .venv/bin/python ]]; then
    py="$repo/.venv/bin/python"
elif [[ -z "$py" ]]; then
    echo "no .venv and no FIN_META_PYTHON: creating .venv (pip install -c constraints.txt -e \".[dev]\")"
    if ! { python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e ".[dev]"; } >"$work/setup.log" 2>&1; then
        tail -n 5 "$work/setup.log" >&2
        echo "gpu_check.sh: could not create .venv (no network?); set FIN_META_PYTHON=/path/to/python that has torch and fin-meta's dependencies (see the header of this script)" >&2
        rm -rf .venv
        exit 2
    fi
    py="$repo/.venv/bin/python"
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
if [[ -n "$wheels" ]]; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$work/site" "$wheels"/*.whl || {
        echo "gpu_check.sh: installing the wheels of FIN_META_WHEELS=$FIN_META_WHEELS failed (pip's message above)" >&2
        exit 2
    }
    export PYTHONPATH="$PYTHONPATH:$work/site"
fi
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg TQDM_DISABLE=1 OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false

# -- preflight: versions, CUDA, missing modules (one line each) ----------------------------------
"$py" - "$work/preflight.txt" <<'PY' || { echo "gpu_check.sh: $py cannot run the preflight; is it Python >= 3.11?" >&2; exit 2; }
import importlib.util, platform, sys
lines = [f"python {platform.python_version()} ({sys.executable})"]
mods = ["torch", "numpy", "pandas", "gymnasium", "vectorbt", "numba", "mlflow", "arch", "hmmlearn",
        "yfinance", "typer", "pydantic", "yaml", "matplotlib", "pyarrow", "tqdm", "filelock", "optuna", "pytest"]
missing = [m for m in mods if importlib.util.find_spec(m) is None]
cuda = "no"
if "torch" not in missing:
    try:
        import torch
        cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no"
        lines.append(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, GPU: {cuda}")
    except Exception as exc:  # a broken torch install: say so, the steps will show the rest
        lines.append(f"torch does not load: {type(exc).__name__}: {exc}")
lines.append("missing modules: " + (", ".join(missing) if missing else "none"))
open(sys.argv[1], "w").write("\n".join(lines) + f"\ncuda={'yes' if cuda != 'no' else 'no'}\n")
PY
grep -v '^cuda=' "$work/preflight.txt"
if ((dry_run)); then
    device=cpu
    echo "dry run: every step on the CPU with tiny sizes"
else
    device=cuda
    grep -qx 'cuda=yes' "$work/preflight.txt" || {
        echo "gpu_check.sh: torch sees no CUDA device with $py; run it on a GPU machine with a CUDA build of torch, or use --dry-run" >&2
        exit 2
    }
fi

# -- the steps -------------------------------------------------------------------------------
: >"$work/steps.tsv"
run_step() {  # run_step NAME TIMEOUT_S COMMAND...: output to the screen and DIR/NAME.log, status to steps.tsv
    local name="$1" limit="$2" rc start status
    shift 2
    echo "== $name: $*"
    start=$(date +%s)
    set +e
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$out_dir/$name.log"
    rc=${PIPESTATUS[0]}
    set -e
    case "$rc" in
        0) status=ok ;;
        124 | 137) status="timeout (${limit}s)" ;;
        *) status="failed (exit $rc)" ;;
    esac
    printf '%s\t%s\t%s\n' "$name" "$status" "$(($(date +%s) - start))" >>"$work/steps.tsv"
}

lane_benchmarks() {  # steps 1-3
    local tests=(tests/test_cuda_equivalence.py tests/test_envs_vector.py) select=() sizes=(--max-n 1048576) tiny=()
    if ((dry_run)); then  # the CUDA tests' comparisons CPU vs CPU, one case of each kind (seconds)
        tests=(tests/test_cuda_equivalence.py)
        select=(-k "ppo or (float32 and log_return)")
        sizes=(--tiny)
        tiny=(--tiny)
    fi
    FIN_META_EQUIVALENCE_DEVICE="$device" run_step cuda_tests "$T_TESTS" \
        "$py" -m pytest -p no:cacheprovider -o junit_family=xunit1 --junitxml="$work/cuda_tests.xml" \
        "${tests[@]}" "${select[@]}"
    run_step env "$T_ENV" "$py" benchmarks/env_throughput.py --device "$device" "${sizes[@]}" \
        --json "$out_dir/env_throughput.json"
    run_step agents "$T_AGENTS" "$py" benchmarks/agent_throughput.py --device "$device" "${tiny[@]}" \
        --json "$out_dir/agent_throughput.json"
}

lane_sweep() {  # step 4
    local cli=(-c 'import sys; from fin_meta.cli import main; sys.argv[0] = "fin-meta"; main()') sets=() kv
    if ! "$py" "${cli[@]}" sweep --help >"$out_dir/sweep.log" 2>&1; then  # the log keeps why
        echo "== sweep: skipped: fin-meta sweep not available" | tee -a "$out_dir/sweep.log"
        printf 'sweep\tskipped: fin-meta sweep not available\t0\n' >>"$work/steps.tsv"
        return
    fi
    mkdir -p "$work/sweep"
    printf 'agent.lr: {loguniform: [1.0e-4, 1.0e-2]}\n' >"$work/sweep/space.yaml"
    local tiny_budget=(agent.iterations=1 agent.num_envs=8 agent.hidden_size=16 evaluation.bootstrap_samples=100
        "evaluation.adaptation_steps=[0, 1]" "evaluation.baselines=[buy_and_hold]"
        data.start=2006-01-03 data.train_start=2006-01-03 data.train_end=2009-10-15
        data.val_start=2009-12-01 data.test_start=2011-02-03 data.test_end=2012-06-29
        "agent.device=$device" "tracking.tracking_uri=sqlite:///$work/sweep/mlflow.db")
    for kv in "${tiny_budget[@]}"; do sets+=(--set "$kv"); done
    (cd "$work/sweep" && run_step sweep "$T_SWEEP" "$py" "${cli[@]}" sweep "$repo/experiments/quickstart.yaml" \
        --space "$work/sweep/space.yaml" --trials 1 "${sets[@]}")
}

if ((dry_run)); then  # two lanes at once (the CPU has cores to spare; on the GPU they run in turn)
    lane_benchmarks >"$work/lane1.out" 2>&1 &
    lane1=$!
    lane_sweep >"$work/lane2.out" 2>&1 &
    lane2=$!
    wait "$lane1" || true
    wait "$lane2" || true
    cat "$work/lane1.out" "$work/lane2.out"
else
    lane_benchmarks
    lane_sweep
fi

# -- the summary table -----------------------------------------------------------------------
"$py" - "$work" "$out_dir" "$dry_run" <<'PY' || { echo "gpu_check.sh: the summary failed; raw step statuses:"; cat "$work/steps.tsv"; }
import json, sqlite3, sys, xml.etree.ElementTree as ET
from pathlib import Path

work, out, dry = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"


def load(name):
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError):
        return None


def tests_figure():
    try:
        root = ET.parse(work / "cuda_tests.xml").getroot()
    except (OSError, ET.ParseError):
        return "no junit report (see cuda_tests.log)"
    cases = root.iter("testcase")
    counts, diffs = {"passed": 0, "failed": 0, "skipped": 0}, {}
    for case in cases:
        kind = "failed" if case.find("failure") is not None or case.find("error") is not None else \
            "skipped" if case.find("skipped") is not None else "passed"
        counts[kind] += 1
        for prop in case.iter("property"):
            diffs[prop.get("name")] = float(prop.get("value"))
    text = ", ".join(f"{v} {k}" for k, v in counts.items())
    for precision, label in (("ieee", "fp32"), ("default", "default precision")):
        row = {k.split(".")[1]: v for k, v in diffs.items() if k.endswith("." + precision)}
        if row:
            text += f"; max |position diff| {label}: " + " ".join(f"{a} {v:.1e}" for a, v in sorted(row.items()))
    return text


def env_figure():
    data = load("env_throughput.json")
    rows = [r for r in (data or {}).get("rows", []) if r["name"] == f"VectorTradingEnv {data['device']}"]
    if not rows:
        return "no figures (see env.log)"
    n, rate = max((r["n"], r["env_steps_per_s"]) for r in rows)  # the largest N measured
    target = data["target_env_steps_per_s"]
    text = (f"N={n:,}: {rate:,.0f} env-steps/s on {data['device']} "
            f"({rate / target:.1%} of the 1e9 target at N=2^20: {'met' if rate >= target else 'missed'})")
    compare = data.get("compare", {}).get("log_return")
    if compare:
        text += f"; vs cpu max |rel equity diff| {compare['rel_equity']:.1e}"
    return text


def agents_figure():
    data = load("agent_throughput.json")
    if not data or not data.get("rows"):
        return "no figures (see agents.log)"
    best = {}
    for row in data["rows"]:
        if row["env_steps_per_s"] > best.get(row["algo"], (0, 0))[0]:
            best[row["algo"]] = (row["env_steps_per_s"], row["batch"])
    parts = [f"{algo} {rate:,.0f}/s (batch {n})" for algo, (rate, n) in best.items()]
    text = "env-steps/s learning incl.: " + ", ".join(parts)
    if "rl2" in best:
        target = data["target_rl2_env_steps_per_s"]
        text += f"; RL² vs the 1e6 target: {'met' if best['rl2'][0] >= target else 'missed'}"
    return text


def sweep_figure(status):
    if status.startswith("skipped"):
        return "-"
    db = work / "sweep" / "mlflow.db"
    if db.exists():
        with sqlite3.connect(db) as con:
            runs = con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
            devices = [v for (v,) in con.execute("SELECT DISTINCT value FROM params WHERE key = 'agent.device'")]
        if runs:
            return ("MLflow runs: " + ", ".join(f"{n} {s}" for s, n in runs)
                    + (f"; agent.device={','.join(devices)}" if devices else ""))
    lines = [ln.strip() for ln in (out / "sweep.log").read_text(errors="replace").splitlines() if ln.strip()]
    return (lines[-1][:90] if lines else "no output") + " (no MLflow store found)"


figures = {"cuda_tests": tests_figure, "env": env_figure, "agents": agents_figure}
rows = []
order = ["cuda_tests", "env", "agents", "sweep"]
lines = [line.split("\t") for line in (work / "steps.tsv").read_text().splitlines()]
for name, status, seconds in sorted(lines, key=lambda row: order.index(row[0])):
    try:
        figure = sweep_figure(status) if name == "sweep" else figures[name]()
    except Exception as exc:  # one unreadable figure must not hide the others
        figure = f"unreadable figures ({type(exc).__name__}: {exc}); see {name}.log"
    rows.append((name, status, seconds, figure))
pre = [ln for ln in (work / "preflight.txt").read_text().splitlines() if not ln.startswith("cuda=")]
width = max(len("status"), *(len(r[1]) for r in rows))
table = [f"fin-meta GPU check{' (DRY RUN: CPU, tiny sizes; figures are not GPU figures)' if dry else ''}", *pre,
         f"{'step':<11} {'status':<{width}} {'s':>4}  key figure"]
table += [f"{n:<11} {s:<{width}} {sec:>4}  {f}" for n, s, sec, f in rows]
text = "\n".join(table)
print("\n" + text)
(out / "summary.txt").write_text(text + "\n")
PY

if awk -F'\t' '$2 ~ /^(failed|timeout)/ { bad = 1 } END { exit !bad }' "$work/steps.tsv"; then
    exit 1
fi
