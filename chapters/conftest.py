"""nbval executes the *solution* notebooks; the exercise notebooks are stubs that raise by design."""


def pytest_ignore_collect(collection_path, config):
    if collection_path.suffix == ".ipynb" and not collection_path.stem.endswith("_solutions"):
        return True
    return None
