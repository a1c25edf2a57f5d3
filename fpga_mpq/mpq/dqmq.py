"""DQMQ — Data Quality-aware Mixed-precision Quantization (Wang et al., TNNLS 2024), our reading of the abstract.

The data carries a quality level per sample (:mod:`fpga_mpq.data.quality`: 0 clean .. L−1 worst).
The policy gives every group (:mod:`fpga_mpq.mpq.widths`) at every level a distribution over the
group's candidate widths, from few parameters: logits ``a_g + c_g · s`` with ``s`` the level's
quality score centred on the mix, two vectors over the ladder per group (60 numbers for the digits
MLP at five candidates): ``a`` is the average input's policy, ``c`` moves the levels apart.

Relaxation: Gumbel-softmax with straight-through hard samples. The forward pass uses one width per
group (the hardware never mixes widths) while the gradient reaches every rung's logit; the SDQ pair
mechanism was the other option, but it holds one adjacent pair per group and moves it by discrete
rung jumps, which a per-level policy would have to do L times over with no shared parameters.
Here each level's draw comes from the same two parameter vectors, so what the policy learns at one
level informs its neighbours.

Stage 1 (joint search, on :class:`PolicyNet`, a fake-quantized copy of the float model): each batch
is split by level; each part runs at its level's draw, all levels from the same Gumbel noise (common
random numbers). Loss = task + λ·Σ_l π_l·E_l[cost]/cost(widest) + η·H, where π is the test set's
quality mix, E_l[cost] the exact expected table cost under the level's distribution (the cost model
is the known environment model of the abstract's model-based policy optimisation), and H the
policies' mean entropy. λ follows SDQ's controller towards the budget; the Gumbel temperature
anneals from ``tau_start`` to ``tau_end`` and η from 0 to ``entropy_final``, so each level commits
to one width per group. Commitment takes each level's likeliest width; while the expected table cost
is over budget, the (level, group) least sure of its width drops a rung.

Model-based refinement (:func:`_refine`): on digits-quality the gradient policy alone committed every
level to the same widths (the shared term ``a`` dominates, the level signal in ``c`` is noise at
these batch sizes), so the committed widths are then moved one rung at a time, each move the best
by the loss the jointly trained network measures on the level's inputs, priced by the cost table,
within the expected budget. This is where the levels come apart.

Stage 2 (fine-tuning, in Brevitas): one QuantNet per level, all holding the same conv / dense
weights and biases and BatchNorm affine parameters (their gradients summed over the levels' parts
of each batch, one optimizer step, copied back), each with its own activation ranges and BatchNorm
statistics (a level's statistics are its inputs'). Loss: task mixed with distillation from the float
model. The real cost of each level is then measured; if the expected cost misses the budget, the
proxy budget is scaled down and commitment, refinement and fine-tuning are redone.

The deployable result is one spec and checkpoint per level (:func:`fpga_mpq.mpq.search.write_outputs`)
and a quality estimator: a small quantized MLP trained on the same data to predict the level, so a
system without a declared quality can route each input (its confusion is reported).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from fpga_mpq.data import Split
from fpga_mpq.data.quality import LEVEL_NAMES
from fpga_mpq.errors import BadInput
from fpga_mpq.models.net import FloatNet, QuantNet
from fpga_mpq.models.spec import LayerSpec, Spec
from fpga_mpq.mpq.fakequant import FakeQuantNet, Quantize, lambda_step
from fpga_mpq.mpq.front import Point
from fpga_mpq.mpq.problem import MethodResult, Problem, Target, calibrate, make_point
from fpga_mpq.mpq.widths import Widths, apply_widths, widths_of
from fpga_mpq.train import EVAL_BATCH, accuracy, adam, fast_forward, quant_from_float, train

log = logging.getLogger(__name__)
CALIB_SAMPLES = 256  # per level
REPAIR_ROUNDS = 3
REFINE_SAMPLES = 512  # training inputs per level on which the refinement measures the loss
SHARED = (".op.weight", ".op.bias", ".bn.weight", ".bn.bias")  # what the levels' networks share


@dataclass(frozen=True)
class DqmqConfig:
    search_epochs: int | None = None  # the joint search's epochs; default: the training epochs (--epochs)
    policy_lr: float = 0.2
    lambda_init: float = 0.1
    controller_gain: float = 0.05
    tau_start: float = 2.0
    tau_end: float = 0.2
    entropy_final: float = 0.05
    kd_alpha: float = 0.5
    kd_temperature: float = 2.0
    probes: int = 3  # bisection steps for a max-drop target
    refine_moves: int = 40  # at most this many model-based refinement steps after commitment
    estimator_units: int = 16  # 16 units at 3 bits: about the LUTs of 8 at 4, a point more accurate on digits
    estimator_bits: int = 3


def level_name(level: int, levels: int) -> str:
    """``clean`` .. ``severe`` for the built-in four levels, else ``level N``."""
    return LEVEL_NAMES[level] if levels == len(LEVEL_NAMES) else f"level {level}"


def level_mix(split: Split) -> np.ndarray:
    """Each level's share of the test set: the mix the expected cost is taken under."""
    return np.bincount(split.q_test, minlength=split.levels) / len(split.q_test)


