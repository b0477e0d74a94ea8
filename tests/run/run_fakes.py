"""Small stand-ins for a compiled program, its trainer and a dataset, with only the parts the run
loop requires of them (lossgraph/train/protocols.py; none of the optional ones).

The trainer uses real torch optimizers and draws noise from the global RNG, and the program's
samples and evaluation draw random numbers and leave networks in eval mode, so a test can tell
when the run loop fails to restore or isolate any of that state.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as functional
from torch import nn

IMAGE_SIZE = 8


class Generator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Conv2d(3, 3, kernel_size=3, padding=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.mix(images))


class Discriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 4, kernel_size=4, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(4)  # buffers, and behaviour that depends on train/eval mode
        self.score = nn.Linear(4 * (IMAGE_SIZE // 2) ** 2, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = functional.leaky_relu(self.norm(self.features(images)), 0.2)
        return self.score(features.flatten(1))


class FakeTrainer:
    """One D step then one G step per iteration, with Adam and noise from the global RNG."""

    def __init__(self, nets: dict[str, nn.Module], fail_at: int | None = None) -> None:
        self.nets = nets
        self.optimizers = {
            "D": torch.optim.Adam(nets["D"].parameters(), lr=1e-2, betas=(0.5, 0.999)),
            "G": torch.optim.Adam(nets["G"].parameters(), lr=1e-2, betas=(0.5, 0.999)),
        }
        self.iteration = 0
        self.fail_at = fail_at

    def step(self, inputs: dict[str, torch.Tensor]) -> dict[str, float]:
        self.iteration += 1
        if self.fail_at is not None and self.iteration == self.fail_at:
            raise RuntimeError("simulated crash")
        generator, discriminator = self.nets["G"], self.nets["D"]
        x, y = inputs["x"], inputs["y"]
        noisy_x = x + 0.1 * torch.randn_like(x)

        fake_y = generator(noisy_x)
        real_term = functional.softplus(-discriminator(y)).mean()
        fake_term = functional.softplus(discriminator(fake_y.detach())).mean()
        d_loss = real_term + fake_term
        self.optimizers["D"].zero_grad()
        d_loss.backward()
        self.optimizers["D"].step()

        fake_y = generator(noisy_x)
        adversarial = functional.softplus(-discriminator(fake_y)).mean()
        l1 = (fake_y - y).abs().mean()
        g_loss = adversarial + 10 * l1
        self.optimizers["G"].zero_grad()
        g_loss.backward(inputs=list(generator.parameters()))
        self.optimizers["G"].step()
        return {"G/l1": l1.item(), "G": g_loss.item(), "D/real": real_term.item(), "D": d_loss.item(),
                "G/adv": adversarial.item()}

    def state_dict(self) -> dict:
        return {"optimizers": {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()},
                "iteration": self.iteration}

    def load_state_dict(self, state: dict) -> None:
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.iteration = state["iteration"]


class FakeProgram:
    players = ["D", "G"]
    judges: list[str] = []

    def __init__(self, name: str = "fakegan", fail_at: int | None = None, **train: int) -> None:
        settings = dict(steps=10, batch_size=4, image_size=IMAGE_SIZE, log_every=1, sample_every=5,
                        checkpoint_every=5, eval_every=5)
        settings.update(train)
        self.spec = SimpleNamespace(name=name, train=SimpleNamespace(**settings))
        self.fail_at = fail_at
        self.sample_calls = 0

    def build_networks(self, seed: int = 0) -> dict[str, nn.Module]:
        torch.manual_seed(seed)
        return {"D": Discriminator(), "G": Generator()}

    def trainer(self, nets: dict[str, nn.Module], device: str = "cpu") -> FakeTrainer:
        return FakeTrainer(nets, fail_at=self.fail_at)

    def samples(self, nets: dict[str, nn.Module], inputs: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        self.sample_calls += 1
        nets["G"].eval()  # deliberately not restored: the run loop must do it
        nets["D"].eval()
        x = inputs["x"]
        return [("x", x), ("G(x)", nets["G"](x)), ("y", inputs["y"]), ("noise", torch.randn_like(x).clamp(-1, 1))]

    def evaluate(self, nets: dict[str, nn.Module], inputs: dict[str, torch.Tensor]) -> dict[str, float]:
        nets["D"].eval()
        error = (nets["G"](inputs["x"]) - inputs["y"]).abs().mean().item()
        return {"error_XY": error, "draw": torch.rand(()).item()}


class FakeDataset:
    """Batches are a pure function of (seed, step), as lossgraph.data promises."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _pairs(self, count: int, key: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(key)
        x = torch.rand(count, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator) * 2 - 1
        return {"x": x, "y": x.flip(-1)}

    def batch(self, step: int, batch_size: int) -> dict[str, torch.Tensor]:
        return self._pairs(batch_size, self.seed * 1_000_003 + step)

    def held_out(self, count: int) -> dict[str, torch.Tensor]:
        return self._pairs(count, 987_654_321 + self.seed)

    def describe(self) -> str:
        return "fake paired noise images"
