"""`atml report`: run folders and seed summaries → one report.md and one self-contained
report.html, one section per experiment in the order of TASKS, each number beside the original
report's, every setting that differs from the original preset named by key, and marked when it came
from smoke settings, random weights or one seed.

sources.py finds and reads run folders; document.py is the format-neutral document and its two
renderings; original.py compares a run's settings with the original preset's; build.py assembles the
sections (and the side-by-side comparison of two runs).
"""
