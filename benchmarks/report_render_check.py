"""Does a `fin-meta report` page render? Load it in headless Chromium with the network cut off
and fail on any JavaScript error or any plot that did not draw.

    python benchmarks/report_render_check.py                 # a fresh tiny store: 2 backtests, a PBO, the report
    python benchmarks/report_render_check.py PAGE.html ...   # pages you already have

Each page is copied with a probe script first in its <head> (it records uncaught errors,
rejected promises and console.error calls, then counts the plots that drew an SVG) and loaded
with `chromium --headless --dump-dom`; hosts resolve nowhere, so a page that needs the network
(a `--cdn` page) fails here by design. A control page (the first one with an error thrown in
it) must be caught, or the check itself is broken. Prints one line per page; exit 1 on any
failure. Without Chromium (set CHROMIUM=/path, or install Debian's `chromium`) it says so and
exits 0: the page's structure is tested in tests/test_report.py either way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PROBE = """<script>(function(){var errors=[];
window.addEventListener('error',function(e){errors.push('error: '+e.message);});
window.addEventListener('unhandledrejection',function(e){errors.push('unhandled rejection: '+e.reason);});
var original=console.error;console.error=function(){errors.push('console.error: '+Array.prototype.join.call(arguments,' '));
return original.apply(console,arguments);};
window.addEventListener('load',function(){setTimeout(function(){
var drawn=Array.prototype.filter.call(document.querySelectorAll('.plotly-graph-div'),function(d){
return d.classList.contains('js-plotly-plot')&&d.querySelector('svg.main-svg');}).length;
document.body.setAttribute('data-probe',JSON.stringify({errors:errors,drawn:drawn}));},1000);});})();</script>"""
CONTROL = "<script>throw new Error('render-check control');</script>"


def find_browser() -> str | None:
    """The Chromium to use: $CHROMIUM, else the first of `BROWSERS` on the PATH."""
    return os.environ.get("CHROMIUM") or next((p for b in BROWSERS if (p := shutil.which(b))), None)


def check_page(browser: str, page: Path, *, extra: str = "", timeout_s: float = 120.0) -> tuple[bool, str]:
    """Load `page` (with the probe, and `extra` HTML at the end of its body) offline; returns (ok, summary)."""
    text = page.read_text(encoding="utf-8")
    expected = int(m.group(1)) if (m := re.search(r"data-figures='(\d+)'", text)) else 0
    probed = text.replace("<head>", "<head>" + PROBE, 1).replace("</body>", extra + "</body>", 1)
    with tempfile.TemporaryDirectory(prefix="fin-meta-render-") as tmp:
        local = Path(tmp) / "page.html"
        local.write_text(probed, encoding="utf-8")
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--enable-logging=stderr",
               "--v=0", f"--user-data-dir={Path(tmp) / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
               "--virtual-time-budget=15000", "--dump-dom", local.as_uri()]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        wall = time.perf_counter() - t0
    found = re.search(r"data-probe=\"([^\"]*)\"", done.stdout)
    if not found:
        return False, f"no probe result (exit {done.returncode}; the page did not finish loading): {done.stderr[-300:]}"
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    uncaught = [line for line in done.stderr.splitlines() if "CONSOLE" in line and "Uncaught" in line]
    errors = probe["errors"] or uncaught  # the probe sees what the log says, and console.error too
    ok = not errors and probe["drawn"] == expected and expected > 0
    summary = (f"{probe['drawn']}/{expected} plots drawn, {len(errors)} JS errors, {wall:.1f} s"
               + (f": {'; '.join(errors)[:300]}" if errors else ""))
    return ok, summary


def make_page(folder: Path) -> Path:
    """A tiny store with two regime backtests and a PBO over them, and the first one's report."""
    from mlflow import MlflowClient

    from fin_meta.cli import main

    store = f"sqlite:///{folder}/mlflow.db"
    commands = [["backtest", "-s", "sma_cross", "--regimes", "trend_vol"], ["backtest", "-s", "momentum", "--regimes",
                                                                           "trend_vol"],
                ["compare", "--experiment", "backtest", "--pbo", "--blocks", "8"]]
    for args in commands:
        run_cli(main, [*args, *(["--start", "2015-01-01", "--end", "2016-12-31"] if args[0] == "backtest" else []),
                       "--tracking-uri", store])
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("backtest")
    run = client.search_runs([exp.experiment_id], "tags.job = 'backtest'", order_by=["attributes.start_time ASC"])[0]
    page = folder / "report.html"
    run_cli(main, ["report", run.info.run_id, "--out", str(page), "--tracking-uri", store, "--no-log"])
    return page


def run_cli(main: object, args: list[str]) -> None:
    """`fin-meta ARGS` in this process, quietly; raise on a non-zero exit."""
    from contextlib import redirect_stdout
    from io import StringIO

    with redirect_stdout(StringIO()):
        try:
            main(args)  # type: ignore[operator]
        except SystemExit as done:
            if done.code not in (0, None):
                raise RuntimeError(f"fin-meta {' '.join(args)} exited {done.code}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", type=Path, help="report pages (default: make one in a temporary store)")
    args = parser.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("report render check: skipped, no Chromium found (apt-get install chromium, or set CHROMIUM=/path)")
        return 0
    version = subprocess.run([browser, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    print(f"report render check with {version or browser}")
    with tempfile.TemporaryDirectory(prefix="fin-meta-render-store-") as tmp:
        pages = args.pages or [make_page(Path(tmp))]
        failed = 0
        for page in pages:
            ok, summary = check_page(browser, page)
            failed += not ok
            print(f"  {'ok  ' if ok else 'FAIL'} {page.name} ({page.stat().st_size / 1e6:.1f} MB): {summary}")
        missed, summary = check_page(browser, pages[0], extra=CONTROL)  # "ok" here: the check saw nothing
        print(f"  {'FAIL' if missed else 'ok  '} control (an error thrown in the page must be caught): {summary}")
        failed += missed
    print("report render check: " + ("all pages render without JS errors" if not failed else f"{failed} failure(s)"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
