"""Vimeo-90K septuplets as a TFDS dataset with teacher flows (docs/design.md §4).

Importing this module (:mod:`spiritnet_tf.data.vimeo90k`) registers the builder
``vimeo90k_septuplet``.
Build it once from the manually downloaded archive::

    spiritnet data vimeo --manual-dir ~/downloads/vimeo --data-dir ~/tensorflow_datasets

Configs: ``spiritnet`` (default; the paper's 5000 / 600 / 40 subset, see
:func:`select_subset`) and ``full`` (all of ``sep_trainlist.txt`` as ``train`` and
all of ``sep_testlist.txt`` as ``test``). Each example holds the seven frames and
the six teacher backward flows F_{k+1->k} computed once at build time.
"""

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from spiritnet_tf.data.images import ON_ERROR, CorruptInputError, handle_bad_input, read_rgb
from spiritnet_tf.config import CheckedConfig, checked, one_of
from spiritnet_tf.data.teachers import TEACHERS, get_teacher

__all__ = [
    "Vimeo90kSeptuplet", "Vimeo90kConfig", "select_subset", "find_vimeo_root", "read_id_list",
    "ManualDownloadError", "MANUAL_DOWNLOAD_INSTRUCTIONS", "load_vimeo",
]

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Vimeo-90K cannot be downloaded automatically. Get the septuplet archive
`vimeo_septuplet.zip` (about 82 GB) from http://toflow.csail.mit.edu/ and unzip it
into the manual directory, so that it contains either

    <manual_dir>/vimeo_septuplet/sequences/00001/0001/im1.png ... im7.png
    <manual_dir>/vimeo_septuplet/sep_trainlist.txt
    <manual_dir>/vimeo_septuplet/sep_testlist.txt

