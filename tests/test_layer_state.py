"""A layer keeps each forward's state until a backward answers it: reuse in one pass,
eval mode, the bound on pending forwards, and refusals instead of another call's gradient."""

import numpy as np
import pytest

import poolnd
from poolnd import nn
from poolnd.compat.tinyml import MaxPool2D

RNG = np.random.default_rng(11)
SAMPLES = np.full((2, 3, 2), 0.4)
LAYERS = {
    "MaxPool2d": lambda: nn.MaxPool2d(2),
    "MaxPool2d indices": lambda: nn.MaxPool2d(3, 2, 1, return_indices=True),
    "MaxPoolNd 4 axes": lambda: nn.MaxPoolNd((1, 2, 2, 2)),
    "AvgPool2d": lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True),
    "LPPool2d": lambda: nn.LPPool2d(2, 2),
    "LPPool2d inf": lambda: nn.LPPool2d(float("inf"), 3, 2),
    "AdaptiveMaxPool2d": lambda: nn.AdaptiveMaxPool2d((3, 4)),
    "AdaptiveAvgPool2d": lambda: nn.AdaptiveAvgPool2d((3, 4)),
    "FractionalMaxPool2d": lambda: nn.FractionalMaxPool2d(2, (4, 4), samples=SAMPLES),
    "MaxUnpool2d": lambda: nn.MaxUnpool2d(2),
    "tinyml MaxPool2D": lambda: MaxPool2D("pool", (3, 8, 8), 2, 2),
}


def _input(name):
    """Two inputs of one shape, unequal (so that routing by the wrong one shows)."""
    shape = (2, 2, 4, 8, 8) if "4 axes" in name else (2, 3, 8, 8)
    if name == "MaxUnpool2d":
        shape = (2, 3, 4, 4)
    return RNG.standard_normal(shape), RNG.standard_normal(shape)


def _forward(layer, x):
    if isinstance(layer, nn.MaxUnpoolNd):  # unpooling takes the indices of a max pool
        _, idx = poolnd.max_pool2d(np.repeat(np.repeat(x, 2, -1), 2, -2) * RNG.random(
            (*x.shape[:2], 8, 8)), 2, return_indices=True)
        return layer(x, idx)
    y = layer(x)
    return y[0] if isinstance(y, tuple) else y


def _grad(y, seed):
    return np.random.default_rng(seed).standard_normal(y.shape)


@pytest.mark.parametrize("name", LAYERS)
def test_a_layer_used_twice_answers_backwards_in_reverse_order(name):
    make = LAYERS[name]
    a, b = _input(name)
    rng_state = RNG.bit_generator.state
    alone_a, alone_b = make(), make()
    want_a = alone_a.backward(_grad(_forward(alone_a, a), 1))
    want_b = alone_b.backward(_grad(_forward(alone_b, b), 2))
    RNG.bit_generator.state = rng_state  # the unpooling indices again

    layer = make()
    ya, yb = _forward(layer, a), _forward(layer, b)
    got_b = layer.backward(_grad(yb, 2))
    got_a = layer.backward(_grad(ya, 1))
    np.testing.assert_array_equal(got_b, want_b)
    np.testing.assert_array_equal(got_a, want_a)
    assert not np.array_equal(got_a, got_b)  # the two forwards are told apart
    with pytest.raises(ValueError, match="more often than forward"):
        layer.backward(_grad(ya, 1))


@pytest.mark.parametrize("name", LAYERS)
def test_eval_mode_keeps_nothing_and_refuses_backward(name):
    layer = LAYERS[name]()
    a, _ = _input(name)
    assert layer.eval() is layer and not layer.training
    y = _forward(layer, a)
    with pytest.raises(ValueError, match=r"eval mode.*layer\.train\(\)"):
        layer.backward(np.ones_like(y))
    assert layer.train() is layer and layer.training
    y = _forward(layer, a)
    assert layer.backward(np.ones_like(y)).shape == a.shape


def test_eval_forgets_the_forwards_kept_in_training():
    layer = nn.MaxPool2d(2)
    y = layer(np.ones((1, 1, 4, 4)))
    layer.eval().train()
    with pytest.raises(ValueError, match="before forward"):
        layer.backward(np.ones_like(y))


def test_forwards_past_the_bound_forget_the_oldest_and_refuse_its_backward():
    layer = nn.MaxPool2d(2)
    layer.max_pending = 3
    xs = [RNG.standard_normal((1, 2, 4, 4)) for _ in range(4)]
    ys = [layer(x) for x in xs]
    for x, y in zip(xs[:0:-1], ys[:0:-1]):  # the three newest, newest first
        alone = nn.MaxPool2d(2)
        alone(x)
        np.testing.assert_array_equal(layer.backward(np.ones_like(y)),
                                      alone.backward(np.ones_like(y)))
    with pytest.raises(ValueError, match="max_pending=3"):
        layer.backward(np.ones_like(ys[0]))


def test_a_failed_backward_keeps_its_forward_pending():
    layer = nn.AvgPool2d(2)
    x = RNG.standard_normal((1, 1, 4, 4))
    y = layer(x)
    with pytest.raises(ValueError):
        layer.backward(np.ones((1, 1, 3, 3)))
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), np.full(x.shape, 0.25))


def test_train_takes_only_a_flag():
    with pytest.raises(TypeError, match="mode"):
        nn.MaxPool2d(2).train("no")
