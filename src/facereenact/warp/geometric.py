"""Training-free reenactment: warp the source crop along the identity-matched 3D correspondence.

For every pixel of an output face we know, from the rebuilt geometry (source identity, target
pose and expression), which surface point it shows; that point's position in the source crop is
rendered as a vertex attribute, giving an exact backward warp field for the face. Outside the
face the field blends from the motion of a head-shaped proxy turning with the pose to the
identity, so hair, ears and neck move with the head, the far background stays still and the image never tears. Pixels the source
cannot supply (surfaces hidden or foreshortened in the source, the inside of an opening mouth)
are returned as a hole mask and filled.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from facereenact.face3d.morphable import MorphableModel
from facereenact.face3d.raster import Rasterization, interpolate, rasterize
from facereenact.stage import DrivingMouths, WarpResult, WarpTargets
from facereenact.warp.gaze import slide_irises

#: A triangle stretched more than this (area in the output over area in the source) has too
#: little source texture to be warped faithfully; its pixels become holes.
MAX_STRETCH = 8.0
#: A vertex counts as shown in the source when it is at most this share of the face's depth
#: behind the z-buffer there.
DEPTH_TOLERANCE = 0.03
#: A source whose mouth opening must stretch more than this to cover the target's shows too
#: little of its inside (a closed or barely parted mouth): the driving frame's mouth is used.
SOURCE_MOUTH_STRETCH = 1.25
#: Colour of a mouth opening the source cannot fill (RGB in [0, 1]).
MOUTH_CAVITY = (0.12, 0.05, 0.05)
#: A part of the mouth's opening narrower than this many crop pixels everywhere is drawn from the
#: source along the warp (the lips' own pixels) instead of as a cavity: a model's lip line a pixel
#: off the photo's would otherwise leave dark specks on closed lips. A part that is this wide
#: somewhere is kept whole, thin ends included, so an opening never breaks into blocks.
MOUTH_MIN_OPENING = 3
#: The mouth opening's edge is anti-aliased: its mask blurred by a Gaussian of this sigma (crop
#: pixels) gives the fill's share.
OPENING_EDGE_SIGMA = 1.0
#: Other holes are inpainted from the pixels within INPAINT_RADIUS of them; INPAINT_REACH, the
#: margin around them that gives the same result as inpainting the whole picture.
INPAINT_RADIUS, INPAINT_REACH = 3, 6
#: Around the face (distances in face sizes): the face's own motion is extended out to
#: EXTEND_REACH (smoothed over EXTEND_SIGMA); hair and neck follow the head's motion fully up to
#: HEAD_NEAR and not at all from HEAD_FAR on (the still background, inside the default crop);
#: the dense face warp blends into that over FACE_FEATHER inside the face's edge.
EXTEND_SIGMA, EXTEND_REACH = 0.06, 0.12
HEAD_NEAR, HEAD_FAR = 0.05, 0.4
FACE_FEATHER = 0.03
#: Below the chin the body takes over: the motion around the face fades to none from the chin
#: line down to BODY_FADE face sizes under it (the neck stretches, shoulders and collar stay).
BODY_FADE = 0.5


def _triangle_areas(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    corners = vertices[:, triangles][..., :2]  # (B, F, 3, 2)
    a, b = corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0]
    return (a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]).abs() / 2


def _gaussian_blur(images: torch.Tensor, sigma: float | np.ndarray) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W), zero outside the image; ``sigma`` one for all,
    or (B,) one per image. OpenCV's separable filter: 4× faster than PyTorch's grouped
    convolutions on the CPU for this wide a kernel."""
    planes = np.ascontiguousarray(images.float().cpu().numpy())  # each channel filtered where it lies
    blurred = np.empty_like(planes)
    sigmas = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (len(planes),))
    for picture, out, kernel in zip(planes, blurred, map(_kernel, sigmas), strict=True):
        for plane, into in zip(picture, out, strict=True):
            cv2.sepFilter2D(plane, -1, kernel, kernel, dst=into, borderType=cv2.BORDER_CONSTANT)
    return torch.from_numpy(blurred).to(images.device)