class PolicyNet(FakeQuantNet):
    """The stage-1 network: each group's width at a level is a Gumbel-softmax draw from the policy."""

    def setup_draws(self) -> None:
        self.levels = self.problem.split.levels
        mix = level_mix(self.problem.split)
        self.mean_score = float(sum(m * lv / (self.levels - 1) for lv, m in enumerate(mix)))
        k = max(len(ladder) for ladder in self.ladders)
        self.valid = torch.tensor([[j < len(ladder) for j in range(k)] for ladder in self.ladders])
        start = [[2.0 * j / max(len(ladder) - 1, 1) for j in range(k)] for ladder in self.ladders]
        self.a = nn.Parameter(torch.tensor(start))  # the widest rung likeliest at first, none excluded
        self.c = nn.Parameter(torch.zeros(len(self.ladders), k))
        self.draws: torch.Tensor | None = None  # this call's straight-through one-hot draws (groups × rungs)
        self.fixed: Widths | None = None  # evaluation at given widths (the model-based refinement)
        self.level = 0
        self.tau = 1.0

    def score(self, level: int) -> float:
        """The quality score, centred on the mix: ``a`` is the policy of the average input and ``c`` moves
        levels apart, so a gradient every level shares moves ``a`` alone."""
        return level / (self.levels - 1) - self.mean_score

    def logits(self, level: int) -> torch.Tensor:
        return (self.a + self.c * self.score(level)).masked_fill(~self.valid, -math.inf)

    def probs(self, level: int) -> torch.Tensor:
        return torch.softmax(self.logits(level), dim=1)

    def mix(self, k: int, quantize: Quantize) -> torch.Tensor:
        ladder = self.ladders[k]
        if self.fixed is not None:
            return quantize(self.fixed.bits[k])
        if self.draws is None:  # evaluation: the level's likeliest width
            return quantize(ladder[int(self.probs(self.level)[k].argmax())])
        y = self.draws[k]
        return sum(y[j] * quantize(bits) for j, bits in enumerate(ladder))

    def forward(self, x: torch.Tensor, level: int, noise: torch.Tensor | None) -> torch.Tensor:
        """``x`` all of quality ``level``; one draw per group from the uniform ``noise`` (groups × rungs),
        or none: the likeliest widths. A step passes every level the same noise (common random
        numbers), so levels draw different widths only where their policies differ, and ``c`` sees
        the levels' gradients side by side rather than through independent draws."""
        self.level, self.draws = level, None
        if noise is not None:
            u = noise.clamp(1e-9, 1 - 1e-9)
            soft = torch.softmax((self.logits(level) - torch.log(-torch.log(u))) / self.tau, dim=1)
            hard = F.one_hot(soft.argmax(dim=1), soft.shape[1]).to(soft.dtype)
            self.draws = hard - soft.detach() + soft
        return self.quantized_forward(x)

    def refresh_costs(self) -> None:
        super().refresh_costs()
        k = self.a.shape[1]  # setup_draws ran before the base class's first refresh
        ladder = dict(zip(self.groups, self.ladders, strict=True))
        self.cost_matrices = []
        for table, (w, x) in zip(self.table, self.feeds, strict=True):
            m = torch.zeros(k, k)
            for i, wb in enumerate(ladder[w]):
                for j, xb in enumerate(ladder[x]):
                    m[i, j] = table[(wb, xb)]
            self.cost_matrices.append(m)

    def expected_cost(self, level: int) -> torch.Tensor:
        """Σ_layers p_w·C·p_x: exact under the level's independent per-group distributions."""
        p = self.probs(level)
        index = {g: i for i, g in enumerate(self.groups)}
        return sum(p[index[w]] @ m @ p[index[x]] for m, (w, x) in zip(self.cost_matrices, self.feeds, strict=True))

    def entropy(self, level: int) -> torch.Tensor:
        """Mean entropy of the level's per-group distributions, in nats."""
        p = self.probs(level)
        return -torch.where(self.valid, p * torch.log(p.clamp_min(1e-12)), 0.0).sum(dim=1).mean()

    def committed(self, level: int) -> Widths:
        p = self.probs(level)
        return Widths(self.groups, tuple(ladder[int(p[k].argmax())] for k, ladder in enumerate(self.ladders)))

    def loss_at(self, level: int, widths: Widths, x: torch.Tensor, y: torch.Tensor) -> float:
        """Task loss of the level's inputs with every group at ``widths`` (evaluation mode)."""
        self.fixed = widths
        try:
            self.net.eval()
            with torch.no_grad():
                return float(F.cross_entropy(self(x, level, None), y))
        finally:
            self.fixed = None

    def parameter_count(self) -> int:
        return 2 * int(self.valid.sum())


