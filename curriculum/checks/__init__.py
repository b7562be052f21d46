"""The checks the notebooks call, one module per section (`from curriculum.checks.chapter1 import gpt2 as tests`)."""
