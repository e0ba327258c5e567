import pytest
import torch

from mlip.models import build
from mlip.train.module import PotentialModule


@pytest.mark.parametrize("step, decay", [(1, 2 / 11), (10, 11 / 20), (100, 101 / 110), (10_000, 0.99)])
def test_the_ema_decay_warms_up(step, decay):
    """The EMA starts equal to the model; after every weight moves by +1, the EMA moves by 1 - decay."""
    module = PotentialModule(build("facet", preset="small"), ema_decay=0.99)
    before = [p.clone() for p in module.ema.parameters()]
    with torch.no_grad():
        for p in module.model.parameters():
            p.add_(1.0)
    module.update_ema(step)
    shifts = torch.cat([(e - b).flatten() for e, b in zip(module.ema.parameters(), before)])
    assert torch.allclose(shifts, torch.full_like(shifts, 1 - decay), atol=1e-5)


def test_without_ema_the_model_itself_is_evaluated():
    module = PotentialModule(build("facet", preset="small"), ema_decay=None)
    module.update_ema(5)
    assert module.ema is None and module.evaluation_model is module.model