def _level_batches(q: torch.Tensor, idx: torch.Tensor, levels: int) -> list[tuple[int, torch.Tensor]]:
    """A batch's samples grouped by quality level."""
    parts = [(level, idx[q[idx] == level]) for level in range(levels)]
    return [(level, sel) for level, sel in parts if len(sel)]


def _search(problem: Problem, net: PolicyNet, budget: float, mix: np.ndarray, cfg: DqmqConfig) -> list[dict]:
    """Stage 1: network weights and policy together, under the λ-weighted expected cost of the mix."""
    tc, split = problem.train_cfg, problem.split
    gen = torch.Generator().manual_seed(tc.seed)
    opt_w = adam(net.net.parameters(), tc.lr)
    opt_p = adam([net.a, net.c], cfg.policy_lr)
    x, y, q = (torch.from_numpy(a) for a in (split.x_train, split.y_train, split.q_train))
    lam, history, step = cfg.lambda_init, [], 0
    epochs = cfg.search_epochs if cfg.search_epochs is not None else tc.epochs
    steps_per_epoch = math.ceil(len(x) / tc.batch_size)
    glide = max(1, epochs * steps_per_epoch // 2)
    for epoch in tqdm(range(epochs), desc="DQMQ policy search", leave=False, disable=None):
        progress = epoch / max(epochs - 1, 1)
        net.tau = cfg.tau_start * (cfg.tau_end / cfg.tau_start) ** progress
        eta = cfg.entropy_final * progress
        net.refresh_costs()
        net.net.train()
        widest = net.proxy(problem.ladders.widest(problem.spec))
        rel_budget = budget / widest
        order = torch.randperm(len(x), generator=gen)
        sums = np.zeros(3)
        for start in range(0, len(x), tc.batch_size):
            idx = order[start : start + tc.batch_size]
            noise = torch.rand(net.a.shape, generator=gen)
            task = sum(
                F.cross_entropy(net(x[sel], level, noise), y[sel], reduction="sum")
                for level, sel in _level_batches(q, idx, net.levels)
            ) / len(idx)
            rel_cost = sum(float(mix[lv]) * net.expected_cost(lv) for lv in range(net.levels)) / widest
            entropy = sum(net.entropy(lv) for lv in range(net.levels)) / net.levels
            opt_w.zero_grad()
            opt_p.zero_grad()
            (task + lam * rel_cost + eta * entropy).backward()
            opt_w.step()
            opt_p.step()
            lam = lambda_step(lam, rel_cost.item(), rel_budget, step / glide, cfg.controller_gain)
            step += 1
            sums += (task.item(), rel_cost.item(), entropy.item())
        task_loss, cost, entropy_mean = map(float, sums / steps_per_epoch)
        history.append(
            {
                "epoch": epoch,
                "task_loss": task_loss,
                "expected_rel_cost": cost,
                "policy_entropy": entropy_mean,
                "tau": net.tau,
                "lambda": lam,
                "widths": [net.committed(lv).label() for lv in range(net.levels)],
            }
        )
        log.info("dqmq search %s", history[-1])
    return history


def _expected(net: PolicyNet, widths: list[Widths], mix: np.ndarray) -> float:
    return sum(float(m) * net.proxy(w) for m, w in zip(mix, widths, strict=True))


def _commit(net: PolicyNet, budget: float, mix: np.ndarray) -> list[Widths]:
    """Each level's likeliest widths; while the expected table cost is over budget, the (level, group)
    with the least probability on its width drops a rung."""
    widths = [net.committed(level) for level in range(net.levels)]
    probs = [net.probs(level).detach() for level in range(net.levels)]
    while _expected(net, widths, mix) > budget:
        options = []
        for level, w in enumerate(widths):
            for k, (g, ladder) in enumerate(zip(net.groups, net.ladders, strict=True)):
                j = ladder.index(w.get(g))
                if j > 0:
                    options.append((float(probs[level][k, j]), level, k, g, ladder[j - 1]))
        if not options:
            break
        _, level, _, g, bits = min(options, key=lambda o: o[:3])
        widths[level] = widths[level].set(g, bits)
    return widths


@dataclass(frozen=True)
class _Move:
    level: int
    group: int
    widths: Widths  # the level's widths after the move
    loss: float  # mix-weighted change of the expected loss
    cost: float  # mix-weighted change of the expected table cost


def _refine(
    net: PolicyNet, widths: list[Widths], budget: float, mix: np.ndarray, data: list[tuple], max_moves: int
) -> tuple[list[Widths], list[dict]]:
    """Model-based refinement of the committed widths: the network the joint search trained (at every
    width, by the policy's draws) is the environment model of accuracy, the cost table that of
    hardware. One rung moves at a time, each the best by measured loss: while over budget the down
    move losing least per cost saved; then the up move (paid for, if need be, by one down move of
    another level or group) that lowers the expected loss most within the budget. Stops when no
    move helps."""
    widths = list(widths)
    loss = [net.loss_at(lv, w, *data[lv]) for lv, w in enumerate(widths)]
    history = []

    def moves() -> list[_Move]:
        out = []
        for lv, w in enumerate(widths):
            for k, (g, ladder) in enumerate(zip(net.groups, net.ladders, strict=True)):
                j = ladder.index(w.get(g))
                for step in (-1, 1):
                    if 0 <= j + step < len(ladder):
                        moved = w.set(g, ladder[j + step])
                        d_loss = mix[lv] * (net.loss_at(lv, moved, *data[lv]) - loss[lv])
                        d_cost = mix[lv] * (net.proxy(moved) - net.proxy(w))
                        out.append(_Move(lv, k, moved, float(d_loss), float(d_cost)))
        return out

    for _ in range(max_moves):
        spare = budget - _expected(net, widths, mix)
        ms = moves()
        downs = [m for m in ms if m.cost < 0]
        if spare < 0:
            if not downs:
                break
            chosen = [min(downs, key=lambda m: m.loss / -m.cost)]
        else:
            options = []
            for up in (m for m in ms if m.cost > 0 and m.loss < 0):
                if up.cost <= spare:
                    options.append((up.loss, [up]))
                for down in downs:
                    if (down.level, down.group) != (up.level, up.group) and up.cost + down.cost <= spare:
                        options.append((up.loss + down.loss, [up, down]))
            options = [o for o in options if o[0] < 0]
            if not options:
                break
            chosen = min(options, key=lambda o: o[0])[1]
        for m in chosen:
            w = widths[m.level]
            g = net.groups[m.group]
            widths[m.level] = w.set(g, m.widths.get(g))
        for lv in {m.level for m in chosen}:
            loss[lv] = net.loss_at(lv, widths[lv], *data[lv])
        history.append(
            {
                "moves": [
                    f"level {m.level} {net.groups[m.group].name} -> {m.widths.get(net.groups[m.group])}" for m in chosen
                ],
                "expected_cost": _expected(net, widths, mix),
            }
        )
    return widths, history


def _is_shared(name: str) -> bool:
    return name.endswith(SHARED)


def _finetune(
    problem: Problem, searched: FloatNet, widths: list[Widths], cfg: DqmqConfig
) -> tuple[list[QuantNet], list[dict]]:
    """Stage 2: QAT of every level's spec at once, over shared weights (see the module's docstring)."""
    tc, split = problem.train_cfg, problem.split
    models = []
    for level, w in enumerate(widths):
        model = quant_from_float(searched, apply_widths(problem.spec, w), split.input_shape, tc.seed)
        models.append(calibrate(model, split.x_train[split.q_train == level][:CALIB_SAMPLES]))
    forwards = [fast_forward(m) for m in models]
    params = [dict(m.named_parameters()) for m in models]
    shared = [n for n in params[0] if _is_shared(n)]
    own = [p for ps in params for n, p in ps.items() if not _is_shared(n)]
    opt = adam([params[0][n] for n in shared] + own, tc.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(tc.epochs, 1))
    gen = torch.Generator().manual_seed(tc.seed)
    x, y, q = (torch.from_numpy(a) for a in (split.x_train, split.y_train, split.q_train))
    with torch.no_grad():
        teacher = torch.cat([problem.fmodel(x[i : i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])
    t, history = cfg.kd_temperature, []
    for epoch in tqdm(range(tc.epochs), desc="DQMQ fine-tune", leave=False, disable=None):
        for m in models:
            m.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for start in range(0, len(x), tc.batch_size):
            idx = order[start : start + tc.batch_size]
            for m in models:
                m.zero_grad()
            for level, sel in _level_batches(q, idx, len(models)):
                out = forwards[level](x[sel])
                task = F.cross_entropy(out, y[sel])
                kd = F.kl_div(F.log_softmax(out / t, 1), F.softmax(teacher[sel] / t, 1), reduction="batchmean")
                loss = ((1 - cfg.kd_alpha) * task + cfg.kd_alpha * kd * t * t) * len(sel) / len(idx)
                loss.backward()
                total += loss.item()
            with torch.no_grad():
                for n in shared:
                    grads = [ps[n].grad for ps in params if ps[n].grad is not None]
                    params[0][n].grad = torch.stack(grads).sum(dim=0) if grads else None
            opt.step()
            with torch.no_grad():
                for ps in params[1:]:
                    for n in shared:
                        ps[n].copy_(params[0][n])
        sched.step()
        history.append({"epoch": epoch, "loss": total / math.ceil(len(x) / tc.batch_size)})
        log.info("dqmq fine-tune %s", history[-1])
    return [m.eval() for m in models], history


def _subset(split: Split, level: int) -> Split:
    """The samples of one quality level."""
    s = split
    tr, va, te = s.q_train == level, s.q_val == level, s.q_test == level
    return Split(s.x_train[tr], s.y_train[tr], s.x_val[va], s.y_val[va], s.x_test[te], s.y_test[te])


def _measure(problem: Problem, models: list[QuantNet], mix: np.ndarray, label: str) -> Point:
    """The system: each level's point (its cost; its accuracy on its own inputs) and the mix's expectation."""
    levels = []
    for level, model in enumerate(models):
        part = replace(problem, split=_subset(problem.split, level))
        levels.append(make_point(part, "dqmq", f"{label} level {level} {widths_of(model.spec).label()}", model))
    costs = {k: sum(float(m) * p.costs[k] for m, p in zip(mix, levels, strict=True)) for k in levels[0].costs}
    val = _routed(problem.split.q_val, [p.val_correct for p in levels])
    test = _routed(problem.split.q_test, [p.test_correct for p in levels])
    return Point(
        method="dqmq",
        label=label,
        spec=levels[0].spec,
        costs=costs,
        val_acc=float(val.mean()),
        test_acc=float(test.mean()),
        test_by_level=tuple(p.test_acc for p in levels),
        levels=tuple(levels),
        val_correct=val,
        test_correct=test,
    )


def _routed(quality: np.ndarray, answers: list[np.ndarray]) -> np.ndarray:
    """Each sample's right / wrong answer from its own level's network: the system's, sample by sample."""
    out = np.zeros(len(quality), dtype=bool)
    for level, right in enumerate(answers):
        out[quality == level] = right
    return out


@dataclass
class Probe:
    point: Point
    models: list[QuantNet]
    log: dict = field(default_factory=dict)


def _probe(problem: Problem, metric: str, budget: float, mix: np.ndarray, cfg: DqmqConfig) -> Probe:
    """One DQMQ run at an expected-cost ``budget``: search, commit, fine-tune, measure, repair."""
    torch.manual_seed(problem.train_cfg.seed)
    x_cal = problem.split.x_train[:CALIB_SAMPLES]
    net = PolicyNet(problem, x_cal, metric)
    search_log = _search(problem, net, budget, mix, cfg)
    net.refresh_costs()
    searched = net.float_model()
    s = problem.split
    data = [
        (
            torch.from_numpy(s.x_train[s.q_train == lv][:REFINE_SAMPLES]),
            torch.from_numpy(s.y_train[s.q_train == lv][:REFINE_SAMPLES]),
        )
        for lv in range(s.levels)
    ]
    proxy_budget, rounds = budget, []
    for _ in range(REPAIR_ROUNDS):
        committed = _commit(net, proxy_budget, mix)
        widths, refine_log = _refine(net, committed, proxy_budget, mix, data, cfg.refine_moves)
        models, ft_log = _finetune(problem, searched, widths, cfg)
        point = _measure(problem, models, mix, f"dqmq {metric}<={budget:.4g}")
        rounds.append(
            {
                "policy_widths": [w.label() for w in committed],
                "refinement": refine_log,
                "widths": [w.label() for w in widths],
                "expected_cost": point.costs[metric],
                "finetune": ft_log,
            }
        )
        if point.costs[metric] <= budget:
            break
        proxy_budget = min(proxy_budget, _expected(net, widths, mix)) * 0.98 * budget / point.costs[metric]
    policy = {"parameters": net.parameter_count(), "a": net.a.tolist(), "c": net.c.tolist()}
    return Probe(point, models, {"budget": budget, "policy": policy, "search": search_log, "rounds": rounds})


def level_accuracy(correct: np.ndarray, quality: np.ndarray, levels: int) -> list[float]:
    """A static design's accuracy on each quality level's samples."""
    return [float(correct[quality == lv].mean()) for lv in range(levels)]


def versus_static(
    problem: Problem, target: Target, result: MethodResult, statics: list[tuple[Point, QuantNet | None]]
) -> MethodResult:
    """dqmq's answer only where it beats the best static design it could be replaced by, else that design.

    Every static design the search evaluated (the uniform ladder) is a candidate deployment: the same
    network for every level. The best candidate is the most accurate on validation of those that meet
    the target at or below dqmq's expected cost; dqmq's per-level networks are kept only when each level
    is at least as accurate as that candidate on the level's validation samples, so what a search
    returns is never worse than a static design at equal expected cost on any level (on validation;
    the test set measures it). A reused uniform front carries no models: the candidate is retrained,
    seeded as it was. The comparison goes into ``search.json`` as ``versus_static``."""
    from fpga_mpq.mpq.uniform import train_spec  # uniform imports this module's callers

    dq = result.chosen
    metric = target.metric if target.budget is not None else problem.cost.headline
    ok = [(p, m) for p, m in statics if p.costs[metric] <= dq.costs[metric] and problem.meets(p, target)]
    split = problem.split
    mine = [p.val_acc for p in dq.levels]
    if not ok:
        result.log["versus_static"] = {
            "kept": "dqmq",
            "reason": f"no static design evaluated meets {target.describe()} at or below dqmq's expected "
            f"{dq.costs[metric]:g} {metric}",
            "dqmq_val_by_level": mine,
        }
        return result
    best, model = max(ok, key=lambda pm: (pm[0].val_acc, -pm[0].costs[metric]))
    theirs = level_accuracy(best.val_correct, split.q_val, split.levels)
    wins = all(m >= t for m, t in zip(mine, theirs, strict=True))
    worse = [level_name(lv, split.levels) for lv, (m, t) in enumerate(zip(mine, theirs, strict=True)) if m < t]
    decision = {
        "kept": "dqmq" if wins else best.label,
        "candidate": best.label,
        "candidate_cost": best.costs[metric],
        "dqmq_expected_cost": dq.costs[metric],
        "dqmq_val_by_level": mine,
        "candidate_val_by_level": theirs,
        "reason": "dqmq is at least as accurate on every level's validation samples"
        if wins
        else f"{best.label} is more accurate on the validation samples of {', '.join(worse)} at "
        f"{best.costs[metric]:g} {metric} (dqmq expected {dq.costs[metric]:g}): it is the answer, one "
        "network for every level",
    }
    if wins:
        result.log["versus_static"] = decision
        return result
    model = model or train_spec(problem, best.spec, best.label)
    return MethodResult(best, model, result.front, log=result.log | {"versus_static": decision})


def check_data(split: Split) -> None:
    """Data dqmq can adapt to: a quality level per sample, at least two levels, each in every split."""
    if not split.has_quality:
        raise BadInput(
            "dqmq needs data with a quality level per sample: --data digits-quality, fashion-quality, "
            "or a .npz with a 'quality' array"
        )
    if split.levels < 2:
        raise BadInput("dqmq: the data has a single quality level; there is nothing to adapt to")
    for name, q in (("train", split.q_train), ("validation", split.q_val), ("test", split.q_test)):
        missing = sorted(set(range(split.levels)) - set(np.unique(q).tolist()))
        if missing:
            raise BadInput(f"dqmq: the {name} split has no sample of quality level {missing[0]}")


def run(problem: Problem, target: Target, cfg: DqmqConfig = DqmqConfig()) -> MethodResult:
    split = problem.split  # checked by check_data before the float model was trained
    mix = level_mix(split)
    metric = target.metric if target.budget is not None else problem.cost.headline
    probes: list[Probe] = []
    if target.budget is not None:
        probes.append(_probe(problem, metric, target.budget, mix, cfg))
    else:
        net = PolicyNet(problem, split.x_train[:CALIB_SAMPLES], metric)
        widest_cost = net.proxy(problem.ladders.widest(problem.spec))
        lo, hi = math.log(net.proxy(problem.ladders.cheapest(problem.spec))), math.log(widest_cost)
        for _ in range(cfg.probes):
            mid = (lo + hi) / 2
            probes.append(_probe(problem, metric, math.exp(mid), mix, cfg))
            lo, hi = (lo, mid) if problem.meets(probes[-1].point, target) else (mid, hi)
        if not any(problem.meets(p.point, target) for p in probes):
            probes.append(_probe(problem, metric, widest_cost, mix, cfg))
    front = [p.point for p in probes]
    logs = {"probes": [p.log for p in probes]}
    ok = [p for p in probes if problem.meets(p.point, target)]
    if not ok:
        best = max(front, key=lambda p: p.val_acc)
        reason = (
            f"dqmq could not meet {target.describe()}: its designs cost "
            + ", ".join(f"{p.costs[metric]:g}" for p in front)
            + f" {metric} (expected); the most accurate, "
            + (problem.drop_text(best) if target.max_drop is not None else f"{100 * best.val_acc:.2f}% validation")
        )
        return MethodResult(None, None, front, reason=reason, log=logs)
    if target.budget is not None:
        chosen = max(ok, key=lambda p: (p.point.val_acc, -p.point.costs[metric]))
    else:
        chosen = min(ok, key=lambda p: (p.point.costs[metric], -p.point.val_acc))
    deployment = deploy(problem, chosen.models, cfg)
    return MethodResult(chosen.point, chosen.models[0], front, log=logs, deployment=deployment)


@dataclass
class Deployment:
    """DQMQ's answer: one network per quality level over shared weights, and the quality estimator
    with the accuracy of the system when the host declares each input's level and when the
    estimator decides it."""

    models: list[QuantNet]
    estimator: Estimator
    accuracy_declared: float
    accuracy_estimated: float
    accuracy_estimated_by_level: list[float]

    def summary(self) -> dict:
        return {
            "estimator": {
                "test_acc": self.estimator.accuracy,
                "confusion": self.estimator.confusion,
                "confusion_axes": "rows: true level, columns: estimated level (test set)",
            },
            "test_acc_level_declared": self.accuracy_declared,
            "test_acc_level_estimated": self.accuracy_estimated,
            "test_acc_level_estimated_by_level": self.accuracy_estimated_by_level,
        }


def deploy(problem: Problem, models: list[QuantNet], cfg: DqmqConfig) -> Deployment:
    """Train the quality estimator and measure the system with declared and with estimated levels."""
    est = train_estimator(problem, cfg)
    s = problem.split
    estimated = est.levels(s.flat().x_test)
    by_level = [
        routed_accuracy(models, s.x_test[s.q_test == lv], s.y_test[s.q_test == lv], estimated[s.q_test == lv])
        for lv in range(s.levels)
    ]
    return Deployment(
        models,
        est,
        routed_accuracy(models, s.x_test, s.y_test, s.q_test),
        routed_accuracy(models, s.x_test, s.y_test, estimated),
        by_level,
    )


@dataclass
class Estimator:
    """The quality estimator: a quantized MLP from the input to its quality level."""

    model: QuantNet
    accuracy: float
    confusion: list[list[int]]  # rows: true level, columns: estimated level (test set)

    def levels(self, x: np.ndarray) -> np.ndarray:
        """Each input's estimated level; ``x`` flattened, as the estimator reads it."""
        self.model.eval()
        with torch.no_grad():
            parts = [self.model(torch.from_numpy(x[i : i + EVAL_BATCH])) for i in range(0, len(x), EVAL_BATCH)]
        return torch.cat(parts).argmax(1).numpy()


def estimator_spec(base: Spec, levels: int, cfg: DqmqConfig = DqmqConfig()) -> Spec:
    """A small MLP on the same (flattened) input quantizer as the network, one output per level."""
    b = cfg.estimator_bits
    layers = (LayerSpec(cfg.estimator_units, b, 16, b), LayerSpec(levels, b, 16, 8))
    return Spec(base.input_bits, base.input_signed, layers, data=base.data, training=base.training)


def train_estimator(problem: Problem, cfg: DqmqConfig = DqmqConfig()) -> Estimator:
    """QAT of the estimator on the search's data with the quality levels as labels."""
    s = problem.split.flat()
    split = Split(s.x_train, s.q_train, s.x_val, s.q_val, s.x_test, s.q_test)
    spec = estimator_spec(problem.spec, problem.split.levels, cfg)
    model = train(spec, split, problem.train_cfg).model
    n = problem.split.levels
    pred = Estimator(model, 0.0, []).levels(split.x_test)
    confusion = np.bincount(split.y_test * n + pred, minlength=n * n).reshape(n, n).tolist()
    return Estimator(model, float((pred == split.y_test).mean()), confusion)


def routed_accuracy(models: list[QuantNet], x: np.ndarray, y: np.ndarray, levels: np.ndarray) -> float:
    """Accuracy when each input runs on the network of the level given for it (declared or estimated)."""
    hits = 0
    for level, model in enumerate(models):
        pick = levels == level
        if pick.any():
            hits += accuracy(model, x[pick], y[pick]) * int(pick.sum())
    return hits / len(y)
