"""``Geometry``: how a run aligns its faces, as one value (docs/INTERFACES.md, "Data library").

A run's faces are fixed by four numbers that belong together: the alignment ``convention``
(:data:`fstmatch.data.align.CONVENTIONS`), the ``canvas`` side (px), the ``fstmatch`` template's
``face_width`` (px) and the convention's ``scale``. :class:`Geometry` holds them, with the
convention's defaults filled in, and is created once — from a training run's ``input`` section
(:meth:`Geometry.of`), a verify config's ``images`` section, the CLI options
(``fstmatch.cli._common.resolve_geometry``) or a map file (:meth:`Geometry.from_dict`) — then
passed to every function that aligns faces (``load_face``, ``FaceDataset``, ``evaluate``,
``load_images``). Its :meth:`to_dict` is the JSON/YAML spelling (the keys of ``input.*`` and
``images.*``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from fstmatch.errors import UserError

#: The keys of a geometry, as configs and JSON spell them.
GEOMETRY_KEYS: tuple[str, ...] = ("convention", "canvas", "face_width", "scale")


@dataclass(frozen=True)
class Geometry:
    """One alignment: ``convention``, ``canvas`` (px, side of the square aligned face), ``face_width``
    (px, ``fstmatch`` only; ``None``: ``round(canvas * 80 / 224)``) and ``scale`` (the convention's:
    ``fstmatch`` template size, 0.9; ``deepfakebench`` margin, 1.3).

    ``canvas`` and ``scale`` given as ``None`` take the convention's defaults, so two geometries
    that align alike compare equal. A bad value (unknown convention, ``face_width`` outside
    ``fstmatch``, scale <= 0) raises :class:`UserError`.
    """

    convention: str = "fstmatch"
    canvas: int | None = None
    face_width: int | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        from fstmatch.data.align import get_convention

        conv = get_convention(self.convention)
        if self.canvas is None:
            object.__setattr__(self, "canvas", conv.canvas)
        if self.scale is None:
            object.__setattr__(self, "scale", conv.scale)
        if not isinstance(self.canvas, int) or self.canvas < 1:
            raise UserError(f"canvas must be a positive integer (px), got {self.canvas!r}")
        object.__setattr__(self, "scale", float(self.scale))
        conv.template(self.canvas, self.face_width, self.scale)  # refuses face_width outside fstmatch, scale <= 0

    @property
    def side(self) -> int:
        """The aligned face's side in px (``canvas``, never ``None``)."""
        assert self.canvas is not None
        return self.canvas

    def to_dict(self) -> dict[str, Any]:
        """``{"convention", "canvas", "face_width", "scale"}`` (JSON-ready)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Geometry:
        """From the four keys (missing ones: defaults; an old record without ``convention`` meant
        ``fstmatch``); other keys are ignored."""
        data = data or {}
        return cls(**{k: data[k] for k in GEOMETRY_KEYS if data.get(k) is not None})

    @classmethod
    def of(cls, section: Any) -> Geometry:
        """From an object with the four attributes (a TrainConfig ``input``, a VerifyConfig ``images``)."""
        if isinstance(section, Geometry):
            return section
        return cls(**{k: getattr(section, k) for k in GEOMETRY_KEYS})

    def __str__(self) -> str:
        fw = "" if self.face_width is None else f", face width {self.face_width}"
        return f"{self.convention} {self.canvas} px, scale {self.scale:g}{fw}"
