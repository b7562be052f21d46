"""Learner-facing checks for chapter3: one module per section, `check_*` functions the notebooks call."""