def _thin_parts(mask: torch.Tensor, width: int) -> torch.Tensor:
    """The connected parts (8-neighbours) of binary ``mask`` (B, 1, H, W) that no ``width`` ×
    ``width`` square (``width`` odd) fits inside anywhere, as a mask like it. Worked out in each
    picture's rectangle around the mask, which is small: a mouth."""
    pictures = mask[:, 0].cpu().numpy() > 0
    thin = np.zeros_like(pictures)
    square = np.ones((width, width), np.uint8)
    for i in np.flatnonzero(pictures.any((1, 2))):
        rows, columns = np.flatnonzero(pictures[i].any(1)), np.flatnonzero(pictures[i].any(0))
        window = (slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1))
        part = pictures[i][window].astype(np.uint8)
        wide = cv2.morphologyEx(part, cv2.MORPH_OPEN, square, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
        _, labels = cv2.connectedComponents(part, connectivity=8)
        thin[i][window] = (labels > 0) & ~np.isin(labels, labels[wide])
    return torch.from_numpy(thin).to(mask)[:, None]


def _kernel(sigma: float) -> np.ndarray:
    """A normalised 1-D Gaussian kernel reaching 3 σ."""
    radius = max(1, int(3 * sigma))
    taps = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-(taps**2) / (2 * sigma**2))
    return (kernel / kernel.sum()).astype(np.float32)


class WarpMethod:
    """The training-free warp as a :class:`~facereenact.stage.StageMethod`: the default method."""

    def bound_to(self, model: MorphableModel, source_vertices: torch.Tensor, source_crop: torch.Tensor) -> GeometricWarp:
        return GeometricWarp(model, source_vertices, source_crop.shape[-1])


