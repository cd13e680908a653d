"""Planning: a grid's cells become distinct jobs (one per poison, one per victim run), skipping done ones."""
from __future__ import annotations

from dataclasses import dataclass, field

from attacks import ATTACKS
from attacks.external import is_external
from victims.algorithms import ALGORITHMS
from victims.registry import UnknownNameError
from attacks.spec import AttackSpec

from ..grids import Cell, grid_cells
from ..jobs.poison_store import load_poison
from ..jobs.seeds import with_seeds
from ..jobs.victim import same_settings, victim_settings
from ..records import read_record, record_path, results_root
from ..scales import get_scale
from defenses import DEFENSES, defense_params

from ..specs import CONTROL, VictimSpec

# Rough GPU hours per job at the paper scale on one A100-class GPU (for planning, not a measurement):
# a ResNet-18 contrastive victim is 1000 epochs of CIFAR-10; CP-C is 1000 epochs of 20 + 20 batches;
# CP-S 200 epochs of a full pass of each player (5 PGD steps); AP-T trains a surrogate then runs
# 250 PGD steps x 8 restarts on every image; UE-S alternates 10 batches with 20 PGD steps until 99%.
CONTROL_GPU_HOURS = 0.3  # probing an untrained network (the attacks' and algorithms' costs are on their classes)
ARCH_FACTOR = {"resnet18": 1.0, "resnet50": 2.5, "vgg19": 1.5, "densenet121": 3.0, "mobilenetv2": 1.0}
DATASET_FACTOR = {"cifar10": 1.0, "cifar100": 1.0, "stl10": 1.0, "imagenet100": 8.0, "synthetic": 0.0}
# A job's size at each scale, from its paper-scale cost (rough, for cluster requests): minutes of work per
# paper GPU hour (smoke: seconds per job on generated data; mini: CPU minutes on 2 cores, e.g. CP-S ~30, a
# contrastive victim ~13) and the memory a job needs (decoded data set, model, augmentation buffers).
MINUTES_PER_GPU_HOUR = {"smoke": 0.05, "mini": 3.0, "paper": 60.0}
MEMORY_GB = {"smoke": 2, "mini": 4, "paper": 32}
LARGE_DATA_MEMORY_GB = {"paper": 64}  # ImageNet-100 at the paper scale


@dataclass(frozen=True)
class Job:
    """One submitted call: make a poison, or train and probe a victim (after its poison)."""

    kind: str  # "poison" or "victim"
    key: str
    attack: AttackSpec | None = None
    victim: VictimSpec | None = None
    probes: tuple[str, ...] = ()
    depends_on: str | None = None  # the poison job's key

    @property
    def name(self) -> str:
        if self.kind == "poison":
            return f"poison-{self.attack.attack}-{self.attack.algorithm or 'na'}-{self.attack.dataset}-{self.key[:8]}"
        attack = self.victim.attack if self.victim.poison is None else self.victim.poison.attack
        extra = (f"-{self.victim.defense_name}" if self.victim.defense_name != "none" else "") + \
            (f"-r{self.victim.poison_ratio:g}" if self.victim.poison_ratio != 1 else "")
        return (f"victim-{self.victim.algorithm}-{self.victim.arch}-{self.victim.dataset}-{attack}{extra}"
                f"-{self.key[:8]}")

    @property
    def gpu_hours(self) -> float:
        if self.kind == "poison":
            if is_external(self.attack.attack):
                return 0.0  # imported, never made here
            hours = ATTACKS.get(self.attack.attack).gpu_hours if self.attack.attack in ATTACKS else 5.0
            return hours * DATASET_FACTOR.get(self.attack.dataset, 1.0)
        algorithm = self.victim.algorithm
        hours = CONTROL_GPU_HOURS if algorithm == CONTROL else ALGORITHMS.get(algorithm).gpu_hours
        if self.victim.defense is not None:  # e.g. adversarial training: (steps + 1) passes per step
            spec = self.victim.defense
            hours *= DEFENSES.get(spec.name)().cost_factor(defense_params(spec, self.victim.scale))
        return hours * ARCH_FACTOR.get(self.victim.arch, 1.0) * DATASET_FACTOR.get(self.victim.dataset, 1.0)

    @property
    def scale(self) -> str:
        return (self.attack if self.kind == "poison" else self.victim).scale

    @property
    def expected_minutes(self) -> float:
        """Rough wall-clock minutes of work at the job's own scale (paper: on one A100-class GPU)."""
        return self.gpu_hours * MINUTES_PER_GPU_HOUR.get(self.scale, 60.0)

    @property
    def memory_gb(self) -> int:
        dataset = (self.attack if self.kind == "poison" else self.victim).dataset
        if dataset == "imagenet100" and self.scale in LARGE_DATA_MEMORY_GB:
            return LARGE_DATA_MEMORY_GB[self.scale]
        return MEMORY_GB.get(self.scale, 32)


