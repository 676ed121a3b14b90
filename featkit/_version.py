__version__ = "0.1.0"

#: Distributions whose versions provenance records (and the score cache keys on).
DEPENDENCIES = (
    "numpy",
    "scipy",
    "scikit-learn",
    "opencv-python-headless",
    "pillow",
    "joblib",
    "torch",
    "torchvision",
    "timm",
    "faiss-cpu",
)


def dependency_versions() -> dict[str, str]:
    """featkit's, Python's and the installed dependencies' versions, for provenance."""
    import platform
    from importlib import metadata

    versions = {"featkit": __version__, "python": platform.python_version()}
    for dist in DEPENDENCIES:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions
