"""Charts written to files (PNG with matplotlib's Agg canvas, interactive HTML with plotly).

Every writer takes a target path, writes atomically (`fin_meta.fileio.atomic_path`) and returns
the path; matplotlib and plotly are imported inside the writers, never at package import. The
writers take plain data (pandas, numpy), never a live object such as a vectorbt portfolio
(`equity.plot_portfolio_html` excepted), so a writer with its data bound (`functools.partial`)
can be drawn in another process: the MLflow background process draws them while the job goes on
(`fin_meta.tracking.background.portable_draw`).
"""
