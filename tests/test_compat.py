"""from_ncps: same outputs and states as the ncps module it was made from."""

import ncps.torch as nt
import ncps.wirings as nw
import pytest
import torch

from liquid_rl import CfC, LTC
from liquid_rl.compat import from_ncps


def _wirings():
    return {
        "int": lambda: 10,
        "full": lambda: nw.FullyConnected(10, 4),
        "autoncp": lambda: nw.AutoNCP(14, 3),
        "ncp": lambda: nw.NCP(5, 4, 2, 3, 3, 4, 2),
    }


def _compare(ref, ours, x, timespans=None):
    if timespans is not None:
        # ncps broadcasts per-sample timespans wrongly for batches (the known bug), so the
        # comparison with timespans uses batch 1, where ncps is right.
        x = x[:1]
        timespans = timespans[:1]
    yr, hr = ref(x, timespans=timespans)
    yo, ho = ours(x, timespans=timespans)
    torch.testing.assert_close(yo, yr, atol=1e-5, rtol=0)
    if isinstance(hr, tuple):
        for a, b in zip(ho, hr):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    else:
        torch.testing.assert_close(ho, hr, atol=1e-5, rtol=0)


@pytest.mark.parametrize("wiring", list(_wirings()))
@pytest.mark.parametrize("mixed", [False, True])
@pytest.mark.parametrize("with_time", [False, True])
def test_ltc(wiring, mixed, with_time):
    torch.manual_seed(0)
    ref = nt.LTC(6, _wirings()[wiring](), mixed_memory=mixed)
    ours = from_ncps(ref)
    assert isinstance(ours, LTC)
    x = torch.randn(3, 12, 6)
    ts = torch.rand(3, 12, 1) * 2 if with_time else None
    _compare(ref, ours, x, ts)


@pytest.mark.parametrize("wiring", ["int", "autoncp", "ncp"])
@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
@pytest.mark.parametrize("mixed", [False, True])
@pytest.mark.parametrize("with_time", [False, True])
def test_cfc(wiring, mode, mixed, with_time):
    torch.manual_seed(1)
    ref = nt.CfC(6, _wirings()[wiring](), mode=mode, mixed_memory=mixed)
    ours = from_ncps(ref)
    assert isinstance(ours, CfC)
    x = torch.randn(3, 12, 6)
    ts = torch.rand(3, 12, 1) * 2 if with_time else None
    _compare(ref, ours, x, ts)


@pytest.mark.parametrize("kwargs", [
    dict(proj_size=3), dict(backbone_layers=2, backbone_units=32, backbone_dropout=0.2),
    dict(activation="silu"), dict(backbone_layers=0), dict(batch_first=False), dict(return_sequences=False),
])
def test_cfc_options(kwargs):
    torch.manual_seed(2)
    ref = nt.CfC(6, 10, **kwargs).eval()
    ours = from_ncps(ref)
    assert not ours.training
    _compare(ref, ours, torch.randn(3, 12, 6))


def test_ltc_options_and_unbatched():
    torch.manual_seed(3)
    ref = nt.LTC(6, 8, ode_unfolds=3, input_mapping="linear", output_mapping=None,
                 implicit_param_constraints=False, return_sequences=False)
    ours = from_ncps(ref)
    _compare(ref, ours, torch.randn(3, 12, 6))
    x = torch.randn(12, 6)
    yr, hr = ref(x)
    yo, ho = ours(x)
    torch.testing.assert_close(yo, yr, atol=1e-5, rtol=0)
    torch.testing.assert_close(ho, hr, atol=1e-5, rtol=0)


def test_rejects_other_modules():
    with pytest.raises(ValueError, match="ncps.torch LTC or CfC"):
        from_ncps(torch.nn.LSTM(3, 4))
