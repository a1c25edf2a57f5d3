"""SDQ — Stochastic Differentiable Quantization (Huang et al., ICML 2022), our reading of the abstract.

Stage 1, strategy search (:class:`StochasticNet`, a light fake-quantized copy of the float model,
:mod:`fpga_mpq.mpq.fakequant`, for any spec): every group (:mod:`fpga_mpq.mpq.widths`) holds an
adjacent pair (lo, hi) of its ladder and a Differentiable Bitwidth Parameter β ∈ [0, 1]. Each step draws hi with
probability β, else lo (once per group: both inputs of a residual Add see one draw), and
the straight-through mixture ``Q_lo + (z + β − sg(β))·(Q_hi − Q_lo)`` gives β the gradient
⟨∂L/∂q, Q_hi − Q_lo⟩. Loss = task + λ·E[cost]/cost(widest). The expected cost is exact under the
independent draws: per conv / dense layer, Σ over the four (weight, input) width pairs of their probability times
the budget metric measured by the cost model on the layer's current weights (a table refreshed every
epoch), so the search optimises the same LUT / DSP / BOPs figure the budget names. λ follows a
multiplicative controller towards a target that glides (log scale) from the widest cost down to the
budget over the first half of the search, so the weights adapt while the widths fall instead of
collapsing at the first step. β below ε moves the pair one rung down, above 1 − ε one rung up.
Commitment: hi if β ≥ ½ else lo; while the table cost is over budget the group with the lowest β
drops a rung.

Stage 2, fine-tuning the committed spec in a Brevitas QuantNet (the model that is exported): task
loss mixed with knowledge distillation from the float model, plus bin regularisation (each weight
pulled to its level; the levels' soft occupancy kept high-entropy). The real cost is then measured;
if it misses the budget, the proxy budget is scaled down and commitment and fine-tuning are redone.
A max-drop target bisects the budget (log scale) between the cheapest and widest configurations,
each step judged by the rule the final choice uses (:meth:`~fpga_mpq.mpq.problem.Problem.meets`: the drop's
upper confidence bound), so the bisection homes in on the cheapest design that rule accepts.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from fpga_mpq.errors import BadInput
from fpga_mpq.models.net import FloatNet, QuantNet
from fpga_mpq.mpq.fakequant import FakeQuantNet, Quantize, lambda_step
from fpga_mpq.mpq.front import Point
from fpga_mpq.mpq.problem import MethodResult, Problem, Target, calibrate, make_point
from fpga_mpq.mpq.widths import Group, Widths, apply_widths
from fpga_mpq.train import EVAL_BATCH, adam, quant_from_float
from fpga_mpq.train.twin import Twin

log = logging.getLogger(__name__)
CALIB_SAMPLES = 256
REPAIR_ROUNDS = 3
MAX_SEARCH_EPOCHS = 20  # the strategy search never trains longer than the QAT it stands in for


@dataclass(frozen=True)
class SdqConfig:
    search_epochs: int | None = None  # default: the training epochs (--epochs), at most 20
    beta_lr: float = 0.05
    lambda_init: float = 0.1
    controller_gain: float = 0.05
    eps: float = 0.05  # β threshold for moving the pair one rung
    kd_alpha: float = 0.5  # share of the distillation loss
    kd_temperature: float = 2.0
    bin_reg: float = 0.1  # the paper's ablation optimum
    entropy_weight: float = 0.1  # within the bin regulariser
    probes: int = 5  # bisection steps for a max-drop target


class _Dbp(nn.Module):
    """One group's Differentiable Bitwidth Parameter over a pair of adjacent ladder rungs."""

    def __init__(self, ladder: tuple[int, ...]) -> None:
        super().__init__()
        self.ladder = ladder
        self.idx = max(len(ladder) - 2, 0)  # start at the top pair, all mass on the widest
        self.beta = nn.Parameter(torch.tensor(1.0))
        self.z: torch.Tensor | None = None  # this step's draw, shared by every use of the quantizer

    @property
    def lo(self) -> int:
        return self.ladder[self.idx]

    @property
    def hi(self) -> int:
        return self.ladder[min(self.idx + 1, len(self.ladder) - 1)]

    def expected_bits(self) -> torch.Tensor:
        return self.lo + self.beta * (self.hi - self.lo)

    def committed(self) -> int:
        return self.hi if self.beta.item() >= 0.5 else self.lo

    def mix(self, q_lo: torch.Tensor, q_hi: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        if gen is None:  # evaluation: the committed width
            return q_hi if self.beta.item() >= 0.5 else q_lo
        if self.z is None:
            self.z = (torch.rand((), generator=gen) < self.beta.detach()).float()
        return q_lo + (self.z + self.beta - self.beta.detach()) * (q_hi - q_lo)

    def settle(self, eps: float) -> None:
        """Clamp β and move the pair one rung when β sits at an end."""
        with torch.no_grad():
            self.beta.clamp_(0.0, 1.0)
            if self.beta < eps and self.idx > 0:
                self.idx -= 1
                self.beta.fill_(1.0 - 4 * eps)
            elif self.beta > 1.0 - eps and self.idx < len(self.ladder) - 2:
                self.idx += 1
                self.beta.fill_(4 * eps)


class StochasticNet(FakeQuantNet):
    """The stage-1 network for any spec: each group's width is its DBP's draw (one per group per call)."""

    def setup_draws(self) -> None:
        self.dbp = nn.ModuleList([_Dbp(ladder) for ladder in self.ladders])
        self.gen: torch.Generator | None = None

    def mix(self, k: int, quantize: Quantize) -> torch.Tensor:
        d = self.dbp[k]
        return d.mix(quantize(d.lo), quantize(d.hi), self.gen)

    def forward(self, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        """One draw per group per call (a quantizer used twice, as a residual Add's, keeps its draw)."""
        self.gen = gen
        for d in self.dbp:
            d.z = None
        return self.quantized_forward(x)

    def expected_cost(self) -> torch.Tensor:
        """Σ_layers Σ_(w, x) P(w)·P(x)·cost(w, x): exact under the independent draws, differentiable in every β."""
        dbps = self.dbps()
        total = torch.zeros(())
        for table, (w, x) in zip(self.table, self.feeds, strict=True):
            d, a = dbps[w], dbps[x]
            for wb, pw in ((d.lo, 1 - d.beta), (d.hi, d.beta)):
                for xb, px in ((a.lo, 1 - a.beta), (a.hi, a.beta)):
                    total = total + pw * px * table[(wb, xb)]
        return total

    def dbps(self) -> dict[Group, _Dbp]:
        return dict(zip(self.groups, self.dbp, strict=True))

    def committed(self) -> Widths:
        return Widths(self.groups, tuple(d.committed() for d in self.dbp))


def _search(problem: Problem, net: StochasticNet, budget: float, cfg: SdqConfig) -> list[dict]:
    """Stage 1: learn weights and DBPs under the λ-weighted expected cost; returns per-epoch logs."""
    seed = problem.train_cfg.seed
    gen = torch.Generator().manual_seed(seed)
    betas = [d.beta for d in net.dbps().values()]
    opt_w = adam(net.net.parameters(), problem.train_cfg.lr)
    opt_b = adam(betas, cfg.beta_lr)
    x, y = torch.from_numpy(problem.split.x_train), torch.from_numpy(problem.split.y_train)
    lam, history = cfg.lambda_init, []
    epochs = cfg.search_epochs if cfg.search_epochs is not None else min(problem.train_cfg.epochs, MAX_SEARCH_EPOCHS)
    steps_per_epoch = math.ceil(len(x) / problem.train_cfg.batch_size)
    glide = max(1, epochs * steps_per_epoch // 2)
    step = 0
    for epoch in tqdm(range(epochs), desc="SDQ strategy search", leave=False, disable=None):
        net.refresh_costs()
        net.net.train()
        widest = net.proxy(problem.ladders.widest(problem.spec))
        rel_budget = budget / widest
        order = torch.randperm(len(x), generator=gen)
        sums = np.zeros(2)
        for start in range(0, len(x), problem.train_cfg.batch_size):
            idx = order[start : start + problem.train_cfg.batch_size]
            task = F.cross_entropy(net(x[idx], gen), y[idx])
            rel_cost = net.expected_cost() / widest
            opt_w.zero_grad()
            opt_b.zero_grad()
            (task + lam * rel_cost).backward()
            opt_w.step()
            opt_b.step()
            for d in net.dbps().values():
                d.settle(cfg.eps)
            lam = lambda_step(lam, rel_cost.item(), rel_budget, step / glide, cfg.controller_gain)
            step += 1
            sums += (task.item(), rel_cost.item())
        history.append(
            {
                "epoch": epoch,
                "task_loss": float(sums[0] / steps_per_epoch),
                "expected_rel_cost": float(sums[1] / steps_per_epoch),
                "lambda": lam,
                "widths": net.committed().label(),
            }
        )
        log.info("sdq search %s", history[-1])
    return history


def _commit(problem: Problem, net: StochasticNet, budget: float) -> Widths:
    """Each group's likelier width; then, while over the proxy budget, the least-wanted group drops a rung."""
    widths = net.committed()
    while net.proxy(widths) > budget:
        options = []
        for k, (g, d) in enumerate(net.dbps().items()):
            lower = [c for c in d.ladder if c < widths.get(g)]
            if lower:
                options.append((d.beta.item(), k, g, lower[-1]))
        if not options:
            break
        _, _, g, bits = min(options, key=lambda o: o[:2])
        widths = widths.set(g, bits)
    return widths


def _bin_reg(w: torch.Tensor, scale: torch.Tensor, m: int, entropy_weight: float) -> torch.Tensor:
    """Pull weights onto their quantization levels ``-m..m``; keep the levels' soft occupancy high-entropy.
    The occupancy is a linear-binned histogram (each weight splits its unit between its two nearest
    levels), O(weights): a Gaussian kernel over every level cost 95% of a Fashion MLP fine-tune step."""
    ws = w / scale.detach()
    pull = ((ws - torch.clamp(torch.round(ws), -m, m).detach()) ** 2).mean()
    v = (torch.clamp(ws, -m, m) + m).reshape(-1)  # 0 .. 2m
    lower = torch.clamp(torch.floor(v.detach()), max=2 * m - 1).long()
    frac = v - lower
    occupancy = torch.zeros(2 * m + 1, dtype=ws.dtype, device=ws.device)
    occupancy = occupancy.index_add(0, lower, 1 - frac).index_add(0, lower + 1, frac) / v.numel()
    entropy = -(occupancy * torch.log(occupancy + 1e-12)).sum() / math.log(2 * m + 1)
    return pull + entropy_weight * (1.0 - entropy)


def _finetune(
    problem: Problem, searched: FloatNet, widths: Widths, x_cal: np.ndarray, cfg: SdqConfig
) -> tuple[QuantNet, list[dict]]:
    """Stage 2: QAT of the committed spec from the searched weights, with distillation and bin regularisation."""
    tc = problem.train_cfg
    spec = apply_widths(problem.spec, widths)
    qmodel = quant_from_float(searched, spec, problem.split.input_shape, tc.seed)
    calibrate(qmodel, x_cal)
    gen = torch.Generator().manual_seed(tc.seed)
    x, y = torch.from_numpy(problem.split.x_train), torch.from_numpy(problem.split.y_train)
    with torch.no_grad():
        teacher = torch.cat([problem.fmodel(x[i : i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])
    twin = Twin(qmodel)
    opt = adam(qmodel.parameters(), tc.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(tc.epochs, 1))
    t, history = cfg.kd_temperature, []
    for epoch in tqdm(range(tc.epochs), desc=f"SDQ fine-tune {widths.label()}", leave=False, disable=None):
        qmodel.train()
        order = torch.randperm(len(x), generator=gen)
        sums = np.zeros(3)
        for start in range(0, len(x), tc.batch_size):
            idx = order[start : start + tc.batch_size]
            out = twin(x[idx])
            task = F.cross_entropy(out, y[idx])
            kd = F.kl_div(F.log_softmax(out / t, 1), F.softmax(teacher[idx] / t, 1), reduction="batchmean") * t * t
            reg = sum(_bin_reg(w, scale, m, cfg.entropy_weight) for w, scale, m in twin.weight_grids())
            opt.zero_grad()
            ((1 - cfg.kd_alpha) * task + cfg.kd_alpha * kd + cfg.bin_reg * reg).backward()
            opt.step()
            sums += (task.item(), kd.item(), reg.item())
        sched.step()
        n = math.ceil(len(x) / tc.batch_size)
        task_loss, kd_loss, bin_loss = map(float, sums / n)
        history.append({"epoch": epoch, "task_loss": task_loss, "kd_loss": kd_loss, "bin_reg": bin_loss})
        log.info("sdq fine-tune %s", history[-1])
    return qmodel.eval(), history


def _probe(
    problem: Problem, target_metric: str, budget: float, x_cal: np.ndarray, cfg: SdqConfig
) -> tuple[Point, QuantNet, dict]:
    """One SDQ run at ``budget`` (in the metric's units): search, commit, fine-tune, check, repair."""
    torch.manual_seed(problem.train_cfg.seed)
    net = StochasticNet(problem, x_cal, target_metric)
    search_log = _search(problem, net, budget, cfg)
    net.refresh_costs()
    searched = net.release()
    proxy_budget, rounds = budget, []
    for _ in range(REPAIR_ROUNDS):
        widths = _commit(problem, net, proxy_budget)
        model, ft_log = _finetune(problem, searched, widths, x_cal, cfg)
        point = make_point(problem, "sdq", f"sdq {target_metric}<={budget:.4g} {widths.label()}", model)
        rounds.append({"widths": widths.label(), "cost": point.costs[target_metric], "finetune": ft_log})
        if point.costs[target_metric] <= budget:
            break
        # below this design's own proxy, so the next commitment is a cheaper one
        proxy_budget = min(proxy_budget, net.proxy(widths)) * 0.98 * budget / point.costs[target_metric]
    return point, model, {"budget": budget, "search": search_log, "rounds": rounds}


def run(
    problem: Problem, target: Target, cfg: SdqConfig = SdqConfig(), calib_samples: int = CALIB_SAMPLES
) -> MethodResult:
    x_cal = problem.split.x_train[:calib_samples]
    if calib_samples < 1 or len(x_cal) == 0:
        raise BadInput(f"sdq: the calibration set is empty (calib_samples={calib_samples})")
    metric = target.metric if target.budget is not None else problem.cost.headline
    probes: list[tuple[Point, QuantNet, dict]] = []
    if target.budget is not None:
        probes.append(_probe(problem, metric, target.budget, x_cal, cfg))
    else:
        net = StochasticNet(problem, x_cal, metric)
        widest_cost = net.proxy(problem.ladders.widest(problem.spec))
        lo, hi = math.log(net.proxy(problem.ladders.cheapest(problem.spec))), math.log(widest_cost)
        for _ in range(cfg.probes):
            mid = (lo + hi) / 2
            probes.append(_probe(problem, metric, math.exp(mid), x_cal, cfg))
            lo, hi = (lo, mid) if problem.meets(probes[-1][0], target) else (mid, hi)
        if not any(problem.meets(p, target) for p, _, _ in probes):
            probes.append(_probe(problem, metric, widest_cost, x_cal, cfg))
    front = [p for p, _, _ in probes]
    logs = {"probes": [lg for _, _, lg in probes]}
    ok = [(p, m) for p, m, _ in probes if problem.meets(p, target)]
    if not ok:
        return MethodResult(None, None, front, reason=_infeasible(front, target, metric, problem), log=logs)
    if target.budget is not None:
        chosen, model = max(ok, key=lambda pm: (pm[0].val_acc, -pm[0].costs[metric]))
    else:
        chosen, model = min(ok, key=lambda pm: (pm[0].costs[metric], -pm[0].val_acc))
    return MethodResult(chosen, model, front, log=logs)


def _infeasible(front: list[Point], target: Target, metric: str, problem: Problem) -> str:
    best = max(front, key=lambda p: p.val_acc)
    if target.budget is not None:
        cheapest = min(front, key=lambda p: p.costs[metric])
        return (
            f"sdq could not meet {target.describe()}: its cheapest design costs {cheapest.costs[metric]:g} {metric} "
            f"at {100 * cheapest.val_acc:.2f}% validation accuracy"
        )
    return f"no sdq design meets {target.describe()}; the most accurate, {problem.drop_text(best)}"
