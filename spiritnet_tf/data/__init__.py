"""Training data for SpiritNet (docs/design.md §4).

Sources, each giving *septuplet dicts* (``frames`` uint8 [7, H, W, 3], ``flows``
[6, H, W, 2] backward F_{k+1->k}, optional ``depth`` z [7, H, W, 1]):

* :func:`load_vimeo` — Vimeo-90K through the TFDS builder ``vimeo90k_septuplet``
  (registered by importing `spiritnet_tf.data.vimeo90k`), teacher flows precomputed.
* :func:`cache_videos` / :func:`read_septuplets` — any folder of videos or frame
  folders, cut into septuplets and cached as TFRecords with teacher flows.
* :func:`synthetic_dataset` — procedural parallax scenes with exact flow and depth.

:func:`training_pipeline` turns any of them into the model's ``(inputs, targets)``.
"""

from spiritnet_tf.lazy import lazy_names

# name -> module, imported on first use (PEP 562): `spiritnet data --help` does not import
# TensorFlow. The TFDS builder ``vimeo90k_septuplet`` is registered when
# `spiritnet_tf.data.vimeo90k` is imported (e.g. by `load_vimeo` or `Vimeo90kSeptuplet`).
_LAZY = {
    "CorruptInputError": "spiritnet_tf.data.images",
    "read_rgb": "spiritnet_tf.data.images",
    "flip_septuplet": "spiritnet_tf.data.pipeline",
    "random_crop_flip": "spiritnet_tf.data.pipeline",
    "to_prediction_mode": "spiritnet_tf.data.pipeline",
    "training_pipeline": "spiritnet_tf.data.pipeline",
    "read_septuplets": "spiritnet_tf.data.records",
    "write_septuplets": "spiritnet_tf.data.records",
    "SyntheticConfig": "spiritnet_tf.data.synthetic",
    "generate_septuplet": "spiritnet_tf.data.synthetic",
    "synthetic_dataset": "spiritnet_tf.data.synthetic",
    "synthetic_septuplets": "spiritnet_tf.data.synthetic",
    "write_synthetic_records": "spiritnet_tf.data.synthetic",
    "TEACHERS": "spiritnet_tf.data.teachers",
    "DISTeacher": "spiritnet_tf.data.teachers",
    "FlowTeacher": "spiritnet_tf.data.teachers",
    "get_teacher": "spiritnet_tf.data.teachers",
    "cache_videos": "spiritnet_tf.data.videos",
    "find_sources": "spiritnet_tf.data.videos",
    "video_septuplets": "spiritnet_tf.data.videos",
    "MANUAL_DOWNLOAD_INSTRUCTIONS": "spiritnet_tf.data.vimeo90k",
    "ManualDownloadError": "spiritnet_tf.data.vimeo90k",
    "Vimeo90kSeptuplet": "spiritnet_tf.data.vimeo90k",
    "load_vimeo": "spiritnet_tf.data.vimeo90k",
    "select_subset": "spiritnet_tf.data.vimeo90k",
}


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


__getattr__, __dir__ = lazy_names(__name__, _LAZY)
