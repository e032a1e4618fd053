"""VR networks: variant detection from tensor shapes, safe loading of shared/strided storage, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from vr_testlib import TINY_V5, make_ctx
from vsep_vr import nets
from vsep_vr.model import load_model, load_torch_net

from vsep_core.errors import ModelLoadError


def _meta_state(net_cls, *args) -> dict[str, torch.Tensor]:
    with torch.device("meta"):  # shapes only: real capacities cost no memory
        return net_cls(*args).state_dict()


@pytest.mark.parametrize(("ch", "branches", "extra", "name"), [
    (16, 5, False, "SP"),     # 31191: SP, 5 ASPP branches
    (16, 7, False, "SP"),     # 33966: SP, 7 branches
    (16, 6, True, "SP"),      # 129605: SP, 6 branches, extra encoder level
    (32, 5, False, "HP"),     # 123821 / 123812
    (64, 7, False, "HP2"),    # 537238 / 537227
])
def test_v5_capacity_from_shapes(ch, branches, extra, name):
    state = _meta_state(nets.CascadedASPPNet, 1344, ch, branches, extra)
    config = nets.detect_config(state)
    assert (config.generation, config.channels, config.aspp_branches, config.extra_level) == ("v5", ch, branches, extra)
    assert config.capacity_name == name and config.offset == 128
    rebuilt = _meta_state(lambda: nets.build_net(config, 672))
    assert {k: v.shape for k, v in rebuilt.items()} == {k: v.shape for k, v in state.items()}


@pytest.mark.parametrize(("nout", "nout_lstm"), [(32, 128), (48, 128), (64, 128), (16, 128), (4, 16)])
def test_v51_capacity_from_shapes(nout, nout_lstm):
    config = nets.detect_config(_meta_state(nets.CascadedNet, 1344, nout, nout_lstm))
    assert (config.generation, config.nout, config.nout_lstm, config.lstm_bins) == ("v51", nout, nout_lstm, 336)
    assert config.offset == 64
    with pytest.raises(nets.ConfigError, match="bins"):  # LSTM sizes tie the net to its band parameters
        nets.build_net(config, 1024)


def test_not_a_vr_state_dict():
    with pytest.raises(nets.ConfigError, match="not a VR network"):
        nets.detect_config({"encoder.weight": torch.zeros(2, 2)})
    state = _meta_state(nets.CascadedASPPNet, 1344, 16, 5, False)
    del state["stg1_low_band_net.aspp.bottleneck.0.conv.0.weight"]
    with pytest.raises(nets.ConfigError, match="bottleneck"):
        nets.detect_config(state)


def test_oracle_files_detected_by_shape_not_size(reference, manifest):
    v5 = nets.detect_config(nets.load_state(str(reference / "models" / "2_HP-UVR.pth")))
    assert (v5.generation, v5.capacity_name, v5.aspp_branches) == ("v5", "SP", 5)  # real 2_HP-UVR would be HP
    v51 = nets.detect_config(nets.load_state(str(reference / "models" / "UVR-De-Echo-Normal.pth")))
    data = manifest["models"]["vr_nets_new"]["model_data"]
    assert (v51.nout, v51.nout_lstm) == (data["nout"], data["nout_lstm"]) == (4, 16)


def test_shared_strided_storage_loads_exactly(reference, manifest):
    """The oracle's v5 file keeps 66 tensors as views into one storage (offsets, overlapping strides)."""
    path = reference / "models" / "2_HP-UVR.pth"
    raw = torch.load(path, map_location="cpu", weights_only=True)
    views = manifest["models"]["vr_nets"]["pool"]["views"]
    assert len(views) == 66
    pool = raw[next(iter(views))].untyped_storage()
    for key, view in views.items():
        t = raw[key]
        assert t.storage_offset() == view["offset"] and list(t.stride()) == view["stride"]
        assert t.untyped_storage().data_ptr() == pool.data_ptr()  # one shared storage
    net, _ = load_torch_net(path, 672)
    params = dict(net.state_dict())
    n_pool = manifest["models"]["vr_nets"]["pool"]["pool_elements"]
    flat = raw[next(iter(views))].as_strided((n_pool,), (1,), 0).clone()  # the whole storage, read plainly
    for key, view in views.items():
        expect = flat.as_strided(tuple(raw[key].shape), tuple(view["stride"]), view["offset"])
        assert torch.equal(params[key], expect), key
        assert params[key].is_contiguous()
    overlapping = [k for k, v in views.items() if v["stride"][0] < np.prod(raw[k].shape[1:])]
    assert len(overlapping) == manifest["models"]["vr_nets"]["pool"]["tensors_with_overlapping_rows"]


