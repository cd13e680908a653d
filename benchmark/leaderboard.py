"""The leaderboard: every attack ranked by the accuracy it leaves, per victim and by its worst case over
victims, with its damage = (clean - attacked) / (clean - untrained) beside the raw accuracy.

`build_leaderboard` turns the records into plain data (`Leaderboard`); `render_markdown` and `render_html`
are views of it. Cells of all grids are pooled and identical experiments (same victim run, same probe)
counted once.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from .grids import grid_cells
from .paper import paper_values
from .specs import CONTROL, VictimSpec
from .tables import PROTOCOL, SUPERVISED_NOTE, RecordCache, cell_metric, write_text_atomic

NOT_ATTACKS = ("none", CONTROL)


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


@dataclass(frozen=True)
class Entry:
    """One attack against one victim: our accuracy, the paper's, and the references for damage."""

    attack: str
    victim: Victim
    ours: float | None
    paper: float | None
    clean: float | None
    untrained: float | None
    paper_clean: float | None

    @property
    def damage(self) -> float | None:
        return damage(self.clean, self.ours, self.untrained)


@dataclass(frozen=True)
class Standing:
    """An attack's overall standing over the victims it was measured on."""

    attack: str
    victims: int
    worst: float  # the highest accuracy it leaves (the victim it hurts least)
    worst_victim: str
    paper_worst: float | None  # the paper's highest over the same victims, where the paper has them
    worst_damage: float | None  # the lowest damage over the victims where damage is defined
    mean_damage: float | None


@dataclass
class Leaderboard:
    scale: str
    metric: str
    entries: list[Entry]

    def victims(self) -> list[Victim]:
        return list(dict.fromkeys(e.victim for e in self.entries))

    def ranked(self, victim: Victim) -> list[tuple[int, Entry]]:
        """The measured attacks on `victim`, lowest accuracy (strongest attack) first, with their rank."""
        measured = sorted((e for e in self.entries if e.victim == victim and e.ours is not None),
                          key=lambda e: (e.ours, e.attack))
        return competition_ranks(measured, lambda e: e.ours)

    def standings(self) -> list[tuple[int, Standing]]:
        """Attacks ranked by their worst case (lower is stronger)."""
        out = []
        for attack in dict.fromkeys(e.attack for e in self.entries):
            measured = [e for e in self.entries if e.attack == attack and e.ours is not None]
            if not measured:
                continue
            worst = max(measured, key=lambda e: e.ours)
            papers = [e.paper for e in measured if e.paper is not None]
            damages = [e.damage for e in measured if e.damage is not None]
            out.append(Standing(attack, len(measured), worst.ours, worst.victim.label, max(papers, default=None),
                                min(damages, default=None), sum(damages) / len(damages) if damages else None))
        out.sort(key=lambda s: (s.worst, s.attack))
        return competition_ranks(out, lambda s: s.worst)

    def damage_ranks(self) -> dict[str, int]:
        """Rank of each attack by its worst-case damage (higher is stronger); attacks without one are left out."""
        with_damage = sorted((s for _, s in self.standings() if s.worst_damage is not None),
                             key=lambda s: (-s.worst_damage, s.attack))
        return {s.attack: r for r, s in competition_ranks(with_damage, lambda s: -s.worst_damage)}


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
    """`cp-s@moco` for attacks made with a contrastive algorithm, else the attack's name (`ap-t`)."""
    poison = victim.poison
    if poison is None:
        return "none"
    return f"{poison.attack}@{poison.algorithm}" if poison.algorithm not in (None, "supervised") else poison.attack


def build_leaderboard(results: Path, scale: str, metric: str = "probe_best") -> Leaderboard:
    """Every attack cell of every grid, deduplicated, with its clean and untrained references."""
    cells = grid_cells("all", scale)
    paper: dict[tuple[str, str], float] = {}
    for c in cells:
        value = paper_values(c.grid).get((c.row, c.column))
        if value is not None:
            paper.setdefault((c.victim.key, c.probe), value)
    cache = RecordCache(results, scale)

    def ours(spec: VictimSpec, probe: str) -> float | None:
        return cell_metric(cache.get(spec.key), probe, metric)

    entries, seen = [], set()
    for c in cells:
        if c.row in NOT_ATTACKS or (c.victim.key, c.probe) in seen:
            continue
        seen.add((c.victim.key, c.probe))
        clean = replace(c.victim, poison=None)
        untrained = replace(c.victim, algorithm=CONTROL, poison=None)
        entries.append(Entry(attack_label(c.victim), Victim(c.victim.algorithm, c.victim.arch, c.victim.dataset,
                                                             c.probe),
                             ours(c.victim, c.probe), paper.get((c.victim.key, c.probe)), ours(clean, c.probe),
                             ours(untrained, c.probe), paper.get((clean.key, c.probe))))
    return Leaderboard(scale, metric, entries)


# ---------------------------------------------------------------------------------------------- rendering