or the same three entries (sequences/, sep_trainlist.txt, sep_testlist.txt)
directly in <manual_dir>. Then run
`spiritnet data vimeo --manual-dir <manual_dir> --data-dir <data_dir>`.
"""

_LIST_FILES = {"train": "sep_trainlist.txt", "test": "sep_testlist.txt"}


class ManualDownloadError(FileNotFoundError):
    """The manual download directory is missing or incomplete; the message says what to do."""


def find_vimeo_root(manual_dir):
    """The folder holding ``sequences/`` and both list files, under ``manual_dir``.

    Raises :class:`ManualDownloadError` with the download instructions if neither
    ``manual_dir`` nor ``manual_dir/vimeo_septuplet`` has them.
    """
    manual_dir = os.path.expanduser(os.fspath(manual_dir))
    for root in (manual_dir, os.path.join(manual_dir, "vimeo_septuplet")):
        if os.path.isdir(os.path.join(root, "sequences")) and all(
            os.path.isfile(os.path.join(root, f)) for f in _LIST_FILES.values()
        ):
            return root
    raise ManualDownloadError(
        f"Vimeo-90K septuplets not found in {manual_dir!r} (need sequences/, "
        f"sep_trainlist.txt and sep_testlist.txt).\n\n{MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )


def read_id_list(path):
    """Septuplet ids (``"00001/0001"``) listed in a Vimeo list file, blank lines dropped."""
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def select_subset(train_ids, test_ids, num_train=5000, num_validation=600, num_test=40, seed=0):
    """The paper's subset of Vimeo-90K (docs/design.md §4), deterministic.

    Each list is de-duplicated and sorted, then permuted with its own
    ``numpy.random.default_rng(seed)``: the first ``num_train`` of the permuted
    train list are ``train``, the next ``num_validation`` are ``validation``, and
    the first ``num_test`` of the permuted test list are ``test``.

    Returns:
      dict ``{"train": [...], "validation": [...], "test": [...]}`` of ids.
    Raises:
      ValueError: if a list is too short.
    """
    train = sorted(set(train_ids))
    test = sorted(set(test_ids))
    if len(train) < num_train + num_validation:
        raise ValueError(
            f"train list has {len(train)} ids, need {num_train} + {num_validation}"
        )
    if len(test) < num_test:
        raise ValueError(f"test list has {len(test)} ids, need {num_test}")
    order = np.random.default_rng(seed).permutation(len(train))
    test_order = np.random.default_rng(seed).permutation(len(test))
    return {
        "train": [train[i] for i in order[:num_train]],
        "validation": [train[i] for i in order[num_train:num_train + num_validation]],
        "test": [test[i] for i in test_order[:num_test]],
    }


def read_septuplet_folder(folder, teacher, sample_id):
    """Reads im1..im7 from ``folder`` and adds teacher flows: a septuplet dict.

    Raises :class:`CorruptInputError` for unreadable frames or frames of differing size.
    """
    frames = [read_rgb(os.path.join(folder, f"im{k}.png")) for k in range(1, 8)]
    if len({f.shape for f in frames}) != 1:
        raise CorruptInputError(folder, f"frames differ in size: {[f.shape for f in frames]}")
    frames = np.stack(frames)
    return {"id": sample_id, "frames": frames,
            "flows": teacher.sequence_flows(frames).astype(np.float16)}


SUBSETS = ("spiritnet", "full")


@dataclasses.dataclass
class Vimeo90kConfig(CheckedConfig, tfds.core.BuilderConfig):
    """``subset``: "spiritnet" (5000/600/40) or "full"; ``teacher``: a name in TEACHERS."""

    subset: str = checked("spiritnet", one_of(SUBSETS))
    teacher: str = checked("dis", one_of(TEACHERS))


class Vimeo90kSeptuplet(tfds.core.GeneratorBasedBuilder):
    """Vimeo-90K septuplets with teacher backward flows F_{k+1->k} (float16).

    Builder argument ``on_error``: "fail" (default) stops at the first unreadable
    septuplet with an error naming it; "skip" logs it and leaves it out.
    """

    name = "vimeo90k_septuplet"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Frames, DIS teacher flows, id."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    BUILDER_CONFIGS = [
        Vimeo90kConfig(name="spiritnet", subset="spiritnet",
                       description="The paper's subset: 5000 train, 600 validation, 40 test."),
        Vimeo90kConfig(name="full", subset="full",
                       description="All septuplets: sep_trainlist (train), sep_testlist (test)."),
    ]
    DEFAULT_CONFIG_NAME = "spiritnet"

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        # The path TFDS would compute itself. TFDS 4.9.10 computes it through
        # `importlib_resources`, which it declares only for Python < 3.9, so
        # `download_and_prepare` fails without that package (tensorflow/datasets#11212).
        return epath.Path(os.path.abspath(__file__))

    def __init__(self, *, on_error="fail", **kwargs):
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self._on_error = on_error
        super().__init__(**kwargs)

    def _info(self):
        return self.dataset_info_from_configs(
            description=(
                "Vimeo-90K septuplets (Xue et al. 2019) with teacher backward optical flows "
                f"F_{{k+1->k}} computed by the '{self.builder_config.teacher}' teacher."
            ),
            features=tfds.features.FeaturesDict({
                "id": tfds.features.Text(),
                "frames": tfds.features.Video(shape=(7, None, None, 3)),
                "flows": tfds.features.Tensor(
                    shape=(6, None, None, 2), dtype=np.float16,
                    encoding=tfds.features.Encoding.ZLIB,
                ),
            }),
            homepage="http://toflow.csail.mit.edu/",
            citation=(
                "@article{xue2019video, title={Video Enhancement with Task-Oriented Flow}, "
                "author={Xue, Tianfan and Chen, Baian and Wu, Jiajun and Wei, Donglai and "
                "Freeman, William T}, journal={IJCV}, year={2019}}"
            ),
        )

    def _split_generators(self, dl_manager):
        try:
            manual_dir = dl_manager.manual_dir
        except AssertionError as e:  # TFDS: manual dir not given, missing or empty
            raise ManualDownloadError(f"{e}") from None
        root = find_vimeo_root(manual_dir)
        lists = {split: read_id_list(os.path.join(root, f)) for split, f in _LIST_FILES.items()}
        if self.builder_config.subset == "full":
            splits = lists
        else:
            splits = select_subset(lists["train"], lists["test"])
        return {split: self._generate_examples(root, ids) for split, ids in splits.items()}

    def _generate_examples(self, root, ids):
        teacher = get_teacher(self.builder_config.teacher)
        for sample_id in ids:
            try:
                sample = read_septuplet_folder(
                    os.path.join(root, "sequences", sample_id), teacher, sample_id)
            except CorruptInputError as e:
                handle_bad_input(e, self._on_error)
                continue
            yield sample_id, sample


def load_vimeo(split, data_dir=None, config="spiritnet", read_config=None):
    """A prepared split as a tf.data.Dataset of septuplet dicts for the pipeline.

    Elements: ``id`` string, ``frames`` uint8 [7, H, W, 3], ``flows`` float32
    [6, H, W, 2] (teacher F_{k+1->k}). Build the data first (``spiritnet data vimeo``).
    """
    import tensorflow as tf

    builder = Vimeo90kSeptuplet(config=config, data_dir=data_dir)
    ds = builder.as_dataset(split=split, read_config=read_config)
    return ds.map(
        lambda ex: {"id": ex["id"], "frames": ex["frames"],
                    "flows": tf.cast(ex["flows"], tf.float32)},
        num_parallel_calls=tf.data.AUTOTUNE,
    )
