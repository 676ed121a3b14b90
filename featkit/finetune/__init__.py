"""Fine-tuning pretrained backbones on labelled images.

>>> from featkit.finetune import FineTuner
>>> tuner = FineTuner(strategy="last:2", augment="light", epochs=5).fit(images, labels)
>>> tuner.score(test_images, test_labels)
>>> path = tuner.save("lite0-pacs.safetensors")      # + lite0-pacs.json
>>> extractor = featkit.create_extractor("cnn", checkpoint=str(path))

:class:`FineTuner` is a scikit-learn classifier over images (``augment.py``: the
augmentation presets; ``strategy.py``: stages, freezing, layer-wise learning rates;
``schedule.py``: warm-up and cosine decay; ``data.py``: seeded data loading, validation
split, data hash; ``model.py``: backbone plus head; ``checkpoint.py``: resumable state and
the safetensors export; ``domain.py``: deep domain adaptation losses). See docs/finetune.md.
"""

from featkit.finetune.augment import AUGMENT_PRESETS, build_augment
from featkit.finetune.checkpoint import finetuned_extractor, read_record
from featkit.finetune.strategy import STRATEGIES
from featkit.finetune.trainer import FineTuner

__all__ = [
    "AUGMENT_PRESETS",
    "STRATEGIES",
    "FineTuner",
    "build_augment",
    "finetuned_extractor",
    "read_record",
]
