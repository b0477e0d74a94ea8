"""What the run loop needs (lossgraph/train/protocols.py): lossgraph's own program, trainer and
dataset have every part, the optional ones included, and the stand-ins in run_fakes.py have only
the required ones, so the run tests cover the loop without the optional capabilities.

The optional capabilities are found with `isinstance`: a part renamed in the Trainer or the
Program would quietly turn one off (a run sampling with the live weights instead of the moving
averages), which the first test catches.
"""

from __future__ import annotations

from pathlib import Path

import lossgraph
from lossgraph.data import open_dataset
from lossgraph.train.protocols import (
    Accelerating,
    Averaging,
    Dataset,
    DistributedProgram,
    FitsJudges,
    NamesHazards,
    Program,
    Trainer,
)

from run_fakes import FakeDataset, FakeProgram

TINY = Path(__file__).with_name("tiny.yaml")
OPTIONAL = (Averaging, Accelerating, FitsJudges)


def test_lossgraph_program_trainer_and_dataset_have_every_part():
    program = lossgraph.compile(lossgraph.load(TINY, overrides=["+ema.G=0.9"]))
    assert isinstance(program, Program) and isinstance(program, DistributedProgram)
    assert isinstance(program, NamesHazards)
    trainer = program.trainer(program.build_networks(seed=0))
    assert isinstance(trainer, Trainer)
    assert all(isinstance(trainer, capability) for capability in OPTIONAL)
    spec = program.spec
    dataset = open_dataset(spec.dataset, spec.kinds, spec.train.image_size)
    assert isinstance(dataset, Dataset)


def test_the_stand_ins_have_only_the_required_parts():
    program = FakeProgram()
    assert isinstance(program, Program) and not isinstance(program, NamesHazards)
    trainer = program.trainer(program.build_networks(seed=0))
    assert isinstance(trainer, Trainer)
    assert not any(isinstance(trainer, capability) for capability in OPTIONAL)
    assert isinstance(FakeDataset(), Dataset)
