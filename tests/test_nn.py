"""Module API (registration, names, modes, state_dict, to, repr) and the layers, without torch."""
from collections import OrderedDict

import numpy as np
import pytest

import tinygrad_nd as tnd
from tinygrad_nd import nn, optim


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(tnd.ones(3))
        self.register_buffer("count", tnd.zeros(1))
        self.inner = nn.Linear(3, 2)
        self.offset = nn.Parameter(tnd.zeros(2))

    def forward(self, x):
        return self.inner(x * self.scale) + self.offset


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.BatchNorm1d(3))
        self.block = Block()
        self.head = nn.Linear(2, 1)

    def forward(self, x):
        return self.head(self.block(self.features(x)))


def values(module):
    return {k: v.numpy().copy() for k, v in module.state_dict().items()}


def assert_same(a, b):
    assert list(a) == list(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ----------------------------------------------------------------------------- registration
def test_registration_order_and_dotted_names():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias",
        "block.scale", "block.offset", "block.inner.weight", "block.inner.bias",
        "head.weight", "head.bias"]
    assert [n for n, _ in net.named_buffers()] == [
        "features.2.running_mean", "features.2.running_var", "features.2.num_batches_tracked",
        "block.count"]
    assert list(net.state_dict()) == [
        "features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias",
        "features.2.running_mean", "features.2.running_var", "features.2.num_batches_tracked",
        "block.scale", "block.offset", "block.count", "block.inner.weight", "block.inner.bias",
        "head.weight", "head.bias"]
    assert [n for n, _ in net.named_children()] == ["features", "block", "head"]
    assert [n for n, _ in net.named_modules()] == [
        "", "features", "features.0", "features.1", "features.2", "block", "block.inner", "head"]
    assert list(net.children())[1] is net.block
    assert all(isinstance(p, nn.Parameter) for p in net.parameters())
    assert len(list(net.parameters(recurse=False))) == 0
    assert [n for n, _ in net.block.named_parameters(recurse=False)] == ["scale", "offset"]


def test_attribute_kinds_are_tracked_and_reassigned():
    block = Block()
    assert block.count.shape == (1,) and "count" in dict(block.named_buffers())
    block.count = tnd.ones(1)  # assigning a Tensor to a buffer name updates the buffer
    assert dict(block.named_buffers())["count"].tolist() == [1.0]
    with pytest.raises(TypeError, match="parameter 'scale'"):
        block.scale = tnd.ones(3)  # a plain Tensor is not a Parameter
    block.scale = None
    assert "scale" not in dict(block.named_parameters())
    block.scale = nn.Parameter(tnd.ones(3))
    block.inner = nn.Tanh()  # a module replaces a module under the same name
    assert [n for n, _ in block.named_parameters()] == ["scale", "offset"]
    block.plain = 3  # ordinary attributes are not registered
    assert block.plain == 3 and "plain" not in block.state_dict()
    del block.offset
    assert [n for n, _ in block.named_parameters()] == ["scale"]
    with pytest.raises(AttributeError, match="has no attribute 'offset'"):
        _ = block.offset
    with pytest.raises(KeyError, match="already exists"):
        block.register_buffer("plain", tnd.zeros(1))
    with pytest.raises(KeyError, match="contain no '.'"):
        block.register_parameter("a.b", None)
    with pytest.raises(TypeError, match="wrap it in nn.Parameter"):
        block.register_parameter("w", tnd.zeros(1))


