"""What the evaluation measures: each metric's key, label, unit, direction and protocols."""

from __future__ import annotations

from dataclasses import dataclass

SELF = "self_reenactment"
CROSS = "cross_identity"
NATIVE = "native_resolution"
VIDEO = "video_to_video"
PROTOCOLS = (SELF, CROSS, NATIVE, VIDEO)
#: What runs unless protocols are named: video-to-video is asked for (it tracks a second clip and
#: describes every frame of each pair; see docs/evaluation.md for its cost).
DEFAULT_PROTOCOLS = (SELF, CROSS, NATIVE)
#: Protocols whose unit is a (source, driving clip) pair rather than a clip.
PAIRED = (CROSS, VIDEO)

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
    Metric("csim", "CSIM", "", "higher", (SELF, CROSS, VIDEO),
           "cosine similarity of dlib's 128-d face descriptors, output vs source (video-to-video: each output frame vs its own source frame)"),
    Metric("pose_rmse_fitter", "Pose RMSE (fitter)", "°", "lower", (SELF, CROSS), "RMSE of yaw, pitch, roll, output vs driving, both measured by our 3D fitter"),
    Metric("pose_rmse_mediapipe", "Pose RMSE (MediaPipe)", "°", "lower", (SELF, CROSS), "RMSE of yaw, pitch, roll, output vs driving, from MediaPipe's transformation matrix"),
    Metric("expression_l1", "Blendshape L1", "", "lower", (SELF, CROSS), "mean absolute difference of MediaPipe's 51 expression blendshapes, output vs driving"),
    Metric("expression_agreement", "Blendshape agreement", "", "higher", (SELF, CROSS),
           f"AUCON-style: of the blendshapes on (> {EXPRESSION_THRESHOLD}) in the output or the driving frame, the share on in both"),
    Metric("akd", "AKD (MediaPipe)", "px", "lower", (SELF,), "mean distance of MediaPipe's 478 landmarks, output vs real frame, at 256²"),
    Metric("face_found", "Face found", "", "higher", (SELF, CROSS, VIDEO), "share of output frames where MediaPipe finds a face"),
    Metric("yaw_r", "Yaw r (source)", "", "higher", (VIDEO,),
           "Pearson r over the pair's frames between the output's yaw and its source frame's, both fitted by our 3D fitter: 1 keeps the source's head turns"),
    Metric("pitch_r", "Pitch r (source)", "", "higher", (VIDEO,), "the same for pitch (nodding)"),
    Metric("yaw_r_ceiling", "Yaw r, ceiling", "", "higher", (VIDEO,),
           "the yaw r an output keeping the source's pose exactly would score: the fitter on the source frames against the same frames "
           "shifted 2 px, scaled 0.95 and JPEG-compressed; on a head that hardly moves it falls well below 1"),
    Metric("pitch_r_ceiling", "Pitch r, ceiling", "", "higher", (VIDEO,), "the same for pitch"),
    Metric("expression_r", "Expression r (driver)", "", "higher", (VIDEO,),
           "mean Pearson r over the blendshapes the driver moves (std > 0.02) between MediaPipe's scores of the output and of the driving frame "
           "shown at its time: does the output follow the driver's expression? (the source baseline's own talking gives about 0)"),
    Metric("expression_ratio", "Expression ratio (driver)", "", "", (VIDEO,),
           "median over those blendshapes of std(output) / std(driver): 1 moves as far as the driver"),
    Metric("still_expression_r", "Expression r, still source (driver)", "", "higher", (VIDEO,),
           "the same expression r for the source clip's first frame animated as a still portrait by the same driving frames "
           "(expression only, as animate --expression-only): video-to-video should follow the driver at least as well"),
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


#: The cross-identity protocol's expression-by-region signals, by instrument: each is one number a
#: frame, followed over consecutive frames of the driver and of the output (see
#: :func:`facereenact.evaluate.metrics.signal_agreement`). Two instruments, because the pipeline
#: may be driven by one of them: the other is then the independent check.
INSTRUMENTS = {"mediapipe": "MediaPipe's blendshapes", "dlib": "dlib's 68 landmarks"}
REGION_SIGNALS: dict[str, dict[str, str]] = {
    "mediapipe": {
        "eyes": "blink: mean of eyeBlinkLeft and eyeBlinkRight",
        "gaze_horizontal": "gaze toward the subject's left: (eyeLookOutLeft + eyeLookInRight − eyeLookInLeft − eyeLookOutRight) / 2",
        "gaze_vertical": "gaze up: mean of eyeLookUpLeft/Right − mean of eyeLookDownLeft/Right",
        "brows": "brows raised: browInnerUp + mean of browOuterUpLeft/Right − mean of browDownLeft/Right (a frown is negative)",
        "mouth_open": "jawOpen",
        "smile": "mean of mouthSmileLeft and mouthSmileRight",
        "active_blendshapes": "every blendshape the driver moves (std > 0.02 over the window): mean r and median ratio over them",
    },
    "dlib": {
        "eye_opening": "mean over both eyes of (|37−41| + |38−40|) / 2, over the inter-ocular distance (between the eye centres)",
        "brow_height": "mean distance of each brow's points (17–21, 22–26) to its eye's centre, over the inter-ocular distance",
        "mouth_opening": "|62−66| (inner lips), over the inter-ocular distance",
        "mouth_width": "|48−54| (mouth corners), over the inter-ocular distance",
    },
}


def metrics_for(protocol: str, with_lpips: bool) -> list[Metric]:
    return [m for m in METRICS if protocol in m.protocols and (with_lpips or m.key != "lpips")]
