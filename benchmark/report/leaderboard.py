"""The leaderboard: every attack per victim by the accuracy it leaves, and overall, as RobustBench does,
ranked on one fixed panel of victims per data set by its worst-case damage over the panel (then its mean
damage), damage = (clean - attacked) / (clean - untrained). An attack missing a panel victim is listed as
incomplete, with what is missing, and not ranked.

`build_leaderboard` turns the records into plain data (`Leaderboard`); `render_markdown`, `render_html` and
`render_json` are views of it. Cells of all grids are pooled and identical experiments (same victim run,
same probe) counted once; imported poisons (`ext:NAME`) found in the records are included.
"""
from __future__ import annotations

import html
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from attacks.external import is_external
from defenses import DEFENSES, DefenseSpec

from ..grids import attack_spec, grid_cells
from ..jobs.seeds import mean_text
from ..specs import CONTROL, VictimSpec
from .paper import paper_values
from .tables import PROTOCOL, SUPERVISED_NOTE, RecordCache, data_description, write_text_atomic

NOT_ATTACKS = ("none", CONTROL)
JSON_FORMAT = "cp-bench-leaderboard/1"


@dataclass(frozen=True)
class Victim:
    """What an attack is measured against: algorithm, architecture, training set, probed set."""

    algorithm: str
    arch: str
    dataset: str
    probe: str

    @property
    def label(self) -> str:
        return f"{self.algorithm}/{self.arch} {self.dataset}->{self.probe}"


# The fixed panel per data set that the overall ranking uses (ResNet-18, probed on its own training set).
PANELS: dict[str, tuple[Victim, ...]] = {
    "cifar10": tuple(Victim(a, "resnet18", "cifar10", "cifar10") for a in ("simclr", "moco", "byol", "supervised")),
}


@dataclass(frozen=True)
class Entry:
    """One attack against one victim: our accuracy, the paper's, the references for damage, and the records
    they come from (full keys; None for a reference without a spec)."""

    attack: str
    victim: Victim
    ours: float | None
    paper: float | None
    clean: float | None
    untrained: float | None
    paper_clean: float | None
    key: str | None = None
    clean_key: str | None = None
    untrained_key: str | None = None
    data: tuple[str, ...] = ()
    source_sha256: str | None = None  # an imported poison's source file, as its victim's record says
    seeds: int = 1  # how many seeds `ours` (and the references) are the mean of
    spread: float | None = None  # the sample standard deviation of `ours` over them (None below two)
    # (defense, accuracy or None, record key) for every registered defense but `none`, at its default parameters
    defended: tuple[tuple[str, float | None, str], ...] = ()

    @property
    def damage(self) -> float | None:
        return damage(self.clean, self.ours, self.untrained)

    @property
    def best_defense(self) -> tuple[str, float] | None:
        """The measured defense that leaves this victim the highest accuracy on the poison (None: none measured)."""
        measured = [(name, acc) for name, acc, _ in self.defended if acc is not None]
        return max(measured, key=lambda m: (m[1], m[0])) if measured else None

    @property
    def robust_ours(self) -> float | None:
        """The accuracy a careful victim keeps: the better of no defense and its best measured defense."""
        best = self.best_defense
        if self.ours is None:
            return None
        return self.ours if best is None else max(self.ours, best[1])

    @property
    def robust_damage(self) -> float | None:
        """Damage after the best defense, against the undefended clean victim (what the poison still takes)."""
        return damage(self.clean, self.robust_ours, self.untrained)

    @property
    def defenses_measured(self) -> int:
        return sum(acc is not None for _, acc, _ in self.defended)

    @property
    def external(self) -> bool:
        return is_external(self.attack)


