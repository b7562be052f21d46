"""Learner-facing checks for chapter4: one module per section, `check_*` functions the notebooks call."""