def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def overall_frame(lb: Leaderboard) -> pd.DataFrame:
    by_damage = lb.damage_ranks()
    rows = [[rank, s.attack, s.victims, _num(s.worst), s.worst_victim, _num(s.paper_worst), _num(s.worst_damage, 2),
             _num(s.mean_damage, 2), by_damage.get(s.attack, "-")] for rank, s in lb.standings()]
    return pd.DataFrame(rows, columns=["rank", "attack", "victims", "worst-case accuracy", "on victim",
                                       "paper worst case", "worst-case damage", "mean damage", "rank by damage"])


def victim_frame(lb: Leaderboard, victim: Victim) -> pd.DataFrame:
    """Ranked attacks, then the attacks not measured yet that the paper reports (unranked)."""
    ranked = lb.ranked(victim)
    pending = sorted((e for e in lb.entries if e.victim == victim and e.ours is None and e.paper is not None),
                     key=lambda e: (e.paper, e.attack))
    rows = [[rank, e.attack, _num(e.ours), _num(e.paper), _num(e.damage, 2)] for rank, e in ranked]
    rows += [["-", e.attack, "-", _num(e.paper), "-"] for e in pending]
    return pd.DataFrame(rows, columns=["rank", "attack", "accuracy", "paper", "damage"])


def victim_note(lb: Leaderboard, victim: Victim) -> str:
    e = next(e for e in lb.entries if e.victim == victim)
    return f"clean {_num(e.clean)} (paper {_num(e.paper_clean)}), untrained {_num(e.untrained)}"


def unmeasured(lb: Leaderboard) -> list[str]:
    """Attacks without any measured cell."""
    measured = {s.attack for _, s in lb.standings()}
    return [a for a in dict.fromkeys(e.attack for e in lb.entries) if a not in measured]


def shown_victims(lb: Leaderboard) -> list[Victim]:
    return [v for v in lb.victims() if lb.ranked(v)]


def intro(lb: Leaderboard) -> list[str]:
    return [f"Scale {lb.scale}. Accuracy: {PROTOCOL[lb.metric]} [{lb.metric}]; {SUPERVISED_NOTE}. "
            "Lower accuracy = stronger attack.",
            "Damage = (clean - attacked) / (clean - untrained): the share of what the victim learned that the "
            "attack took away (1 = down to a random network; same victim, architecture, data and probe).",
            "Worst case = the highest accuracy an attack leaves over the victims it was measured on (the victim "
            "it hurts least); paper worst case = the paper's highest over the same victims."]


def _table(df: pd.DataFrame, fmt: str) -> str:
    return tabulate(df, headers="keys", tablefmt=fmt, showindex=False, disable_numparse=True,
                    colalign=tuple("left" if c in ("attack", "on victim") else "right" for c in df.columns))


def render_markdown(lb: Leaderboard) -> str:
    out = [f"# Leaderboard ({lb.scale} scale)", ""] + [line for p in intro(lb) for line in (p, "")]
    overall = overall_frame(lb)
    out += ["## Overall: worst case over victims", "",
            _table(overall, "pipe") if len(overall) else "No attack measured yet.", ""]
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
td{text-align:right}td:nth-child(2){text-align:left}p.note{color:#555}"""
SCRIPT = """document.querySelectorAll('table').forEach(function(t){
 t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
  var b=t.tBodies[0],rows=Array.from(b.rows),asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
  function key(r){var s=r.cells[i].textContent.trim(),n=parseFloat(s);return isNaN(n)?s:n;}
  rows.sort(function(a,c){var x=key(a),y=key(c);if(typeof x!==typeof y){return typeof x==='number'?-1:1;}
   return (x<y?-1:x>y?1:0)*(asc?1:-1);});rows.forEach(function(r){b.appendChild(r);});});});});"""


def render_html(lb: Leaderboard) -> str:
    """One self-contained page (inline CSS, inline JavaScript to sort by a clicked column)."""
    e = html.escape
    body = [f"<h1>Leaderboard ({e(lb.scale)} scale)</h1>", *(f'<p class="note">{e(p)}</p>' for p in intro(lb)),
            "<h2>Overall: worst case over victims</h2>"]
    overall = overall_frame(lb)
    body.append(_table(overall, "html") if len(overall) else "<p>No attack measured yet.</p>")
    if unmeasured(lb):
        body.append(f'<p class="note">Not measured yet: {e(", ".join(unmeasured(lb)))}.</p>')
    body.append("<h2>Per victim</h2>")
    for v in shown_victims(lb):
        body += [f"<h3>{e(v.label)}</h3>", f'<p class="note">{e(victim_note(lb, v))}</p>',
                 _table(victim_frame(lb, v), "html")]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>cp-bench leaderboard ({e(lb.scale)})</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n"
            + "\n".join(body) + f"\n<script>\n{SCRIPT}\n</script>\n</body>\n</html>\n")


def write_leaderboard(lb: Leaderboard, results: Path) -> tuple[Path, Path]:
    """`results/leaderboard.md` and `results/leaderboard.html`, each written atomically."""
    md, page = Path(results) / "leaderboard.md", Path(results) / "leaderboard.html"
    write_text_atomic(md, render_markdown(lb))
    write_text_atomic(page, render_html(lb))
    return md, page


__all__ = ["Entry", "Leaderboard", "Standing", "Victim", "attack_label", "build_leaderboard", "damage",
           "render_html", "render_markdown", "write_leaderboard"]