@dataclass(frozen=True)
class Standing:
    """An attack on one panel: its measured panel entries and, when complete, its worst-case and mean damage."""

    attack: str
    panel: str  # the panel's data set
    entries: tuple[Entry, ...]  # the panel victims it was measured on, in the panel's order
    missing: tuple[str, ...] = ()  # why it is not ranked (a victim not measured, damage undefined)

    @property
    def complete(self) -> bool:
        return not self.missing

    def _worst(self) -> Entry | None:
        with_damage = [e for e in self.entries if e.damage is not None]
        return min(with_damage, key=lambda e: e.damage) if with_damage else None

    @property
    def worst_damage(self) -> float | None:
        worst = self._worst()
        return None if worst is None else worst.damage

    @property
    def worst_victim(self) -> str | None:
        worst = self._worst()
        return None if worst is None else worst.victim.algorithm

    @property
    def mean_damage(self) -> float | None:
        damages = [e.damage for e in self.entries if e.damage is not None]
        return sum(damages) / len(damages) if damages else None

    @property
    def worst_robust_damage(self) -> float | None:
        """The lowest damage left on the panel after each victim's best measured defense."""
        damages = [e.robust_damage for e in self.entries if e.robust_damage is not None]
        return min(damages) if damages else None

    @property
    def mean_robust_damage(self) -> float | None:
        damages = [e.robust_damage for e in self.entries if e.robust_damage is not None]
        return sum(damages) / len(damages) if damages else None

    @property
    def defenses_measured(self) -> int:
        """Defended cells measured over the panel (the robust figure equals the plain one without any)."""
        return sum(e.defenses_measured for e in self.entries)

    @property
    def worst_accuracy(self) -> float | None:
        """The highest accuracy it leaves on the panel (the victim it hurts least in raw accuracy)."""
        return max((e.ours for e in self.entries), default=None)

    @property
    def external(self) -> bool:
        return is_external(self.attack)

    @property
    def source_sha256(self) -> str | None:
        shas = {e.source_sha256 for e in self.entries if e.source_sha256}
        return shas.pop() if len(shas) == 1 else None


@dataclass
class Leaderboard:
    scale: str
    metric: str
    entries: list[Entry]
    panels: dict[str, tuple[Victim, ...]] = field(default_factory=lambda: dict(PANELS))

    def victims(self) -> list[Victim]:
        return list(dict.fromkeys(e.victim for e in self.entries))

    def ranked(self, victim: Victim) -> list[tuple[int, Entry]]:
        """The measured attacks on `victim`, lowest accuracy (strongest attack) first, with their rank."""
        measured = sorted((e for e in self.entries if e.victim == victim and e.ours is not None),
                          key=lambda e: (e.ours, e.attack))
        return competition_ranks(measured, lambda e: e.ours)

    def measured_attacks(self) -> list[str]:
        return list(dict.fromkeys(e.attack for e in self.entries if e.ours is not None))

    def panel_standings(self, panel: str) -> list[Standing]:
        """Every measured attack's standing on `panel` (complete or not), in the order attacks first appear."""
        victims = self.panels[panel]
        by = {(e.attack, e.victim): e for e in self.entries}
        out = []
        for attack in self.measured_attacks():
            entries, missing = [], []
            for v in victims:
                e = by.get((attack, v))
                if e is None or e.ours is None:
                    missing.append(f"{v.algorithm} not measured")
                    continue
                entries.append(e)
                if e.damage is None:
                    why = ("clean not measured" if e.clean is None else "untrained not measured"
                           if e.untrained is None else "clean not above untrained")
                    missing.append(f"{v.algorithm}: no damage ({why})")
            shas = sorted({e.source_sha256 for e in entries if e.source_sha256})
            if len(shas) > 1:
                missing.append(f"records of different source files (sha256 {', '.join(s[:12] for s in shas)}): "
                               "run its victims again")
            out.append(Standing(attack, panel, tuple(entries), tuple(missing)))
        return out

    def standings(self, panel: str = "cifar10") -> list[tuple[int, Standing]]:
        """The complete attacks on `panel`, ranked by worst-case damage over it, then mean damage (higher is
        stronger; equal pairs share a rank)."""
        complete = sorted((s for s in self.panel_standings(panel) if s.complete),
                          key=lambda s: (-s.worst_damage, -s.mean_damage, s.attack))
        return competition_ranks(complete, lambda s: (s.worst_damage, s.mean_damage))

    def robust_standings(self, panel: str = "cifar10") -> list[tuple[int, Standing]]:
        """The complete attacks on `panel` ranked by their worst-case damage after the best defense, then the
        mean (each victim picks the defense, or none, that leaves it the most accuracy)."""
        complete = sorted((s for s in self.panel_standings(panel) if s.complete),
                          key=lambda s: (-s.worst_robust_damage, -s.mean_robust_damage, s.attack))
        return competition_ranks(complete, lambda s: (s.worst_robust_damage, s.mean_robust_damage))

    def incomplete(self, panel: str = "cifar10") -> list[Standing]:
        """The measured attacks missing something on `panel`, most panel victims measured first."""
        return sorted((s for s in self.panel_standings(panel) if not s.complete),
                      key=lambda s: (-len(s.entries), s.attack))