def test_unloadable_files_raise_model_load_error(tmp_path: Path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError):
        load_model(make_ctx(junk, TINY_V5))
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, other)
    with pytest.raises(ModelLoadError, match="not a VR model"):
        load_model(make_ctx(other, TINY_V5))
    pickled = tmp_path / "pickled.pth"
    torch.save({"net": object()}, pickled)  # needs full unpickling: refused by weights_only
    with pytest.raises(ModelLoadError):
        load_model(make_ctx(pickled, TINY_V5))


@pytest.mark.parametrize("net_args", [(256, 16, 5, False), (256, 16, 7, True)])
def test_conv_bn_fusion_keeps_the_result(net_args) -> None:
    """Folding BatchNorm into the convs (inference) removes every BatchNorm2d and gives the same masks."""
    import copy

    torch.manual_seed(0)
    net = nets.CascadedASPPNet(*net_args).eval()
    with torch.no_grad():  # non-trivial running statistics, so that the fold has something to do
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    fused = nets.fuse_conv_bn(copy.deepcopy(net))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    x = torch.rand(1, 2, 129, 64)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), net(x), rtol=1e-4, atol=1e-5)


def _with_statistics(net: torch.nn.Module) -> torch.nn.Module:
    """`net` in eval mode with non-trivial BatchNorm running statistics."""
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize(("net_cls", "args", "window", "most_flops"), [
    (nets.CascadedASPPNet, (1344, 8, 5, False), 512, 0.85),   # v5, the default window
    (nets.CascadedASPPNet, (2048, 8, 6, True), 320, 0.9),     # v5 with the extra level (five decoders)
    (nets.CascadedASPPNet, (512, 4, 7, False), 1024, 0.9),    # three quarters of the window kept
    (nets.CascadedNet, (1344, 8, 16), 512, 0.99),             # v5.1: the last decoder only
    (nets.CascadedNet, (2048, 8, 16), 320, 0.99),
])
@pytest.mark.parametrize("channels_last", [False, True])
def test_predict_centre_is_the_centre_of_the_whole_mask(net_cls, args, window, most_flops, channels_last) -> None:
    """The centre-only pass gives the frames [offset, window - offset) of the whole window's mask (to float32
    rounding: a narrower convolution may sum in another order), in both layouts (channels-last is the
    runner's), for batches and every window size; and it does less work than the whole pass."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    net = _with_statistics(net_cls(*args))
    x = torch.rand(2, 2, args[0] // 2 + 1, window)
    with torch.inference_mode():
        whole = net(x)[..., net.offset:window - net.offset]
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        with FlopCounterMode(display=False) as centre_flops:
            centre = nets.CentreMask(net)(x)
        with FlopCounterMode(display=False) as whole_flops:
            net(x)
    assert centre.shape == whole.shape == (2, 2, args[0] // 2 + 1, window - 2 * net.offset)
    torch.testing.assert_close(centre, whole, rtol=0, atol=2e-6)
    assert centre_flops.get_total_flops() < most_flops * whole_flops.get_total_flops()


def test_predict_centre_refuses_a_window_the_strides_do_not_divide() -> None:
    net = nets.CascadedASPPNet(256, 4, 5, False).eval()
    with torch.inference_mode(), pytest.raises(ValueError, match="window too small"):
        net.predict_centre(torch.rand(1, 2, 129, 300))
