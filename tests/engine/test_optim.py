import copy
import io
import itertools
import math

import pytest
import torch

from sslcli.engine.contract import GroupOptions
from sslcli.engine.optim import (
    LARS,
    OPTIMIZERS,
    make_optimizer,
    parameter_groups,
    scaled_lr,
    set_learning_rates,
    warmup_cosine,
)
from sslcli.errors import SSLError


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def test_lars_two_steps_match_a_hand_computation() -> None:
    lr, momentum, weight_decay, trust, eps = 0.5, 0.9, 0.1, 0.01, 1e-8
    weight = torch.nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64))
    bias = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    optimizer = LARS(
        [
            {"params": [weight]},
            # Excluded: neither this weight decay nor the trust ratio applies.
            {"params": [bias], "lars_exclude": True},
        ],
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        trust_coefficient=trust,
        eps=eps,
    )
    grad_w, grad_b = [0.7, -0.1], [0.5, 0.25]
    w, b = [3.0, 4.0], [1.0, -2.0]
    mu_w, mu_b = [0.0, 0.0], [0.0, 0.0]
    for _ in range(2):
        weight.grad = torch.tensor(grad_w, dtype=torch.float64)
        bias.grad = torch.tensor(grad_b, dtype=torch.float64)
        optimizer.step()

        g = [gi + weight_decay * wi for gi, wi in zip(grad_w, w, strict=True)]
        ratio = trust * _norm(w) / (_norm(g) + eps)
        mu_w = [momentum * m + ratio * gi for m, gi in zip(mu_w, g, strict=True)]
        w = [wi - lr * m for wi, m in zip(w, mu_w, strict=True)]
        mu_b = [momentum * m + gi for m, gi in zip(mu_b, grad_b, strict=True)]
        b = [bi - lr * m for bi, m in zip(b, mu_b, strict=True)]

        assert weight.tolist() == pytest.approx(w, rel=1e-12)
        assert bias.tolist() == pytest.approx(b, rel=1e-12)


def test_lars_uses_ratio_one_when_the_parameter_is_zero() -> None:
    weight = torch.nn.Parameter(torch.zeros(3))
    optimizer = LARS([weight], lr=0.1, weight_decay=0.5)
    weight.grad = torch.tensor([1.0, 2.0, -3.0])
    optimizer.step()
    assert weight.tolist() == pytest.approx([-0.1, -0.2, 0.3])


def _train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    inputs = torch.randn(8, 4, generator=torch.Generator().manual_seed(seed))
    optimizer.zero_grad()
    model(inputs).square().mean().backward()
    optimizer.step()


def test_lars_state_dict_round_trip_continues_identically() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.BatchNorm1d(5))
    optimizer = LARS(parameter_groups(model, 1e-4), lr=0.3)
    for seed in range(3):
        _train(model, optimizer, seed)

    saved = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, saved)
    saved.seek(0)
    state = torch.load(saved)
    resumed = copy.deepcopy(model)
    resumed.load_state_dict(state["model"])
    resumed_optimizer = LARS(parameter_groups(resumed, 1e-4), lr=0.3)
    resumed_optimizer.load_state_dict(state["optimizer"])

    _train(model, optimizer, 3)
    _train(resumed, resumed_optimizer, 3)
    for original, restored in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(original, restored)


def test_parameter_groups_keep_biases_and_norm_parameters_out_of_decay() -> None:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 2),
        torch.nn.LayerNorm(2),
    )
    model[4].requires_grad_(False)
    decay, no_decay = parameter_groups(model, 0.05)
    conv, batch_norm, linear = model[0], model[1], model[3]
    assert decay["weight_decay"] == 0.05
    assert not decay.get("lars_exclude", False)
    assert {id(p) for p in decay["params"]} == {id(conv.weight), id(linear.weight)}
    assert no_decay["weight_decay"] == 0.0
    assert no_decay["lars_exclude"] is True
    assert {id(p) for p in no_decay["params"]} == {
        id(conv.bias),
        id(batch_norm.weight),
        id(batch_norm.bias),
        id(linear.bias),
    }


class _SlowBiases(torch.nn.Sequential):
    """Declares its own options: the biases train at a tenth of the learning rate."""

    def group_options(self, name: str, parameter: torch.nn.Parameter) -> GroupOptions:
        return GroupOptions(lr_scale=0.1 if name.endswith("bias") else 1.0)


def test_a_model_declaring_options_gets_groups_of_its_own_at_their_learning_rate() -> None:
    model = _SlowBiases(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    linear, batch_norm = model[0], model[1]
    groups = parameter_groups(model, 0.05)
    # the two default groups first, then the declared one (no decay: its members are 1-d)
    assert [[id(p) for p in group["params"]] for group in groups] == [
        [id(linear.weight)],
        [id(batch_norm.weight)],
        [id(linear.bias), id(batch_norm.bias)],
    ]
    assert [group["lr_scale"] for group in groups] == [1.0, 1.0, 0.1]
    assert [group["weight_decay"] for group in groups] == [0.05, 0.0, 0.0]
    assert [group["lars_exclude"] for group in groups] == [False, True, True]

    optimizer = make_optimizer("lars", model, lr=0.2, weight_decay=0.05)
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.2, 0.2, 0.02])
    set_learning_rates(optimizer, 0.5, 2.0)  # what the trainer does at each step
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.5, 0.5, 0.05])