def damage(clean: float | None, attacked: float | None, untrained: float | None) -> float | None:
    """The share of what the victim learned that the attack took away; None where undefined (a missing
    number, or clean not above untrained)."""
    if clean is None or attacked is None or untrained is None or clean <= untrained:
        return None
    return (clean - attacked) / (clean - untrained)


def competition_ranks(items: list, value) -> list[tuple[int, object]]:
    """1, 2, 2, 4 ranking of items already sorted by `value`."""
    out, previous = [], None
    for i, item in enumerate(items):
        rank = out[-1][0] if previous is not None and value(item) == previous else i + 1
        out.append((rank, item))
        previous = value(item)
    return out


def attack_label(victim: VictimSpec) -> str:
    """`cp-s@moco` for attacks made with a contrastive algorithm, else the attack's name (`ap-t`, `ext:NAME`)."""
    poison = victim.poison
    if poison is None:
        return "none"
    return f"{poison.attack}@{poison.algorithm}" if poison.algorithm not in (None, "supervised") else poison.attack


def undefended(victim: VictimSpec) -> bool:
    """The victim trains on the whole poisoned set with no defense: the cells the ranking is made of."""
    return victim.defense_name == "none" and victim.poison_ratio == 1


def build_leaderboard(results: Path, scale: str, metric: str = "probe_best") -> Leaderboard:
    """Every attack cell of every grid (imported poisons' rows included), deduplicated, with its clean and
    untrained references, plus each attack's panel victims where the grids lack them (recorded by
    `bench victim` or another grid's row)."""
    cache = RecordCache(results, scale)
    cells = grid_cells("all", scale, cache.external_rows())
    paper: dict[tuple[str, str], float] = {}
    for c in cells:
        value = paper_values(c.grid).get((c.row, c.column))
        if value is not None:
            paper.setdefault((c.victim.key, c.probe), value)

    def entry(attack: str, spec: VictimSpec, probe: str) -> Entry:
        clean, untrained = spec.clean(), spec.control()
        m = cache.measure(spec, probe, metric)
        defended = tuple((name, cache.measure(d, probe, metric).mean, d.key) for name in DEFENSES.names()
                         if name != "none" for d in [replace(spec, defense=DefenseSpec(name))])
        record = cache.first_record(spec, m)
        return Entry(attack, Victim(spec.algorithm, spec.arch, spec.dataset, probe), m.mean,
                     paper.get((spec.key, probe)), cache.measure(clean, probe, metric).mean,
                     cache.measure(untrained, probe, metric).mean, paper.get((clean.key, probe)),
                     spec.key, clean.key, untrained.key, data_description(record, probe) if m.n else (),
                     ((record or {}).get("poison") or {}).get("source_sha256"), max(m.n, 1), m.spread, defended)

    entries, seen = [], set()
    for c in cells:
        if c.row in NOT_ATTACKS or (c.victim.key, c.probe) in seen or not undefended(c.victim):
            continue
        seen.add((c.victim.key, c.probe))
        entries.append(entry(attack_label(c.victim), c.victim, c.probe))
    for attack in list(dict.fromkeys(e.attack for e in entries)):
        for victims in PANELS.values():
            for v in victims:
                spec = VictimSpec(v.algorithm, v.arch, v.dataset, attack_spec(attack, v.dataset, v.algorithm, scale),
                                  scale)
                if (spec.key, v.probe) not in seen:
                    seen.add((spec.key, v.probe))
                    entries.append(entry(attack, spec, v.probe))
    return Leaderboard(scale, metric, entries)


# ---------------------------------------------------------------------------------------------- rendering