class GeometricWarp:
    """Warps a source crop to target faces; built once per source (its fit and crop box). Bound
    to B sources at once (the frames of a source video), it warps the i-th to the i-th target."""

    def __init__(self, model: MorphableModel, source_vertices: torch.Tensor, size: int):
        """``source_vertices`` (1 or B, N, 3) in source-crop pixels."""
        self.model = model
        self.size = size
        self.mouth = model.mouth_gap
        triangles = model.triangles
        # A vertex is shown in the source when nothing lies in front of it there: its depth
        # matches the z-buffer around its pixel. (Testing vertices rather than which triangles won
        # pixels keeps sub-pixel triangles of a foreshortened cheek usable.)
        raster = rasterize(source_vertices, triangles, size, size)
        depth = torch.where(raster.mask[:, 0] > 0, raster.depth_map, torch.full_like(raster.depth_map, -torch.inf))
        # The farthest surface within a pixel of the vertex: silhouette vertices are not hidden.
        depth = -F.max_pool2d(-depth[:, None], 3, stride=1, padding=1)[:, 0]
        z = source_vertices[..., 2]
        face_depth = z.amax(1, keepdim=True) - z.amin(1, keepdim=True)
        x = source_vertices[..., 0].round().long()
        y = source_vertices[..., 1].round().long()
        inside = (x >= 0) & (x < size) & (y >= 0) & (y < size)
        which = torch.arange(len(source_vertices), device=x.device)[:, None]
        nearest = depth[which, y.clamp(0, size - 1), x.clamp(0, size - 1)]
        shown = inside & (z >= nearest - DEPTH_TOLERANCE * face_depth)  # (B, N)
        self.source_usable = shown[:, triangles].all(-1)  # (B, F)
        self.source_face = raster.mask  # (B, 1, S, S): where the source crop shows the face
        self.source_coordinates = source_vertices[..., :2]
        self.source_area = _triangle_areas(source_vertices, triangles)  # (B, F)
        ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
        self.grid = torch.stack([xs, ys], 0).to(source_vertices.device)  # (2, S, S) pixel coordinates

    def __call__(self, source_crop: torch.Tensor, targets: WarpTargets) -> WarpResult:
        """``source_crop`` (1, 3, S, S) in [0, 1], or (B, 3, S, S) for B sources → warped crops
        for every target."""
        size, triangles = self.size, self.model.triangles
        vertices = targets.vertices if targets.irises is None else targets.irises.vertices
        batch = len(vertices)
        raster = rasterize(vertices, triangles, size, size)
        coordinates = interpolate(raster, triangles, self.source_coordinates)  # (B, 2, S, S)

        target_area = _triangle_areas(vertices, triangles)
        stretch = target_area / self.source_area.clamp(min=1e-3)
        unusable = ~self.source_usable | (stretch > MAX_STRETCH)  # (B, F)
        image_of = raster.pixels // (size * size)
        pixel_unusable = unusable[image_of, raster.triangles]
        pixel_mouth = self.mouth[raster.triangles] & pixel_unusable
        holes = raster.scatter(pixel_unusable.float(), 0.0).unsqueeze(1)
        mouth = raster.scatter(pixel_mouth.float(), 0.0).unsqueeze(1)
        sliver = _thin_parts(mouth, MOUTH_MIN_OPENING)
        holes, mouth = holes - sliver, mouth - sliver
        face = raster.mask

        field = self._field(coordinates, face, targets)
        if targets.irises is not None:
            field = slide_irises(field, targets.irises)
        normalised = (field / (size - 1) * 2 - 1).permute(0, 2, 3, 1)
        warped = F.grid_sample(source_crop.expand(batch, -1, -1, -1), normalised, mode="bilinear", padding_mode="border", align_corners=True)
        images = fill_holes(warped, holes, mouth)
        if targets.mouths is not None:
            images = images if images is not warped else images.clone()  # the donor is written in place
            images, holes, mouth = self._driving_mouth(images, holes, mouth, raster, target_area, targets.mouths, source_crop)
        images = _smooth_opening_edge(images, warped, mouth)
        return WarpResult(images, holes, mouth, face, field.permute(0, 2, 3, 1), 1 - torch.maximum(holes, mouth))

    def _driving_mouth(
        self,
        images: torch.Tensor,
        holes: torch.Tensor,
        mouth: torch.Tensor,
        raster: Rasterization,
        target_area: torch.Tensor,
        donor: DrivingMouths,
        source_crop: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fills the mouth opening from the driving frame's own mouth in frames where the source
        shows too little of it (its opening must stretch more than SOURCE_MOUTH_STRETCH times)
        and the driving frame shows more: the whole opening, so that teeth never mix. Those
        pixels are no longer holes (the neural refiner keeps them). The driving mouth's colours
        are toned down to the source face's: a black-and-white photo gets a grey mouth, not the
        driver's pink one."""
        size, triangles, gap = self.size, self.model.triangles, self.mouth
        donor_area = _triangle_areas(donor.vertices, triangles)
        source_gap = self.source_area[:, gap].sum(1)
        target_gap, donor_gap = target_area[:, gap].sum(1), donor_area[:, gap].sum(1)
        use = donor.usable & (target_gap > SOURCE_MOUTH_STRETCH * source_gap) & (donor_gap > source_gap)
        if not bool(use.any()):
            return images, holes, mouth
        opening = gap[raster.triangles] & use[raster.pixels // (size * size)]  # (P,) of the raster's pixels
        in_gap = raster.scatter(opening.float(), 0.0).unsqueeze(1)
        in_gap = (in_gap - _thin_parts(in_gap, MOUTH_MIN_OPENING)) > 0
        # Only the opening's pixels (a few hundred of a crop's) are looked up in the donor.
        pixels, faces, weights = raster.pixels[opening], raster.triangles[opening], raster.weights[opening]
        kept = in_gap.view(-1)[pixels]
        pixels, faces, weights = pixels[kept], faces[kept], weights[kept]
        image_of = pixels // (size * size)
        corners = donor.vertices[image_of[:, None] if len(donor.vertices) > 1 else 0, triangles[faces], :2]  # (n, 3, 2)
        where = (corners * weights[..., None].to(corners.dtype)).sum(1)
        side = donor.patches.shape[-1]
        patches = _toned(donor.patches, _chroma(source_crop, self.source_face))
        on_grid = where / (side - 1) * 2 - 1
        flat = images.view(len(images), images.shape[1], -1)  # filled in place: this call's own tensor
        for image in image_of.unique().tolist():
            mine = image_of == image
            sampled = F.grid_sample(patches[image : image + 1], on_grid[mine][None, None], mode="bilinear", padding_mode="border", align_corners=True)
            flat[image, :, pixels[mine] % (size * size)] = sampled[0, :, 0]
        return images, holes.masked_fill(in_gap, 0.0), torch.maximum(mouth, in_gap.float())

    def _field(self, coordinates: torch.Tensor, face: torch.Tensor, targets: WarpTargets) -> torch.Tensor:
        """The backward warp (B, 2, S, S): exact on the face; just outside it, the face's own
        motion extended smoothly (so the jaw line never tears); further out the motion of the
        head proxy (hair, ears), fading to none at the still background."""
        grid = self.grid
        # Each target's own face size (B,): a frame's warp does not depend on the others in its batch.
        sizes = (targets.landmarks[..., :2].amax(1) - targets.landmarks[..., :2].amin(1)).amax(-1).float().cpu().numpy()
        face_size = sizes[:, None, None]  # against (B, S, S) distances
        face_motion = (coordinates - grid) * face
        blurred = _gaussian_blur(torch.cat([face, face_motion], 1), EXTEND_SIGMA * sizes)
        extended = blurred[:, 1:] / blurred[:, :1].clamp(min=1e-6)

        face_np = face[:, 0].cpu().numpy() > 0
        outside = np.stack([cv2.distanceTransform((~m).astype(np.uint8), cv2.DIST_L2, 3) for m in face_np])
        inside = np.stack([cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_L2, 3) for m in face_np])
        near = _fade(outside, 0.0, EXTEND_REACH * face_size)
        on_face = np.clip(inside / np.maximum(2.0, FACE_FEATHER * face_size), 0, 1)
        # Each pixel's weight on the extended face motion and on the head's, worked out on one
        # channel (B, S, S) and applied to both at once: the field is half as many passes.
        off_face = (1 - on_face) * self._above_body(targets.landmarks, face_size)
        to_extended = off_face * near
        to_head = off_face * (1 - near) * _fade(outside, HEAD_NEAR * face_size, HEAD_FAR * face_size)
        to_tensor = lambda a: torch.from_numpy(a).to(grid.device)[:, None]  # noqa: E731
        field = face_motion.mul_(to_tensor(on_face)).addcmul_(to_tensor(to_extended), extended)
        return field.addcmul_(to_tensor(to_head), targets.head - grid).add_(grid)

    def _above_body(self, landmarks: torch.Tensor, face_size: np.ndarray) -> np.ndarray:
        """(B, S, S): 1 down to the chin line (across the head's own up-down axis, so a tilted
        head tilts it), fading to 0 at BODY_FADE face sizes below (``face_size`` (B, 1, 1))."""
        chin = landmarks[:, 8, :2]
        down = F.normalize(chin - landmarks[:, 36:48, :2].mean(1), dim=-1)  # eyes → chin
        below = torch.einsum("bc,bchw->bhw", down, self.grid[None] - chin[:, :, None, None])
        return _fade(below.cpu().numpy(), 0.0, BODY_FADE * face_size)


def _chroma(images: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) the mean distance of the pixels' colours (B, 3, H, W) from their grey, over ``where``
    (B, 1, H, W) or everywhere."""
    chroma = (images - images.mean(1, keepdim=True)).abs().mean(1, keepdim=True)
    weight = torch.ones_like(chroma) if where is None else where.to(chroma)
    return (chroma * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp(min=1.0)


def _toned(patches: torch.Tensor, colourfulness: torch.Tensor) -> torch.Tensor:
    """Driving cut-outs (B, 3, P, P) with their colours moved towards grey so that they are no
    more colourful than the source face (``colourfulness`` (B or 1,)); never more colourful than
    they were."""
    grey = patches.mean(1, keepdim=True)
    keep = (colourfulness.to(patches) / _chroma(patches).clamp(min=1e-6)).clamp(max=1.0)
    return grey + keep[:, None, None, None] * (patches - grey)


def _fade(distance: np.ndarray, start: float | np.ndarray, stop: float | np.ndarray) -> np.ndarray:
    """1 up to ``start``, 0 from ``stop`` on, a smoothstep between (bounds broadcast against
    ``distance``: one per image)."""
    ramp = np.clip((stop - distance) / np.maximum(np.subtract(stop, start), 1e-6), 0.0, 1.0)
    smooth = 3 - 2 * ramp  # in place from here on: each map is a whole batch of crops
    smooth *= ramp
    smooth *= ramp
    return smooth.astype(np.float32, copy=False)


def _smooth_opening_edge(filled: torch.Tensor, warped: torch.Tensor, mouth: torch.Tensor) -> torch.Tensor:
    """``filled`` with the mouth opening's edge anti-aliased: the opening is a set of whole crop
    pixels, and its staircase, scaled up into a large photo, shows. Inside the opening's edge
    the fill fades into the warped lips over OPENING_EDGE_SIGMA; elsewhere nothing changes."""
    if not bool(mouth.any()):
        return filled
    coverage = _gaussian_blur(mouth, OPENING_EDGE_SIGMA)
    return torch.where(mouth > 0, warped.lerp(filled, coverage), filled)


def fill_holes(images: torch.Tensor, holes: torch.Tensor, mouth: torch.Tensor) -> torch.Tensor:
    """A dark cavity where the mouth opens beyond what the source shows; elsewhere inpainting
    from the surroundings (OpenCV's Telea method). Each picture is inpainted only in the rectangle
    around its holes, widened by the method's reach: the same pixels as the whole picture's.
    Holes are slivers at a silhouette or a nostril, so that rectangle is about a tenth of the crop
    (the fill took half the time on two test pairs)."""
    if not bool(holes.any()):
        return images
    images = images.clone()  # filled in place below, channel by channel
    in_mouth = mouth[:, 0] > 0
    for channel, value in enumerate(MOUTH_CAVITY):
        images[:, channel].masked_fill_(in_mouth, value)
    rest = (holes > 0) & (mouth == 0)
    size_y, size_x = images.shape[-2:]
    for i in torch.nonzero(rest.flatten(1).any(1)).flatten().tolist():
        ys, xs = torch.nonzero(rest[i, 0], as_tuple=True)
        top, bottom = max(int(ys.min()) - INPAINT_REACH, 0), min(int(ys.max()) + INPAINT_REACH + 1, size_y)
        left, right = max(int(xs.min()) - INPAINT_REACH, 0), min(int(xs.max()) + INPAINT_REACH + 1, size_x)
        patch = images[i, :, top:bottom, left:right]
        where = rest[i, :, top:bottom, left:right]
        picture = (patch.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        filled = cv2.inpaint(picture, where[0].cpu().numpy().astype(np.uint8), INPAINT_RADIUS, cv2.INPAINT_TELEA)
        images[i, :, top:bottom, left:right] = torch.where(where, torch.from_numpy(filled).to(images.device).permute(2, 0, 1).float() / 255, patch)
    return images
