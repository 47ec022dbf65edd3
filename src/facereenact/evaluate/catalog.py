"""What the evaluation measures: each metric's key, label, unit, direction and protocols."""

from __future__ import annotations

from dataclasses import dataclass

SELF = "self_reenactment"
CROSS = "cross_identity"
NATIVE = "native_resolution"
PROTOCOLS = (SELF, CROSS, NATIVE)

#: A blendshape counts as "on" above this score. MediaPipe's scores sit below it on most
#: neutral frames (medians ≤ 0.15 on this project's clips, except the eye squints), while an
#: open jaw, a smile or raised brows pass it; at 0.5 an open jaw would almost never count.
EXPRESSION_THRESHOLD = 0.3


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    #: "higher", "lower", or "" where neither end is better (see the description).
    better: str
    protocols: tuple[str, ...]
    description: str


METRICS: tuple[Metric, ...] = (
    Metric("l1", "L1", "", "lower", (SELF,), "mean absolute difference to the real frame on the 256² face crop, colours in [0, 1]"),
    Metric("psnr", "PSNR", "dB", "higher", (SELF,), "to the real frame on the face crop; identical images give inf"),
    Metric("ssim", "SSIM", "", "higher", (SELF,), "to the real frame on the face crop (pytorch-msssim, 11×11 Gaussian window)"),
    Metric("ms_ssim", "MS-SSIM", "", "higher", (SELF,), "multi-scale SSIM to the real frame on the face crop (pytorch-msssim)"),
    Metric("lpips", "LPIPS", "", "lower", (SELF,), "LPIPS v0.1, AlexNet, to the real frame on the face crop (user-supplied weights)"),
    Metric("csim", "CSIM", "", "higher", (SELF, CROSS), "cosine similarity of dlib's 128-d face descriptors, output vs source"),
    Metric("pose_rmse_fitter", "Pose RMSE (fitter)", "°", "lower", (SELF, CROSS), "RMSE of yaw, pitch, roll, output vs driving, both measured by our 3D fitter"),
    Metric("pose_rmse_mediapipe", "Pose RMSE (MediaPipe)", "°", "lower", (SELF, CROSS), "RMSE of yaw, pitch, roll, output vs driving, from MediaPipe's transformation matrix"),
    Metric("expression_l1", "Blendshape L1", "", "lower", (SELF, CROSS), "mean absolute difference of MediaPipe's 51 expression blendshapes, output vs driving"),
    Metric("expression_agreement", "Blendshape agreement", "", "higher", (SELF, CROSS),
           f"AUCON-style: of the blendshapes on (> {EXPRESSION_THRESHOLD}) in the output or the driving frame, the share on in both"),
    Metric("akd", "AKD (MediaPipe)", "px", "lower", (SELF,), "mean distance of MediaPipe's 478 landmarks, output vs real frame, at 256²"),
    Metric("face_found", "Face found", "", "higher", (SELF, CROSS), "share of output frames where MediaPipe finds a face"),
    Metric("jitter_ratio", "Jitter ratio", "", "", (SELF,),
           "landmark jitter (mean |x(t+1) − 2x(t) + x(t−1)| of MediaPipe's landmarks over consecutive frames) of the output over that of "
           "the real clip: above 1 the method adds shake; the source baseline is 0 because it does not move"),
    Metric("native_psnr", "PSNR (native)", "dB", "higher", (NATIVE,),
           "to the real frame in the source's face box (its 68 landmarks' extent), pasted back at the clip's own resolution, before any "
           "video encoding; the source method is the still first frame"),
    Metric("sharpness_ratio", "Sharpness ratio", "", "higher", (NATIVE,),
           "fine detail (mean |Laplacian|) of the output over the real frame's, in the face box: 1 keeps as much as the real frame; "
           "the source method shows how much the first frame itself has"),
    Metric("frame0_psnr", "Frame-0 PSNR", "dB", "higher", (NATIVE,),
           "the output for the source frame itself (no motion yet) against it, in the face box; identical gives inf"),
    Metric("frechet_dlib", "Fréchet dist. (dlib descriptors)", "", "lower", (SELF,),
           "Fréchet distance between Gaussians fitted to dlib face descriptors of all outputs and of all real frames (pooled over clips; "
           "its interval is a leave-one-clip-out jackknife, as resampling with replacement biases it)"),
)

BY_KEY = {metric.key: metric for metric in METRICS}


def metrics_for(protocol: str, with_lpips: bool) -> list[Metric]:
    return [m for m in METRICS if protocol in m.protocols and (with_lpips or m.key != "lpips")]