def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def accuracy_text(e: Entry) -> str:
    """'44.9', or '44.9 ± 0.6 (3 seeds)' for the mean of several seeds."""
    return _num(e.ours) if e.ours is None else mean_text(e.ours, e.spread, e.seeds)


def origin(s: Standing) -> str:
    """`built-in`, or `external (sha256 …)` with the first 12 digits of the imported poison's source file."""
    if not s.external:
        return "built-in"
    return f"external (sha256 {s.source_sha256[:12]})" if s.source_sha256 else "external"


def panel_title(lb: Leaderboard, panel: str) -> str:
    victims = lb.panels[panel]
    return f"{panel}, {victims[0].arch}: {', '.join(v.algorithm for v in victims)}"


def overall_frame(lb: Leaderboard, panel: str = "cifar10") -> pd.DataFrame:
    rows = [[rank, s.attack, _num(s.worst_damage, 2), s.worst_victim, _num(s.mean_damage, 2), _num(s.worst_accuracy),
             origin(s)] for rank, s in lb.standings(panel)]
    return pd.DataFrame(rows, columns=["rank", "attack", "worst-case damage", "on victim", "mean damage",
                                       "worst-case accuracy", "origin"])


def robust_frame(lb: Leaderboard, panel: str = "cifar10") -> pd.DataFrame:
    """The ranking after the best defense: each panel victim keeps the best of no defense and its measured
    defenses."""
    def best(s: Standing) -> str:
        worst = min((e for e in s.entries if e.robust_damage is not None), key=lambda e: e.robust_damage)
        chosen = worst.best_defense
        return "none" if chosen is None or worst.ours is None or chosen[1] <= worst.ours else chosen[0]

    rows = [[rank, s.attack, _num(s.worst_robust_damage, 2), _num(s.worst_damage, 2), best(s),
             str(s.defenses_measured), origin(s)] for rank, s in lb.robust_standings(panel)]
    return pd.DataFrame(rows, columns=["rank", "attack", "worst-case damage after the best defense",
                                       "without defense", "its best defense", "defended cells", "origin"])


def incomplete_frame(lb: Leaderboard, panel: str = "cifar10") -> pd.DataFrame:
    rows = [["-", s.attack, f"{len(s.entries)} of {len(lb.panels[panel])}", "; ".join(s.missing), origin(s)]
            for s in lb.incomplete(panel)]
    return pd.DataFrame(rows, columns=["rank", "attack", "measured", "missing", "origin"])


def victim_frame(lb: Leaderboard, victim: Victim) -> pd.DataFrame:
    """Ranked attacks, then the attacks not measured yet that the paper reports (unranked)."""
    ranked = lb.ranked(victim)
    pending = sorted((e for e in lb.entries if e.victim == victim and e.ours is None and e.paper is not None),
                     key=lambda e: (e.paper, e.attack))
    rows = [[rank, e.attack, accuracy_text(e), _num(e.paper), _num(e.damage, 2)] for rank, e in ranked]
    rows += [["-", e.attack, "-", _num(e.paper), "-"] for e in pending]
    return pd.DataFrame(rows, columns=["rank", "attack", "accuracy", "paper", "damage"])


def victim_note(lb: Leaderboard, victim: Victim) -> str:
    e = next(e for e in lb.entries if e.victim == victim)
    return f"clean {_num(e.clean)} (paper {_num(e.paper_clean)}), untrained {_num(e.untrained)}"


def unmeasured(lb: Leaderboard) -> list[str]:
    """Attacks without any measured cell."""
    measured = set(lb.measured_attacks())
    return [a for a in dict.fromkeys(e.attack for e in lb.entries) if a not in measured]


def shown_victims(lb: Leaderboard) -> list[Victim]:
    return [v for v in lb.victims() if lb.ranked(v)]


