"""One animation's options: every option of ``animate``, its default, its bounds and its checks.

The command line, the batch CSV and the web page each build an :class:`AnimateRequest` from
their own vocabulary and get the same defaults and the same refusals; an out-of-bounds or
conflicting value is an :class:`~facereenact.errors.OptionError` naming the options by their
field names, which each interface words its own way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path

from facereenact.errors import OptionError
from facereenact.face3d.blendshapes import Region
from facereenact.face3d.transfer import MotionMode, MotionOptions
from facereenact.model.release import shipped_checkpoint
from facereenact.pipeline.reenactor import ReenactOptions


class GenerationMethod(str, Enum):
    """What generates the reenacted face."""

    #: The trained network refining the warp (the shipped model, or ``model``).
    neural = "neural"
    #: The training-free 3D correspondence warp alone.
    warp = "warp"


class VideoMotion(str, Enum):
    """What travels from the driver onto a source video's frames (each keeps the rest of its own)."""

    #: The driver's expression; the source keeps its own head movement.
    expression = "expression"
    #: The driver's expression, and its head motion added to the source's own.
    expression_pose = "expression+pose"


class LengthPolicy(str, Enum):
    """How a source video's length meets the driver's."""

    #: Stop at the shorter of the two.
    shortest = "shortest"
    #: Last as long as the driver, the source starting over at its end.
    loop = "loop"
    #: Last as long as the driver, the source playing forwards, then backwards.
    pingpong = "pingpong"


class AudioFrom(str, Enum):
    """Whose audio a moving output carries."""

    driving = "driving"
    #: A source video's own (a still source has none).
    source = "source"
    none = "none"


#: Sides of the generated face crop, in pixels (inclusive).
CROP_SIZES = (64, 1024)
#: H.264 quality: 0 is lossless, 51 the worst (inclusive).
CRF_RANGE = (0, 51)
#: Multipliers of the driving's pose and expression (inclusive): 0 holds the source's, 2 doubles.
SCALE_RANGE = (0.0, 2.0)
#: The smallest cap on the output's long side.
MIN_OUTPUT_SIDE = 16
#: Which faces of a photo: one index, several (ascending), or the word ``all``.
FaceChoice = int | str | tuple[int, ...]
#: The pipeline's own defaults, which the request's repeat rather than restate.
_PIPELINE = ReenactOptions()


@dataclass(frozen=True)
class AnimateRequest:
    method: GenerationMethod = GenerationMethod.neural
    #: A trained network's checkpoint for the neural method (None: the shipped model).
    model: Path | None = None
    mode: MotionMode = _PIPELINE.motion.mode
    #: Keep the source's head pose; transfer expression only.
    expression_only: bool = False
    #: Keep the source's expression; transfer head pose only.
    pose_only: bool = False
    #: Multiplies the head's rotation and movement (1: as driven).
    pose_scale: float = _PIPELINE.motion.pose_scale
    #: Multiplies the expression (1: as driven).
    expression_scale: float = _PIPELINE.motion.expression_scale
    #: The face regions whose expression follows the driver (eyes, gaze, brows, mouth); the
    #: others keep the source's. Only ``mouth``: lip-sync dubbing.
    regions: frozenset[Region] = _PIPELINE.motion.regions
    #: Side of the face crop that is generated.
    crop_size: int = _PIPELINE.crop_size
    #: Output the generated face crop instead of the full source frame.
    crop_only: bool = False
    #: Side by side: source | driving | result.
    compare: bool = False
    #: Temporal smoothing of the driving face's fit.
    smooth: bool = True
    #: Animate at most this many driving frames (None: all).
    max_frames: int | None = None
    #: Which faces of a source photo to animate, largest first: one index, several (a tuple, or
    #: their indices comma-separated), or ``all``.
    face_index: FaceChoice = _PIPELINE.face_index
    #: Fill a mouth opening wider than the source shows with the driving frame's own teeth and
    #: tongue (otherwise a dark cavity).
    driving_mouth: bool = _PIPELINE.driving_mouth
    #: H.264 quality of a video output (lower is better and larger; 18 looks like the input).
    crf: int = 18
    #: Scale the output down so its longer side is at most this many pixels (None: as made).
    max_size: int | None = None
    #: With a source video: what travels from the driver (``regions`` still chooses which parts
    #: of the expression; ``mouth`` alone is lip-sync dubbing).
    video_motion: VideoMotion = VideoMotion.expression
    #: With a source video: how its length meets the driver's.
    length: LengthPolicy = LengthPolicy.shortest
    #: Whose audio a moving output carries.
    audio: AudioFrom = AudioFrom.driving

    def __post_init__(self) -> None:
        # Values may arrive as plain strings (a CSV cell, a JSON body): take them as the types.
        object.__setattr__(self, "method", _choice(GenerationMethod, "method", self.method))
        object.__setattr__(self, "mode", _choice(MotionMode, "mode", self.mode))
        object.__setattr__(self, "regions", _regions(self.regions))
        object.__setattr__(self, "video_motion", _choice(VideoMotion, "video_motion", self.video_motion))
        object.__setattr__(self, "length", _choice(LengthPolicy, "length", self.length))
        object.__setattr__(self, "audio", _choice(AudioFrom, "audio", self.audio))
        _within("pose_scale", self.pose_scale, *SCALE_RANGE)
        _within("expression_scale", self.expression_scale, *SCALE_RANGE)
        _within("crop_size", self.crop_size, *CROP_SIZES)
        _within("crf", self.crf, *CRF_RANGE)
        _at_least("max_frames", self.max_frames, 1)
        _at_least("max_size", self.max_size, MIN_OUTPUT_SIDE)
        object.__setattr__(self, "face_index", _faces(self.face_index))
        if self.expression_only and self.pose_only:
            raise OptionError(("expression_only", "pose_only"), "exclude each other")
        if self.expression_only and self.video_motion is VideoMotion.expression_pose:
            raise OptionError(("expression_only", "video_motion"), "exclude each other")
        if self.several_faces and self.crop_only:
            raise OptionError(("crop_only",), f"makes one face's crop: it cannot hold faces {_face_list(self.face_index)}")
        if self.method is GenerationMethod.warp and self.model is not None:
            raise OptionError(("model",), "is a neural checkpoint: use it with the neural method")

    def reenact_options(self, source_video: bool = False) -> ReenactOptions:
        """The part of the request the :class:`~facereenact.pipeline.reenactor.Reenactor` takes;
        with ``source_video`` the pose travels only as :attr:`video_motion` (or ``pose_only``) says."""
        if source_video:
            transfer_pose = self.video_motion is VideoMotion.expression_pose or self.pose_only
        else:
            transfer_pose = not self.expression_only
        motion = MotionOptions(
            mode=self.mode, transfer_pose=transfer_pose, transfer_expression=not self.pose_only,
            pose_scale=self.pose_scale, expression_scale=self.expression_scale, regions=self.regions,
        )  # fmt: skip
        face_index = self.face_index if isinstance(self.face_index, int) else 0
        return ReenactOptions(crop_size=self.crop_size, motion=motion, face_index=face_index, driving_mouth=self.driving_mouth)

    @property
    def several_faces(self) -> bool:
        """Whether more than one face of the photo is asked for (``all``, or a list)."""
        return not isinstance(self.face_index, int)

    def checkpoint(self) -> Path | None:
        """The network to load: None for the warp, else :func:`resolve_checkpoint`."""
        return None if self.method is GenerationMethod.warp else resolve_checkpoint(self.model)


