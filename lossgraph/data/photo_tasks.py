"""The translation tasks of the builtin `photos` dataset: what domain A and domain B show of a patch.

Each task maps a colour patch (N, 3, H, W) in [0, 1] to its domain-A image (the input) and its
domain-B image (the ground truth of translating A), both in [0, 1], pixel for pixel, with no
randomness: B is exactly the function of the photograph that the docs state.

- `grade`: A is the photograph, B the photograph under a fixed colour grade, a warm, contrasty
  film look, in three steps on each pixel's RGB values v in [0, 1]:
      1. per-channel tone curve  v_c <- v_c ** GAMMA_c, GAMMA = (0.8, 1.0, 1.25): lifts red,
         deepens blue (warmer);
      2. contrast                v <- (1 - CONTRAST) v + CONTRAST (3 v^2 - 2 v^3), CONTRAST = 0.6:
         a blend with smoothstep, an S-curve that keeps 0, 1/2 and 1 in place;
      3. saturation              v <- clip(l + SATURATION (v - l), 0, 1), SATURATION = 1.4, l the
         pixel's luma 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601) after step 2.
  A pixelwise map, so a network can learn it exactly from paired or unpaired patches.
- `colorize`: A is the photograph in grey (its BT.601 luma, in every channel of an `image`
  variable, or the one channel of an `image(1)` one), B the photograph. Grey to colour is
  ambiguous (a grey shirt could be any hue of that luma), so this one takes semantics to learn.
"""

from __future__ import annotations

import torch

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601
GAMMA = (0.8, 1.0, 1.25)
CONTRAST = 0.6
SATURATION = 1.4


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W): the BT.601 luma of RGB images (N, 3, H, W)."""
    weights = torch.tensor(LUMA, dtype=rgb.dtype).view(1, 3, 1, 1)
    return (rgb * weights).sum(dim=1, keepdim=True)


def grade(rgb: torch.Tensor) -> torch.Tensor:
    """The fixed colour grade of task `grade` (module docstring), RGB in [0, 1] to RGB in [0, 1]."""
    toned = rgb.clamp(0, 1) ** torch.tensor(GAMMA, dtype=rgb.dtype).view(1, 3, 1, 1)
    contrasted = (1 - CONTRAST) * toned + CONTRAST * (3 * toned**2 - 2 * toned**3)
    grey = luma(contrasted)
    return (grey + SATURATION * (contrasted - grey)).clamp(0, 1)


def grey(rgb: torch.Tensor) -> torch.Tensor:
    """The photograph in grey, in all three channels (task `colorize`'s domain A)."""
    return luma(rgb).clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


# task name -> (domain A of a patch, domain B of a patch, one line for docs and messages)
TASKS = {
    "grade": (lambda rgb: rgb, grade, "A the photograph, B the photograph under a fixed warm, contrasty colour grade"),
    "colorize": (grey, lambda rgb: rgb, "A the photograph in grey (BT.601 luma), B the photograph in colour"),
}