def test_assigning_before_init_says_what_to_do():
    class Forgetful(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(tnd.zeros(1))

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Forgetful()


def test_shared_parameters_are_listed_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    assert len(list(model.parameters())) == 2
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [n for n, _ in model.named_modules()] == ["", "0", "1"]


def test_parameter_is_a_tensor_that_requires_grad():
    p = nn.Parameter(tnd.zeros(2, 2))
    assert isinstance(p, tnd.Tensor) and isinstance(p, nn.Parameter)
    assert p.requires_grad and p.is_leaf
    assert not nn.Parameter(tnd.zeros(2), requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert not isinstance(p * 2, nn.Parameter)
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(tnd.tensor([1, 2]))


def test_forward_is_required():
    with pytest.raises(NotImplementedError, match="define forward"):
        nn.Module()(tnd.zeros(1))


def test_call_records_the_module_scope():
    net = Net()
    y = net(tnd.randn(5, 4))
    assert y.grad_fn.scope[0] is net and y.grad_fn.scope[-1] is net.head
    assert (y * 2).grad_fn.scope == ()  # the scope ends with the call


# ----------------------------------------------------------------------------- modes and grads
def test_train_eval_propagate():
    net = Net()
    assert net.training and net.features[2].training
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(TypeError):
        net.train("no")


def test_zero_grad_sets_none_or_zeros():
    net = Net()
    net(tnd.randn(5, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(not p.grad.numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_requires_grad_freezes():
    net = Net().requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_apply_visits_children_first():
    seen = []
    Net().apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "ReLU", "BatchNorm1d", "Sequential", "Linear", "Block", "Linear", "Net"]


# ----------------------------------------------------------------------------- state_dict
def test_state_dict_is_a_detached_snapshot():
    net = Net()
    state = net.state_dict()
    assert not any(v.requires_grad for v in state.values())
    assert state["features.2.num_batches_tracked"].dtype == tnd.int64
    before = state["head.weight"].numpy().copy()
    net.head.weight.data += 1.0
    np.testing.assert_array_equal(state["head.weight"].numpy(), before)
    live = net.state_dict(keep_vars=True)
    assert live["head.weight"] is net.head.weight


def test_load_state_dict_round_trip_and_copy():
    a, b = Net(), Net()
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    assert_same(values(a), values(b))
    weight = b.head.weight
    source = a.state_dict()
    b.load_state_dict(source)
    assert b.head.weight is weight  # the Parameter objects stay (optimizers keep working)
    source["head.weight"].data += 1  # the model holds a copy, not the caller's array
    np.testing.assert_array_equal(b.head.weight.numpy(), a.head.weight.numpy())
    # raw numpy arrays are accepted too
    c = Net()
    c.load_state_dict({k: v.numpy() for k, v in a.state_dict().items()})
    assert_same(values(a), values(c))


@pytest.mark.parametrize("corrupt, message", [
    (lambda s: s.__setitem__("head.weight", tnd.zeros(2, 2)), r"size mismatch for 'head.weight'"),
    (lambda s: s.__setitem__("head.bias", tnd.zeros(1, dtype=tnd.float64)), r"dtype mismatch for 'head.bias'"),
    (lambda s: s.__setitem__("block.count", "zero"), r"'block.count' is a str"),
    (lambda s: s.pop("block.inner.bias"), r"Missing key\(s\) in state_dict: 'block.inner.bias'"),
    (lambda s: s.__setitem__("block.extra", tnd.zeros(1)), r"Unexpected key\(s\) in state_dict: 'block.extra'"),
], ids=["shape", "dtype", "type", "missing", "unexpected"])
def test_bad_state_leaves_the_model_untouched(corrupt, message):
    source, target = Net(), Net()
    state = source.state_dict()
    corrupt(state)  # every other key is valid and different from the target's values
    before = values(target)
    with pytest.raises(RuntimeError, match=message) as info:
        target.load_state_dict(state)
    assert "nothing was loaded" in str(info.value)
    assert_same(values(target), before)


def test_errors_are_all_listed_at_once():
    state = Net().state_dict()
    state["head.weight"] = tnd.zeros(5)
    del state["head.bias"]
    state["junk"] = tnd.zeros(1)
    with pytest.raises(RuntimeError) as info:
        Net().load_state_dict(state)
    text = str(info.value)
    assert "'junk'" in text and "'head.bias'" in text and "size mismatch for 'head.weight'" in text


def test_non_strict_loading_reports_keys_and_loads_the_rest():
    source, target = Net(), Net()
    state = source.state_dict()
    del state["head.bias"]
    state["unknown"] = tnd.zeros(1)
    bias_before = target.head.bias.numpy().copy()
    missing, unexpected = target.load_state_dict(state, strict=False)
    assert missing == ["head.bias"] and unexpected == ["unknown"]
    np.testing.assert_array_equal(target.head.weight.numpy(), source.head.weight.numpy())
    np.testing.assert_array_equal(target.head.bias.numpy(), bias_before)
    with pytest.raises(RuntimeError, match="size mismatch"):  # shapes are checked even non-strict
        target.load_state_dict({"head.weight": tnd.zeros(3, 3)}, strict=False)
    with pytest.raises(TypeError, match="mapping"):
        target.load_state_dict([1, 2])


def test_non_persistent_buffers_stay_out_of_state_dict():
    m = nn.Module()
    m.register_buffer("tmp", tnd.zeros(2), persistent=False)
    assert m.state_dict() == {} and [n for n, _ in m.named_buffers()] == ["tmp"]


# ----------------------------------------------------------------------------- to / dtype / device
def test_to_casts_floats_in_place_and_keeps_parameter_objects():
    net = Net()
    net(tnd.randn(5, 4)).sum().backward()
    weight = net.head.weight
    assert net.to(tnd.float64) is net
    assert net.head.weight is weight and weight.dtype == tnd.float64
    assert weight.grad.dtype == tnd.float64
    assert net.features[2].running_var.dtype == tnd.float64
    assert net.features[2].num_batches_tracked.dtype == tnd.int64  # integers keep their dtype
    assert net(tnd.randn(5, 4, dtype=tnd.float64)).dtype == tnd.float64
    net.float()
    assert all(p.dtype == tnd.float32 for p in net.parameters())
    net.double()
    assert all(p.dtype == tnd.float64 for p in net.parameters())
    net.to(dtype="float32")
    assert all(p.dtype == tnd.float32 for p in net.parameters())
    assert net.cpu() is net and net.to("cpu").head.weight.device == "cpu"
    with pytest.raises(TypeError, match="floating point"):
        net.to(dtype=tnd.int64)
    with pytest.raises(ValueError, match="unknown device"):
        net.to("tpu")


def test_failed_move_leaves_the_model_on_its_device():
    try:
        tnd.backend.cupy_module()
        pytest.skip("a GPU is available: the failure path cannot be provoked")
    except RuntimeError:
        pass
    net = Net()
    before = values(net)
    with pytest.raises(RuntimeError, match="CuPy"):
        net.cuda()
    assert all(p.device == "cpu" for p in net.parameters())
    assert_same(values(net), before)


@pytest.mark.gpu
def test_to_cuda_and_back():
    try:
        tnd.backend.cupy_module()
    except RuntimeError:
        pytest.skip("needs CuPy and a CUDA GPU")
    tnd.manual_seed(0)
    net = Net()
    x = tnd.randn(5, 4)
    expected = net(x).numpy()
    state = net.state_dict()
    net.cuda()
    assert all(t.device == "cuda:0" for t in net.state_dict(keep_vars=True).values())
    np.testing.assert_allclose(net(x.cuda()).numpy(), expected, rtol=1e-5, atol=1e-6)
    net.load_state_dict(state)  # a CPU state loads into a GPU model
    assert net.head.weight.device == "cuda:0"
    net.cpu()
    np.testing.assert_allclose(net(x).numpy(), expected, rtol=1e-6)


# ----------------------------------------------------------------------------- repr
def test_repr_is_nested_like_pytorch():
    assert repr(Net()) == (
        "Net(\n"
        "  (features): Sequential(\n"
        "    (0): Linear(in_features=4, out_features=3, bias=True)\n"
        "    (1): ReLU()\n"
        "    (2): BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n"
        "  )\n"
        "  (block): Block(\n"
        "    (inner): Linear(in_features=3, out_features=2, bias=True)\n"
        "  )\n"
        "  (head): Linear(in_features=2, out_features=1, bias=True)\n"
        ")")


@pytest.mark.parametrize("layer, text", [
    (lambda: nn.Conv2d(3, 8, 3), "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))"),
    (lambda: nn.Conv1d(4, 8, 5, stride=2, padding=2, dilation=3, groups=4, bias=False),
     "Conv1d(4, 8, kernel_size=(5,), stride=(2,), padding=(2,), dilation=(3,), groups=4, bias=False)"),
    (lambda: nn.ConvNd(1, 2, (3, 3, 3, 3), padding="same"),
     "ConvNd(1, 2, kernel_size=(3, 3, 3, 3), stride=(1, 1, 1, 1), padding='same')"),
    (lambda: nn.MaxPool2d(2), "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"),
    (lambda: nn.AvgPool3d((1, 2, 2), stride=1), "AvgPool3d(kernel_size=(1, 2, 2), stride=1, padding=0)"),
    (lambda: nn.BatchNorm3d(4, momentum=None),
     "BatchNorm3d(4, eps=1e-05, momentum=None, affine=True, track_running_stats=True)"),
    (lambda: nn.Dropout(0.25), "Dropout(p=0.25)"),
    (lambda: nn.Flatten(), "Flatten(start_dim=1, end_dim=-1)"),
    (lambda: nn.CrossEntropyLoss(), "CrossEntropyLoss()"),
    (lambda: nn.MSELoss(reduction="sum"), "MSELoss(reduction='sum')"),
], ids=["conv2d", "conv1d", "convnd", "maxpool", "avgpool", "bn", "dropout", "flatten", "ce", "mse"])
def test_layer_reprs(layer, text):
    assert repr(layer()) == text


# ----------------------------------------------------------------------------- containers
def test_sequential_indexing_and_iteration():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and list(seq) == layers
    assert seq[0] is layers[0] and seq[-1] is layers[2]
    head = seq[1:]
    assert isinstance(head, nn.Sequential) and [n for n, _ in head.named_children()] == ["1", "2"]
    assert head(tnd.ones(4, 3)).shape == (4, 1)
    seq[1] = nn.Tanh()
    assert isinstance(seq[1], nn.Tanh)
    seq.append(nn.Sigmoid())
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"]
    with pytest.raises(IndexError, match="out of range"):
        seq[4]
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)
    named = nn.Sequential(OrderedDict([("conv", nn.Conv1d(1, 1, 1)), ("act", nn.ReLU())]))
    assert [n for n, _ in named.named_parameters()] == ["conv.weight", "conv.bias"]
    assert named.conv is named[0]


def test_module_list_registers_its_modules():
    blocks = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
    blocks.append(nn.Linear(2, 1))
    assert [n for n, _ in blocks.named_parameters()][-2:] == ["2.weight", "2.bias"]
    assert len(blocks[:2]) == 2


# ----------------------------------------------------------------------------- layers: shape errors
@pytest.mark.parametrize("layer, x, message", [
    (lambda: nn.Linear(3, 4), (2, 5),
     r"Linear\(in_features=3, out_features=4, bias=True\): expected input \(\*, 3\), got \(2, 5\)"),
    (lambda: nn.Conv2d(3, 8, 3), (4, 5, 6, 7),
     r"Conv2d\(3, 8, kernel_size=\(3, 3\), stride=\(1, 1\)\): "
     r"expected input \(N, 3, H, W\) or \(3, H, W\), got \(4, 5, 6, 7\)"),
    (lambda: nn.Conv1d(2, 2, 3), (2, 2, 4, 4), r"expected input \(N, 2, L\) or \(2, L\), got \(2, 2, 4, 4\)"),
    (lambda: nn.Conv3d(1, 2, 3), (1, 1, 2, 5, 5), r"Conv3d\(1, 2, .*\): .*kernel"),
    (lambda: nn.MaxPool2d(2), (2, 3, 4, 4, 4), r"MaxPool2d\(.*\): expected input \(N, C, H, W\) or \(C, H, W\)"),
    (lambda: nn.AvgPoolNd(2), (4, 4), r"AvgPoolNd\(.*\): expected input \(N, C, D1, ..., Dk\)"),
    (lambda: nn.MaxPool1d(2, padding=2), (1, 1, 8), r"MaxPool1d\(.*\): .*padding"),
    (lambda: nn.BatchNorm2d(3), (2, 4, 5, 5),
     r"BatchNorm2d\(3, .*\): expected input \(N, 3, H, W\), got \(2, 4, 5, 5\)"),
    (lambda: nn.BatchNorm1d(3), (2, 3, 4, 4), r"expected input \(N, 3\) or \(N, 3, L\)"),
    (lambda: nn.CrossEntropyLoss(), (3,), r"CrossEntropyLoss\(\): expected input logits"),
], ids=["linear", "conv2d", "conv1d", "conv3d-too-small", "maxpool2d", "avgpoolnd", "maxpool-padding",
        "bn2d", "bn1d", "ce"])
def test_layers_name_themselves_and_the_expected_shape(layer, x, message):
    module = layer()
    args = (tnd.zeros(*x),) if not isinstance(module, nn.CrossEntropyLoss) else (tnd.zeros(*x), tnd.tensor([0]))
    with pytest.raises(ValueError, match=message):
        module(*args)


def test_layers_reject_non_tensors():
    with pytest.raises(TypeError, match=r"Linear\(.*\): expected a Tensor input, got list"):
        nn.Linear(2, 2)([1.0, 2.0])


@pytest.mark.parametrize("make, message", [
    (lambda: nn.ConvNd(1, 1, 3), "int kernel_size"),
    (lambda: nn.Conv2d(3, 4, 3, groups=2), "groups=2 must divide"),
    (lambda: nn.Conv2d(1, 1, (3, 3, 3)), "kernel_size must be"),
    (lambda: nn.Conv2d(1, 1, 3, stride=2, padding="same"), "padding='same' needs stride 1"),
    (lambda: nn.Conv2d(1, 1, 3, padding="full"), "padding must be"),
    (lambda: nn.Conv2d(0, 1, 3), "in_channels must be a positive int"),
    (lambda: nn.Linear(2, 0), "out_features must be a positive int"),
    (lambda: nn.MaxPool2d(0), "kernel_size must be"),
    (lambda: nn.MaxPool2d((2, 2), stride=(1, 1, 1)), "stride must be"),
    (lambda: nn.Dropout(1.5), "p must be a probability"),
    (lambda: nn.BatchNorm2d(3, momentum=2), "momentum"),
    (lambda: nn.MSELoss(reduction="avg"), "reduction must be"),
], ids=["convnd-int", "groups", "kernel-len", "same-stride", "padding-str", "channels", "features",
        "pool-kernel", "pool-stride", "dropout", "bn-momentum", "reduction"])
def test_constructor_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ----------------------------------------------------------------------------- layers: values
def test_linear_matches_numpy():
    layer = nn.Linear(3, 2).double()
    x = np.random.default_rng(0).standard_normal((4, 5, 3))
    expected = x @ layer.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(layer(tnd.tensor(x)).numpy(), expected, rtol=1e-12)
    assert nn.Linear(3, 2, bias=False).bias is None
    assert nn.Linear(3, 2, dtype=tnd.float64).weight.dtype == tnd.float64


def test_conv_and_pool_layers_shapes_and_unbatched_inputs():
    conv = nn.Conv2d(2, 4, 3, padding=1)
    x = tnd.randn(2, 5, 5)
    np.testing.assert_allclose(conv(x).numpy(), conv(x.unsqueeze(0)).numpy()[0], rtol=1e-6)
    assert nn.ConvNd(1, 2, (2, 2, 2, 2))(tnd.zeros(1, 1, 3, 3, 3, 3)).shape == (1, 2, 2, 2, 2, 2)
    assert nn.Conv3d(2, 2, 3, padding="same", groups=2)(tnd.zeros(1, 2, 4, 4, 4)).shape == (1, 2, 4, 4, 4)
    y, idx = nn.MaxPool1d(2, return_indices=True)(tnd.tensor([[[1.0, 3.0, 2.0, 0.0]]]))
    assert y.tolist() == [[[3.0, 2.0]]] and idx.tolist() == [[[1, 2]]]
    assert nn.MaxPool2d(2)(tnd.zeros(3, 4, 4)).shape == (3, 2, 2)  # unbatched
    assert nn.MaxPoolNd(2)(tnd.zeros(1, 1, 4, 4, 4)).shape == (1, 1, 2, 2, 2)
    assert nn.AvgPoolNd((2, 1))(tnd.zeros(1, 1, 4, 4)).shape == (1, 1, 2, 4)
    out = nn.AvgPool2d(2, padding=1, count_include_pad=False)(tnd.ones(1, 1, 2, 2))
    assert out.tolist() == [[[[1.0, 1.0], [1.0, 1.0]]]]
    assert nn.MaxPool2d(2, ceil_mode=True)(tnd.zeros(1, 1, 5, 5)).shape == (1, 1, 3, 3)


def test_conv_layer_gradients_reach_weight_and_bias():
    conv = nn.Conv1d(1, 2, 2)
    conv(tnd.ones(1, 1, 4)).sum().backward()
    assert conv.weight.grad.tolist() == [[[3.0, 3.0]], [[3.0, 3.0]]]
    assert conv.bias.grad.tolist() == [3.0, 3.0]


def test_activations_flatten_identity():
    x = tnd.tensor([[-1.0, 0.5], [2.0, -3.0]])
    assert nn.ReLU()(x).tolist() == [[0.0, 0.5], [2.0, 0.0]]
    np.testing.assert_allclose(nn.Sigmoid()(x).numpy(), 1 / (1 + np.exp(-x.numpy())), rtol=1e-6)
    np.testing.assert_allclose(nn.Tanh()(x).numpy(), np.tanh(x.numpy()), rtol=1e-6)
    assert nn.Identity()(x) is x
    assert nn.Flatten(0)(tnd.zeros(2, 3, 4)).shape == (24,)
    assert nn.Flatten(1, 2)(tnd.zeros(2, 3, 4, 5)).shape == (2, 12, 5)
    with pytest.raises(ValueError, match=r"Flatten\(start_dim=3"):
        nn.Flatten(3)(tnd.zeros(2, 3))


def test_dropout_train_and_eval():
    drop = nn.Dropout(0.25)
    x = tnd.ones(100_000)
    tnd.manual_seed(7)
    y = drop(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    tnd.manual_seed(7)
    np.testing.assert_array_equal(drop(x).numpy(), y)  # the seed fixes the mask
    drop.eval()
    assert drop(x) is x


def test_losses():
    pred, target = tnd.tensor([[1.0, 2.0], [3.0, 5.0]]), tnd.tensor([[0.0, 2.0], [3.0, 3.0]])
    assert nn.MSELoss()(pred, target).item() == pytest.approx(1.25)
    assert nn.MSELoss(reduction="none")(pred, target).tolist() == [[1.0, 0.0], [0.0, 4.0]]
    logits = tnd.tensor([[2.0, 0.0], [0.0, 0.0]])
    expected = [np.log(1 + np.exp(-2.0)), np.log(2.0)]
    np.testing.assert_allclose(nn.CrossEntropyLoss(reduction="none")(logits, tnd.tensor([0, 1])).numpy(),
                               expected, rtol=1e-6)
    assert nn.CrossEntropyLoss(reduction="sum")(logits, tnd.tensor([0, 1])).item() == pytest.approx(sum(expected))


# ----------------------------------------------------------------------------- BatchNorm
def test_batchnorm_statistics_by_hand():
    bn = nn.BatchNorm2d(2, momentum=0.5).double()
    x = np.random.default_rng(1).standard_normal((4, 2, 3, 3)) * 2 + 3
    y = bn(tnd.tensor(x)).numpy()
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(y, (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5), rtol=1e-12)
    n = 4 * 3 * 3
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.5 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.5 + 0.5 * var * n / (n - 1), rtol=1e-12)
    assert bn.num_batches_tracked.item() == 1
    bn.eval()
    z = bn(tnd.tensor(x)).numpy()
    expected = (x - bn.running_mean.numpy()[:, None, None]) / np.sqrt(bn.running_var.numpy()[:, None, None] + 1e-5)
    np.testing.assert_allclose(z, expected, rtol=1e-12)
    assert bn.num_batches_tracked.item() == 1  # eval does not count


def test_batchnorm_keeps_buffer_dtypes_and_rejects_single_values():
    bn = nn.BatchNorm1d(3)
    bn(tnd.randn(4, 3, dtype=tnd.float64))
    assert bn.running_mean.dtype == tnd.float32 and bn.num_batches_tracked.dtype == tnd.int64
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(tnd.randn(1, 3))
    assert bn.eval()(tnd.randn(1, 3)).shape == (1, 3)
    no_stats = nn.BatchNorm2d(2, affine=False, track_running_stats=False)
    assert list(no_stats.state_dict()) == [] and no_stats.running_mean is None


def test_batchnorm_reset():
    bn = nn.BatchNorm1d(2)
    bn(tnd.randn(5, 2) + 3)
    bn.weight.data += 1
    bn.reset_parameters()
    assert bn.running_mean.tolist() == [0.0, 0.0] and bn.running_var.tolist() == [1.0, 1.0]
    assert bn.num_batches_tracked.item() == 0 and bn.weight.tolist() == [1.0, 1.0]


def test_a_small_cnn_learns():
    """A regression test for the whole stack: a CNN separates two kinds of 6x6 images."""
    tnd.manual_seed(0)
    gen = np.random.default_rng(0)
    x = gen.standard_normal((32, 1, 6, 6)).astype(np.float32) * 0.3
    labels = gen.integers(0, 2, 32)
    x[labels == 1, :, 2:4, 2:4] += 2.0  # class 1 has a bright centre
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 2))
    opt = optim.Adam(model.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(model(tnd.tensor(x)), tnd.tensor(labels))
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
    accuracy = (model(tnd.tensor(x)).argmax(1).numpy() == labels).mean()
    assert loss.item() < 0.2 * first and accuracy == 1.0
