"""train/loss is the loss the loop computed: several optimizers (DCGAN), AMP GradScaler
with skipped steps, LBFGS closures. Oracles: the values the loop itself recorded."""

from __future__ import annotations

import mlflow
import pytest
import torch

from helpers.training import flush, history, tiny_data
from helpers.training import quiet_autolog as _autolog


def _dcgan(steps: int, nz: int = 3):
    """The official DCGAN training idiom on tiny MLPs; returns (errD, errG) per step as printed."""
    torch.manual_seed(0)
    netG = torch.nn.Sequential(torch.nn.Linear(nz, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    netD = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1), torch.nn.Sigmoid())
    criterion = torch.nn.BCELoss()
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=1e-3, betas=(0.5, 0.999))
    printed = []
    for i, (real, _) in enumerate(tiny_data(n=8 * steps)):
        b = real.size(0)
        netD.zero_grad()
        errD_real = criterion(netD(real).view(-1), torch.full((b,), 1.0))
        errD_real.backward()
        fake = netG(torch.randn(b, nz))
        errD_fake = criterion(netD(fake.detach()).view(-1), torch.full((b,), 0.0))
        errD_fake.backward()
        errD = errD_real + errD_fake
        optD.step()
        netG.zero_grad()
        errG = criterion(netD(fake).view(-1), torch.full((b,), 1.0))
        errG.backward()
        optG.step()
        printed.append((errD.item(), errG.item()))
    return printed


def test_dcgan_idiom_logs_errD_and_errG_each_under_its_own_optimizer():
    _autolog()
    with mlflow.start_run() as run:
        printed = _dcgan(steps=6)
    flush()
    rid = run.info.run_id
    assert history(rid, "train/loss") == [(s, pytest.approx(d, rel=1e-6)) for s, (d, _) in enumerate(printed, 1)]
    assert history(rid, "train/adam_1/loss") == [(s, pytest.approx(g, rel=1e-6))
                                                 for s, (_, g) in enumerate(printed, 1)]
    assert history(rid, "train/lr") == [(s, pytest.approx(2e-4)) for s in range(1, 7)]
    assert history(rid, "train/adam_1/lr") == [(s, pytest.approx(1e-3)) for s in range(1, 7)]


def test_optimizer_names_knob_names_the_other_optimizers_series():
    _autolog(optimizer_names=["discriminator", "generator"])
    with mlflow.start_run() as run:
        printed = _dcgan(steps=3)
    flush()
    rid = run.info.run_id
    assert [v for _, v in history(rid, "train/generator/loss")] == pytest.approx([g for _, g in printed], rel=1e-6)
    assert [v for _, v in history(rid, "train/loss")] == pytest.approx([d for d, _ in printed], rel=1e-6)
    assert history(rid, "train/adam_1/loss") == []


def test_one_loss_stepped_by_two_optimizers_is_logged_for_both():
    torch.manual_seed(0)
    enc, dec = torch.nn.Linear(4, 3), torch.nn.Linear(3, 1)
    opt_enc, opt_dec = torch.optim.SGD(enc.parameters(), lr=0.1), torch.optim.SGD(dec.parameters(), lr=0.01)
    _autolog()
    losses = []
    with mlflow.start_run() as run:
        for x, y in tiny_data(n=32):
            loss = torch.nn.functional.mse_loss(dec(enc(x)), y)
            opt_enc.zero_grad(); opt_dec.zero_grad()  # noqa: E702
            loss.backward()
            opt_enc.step()
            opt_dec.step()
            losses.append(loss.item())
    flush()
    assert [v for _, v in history(run.info.run_id, "train/loss")] == pytest.approx(losses, rel=1e-6)
    assert [v for _, v in history(run.info.run_id, "train/sgd_1/loss")] == pytest.approx(losses, rel=1e-6)


def test_amp_grad_scaler_logs_the_unscaled_loss_and_skipped_steps_are_not_folded_into_the_next():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    force_inf = {1, 2, 3, 6}  # iterations whose grads we poison: the scaler must skip them
    _autolog()
    taken, skipped = [], 0
    with mlflow.start_run() as run:
        for i, (x, y) in enumerate(tiny_data(n=8 * 10)):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = torch.nn.functional.mse_loss(model(x).float(), y)
            opt.zero_grad()
            scaler.scale(loss).backward()
            if i in force_inf:
                model[0].weight.grad[0, 0] = float("inf")
            scale_before = scaler.get_scale()
            scaler.step(opt)
            scaler.update()
            if scaler.get_scale() < scale_before:  # GradScaler's own record of a skipped step
                skipped += 1
            else:
                taken.append(loss.item())
    flush()
    rid = run.info.run_id
    assert skipped == len(force_inf)
    logged = history(rid, "train/loss")
    assert [s for s, _ in logged] == list(range(1, len(taken) + 1))  # one point per real step
    assert [v for _, v in logged] == pytest.approx(taken, rel=1e-6)  # unscaled, never a neighbour's
    # the running count, logged at the real step that follows skips: iterations 1-3, then 6
    assert history(rid, "train/amp_skipped_steps") == [(2, 3), (4, 4)]


def test_lbfgs_logs_the_value_step_returns_not_the_line_search_evaluations():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5, line_search_fn="strong_wolfe")
    evaluations = []

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        evaluations.append(loss.item())
        return loss

    _autolog()
    returned = []
    with mlflow.start_run() as run:
        for _ in range(4):
            returned.append(float(opt.step(closure).detach()))
    flush()
    assert len(evaluations) > len(returned)  # several evaluations per step
    assert [v for _, v in history(run.info.run_id, "train/loss")] == pytest.approx(returned, rel=1e-6)


def test_a_closure_optimizer_step_with_sgd_logs_the_closure_value():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    _autolog()
    returned = []
    with mlflow.start_run() as run:
        for x, y in tiny_data(n=40):
            def closure():
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                return loss
            returned.append(opt.step(closure).item())
    flush()
    assert [v for _, v in history(run.info.run_id, "train/loss")] == pytest.approx(returned, rel=1e-6)