class _DecayedFixedHead(torch.nn.Module):
    """Declares every parameter decayed, and the head's at a fixed learning rate."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
        self.head = torch.nn.Linear(3, 2)

    def group_options(self, name: str, parameter: torch.nn.Parameter) -> GroupOptions:
        return GroupOptions(fixed_lr=name.startswith("head."), decay=True)


def test_declared_decay_and_fixed_learning_rate_shape_the_groups() -> None:
    model = _DecayedFixedHead()
    groups = parameter_groups(model, 0.05)
    assert [[id(p) for p in group["params"]] for group in groups] == [
        [id(p) for p in model.body.parameters()],  # the biases and BatchNorm decay too
        [],
        [id(p) for p in model.head.parameters()],
    ]
    assert [group["weight_decay"] for group in groups] == [0.05, 0.0, 0.05]
    assert [group["lars_exclude"] for group in groups] == [False, True, False]
    assert [group["fixed_lr"] for group in groups] == [False, False, True]

    optimizer = make_optimizer("sgd", model, lr=0.2, weight_decay=0.05)
    set_learning_rates(optimizer, 0.1, 0.2)  # half-way down the cosine
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.1, 0.1, 0.2])


def test_set_learning_rates_takes_a_group_without_options_at_the_scheduled_rate() -> None:
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    set_learning_rates(optimizer, 0.3, 0.5)
    assert optimizer.param_groups[0]["lr"] == 0.3


@pytest.mark.parametrize(
    ("name", "kind"),
    [("sgd", torch.optim.SGD), ("lars", LARS), ("adamw", torch.optim.AdamW)],
)
def test_make_optimizer_builds_each_choice(name: str, kind: type) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    optimizer = make_optimizer(name, model, lr=0.2, weight_decay=1e-4, momentum=0.8)
    assert type(optimizer) is kind
    assert [group["lr"] for group in optimizer.param_groups] == [0.2, 0.2]
    assert [group["weight_decay"] for group in optimizer.param_groups] == [1e-4, 0.0]
    if name != "adamw":
        assert [group["momentum"] for group in optimizer.param_groups] == [0.8, 0.8]
    if name == "sgd":
        assert optimizer.param_groups[0]["nesterov"] is False
    _train(model, optimizer, 0)


def test_all_optimizers_are_listed() -> None:
    assert OPTIMIZERS == ("sgd", "lars", "adamw")


def test_unknown_optimizer_is_a_usage_error_listing_the_choices() -> None:
    with pytest.raises(SSLError) as error:
        make_optimizer("adam", torch.nn.Linear(2, 2), lr=0.1, weight_decay=0.0)
    assert error.value.exit_code == 2
    assert "'adam'" in error.value.message
    assert "sgd, lars, adamw" in error.value.hint


def test_frozen_model_is_a_usage_error() -> None:
    with pytest.raises(SSLError) as error:
        make_optimizer("sgd", torch.nn.Linear(2, 2).requires_grad_(False), 0.1, 0.0)
    assert error.value.exit_code == 2


def test_warmup_cosine_values() -> None:
    def schedule(step: int) -> float:
        return warmup_cosine(step, total_steps=110, warmup_steps=10, base_lr=1.0, final_lr=0.1)

    assert schedule(0) == pytest.approx(0.1)
    assert schedule(4) == pytest.approx(0.5)
    assert schedule(9) == pytest.approx(1.0)
    assert schedule(10) == pytest.approx(1.0)
    assert schedule(60) == pytest.approx(0.55)
    assert schedule(110) == pytest.approx(0.1)
    assert schedule(500) == pytest.approx(0.1)
    after_warmup = [schedule(step) for step in range(10, 111)]
    assert all(a > b for a, b in itertools.pairwise(after_warmup))


def test_warmup_cosine_without_warmup_starts_at_the_base_rate() -> None:
    assert warmup_cosine(0, total_steps=10, warmup_steps=0, base_lr=0.4) == pytest.approx(0.4)
    assert warmup_cosine(10, total_steps=10, warmup_steps=0, base_lr=0.4) == pytest.approx(0.0)


def test_scaled_lr_is_the_linear_scaling_rule() -> None:
    assert scaled_lr(0.3, 4096) == pytest.approx(4.8)
    assert scaled_lr(1.0, 256) == 1.0
    assert scaled_lr(0.5, 128) == 0.25
    with pytest.raises(SSLError):
        scaled_lr(0.3, 0)