def intro(lb: Leaderboard) -> list[str]:
    return [f"Scale {lb.scale}. Accuracy: {PROTOCOL[lb.metric]} [{lb.metric}]; {SUPERVISED_NOTE}. "
            "Lower accuracy = stronger attack.",
            "Damage = (clean - attacked) / (clean - untrained): the share of what the victim learned that the "
            "attack took away (1 = down to a random network; same victim, architecture, data and probe).",
            "Overall ranking: on one fixed panel of victims per data set, by the worst-case (lowest) damage over "
            "the panel, then the mean damage; an attack missing a panel victim is listed as incomplete, not "
            "ranked. Worst-case accuracy = the highest accuracy it leaves on the panel.",
            "ext:NAME = a poison made elsewhere and imported with `bench import-poison` (origin: the sha256 of its "
            "source file; all digits in leaderboard.json)."] + \
        (["A victim measured with several seeds: its accuracy is the mean ± the sample standard deviation over "
          "them, and damage uses the means (clean and untrained too)."]
         if any(e.seeds > 1 for e in lb.entries) else [])


ROBUST_NOTE = ("Each panel victim keeps the best of no defense and the defenses measured on it (the defenses grid, "
               "`bench run --grid defenses`); damage against the undefended clean victim. With no defended cell "
               "measured it equals the plain ranking.")


LEFT_COLUMNS = ("attack", "on victim", "missing", "origin", "its best defense")


def _table(df: pd.DataFrame, fmt: str) -> str:
    return tabulate(df, headers="keys", tablefmt=fmt, showindex=False, disable_numparse=True,
                    colalign=tuple("left" if c in LEFT_COLUMNS else "right"
                                   for c in df.columns))