#: The request's option names, in order (the batch CSV's option columns).
OPTION_NAMES = tuple(f.name for f in fields(AnimateRequest))


def resolve_checkpoint(model: Path | None) -> Path:
    """The network the neural method uses: ``model``, else the shipped model (checked)."""
    return model if model is not None else shipped_checkpoint()


def _within(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:  # also refuses NaN
        raise OptionError((name,), f"is outside {low}–{high}", value)


def _at_least(name: str, value: int | None, low: int) -> None:
    """``value`` (None: not set) is at least ``low``."""
    if value is not None and value < low:
        raise OptionError((name,), f"is below {low}", value)


def _faces(value: object) -> FaceChoice:
    """One face index, ``all``, or several indices (from a tuple or list, or comma-separated),
    each at least 0; several that name one face are that face."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return "all"
        try:
            indices = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise OptionError(("face_index",), "is not a face index, a comma-separated list of them, or all", value) from None
    elif isinstance(value, int) and not isinstance(value, bool):
        indices = [value]
    elif isinstance(value, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        indices = list(value)
    else:
        raise OptionError(("face_index",), "is not a face index, a list of them, or all", value)
    if not indices:
        raise OptionError(("face_index",), "names no face", value)
    for index in indices:
        _at_least("face_index", index, 0)
    chosen = tuple(sorted(set(indices)))
    return chosen[0] if len(chosen) == 1 else chosen


def _face_list(choice: FaceChoice) -> str:
    """A face choice as the interfaces write it: ``all``, or comma-separated indices."""
    return choice if isinstance(choice, str) else ",".join(str(i) for i in (choice if isinstance(choice, tuple) else (choice,)))


def region_list(regions: Iterable[Region]) -> str:
    """Regions as the interfaces write them: comma-separated, in :class:`Region` order."""
    return ",".join(region.value for region in Region if region in set(regions))


def _regions(value: object) -> frozenset[Region]:
    """Regions from a set of them, their names, or their names comma-separated (a CSV cell,
    a command-line value); at least one."""
    if isinstance(value, str):
        names = [name.strip() for name in value.split(",")]
    elif isinstance(value, Iterable):
        names = [str(getattr(name, "value", name)) for name in value]
    else:
        raise OptionError(("regions",), "is not a list of face regions", value)
    chosen = frozenset(_choice(Region, "regions", name) for name in names if name)
    if not chosen:
        raise OptionError(("regions",), "names no region (to keep the whole expression, use pose only)", value)
    return chosen  # type: ignore[return-value]


def _choice(kind: type[Enum], name: str, value: object) -> Enum:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(str(member.value) for member in kind)
        raise OptionError((name,), f"is not one of {choices}", value) from None
