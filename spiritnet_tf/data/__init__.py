"""Training data for SpiritNet (docs/design.md §4).

Sources, each giving *septuplet dicts* (``frames`` uint8 [7, H, W, 3], ``flows``
[6, H, W, 2] backward F_{k+1->k}, optional ``depth`` z [7, H, W, 1]):

* :func:`load_vimeo` — Vimeo-90K through the TFDS builder ``vimeo90k_septuplet``
  (registered by importing this package), teacher flows precomputed.
* :func:`cache_videos` / :func:`read_septuplets` — any folder of videos or frame
  folders, cut into septuplets and cached as TFRecords with teacher flows.
* :func:`synthetic_dataset` — procedural parallax scenes with exact flow and depth.

:func:`training_pipeline` turns any of them into the model's ``(inputs, targets)``.
"""

from spiritnet_tf.data.images import CorruptInputError, read_rgb
from spiritnet_tf.data.pipeline import (
    flip_septuplet,
    random_crop_flip,
    to_prediction_mode,
    training_pipeline,
)
from spiritnet_tf.data.records import read_septuplets, write_septuplets
from spiritnet_tf.data.synthetic import (
    SyntheticConfig,
    generate_septuplet,
    synthetic_dataset,
    synthetic_septuplets,
    write_synthetic_records,
)
from spiritnet_tf.data.teachers import TEACHERS, DISTeacher, FlowTeacher, get_teacher
from spiritnet_tf.data.videos import cache_videos, find_sources, video_septuplets
from spiritnet_tf.data.vimeo90k import (
    MANUAL_DOWNLOAD_INSTRUCTIONS,
    ManualDownloadError,
    Vimeo90kSeptuplet,
    load_vimeo,
    select_subset,
)

__all__ = [
    "CorruptInputError", "read_rgb",
    "flip_septuplet", "random_crop_flip", "to_prediction_mode", "training_pipeline",
    "read_septuplets", "write_septuplets",
    "SyntheticConfig", "generate_septuplet", "synthetic_dataset", "synthetic_septuplets",
    "write_synthetic_records", "cache_videos", "find_sources", "video_septuplets",
    "TEACHERS", "DISTeacher", "FlowTeacher", "get_teacher",
    "MANUAL_DOWNLOAD_INSTRUCTIONS", "ManualDownloadError", "Vimeo90kSeptuplet", "load_vimeo",
    "select_subset",
]