@dataclass
class Plan:
    grid: str
    scale: str
    cells: list[Cell]
    jobs: list[Job] = field(default_factory=list)  # poisons first, then victims
    done: set[str] = field(default_factory=set)  # keys of jobs whose verified output exists
    skipped: dict[str, list[Cell]] = field(default_factory=dict)  # attack not registered yet -> its cells

    @property
    def pending(self) -> list[Job]:
        return [j for j in self.jobs if j.key not in self.done]

    def paper_gpu_hours(self) -> float:
        return sum(j.gpu_hours for j in self.jobs)


def victim_done(victim: VictimSpec, probes: tuple[str, ...], results, poison_checksum: str | None = None) -> bool:
    """A record with every probe, made with the scale's settings and data of now (a changed probe protocol
    probes the finished checkpoint again; changed training settings or data train it again), trained on
    the poison stored now (`poison_checksum`; None while the poison is still to be made, and then its
    victims are to be run again too)."""
    record = read_record(record_path(results_root(results), victim.scale, victim.key))
    if record is None or not all(p in record["metrics"] for p in probes):
        return False
    if not same_settings(record.get("settings", {}), victim_settings(victim)):
        return False
    scale = get_scale(victim.scale)
    data = record.get("data", {})
    if data.get("stands_for") != scale.describe_data(victim.dataset) or any(
            data.get("probed", {}).get(p, {}).get("stands_for") != scale.describe_data(p) for p in probes):
        return False
    if victim.poison is not None and not victim.poison.is_clean:
        return poison_checksum is not None and (record.get("poison") or {}).get("checksum") == poison_checksum
    return True


def stored_poison_checksum(attack: AttackSpec, store) -> str | None:
    """The checksum of the valid, current stored poison of `attack`, or None (missing, out of date, corrupt or
    tampered: to be made again)."""
    from attacks import PoisonError

    try:
        poison = load_poison(attack, store)
    except PoisonError:
        return None
    return None if poison is None else poison.checksum


def make_plan(grid: str, scale: str, *, results=None, store=None, rows: list[str] | None = None,
              columns: list[str] | None = None, seeds: list[int] | None = None) -> Plan:
    """Distinct jobs of a grid (or of the given rows/columns of it), in dependency order; a cell whose
    attack is not registered is skipped. A wanted row `ext:NAME` (an imported poison) is added to the grid.
    With `seeds`, every selected cell is planned once per seed (its victim and its poison take the seed)."""
    cells = grid_cells(grid, scale, extra_rows=[r for r in rows or () if is_external(r)])
    for wanted, attr in ((rows, "row"), (columns, "column")):
        if wanted:
            valid = list(dict.fromkeys(getattr(c, attr) for c in cells))
            unknown = [w for w in wanted if w not in valid]
            if unknown:
                raise UnknownNameError(attr, unknown[0], valid)
            cells = [c for c in cells if getattr(c, attr) in wanted]
    plan = Plan(grid, scale, with_seeds(cells, seeds))
    probes: dict[str, list[str]] = {}
    victims: dict[str, VictimSpec] = {}
    poisons: dict[str, AttackSpec] = {}
    for cell in plan.cells:
        poison = cell.victim.poison
        if poison is not None and poison.attack not in ATTACKS and not is_external(poison.attack):
            plan.skipped.setdefault(poison.attack, []).append(cell)
            continue
        if poison is not None:
            poisons[poison.key] = poison
        victims[cell.victim.key] = cell.victim
        probes.setdefault(cell.victim.key, [])
        if cell.probe not in probes[cell.victim.key]:
            probes[cell.victim.key].append(cell.probe)
    # a poison that starts from another (CP-S from CP-C) depends on that poison's job, added when missing
    needs: dict[str, str] = {}
    for key, attack in list(poisons.items()):
        for needed in [] if is_external(attack.attack) else ATTACKS.get(attack.attack)().requires(attack):
            poisons.setdefault(needed.key, needed)
            needs[key] = needed.key
    checksums: dict[str, str | None] = {}
    for key in sorted(poisons, key=lambda k: k in needs):  # independent poisons first
        plan.jobs.append(Job("poison", key, attack=poisons[key], depends_on=needs.get(key)))
        checksums[key] = stored_poison_checksum(poisons[key], store)
        if checksums[key] is not None:
            plan.done.add(key)
    for key, victim in victims.items():
        # the training data set is always probed first (its number is the one most tables show)
        wanted = tuple(dict.fromkeys([victim.dataset] + probes[key]))
        plan.jobs.append(Job("victim", key, victim=victim, probes=wanted,
                             depends_on=victim.poison.key if victim.poison else None))
        if victim_done(victim, wanted, results, checksums.get(victim.poison.key) if victim.poison else None):
            plan.done.add(key)
    return plan


def missing_imports(plan: Plan) -> list[AttackSpec]:
    """The imported (`ext:`) poisons a plan needs that are not in the store: nothing can make them."""
    return [j.attack for j in plan.pending if j.kind == "poison" and is_external(j.attack.attack)]
