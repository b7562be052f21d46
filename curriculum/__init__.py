"""The Open Alignment Curriculum: everything a notebook imports.

- `curriculum.utils`: device and size switches, offline stand-ins, plots, logging
- `curriculum.solutions`: reference implementations, one module per topic
- `curriculum.checks`: the `check_*` functions each exercise cell calls (`curriculum.checking` is their contract)
- `curriculum.tools`: the notebook builder; `curriculum.benchmarks`: scripts that print measured ratios
"""
