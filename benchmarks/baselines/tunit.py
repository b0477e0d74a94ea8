"""TUNIT (arXiv 2006.06500), written by hand from docs/methods.md in the released code's form
(clovaai/tunit, train/train_unsupervised.py): the baseline for specs/tunit.yaml.

A guiding network C (heads cls: K pseudo-domain logits, style: a style code) clusters the images
and gives each a style; C_ema, its moving average, encodes the contrastive keys; Q queues the
newest 1024 keys; G(x, s) = Dec(Enc(x), s); D gives one logit per pseudo-domain. With
x_ref = roll(x), i the iteration and w_C(i) = 1 through the warm-up (700 of the spec's 2000
iterations), 0.1 after, each iteration takes, on one batch (x and its augmented view x_tf):
1. C's step (Adam): w_C(i) * (E[nce(C.style(x), C_ema.style(x_tf), Q, 0.07)] - 5 * mi(p, p_tf)),
   p = softmax(C.cls(x)), p_tf = softmax(C.cls(x_tf));
2. from the warm-up's end, D's step (RMSprop), with C as step 1 left it and without gradient:
   y = argmax(C.cls(x)), y_ref = roll(y), fake = G(x, C.style(x_ref)):
   E[relu(1 - pick(D(x), y))] + E[relu(1 + pick(D(fake), y_ref))] + 10 * R1 (no 1/2);
3. from the warm-up's end, G's step: one backward of
   -E[pick(D(fake), y_ref)] - E[pick(D(rec), y)] + 0.1 * E[l1(rec - x)]
   + 0.01 * E[nce(C.style(fake), C_ema.style(x_ref), Q, 0.07)], rec = G(x, C.style(x)),
   then G's RMSprop steps Enc and Dec and C's Adam (step 1's optimizer, its state and all) steps C;
then step 1's keys C_ema.style(x_tf) are pushed into Q (started from the first batch's keys), and
C_ema moves towards C (decay 0.999), taking C's buffers after iterations 0, 1000, 2000, ...
Adam for C: lr 1e-4, betas (0.9, 0.999), weight decay 1e-3; RMSprop for D and for Enc and Dec:
lr 1e-4, alpha 0.99, weight decay 1e-4. Through the warm-up steps 2 and 3 are not taken, as the
code does not take them.

As a careful script writes it: C(x) gives both heads in one trunk call; C's outputs on x and
x_ref and the fake and the reconstruction are computed once with autograd after C's own step
(C, Enc and Dec do not move before G's step), D's step reads them detached and G's step
backpropagates through them; D is frozen while G and C step; the keys step 1 computed are the
ones pushed. `step` reads `x` and `x_tf` from its inputs (the benchmark's batch draws x_tf); the
queue is the baseline's own, as the trainer's is.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .common import adam, floats, pick, picked_with_r1, prepare, rmsprop, set_requires_grad, to_device

WARMUP = 700           # the spec's: a third of its 2000 iterations (the code: 65k of 200k)
W_C_AFTER = 0.1        # C's own loss after the warm-up
LAMBDA_MI = 5.0
LAMBDA_R1 = 10.0
LAMBDA_REC = 0.1
LAMBDA_STY = 0.01
TAU = 0.07
QUEUE = 1024
EMA_DECAY = 0.999
BUFFERS_EVERY = 1000   # C_ema takes C's batch-norm statistics after iterations 0, 1000, ...


def nce(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor) -> torch.Tensor:
    """E[InfoNCE]: the positive key against the queued ones, cross-entropy at index 0 (MoCo's)."""
    positive = (query * key).sum(1, keepdim=True)
    logits = torch.cat([positive, query @ queue.t()], 1) / TAU
    return F.cross_entropy(logits, torch.zeros(query.shape[0], dtype=torch.long, device=query.device))


def mutual_information(p: torch.Tensor, p_tf: torch.Tensor) -> torch.Tensor:
    """IIC's mutual information of the paired softmax outputs (the code's iic loss, negated)."""
    joint = p.t() @ p_tf
    joint = (joint + joint.t()) / 2
    joint = joint / joint.sum()
    rows = joint.sum(1, keepdim=True).clamp(min=1e-10)
    columns = joint.sum(0, keepdim=True).clamp(min=1e-10)
    joint = joint.clamp(min=1e-10)
    return (joint * (joint.log() - rows.log() - columns.log())).sum()


def weights(iteration: int) -> tuple[float, bool]:
    """w_C(i), and whether D's and G's steps are taken (the warm-up over)."""
    return (1.0 if iteration < WARMUP else W_C_AFTER), iteration >= WARMUP


def c_loss(C: nn.Module, C_ema: nn.Module, x: torch.Tensor, x_tf: torch.Tensor, queue: torch.Tensor | None,
           w_C: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 1's loss and its keys C_ema.style(x_tf) (a queue not yet started starts from them)."""
    cls_x, style_x = C(x)
    cls_tf, _ = C(x_tf)
    with torch.no_grad():
        keys = C_ema(x_tf)[1]
    queue = keys[-QUEUE:] if queue is None else queue
    moco = nce(style_x, keys, queue)
    mi = mutual_information(F.softmax(cls_x, 1), F.softmax(cls_tf, 1))
    return w_C * (moco - LAMBDA_MI * mi), keys


def d_loss(D: nn.Module, x: torch.Tensor, y: torch.Tensor, fake: torch.Tensor, y_ref: torch.Tensor) -> torch.Tensor:
    """Hinge on the real images and the fakes, and R1 from the same forward of D on x as a leaf."""
    real, r1 = picked_with_r1(D, x, y)
    return F.relu(1 - real).mean() + F.relu(1 + pick(D(fake), y_ref)).mean() + LAMBDA_R1 * r1


def g_loss(C: nn.Module, D: nn.Module, x: torch.Tensor, fake: torch.Tensor, rec: torch.Tensor, y: torch.Tensor,
           y_ref: torch.Tensor, key_ref: torch.Tensor, queue: torch.Tensor) -> torch.Tensor:
    adv = -pick(D(fake), y_ref).mean() - pick(D(rec), y).mean()
    sty = nce(C(fake)[1], key_ref, queue)
    return adv + LAMBDA_REC * (rec - x).abs().mean() + LAMBDA_STY * sty


def translate(nets: Mapping[str, nn.Module], x: torch.Tensor):
    """Labels, references' labels, fake and reconstruction from C as it stands (with autograd)."""
    C, Enc, Dec = nets["C"], nets["Enc"], nets["Dec"]
    cls_x, style_x = C(x)
    y = cls_x.detach().argmax(1)
    content = Enc(x)
    fake = Dec(content, C(torch.roll(x, 1, 0))[1])
    rec = Dec(content, style_x)
    return y, torch.roll(y, 1, 0), fake, rec


class TUNIT:
    name = "tunit"
    step_leaves_out_constants: tuple[str, ...] = ()

    def __init__(self, nets: Mapping[str, nn.Module], device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.nets = prepare(nets, self.device)
        self.C, self.C_ema, self.D = self.nets["C"], self.nets["C_ema"], self.nets["D"]
        self.optimizer_C = adam(list(self.C.parameters()), lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-3)
        self.optimizer_D = rmsprop(list(self.D.parameters()), lr=1e-4, weight_decay=1e-4)
        generator = list(self.nets["Enc"].parameters()) + list(self.nets["Dec"].parameters())
        self.optimizer_G = rmsprop(generator, lr=1e-4, weight_decay=1e-4)
        self.queue: torch.Tensor | None = None  # started from the first batch's keys
        self.iteration = 0

    def step(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        batch = to_device(inputs, self.device)
        x, x_tf = batch["x"], batch["x_tf"]
        C, D = self.C, self.D
        w_C, adversarial = weights(self.iteration)

        self.optimizer_C.zero_grad(set_to_none=True)
        loss_C, keys = c_loss(C, self.C_ema, x, x_tf, self.queue, w_C)
        queue = keys[-QUEUE:] if self.queue is None else self.queue
        loss_C.backward()
        self.optimizer_C.step()
        losses = {"C": loss_C}

        if adversarial:
            y, y_ref, fake, rec = translate(self.nets, x)  # with C as step 1 left it
            self.optimizer_D.zero_grad(set_to_none=True)
            loss_D = d_loss(D, x, y, fake.detach(), y_ref)
            loss_D.backward()
            self.optimizer_D.step()

            set_requires_grad([D], False)
            self.optimizer_G.zero_grad(set_to_none=True)
            self.optimizer_C.zero_grad(set_to_none=True)
            with torch.no_grad():
                key_ref = self.C_ema(torch.roll(x, 1, 0))[1]
            loss_G = g_loss(C, D, x, fake, rec, y, y_ref, key_ref, queue)
            loss_G.backward()  # one backward: G and C from the same point
            self.optimizer_G.step()
            self.optimizer_C.step()
            set_requires_grad([D], True)
            losses.update(D=loss_D, G=loss_G)

        with torch.no_grad():
            self.queue = torch.cat([queue, keys])[-QUEUE:]
            for shadow, live in zip(self.C_ema.parameters(), C.parameters()):
                shadow.lerp_(live, 1.0 - EMA_DECAY)
            if self.iteration % BUFFERS_EVERY == 0:
                for shadow, live in zip(self.C_ema.buffers(), C.buffers()):
                    shadow.copy_(live)
        self.iteration += 1
        return floats(losses)

    @staticmethod
    def losses(nets: Mapping[str, nn.Module], inputs: Mapping[str, torch.Tensor], iteration: int = 0) -> dict[str, torch.Tensor]:
        """The three steps' objectives at `iteration`, as written, on the networks as they stand
        and the queue `inputs["Q"]` (D's and G's weigh 0 through the warm-up)."""
        x, x_tf, queue = inputs["x"], inputs["x_tf"], inputs["Q"]
        w_C, adversarial = weights(iteration)
        on = 1.0 if adversarial else 0.0
        loss_C, _ = c_loss(nets["C"], nets["C_ema"], x, x_tf, queue, w_C)
        y, y_ref, fake, rec = translate(nets, x)
        with torch.no_grad():
            key_ref = nets["C_ema"](torch.roll(x, 1, 0))[1]
        return {"C": loss_C,
                "D": on * d_loss(nets["D"], x, y, fake, y_ref),
                "G": on * g_loss(nets["C"], nets["D"], x, fake, rec, y, y_ref, key_ref, queue)}
