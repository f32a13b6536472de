"""Teacher optical flow for training data: one small interface, OpenCV DIS by default.

A teacher returns *backward* flow (docs/design.md §2): for frames ``a`` (earlier) and
``b`` (later) it returns ``F_{b->a}`` with ``b(x) ≈ a(x + F_{b->a}(x))``, in
pixels, channels (dx, dy), float32 [H, W, 2]. So content moving right by 2 px
between ``a`` and ``b`` gives dx ≈ -2.
"""

import abc

import numpy as np

__all__ = ["FlowTeacher", "DISTeacher", "get_teacher", "TEACHERS"]


class FlowTeacher(abc.ABC):
    """Computes teacher flows. Subclasses implement :meth:`backward_flow`.

    ``name`` identifies the teacher in caches and dataset metadata (a cache made
    with one teacher is never reused for another).
    """

    name = "teacher"

    @abc.abstractmethod
    def backward_flow(self, earlier, later):
        """Returns F_{later->earlier}: float32 [H, W, 2] (dx, dy) in pixels.

        Args:
          earlier, later: uint8 RGB frames [H, W, 3] of the same size.
        """

    def sequence_flows(self, frames):
        """Backward flows F_{k+1->k} for consecutive frames.

        Args:
          frames: uint8 [N, H, W, 3], N >= 2.
        Returns:
          float32 [N-1, H, W, 2]; entry k is F_{k+1->k} (0-based k).
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[0] < 2 or frames.shape[-1] != 3:
            raise ValueError(
                f"teacher input must be uint8 frames [N>=2, H, W, 3], got shape {frames.shape}"
            )
        return np.stack(
            [self.backward_flow(frames[k], frames[k + 1]) for k in range(len(frames) - 1)]
        )


class DISTeacher(FlowTeacher):
    """OpenCV Dense Inverse Search optical flow (offline, CPU, no weights).

    ``preset`` is ``"ultrafast"``, ``"fast"`` or ``"medium"`` (default, the one
    docs/design.md §9 measured). DIS is called as ``calc(gray_later, gray_earlier)``,
    which yields the backward flow directly.
    """

    name = "dis"
    _PRESETS = ("ultrafast", "fast", "medium")

    def __init__(self, preset="medium"):
        import cv2

        if preset not in self._PRESETS:
            raise ValueError(f"DIS preset must be one of {self._PRESETS}, got {preset!r}")
        self.preset = preset
        self._cv2 = cv2
        self._dis = cv2.DISOpticalFlow_create(
            getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}")
        )
        if preset != "medium":
            self.name = f"dis-{preset}"

    def _gray(self, frame):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(
                f"DIS teacher expects uint8 RGB [H, W, 3], got {frame.dtype} {frame.shape}"
            )
        return self._cv2.cvtColor(np.ascontiguousarray(frame), self._cv2.COLOR_RGB2GRAY)

    def backward_flow(self, earlier, later):
        if np.shape(earlier) != np.shape(later):
            raise ValueError(
                f"frames differ in shape: {np.shape(earlier)} vs {np.shape(later)}"
            )
        flow = self._dis.calc(self._gray(later), self._gray(earlier), None)
        return flow.astype(np.float32)


TEACHERS = {"dis": DISTeacher}


def get_teacher(teacher="dis"):
    """A :class:`FlowTeacher` from a name in :data:`TEACHERS` or an instance (returned as is)."""
    if isinstance(teacher, FlowTeacher):
        return teacher
    if teacher not in TEACHERS:
        raise ValueError(f"unknown flow teacher {teacher!r}; known: {sorted(TEACHERS)}")
    return TEACHERS[teacher]()
