"""Learner-facing checks for chapter2: one module per section, `check_*` functions the notebooks call."""
