"""Face detection and 68-point landmarks with dlib, and the square crop box around a face.

Speed: dlib's HOG detector costs grow with the pixel count (about 0.4 s on a 720p frame at
upsample 1, 0.02 s at half size and upsample 0 on this machine), while the landmark predictor costs
about a millisecond whatever the frame size. So the detector runs on a grey copy of the frame
shrunk to ``detect_side`` px on its shorter side (upsample 0), the predictor on the full-resolution
frame inside the detected box scaled back up. Frames where nothing is found are retried at twice
the detection resolution (small faces), so recall is not traded away.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fstmatch.errors import UserError

#: Face width, px, the detector sees when searching near a hinted box (HOG's window is 80 px).
HINT_FACE_PX = 120


def default_predictor_path() -> Path:
    """``shape_predictor_68_face_landmarks.dat`` from the ``face_recognition_models`` package.

    Located by the package folder: importing the package needs ``pkg_resources``.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the face_recognition_models package is not installed (it ships the 68-point predictor)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise UserError(f"68-point landmark model not found at {path}")
    return path


@dataclass
class Face:
    """One detected face: landmarks ``(68, 2)`` float (x, y) in frame pixels and detector score."""

    landmarks: np.ndarray
    score: float | None
    rect: tuple[float, float, float, float]  # detector box (x0, y0, x1, y1) in frame pixels


class LandmarkDetector:
    """dlib frontal detector + shape predictor, loaded once per process.

    Args:
        predictor: a dlib shape-predictor ``.dat`` (68 points or more; the first 68 are the
            standard ones, as in the 81-point model). ``None``: the 68-point model of
            ``face_recognition_models``.
        detect_side: shorter side, px, of the frame the detector sees (frames already smaller
            are not enlarged).
    """

    def __init__(self, predictor: str | Path | None = None, detect_side: int = 360) -> None:
        import dlib

        path = Path(predictor) if predictor is not None else default_predictor_path()
        if not path.is_file():
            raise UserError(f"landmark predictor not found: {path}")
        try:
            self.predictor = dlib.shape_predictor(str(path))
        except RuntimeError as e:
            raise UserError(f"{path} is not a dlib shape predictor: {e}") from None
        # the model does not expose its point count: run it once on a blank image to read it
        parts = self.predictor(np.zeros((64, 64, 3), np.uint8), dlib.rectangle(8, 8, 56, 56)).num_parts
        if parts < 68:
            raise UserError(f"{path} predicts {parts} points; at least 68 are needed")
        self.detector = dlib.get_frontal_face_detector()
        self.predictor_path = None if predictor is None else str(predictor)
        self.detect_side = detect_side
        self._rect = dlib.rectangle

    def detect(self, frame: np.ndarray, hint: Sequence[float] | None = None) -> Face | None:
        """The largest face in ``frame`` (uint8 RGB (H, W, 3)), or ``None``.

        ``hint``: a face box (x0, y0, x1, y1) expected near the face (the same frame at another
        compression level, or the previous kept frame). The detector then searches only a window
        of twice the box's size around it, shrunk so the face is about ``HINT_FACE_PX`` wide; if
        it finds nothing there, the whole frame is searched as without a hint.
        """
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if hint is not None:
            face = self._detect_near(frame, grey, hint)
            if face is not None:
                return face
        factor = self.detect_side / min(grey.shape)
        shrink = min(1.0, factor)
        # frames at most half the detection size are searched at twice their size at once
        upsample = 1 if factor >= 2 else 0
        found = self._run(grey, shrink, upsample)
        if found is None and upsample == 0:  # small faces: one more try at twice the resolution
            found = self._run(grey, shrink, 1)
        if found is None:
            return None
        rect, score = found
        return Face(landmarks=self.fit(frame, rect), score=score, rect=rect)

    def _detect_near(self, frame: np.ndarray, grey: np.ndarray, hint: Sequence[float]) -> Face | None:
        x0, y0, x1, y1 = hint
        size = max(x1 - x0, y1 - y0, 1.0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        h, w = grey.shape
        wx0, wy0 = max(0, int(cx - size)), max(0, int(cy - size))
        wx1, wy1 = min(w, int(cx + size) + 1), min(h, int(cy + size) + 1)
        if wx1 - wx0 < 16 or wy1 - wy0 < 16:
            return None
        shrink = min(1.0, HINT_FACE_PX / size)
        # HOG's window is 80 px: faces below ~90 px after shrinking are searched at twice the size
        found = self._run(grey[wy0:wy1, wx0:wx1], shrink, 0 if size * shrink >= 90 else 1)
        if found is None:
            return None
        (rx0, ry0, rx1, ry1), score = found
        rect = (rx0 + wx0, ry0 + wy0, rx1 + wx0, ry1 + wy0)
        return Face(landmarks=self.fit(frame, rect), score=score, rect=rect)

    def _run(self, grey: np.ndarray, shrink: float, upsample: int) -> tuple[tuple[float, ...], float] | None:
        """Largest detection in ``grey`` resized by ``shrink``: (box in ``grey`` pixels, score)."""
        small = grey if shrink == 1.0 else cv2.resize(
            grey, (max(1, round(grey.shape[1] * shrink)), max(1, round(grey.shape[0] * shrink))),
            interpolation=cv2.INTER_AREA,
        )
        rects, scores, _ = self.detector.run(np.ascontiguousarray(small), upsample, 0.0)
        if not rects:
            return None
        best = max(range(len(rects)), key=lambda i: rects[i].width() * rects[i].height())
        r = rects[best]
        # detector pixels -> grey pixels (pixel-centre convention)
        rect = tuple((v + 0.5) / shrink - 0.5 for v in (r.left(), r.top(), r.right(), r.bottom()))
        return rect, float(scores[best])

    def fit(self, frame: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
        """68 landmarks ``(68, 2)`` in ``frame`` (uint8 RGB) for a face box ``rect`` (x0, y0, x1, y1)."""
        shape = self.predictor(frame, self._rect(*(round(v) for v in rect)))
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)


def square_box(landmarks: np.ndarray, margin: float) -> list[int]:
    """Integer square ``[x0, y0, x1, y1]`` centred on the landmarks' bounding box.

    Side ``= max(width, height) * (1 + 2 * margin)`` of that box, so ``margin`` is the context added
    on each side as a fraction of the face's extent. May extend past the frame.
    """
    lo, hi = landmarks.min(0), landmarks.max(0)
    side = max(2, round(float((hi - lo).max()) * (1 + 2 * margin)))
    cx, cy = (lo + hi) / 2.0
    x0, y0 = round(cx - side / 2.0), round(cy - side / 2.0)
    return [x0, y0, x0 + side, y0 + side]


def extract_box(image: np.ndarray, box: list[int]) -> np.ndarray:
    """The pixels of ``box`` (x0, y0, x1, y1) of ``image`` (H, W[, C]), zero outside the image."""
    x0, y0, x1, y1 = box
    h, w = image.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0, *image.shape[2:]), dtype=image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out
