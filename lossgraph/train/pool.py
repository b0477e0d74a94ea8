"""The history pool of generated images (Shrivastava et al., arXiv 1612.07828; used by CycleGAN).

A discriminator sees, with probability one half, an image generated at an earlier step instead of
the newest one, which damps oscillation. `query` returns a batch of the same size; the pool keeps
at most `size` images. It draws from torch's global RNG, so a seeded run (and a resumed one, whose
RNG state is restored) repeats exactly. `losses()` never uses a pool: it computes the formula.
"""

from __future__ import annotations

import torch


class ImagePool:
    def __init__(self, size: int):
        self.size = size
        self.images: list[torch.Tensor] = []

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand(())) < 0.5:
                index = int(torch.randint(len(self.images), ()))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": list(self.images)}

    def load_state_dict(self, state: dict) -> None:
        self.size = int(state["size"])
        self.images = [image.clone() for image in state["images"]]
