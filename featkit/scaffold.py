"""``featkit new-plugin``: write a ready-to-install extractor plugin package.

The package has a ``pyproject.toml`` declaring the ``featkit.extractors`` entry point, an
extractor that works as generated (a gray-level histogram, or, with ``local=True``, dense
normalised patches that featkit's encoders turn into BoVW, VLAD or Fisher vectors), a
test that runs featkit's conformance kit, and a README. Replace the descriptor with yours.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from string import Template

from featkit.exceptions import InvalidParameterError

__all__ = ["write_plugin"]

_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")

_PYPROJECT = Template("""[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "featkit-$name"
version = "0.1.0"
description = "$summary"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["featkit", "numpy"]

[project.optional-dependencies]
test = ["pytest"]

# The line that makes this package a featkit plugin: featkit finds the extractor through
# this entry-point group, with no import needed by the user.
[project.entry-points."featkit.extractors"]
$name = "$module:$cls"

[tool.setuptools]
packages = ["$module"]
""")

_GLOBAL = Template('''"""$summary"""

from __future__ import annotations

import numpy as np
from featkit import Extractor, InputSpec, InvalidParameterError

__all__ = ["$cls"]
__version__ = "0.1.0"


class $cls(Extractor):
    """A normalised histogram of gray levels. Replace ``_transform_one`` with your
    descriptor, and ``_feature_dim`` with its length.

    Parameters
    ----------
    bins : int, default=32
        Number of gray-level bins.
    """

    version = "1"  # bump it when the output changes: it is part of the cache key

    def __init__(self, bins: int = 32) -> None:
        self.bins = bins  # store parameters unchanged (the scikit-learn rule)

    def validate_params(self) -> None:
        bins = self.bins
        if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 256:
            raise InvalidParameterError(
                f"$name: bins must be an int in 2..256, got {bins!r}"
            )

    def input_spec(self) -> InputSpec:
        # featkit reads and converts every image (paths, arrays, PIL) to this for you.
        return InputSpec(color="gray", size=None, dtype=np.uint8)

    def _feature_dim(self) -> int:
        return self.bins

    def _transform_one(self, image: np.ndarray) -> np.ndarray:
        counts, _ = np.histogram(image, bins=self.bins, range=(0, 256))
        return (counts / max(image.size, 1)).astype(np.float32)
''')

_LOCAL = Template('''"""$summary"""

from __future__ import annotations

import numpy as np
from featkit import InputSpec, InvalidParameterError
from featkit.extractors.local import LocalExtractor, LocalFeatures

__all__ = ["$cls"]
__version__ = "0.1.0"


class $cls(LocalExtractor):
    """Dense local descriptors: a normalised gray patch every ``step`` pixels. Replace
    ``_describe_one`` with your detector and descriptor, and ``descriptor_dim``.

    featkit's encoders turn any local extractor into one vector per image:
    ``create_extractor("bovw", local="$name")``, ``"vlad"`` or ``"fisher"``, with spatial
    pyramids (``pyramid=(1, 2)``).

    Parameters
    ----------
    patch : int, default=8
        Side of the square patches, in pixels.
    step : int, default=8
        Distance between patch corners, in pixels.
    """

    version = "1"  # bump it when the output changes: it is part of the cache key

    def __init__(self, patch: int = 8, step: int = 8) -> None:
        self.patch = patch  # store parameters unchanged (the scikit-learn rule)
        self.step = step

    def validate_params(self) -> None:
        for param in ("patch", "step"):
            value = getattr(self, param)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 2 <= value <= 64
            ):
                raise InvalidParameterError(
                    f"$name: {param} must be an int in 2..64, got {value!r}"
                )

    def input_spec(self) -> InputSpec:
        # Every image is read, converted to gray and resized to 64 x 64 for you.
        return InputSpec(color="gray", size=(64, 64), dtype=np.uint8)

    def descriptor_dim(self) -> int:
        return self.patch * self.patch

    def _describe_one(self, image: np.ndarray) -> LocalFeatures:
        h, w = image.shape
        p, s = self.patch, self.step
        corners = [
            (y, x) for y in range(0, h - p + 1, s) for x in range(0, w - p + 1, s)
        ]
        if not corners:
            return LocalFeatures.empty(self.descriptor_dim())
        patches = np.stack([image[y : y + p, x : x + p].ravel() for y, x in corners])
        patches = patches.astype(np.float32)
        patches -= patches.mean(axis=1, keepdims=True)  # invariant to brightness
        norms = np.linalg.norm(patches, axis=1, keepdims=True)
        patches /= np.maximum(norms, 1e-6)  # and to contrast
        # Keypoint centres as fractions of the image's width and height, in [0, 1).
        xy = np.array([((x + p / 2) / w, (y + p / 2) / h) for y, x in corners])
        return LocalFeatures(patches, xy)
''')

_TEST_GLOBAL = Template('''import featkit
import numpy as np
import pytest
from featkit.testing import check_extractor
from $module import $cls


def test_conformance():
    """featkit's conformance kit: params, output, determinism, pickling, config."""
    check_extractor($cls())


def test_registered_through_the_entry_point():
    assert "$name" in featkit.list_extractors()
    assert featkit.describe_extractor("$name")["source"] == "featkit-$name"


def test_a_flat_image_fills_one_bin():
    features = featkit.create_extractor("$name", bins=4).fit_transform(
        [np.full((10, 10), 200, np.uint8)]
    )
    np.testing.assert_allclose(features[0], [0, 0, 0, 1])


def test_bad_parameters():
    with pytest.raises(featkit.InvalidParameterError):
        featkit.create_extractor("$name", bins=1)
''')

_TEST_LOCAL = Template('''import featkit
import numpy as np
import pytest
from featkit.testing import check_extractor, sample_images
from $module import $cls


def test_conformance():
    """featkit's conformance kit for local extractors: params, descriptors, pickling."""
    check_extractor($cls())


def test_registered_through_the_entry_point():
    assert "$name" in featkit.list_extractors()
    assert featkit.describe_extractor("$name")["source"] == "featkit-$name"


def test_encoders_come_for_free():
    """featkit's bag of words encodes this plugin's descriptors into one vector."""
    images = sample_images(6)
    bovw = featkit.create_extractor("bovw", local="$name", n_words=8)
    features = bovw.fit_transform(images)
    assert features.shape == (6, 8)
    assert np.isfinite(features).all()


def test_bad_parameters():
    with pytest.raises(featkit.InvalidParameterError):
        featkit.create_extractor("$name", patch=1)
''')

_README = Template("""# featkit-$name

$summary

A [featkit](https://pypi.org/project/featkit/) extractor plugin, generated by
`featkit new-plugin`. Install it next to featkit and the extractor is registered under the
name `$name`, with no import needed:

```bash
pip install -e .
featkit list $name
featkit extract -e $name --data photos/ --out feats/
```

```python
import featkit

extractor = featkit.create_extractor("$name")
```

Replace the descriptor in `$module/__init__.py` with yours, keep the tests green:

```bash
pip install -e ".[test]" && python -m pytest -q
```

`tests/` runs featkit's conformance kit (`featkit.testing.check_extractor`): parameters,
output shape and dtype, determinism, pickling for parallel workers, and a stable `config`
(featkit's cache key).
""")


def write_plugin(name: str, directory: str | os.PathLike, *, local: bool = False) -> Path:
    """Write the plugin package ``featkit-NAME`` into ``directory/featkit-NAME``.

    ``name`` is the extractor's registry name (lower case, digits and dashes). Returns the
    package folder. Raises InvalidParameterError for a bad name or an existing folder.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidParameterError(
            f"a plugin name is lower case letters and digits, dash-separated "
            f"(e.g. 'gabor' or 'orb-bovw'), got {name!r}"
        )
    root = Path(directory) / f"featkit-{name}"
    if root.exists():
        raise InvalidParameterError(f"{root} already exists: choose another name or folder")
    module = f"featkit_{name.replace('-', '_')}"
    cls = "".join(part.capitalize() for part in name.split("-")) + "Extractor"
    kind = "local descriptor" if local else "descriptor"
    values = {
        "name": name,
        "module": module,
        "cls": cls,
        "summary": f"The {name} {kind} as a featkit extractor plugin.",
    }
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"{module}/__init__.py": _LOCAL if local else _GLOBAL,
        f"tests/test_{module.removeprefix('featkit_')}.py": _TEST_LOCAL if local else _TEST_GLOBAL,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values))
    return root
