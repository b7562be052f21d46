"""Not a package to import: its sitecustomize.py is put first on PYTHONPATH by the rehearsal."""
