"""Learner-facing checks for chapter1: one module per section, `check_*` functions the notebooks call."""