def render_markdown(lb: Leaderboard) -> str:
    out = [f"# Leaderboard ({lb.scale} scale)", ""] + [line for p in intro(lb) for line in (p, "")]
    for panel in lb.panels:
        overall, incomplete = overall_frame(lb, panel), incomplete_frame(lb, panel)
        out += [f"## Overall: panel {panel_title(lb, panel)}", "",
                _table(overall, "pipe") if len(overall) else "No attack measured on the whole panel yet.", ""]
        robust = robust_frame(lb, panel)
        if len(robust):
            out += [f"### After the best defense: panel {panel}", "", ROBUST_NOTE, "", _table(robust, "pipe"), ""]
        if len(incomplete):
            out += [f"### Incomplete on the {panel} panel (not ranked)", "", _table(incomplete, "pipe"), ""]
    if unmeasured(lb):
        out += [f"Not measured yet: {', '.join(unmeasured(lb))}.", ""]
    out += ["## Per victim", ""]
    for v in shown_victims(lb):
        out += [f"### {v.label}", "", victim_note(lb, v), "", _table(victim_frame(lb, v), "pipe"), ""]
    waiting = len(lb.victims()) - len(shown_victims(lb))
    if waiting:
        out += [f"{waiting} more victim{'s' * (waiting != 1)} with no measured attack yet (see `bench tables`)."]
    return "\n".join(out) + "\n"


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{padding:.25em .7em;border-bottom:1px solid #ddd}
th{cursor:pointer;background:#f4f4f4;text-align:left}th:hover{background:#e8e8e8}
td{text-align:right}td:nth-child(2){text-align:left;white-space:nowrap}p.note{color:#555}
table[id^=overall] td:nth-child(4),table[id^=overall] td:nth-child(7),table[id^=incomplete] td:nth-child(n+4)
{text-align:left}"""
SCRIPT = """document.querySelectorAll('table').forEach(function(t){
 t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
  var b=t.tBodies[0],rows=Array.from(b.rows),asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
  function key(r){var s=r.cells[i].textContent.trim(),n=parseFloat(s);return isNaN(n)?s:n;}
  rows.sort(function(a,c){var x=key(a),y=key(c);if(typeof x!==typeof y){return typeof x==='number'?-1:1;}
   return (x<y?-1:x>y?1:0)*(asc?1:-1);});rows.forEach(function(r){b.appendChild(r);});});});});"""


def render_html(lb: Leaderboard) -> str:
    """One self-contained page (inline CSS, inline JavaScript to sort by a clicked column)."""
    e = html.escape
    body = [f"<h1>Leaderboard ({e(lb.scale)} scale)</h1>", *(f'<p class="note">{e(p)}</p>' for p in intro(lb))]
    for panel in lb.panels:
        overall, incomplete = overall_frame(lb, panel), incomplete_frame(lb, panel)
        body.append(f"<h2>Overall: panel {e(panel_title(lb, panel))}</h2>")
        body.append(_table(overall, "html").replace("<table>", f'<table id="overall-{e(panel)}">', 1)
                    if len(overall) else "<p>No attack measured on the whole panel yet.</p>")
        robust = robust_frame(lb, panel)
        if len(robust):
            body += [f"<h3>After the best defense: panel {e(panel)}</h3>", f'<p class="note">{e(ROBUST_NOTE)}</p>',
                     _table(robust, "html").replace("<table>", f'<table id="robust-{e(panel)}">', 1)]
        if len(incomplete):
            body += [f"<h3>Incomplete on the {e(panel)} panel (not ranked)</h3>",
                     _table(incomplete, "html").replace("<table>", f'<table id="incomplete-{e(panel)}">', 1)]
    if unmeasured(lb):
        body.append(f'<p class="note">Not measured yet: {e(", ".join(unmeasured(lb)))}.</p>')
    body.append("<h2>Per victim</h2>")
    for v in shown_victims(lb):
        body += [f"<h3>{e(v.label)}</h3>", f'<p class="note">{e(victim_note(lb, v))}</p>',
                 _table(victim_frame(lb, v), "html")]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>cp-bench leaderboard ({e(lb.scale)})</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n"
            + "\n".join(body) + f"\n<script>\n{SCRIPT}\n</script>\n</body>\n</html>\n")


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def entry_json(e: Entry) -> dict:
    return {"victim": {"algorithm": e.victim.algorithm, "arch": e.victim.arch, "dataset": e.victim.dataset,
                       "probe": e.victim.probe},
            "accuracy": e.ours, "seeds": e.seeds if e.ours is not None else 0, "spread": _round(e.spread),
            "clean": e.clean, "untrained": e.untrained, "damage": _round(e.damage),
            "paper": e.paper, "record": e.key, "clean_record": e.clean_key, "untrained_record": e.untrained_key,
            "data": list(e.data), **({"source_sha256": e.source_sha256} if e.external else {}),
            "defended": {name: {"accuracy": acc, "record": key} for name, acc, key in e.defended},
            "best_defense": e.best_defense[0] if e.best_defense else None,
            "damage_after_best_defense": _round(e.robust_damage)}


def standing_json(s: Standing, rank: int | None = None) -> dict:
    out = {"rank": rank, "attack": s.attack, "panel": s.panel, "external": s.external}
    if s.external:
        out["source_sha256"] = s.source_sha256
    if s.complete:
        out.update(worst_damage=_round(s.worst_damage), worst_victim=s.worst_victim,
                   mean_damage=_round(s.mean_damage), worst_accuracy=s.worst_accuracy,
                   worst_damage_after_best_defense=_round(s.worst_robust_damage),
                   mean_damage_after_best_defense=_round(s.mean_robust_damage))
    else:
        out["missing"] = list(s.missing)
    return {**out, "victims": [entry_json(e) for e in s.entries]}


def render_json(lb: Leaderboard) -> str:
    """The ranked and the incomplete entries of every panel as JSON (sorted keys, no timestamps: diffable)."""
    doc = {"format": JSON_FORMAT, "scale": lb.scale, "metric": lb.metric,
           "panels": {p: [v.label for v in vs] for p, vs in lb.panels.items()},
           "ranked": [standing_json(s, rank) for p in lb.panels for rank, s in lb.standings(p)],
           "ranked_after_best_defense": [{"rank": rank, "attack": s.attack, "panel": p}
                                         for p in lb.panels for rank, s in lb.robust_standings(p)],
           "incomplete": [standing_json(s) for p in lb.panels for s in lb.incomplete(p)]}
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def write_leaderboard(lb: Leaderboard, results: Path) -> tuple[Path, Path, Path]:
    """`results/leaderboard.md`, `.html` and `.json`, each written atomically."""
    paths = tuple(Path(results) / f"leaderboard.{ext}" for ext in ("md", "html", "json"))
    for path, render in zip(paths, (render_markdown, render_html, render_json)):
        write_text_atomic(path, render(lb))
    return paths  # type: ignore[return-value]


__all__ = ["PANELS", "Entry", "Leaderboard", "Standing", "Victim", "attack_label", "build_leaderboard", "damage",
           "render_html", "render_json", "render_markdown", "write_leaderboard"]
