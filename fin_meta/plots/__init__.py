"""Charts written to files (PNG with matplotlib's Agg canvas, interactive HTML with plotly).

Every writer takes a target path, writes atomically (`fin_meta.fileio.atomic_path`) and returns
the path; matplotlib and plotly are imported inside the writers, never at package import.
"""
