"""nbval executes the *solution* notebooks; the exercise notebooks are stubs that raise by design."""


def pytest_ignore_collect(collection_path, config):
    if collection_path.suffix == ".ipynb" and not collection_path.stem.endswith("_solutions"):
        return True
    return None


def pytest_collection_modifyitems(config, items):
    """nbval waits only 5 s for a cell's output after the cell finishes; on a busy 2-core machine a long
    training cell's last outputs can take longer to arrive. Give them a minute."""
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = 60
