"""`bench figures`: the paper's figures and qualitative findings regenerated from the records and the store.

Figures (each written as PNG and PDF, atomically):
- `bars_<grid>`: every table as grouped bars, ours beside the paper's value per cell;
- `spectrum`: the mean Fourier amplitude spectrum of each stored poison's perturbations;
- `separability`: the test accuracy of a linear classifier trained on the perturbations alone;
- `alignment_uniformity`: a victim's alignment and uniformity over training, clean vs poisoned;
- `tsne`: a t-SNE of clean test features of a clean and a CP-poisoned SimCLR victim.
The last two read only the records made with the code of now, as the tables do.

Each `*_figure` function returns (figure, the numbers plotted), so that the numbers can be checked apart
from the drawing. matplotlib (Agg) and scikit-learn are imported only when a figure is drawn.
"""
from __future__ import annotations

import argparse
import textwrap
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from attacks import ATTACKS, Poison, PoisonError
from victims.algorithms import ALGORITHMS, contrastive_algorithms
from victims.atomic import atomic_path
from victims.distributed import default_device
from victims.recipes import build_model

from ..data import DatasetNotFoundError, ImageData
from ..grids import GRIDS, attack_spec, grid_cells
from ..jobs.poison_store import load_poison, poison_path
from ..jobs.splits import load_split
from ..jobs.victim import victim_checkpoint
from ..records import read_records, results_root
from ..scales import get_scale
from ..specs import SCALES, VictimSpec
from .leaderboard import damage
from .tables import RecordCache, Table, build_tables, caption, cell_metric, is_current

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TABLE_GRIDS = tuple(n for n in GRIDS.names() if n != "all")
def poison_rows() -> tuple[str, ...]:
    """Every registered attack (the figures of a poison's perturbations show those stored)."""
    return tuple(ATTACKS)
FIGURES = tuple(f"bars_{g}" for g in TABLE_GRIDS) + ("spectrum", "separability", "alignment_uniformity", "tsne",
                                                     "ratio")
FORMATS = ("png", "pdf")
DATASET = "cifar10"  # the data set of the qualitative figures, as in the paper
def linestyle(algorithm: str) -> str:
    """One line style per registered algorithm, in registration order."""
    styles = ("-", "--", ":", "-.")
    names = ALGORITHMS.names()
    return styles[names.index(algorithm) % len(styles)] if algorithm in names else "-"


class FigureSkipped(Exception):
    """A figure that cannot be drawn from what exists yet (the message says why)."""


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, folder: Path, name: str) -> list[Path]:
    """Write `<name>.png` and `<name>.pdf` under `folder`, each atomically (temp file + rename); close `fig`."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in FORMATS:
        path = folder / f"{name}.{fmt}"
        metadata = {"CreationDate": None} if fmt == "pdf" else {}
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
        written.append(path)
    pyplot().close(fig)
    return written


def wrap(text: str, width: int = 120) -> str:
    return "\n".join(textwrap.wrap(text, width))


# ---------------------------------------------------------------------------------------------- bars

def bar_values(table: Table) -> dict[tuple[str, str], tuple[float | None, float | None]]:
    """{(row, column): (ours, paper)} of every cell (None: not measured / no paper value)."""
    return {(c.row, c.column): (c.ours, c.paper) for c in table.cells}


def bars_figure(table: Table) -> tuple[Figure, dict]:
    """One panel per column, two bars per row (paper, ours); a cell not measured has only its paper bar, a cell
    measured with several seeds shows their mean with one standard deviation as an error bar."""
    plt = pyplot()
    values = bar_values(table)
    rows, columns = table.rows, table.columns
    width = max(6.0, 0.42 * len(rows) * len(columns) + 1.5)
    fig, axes = plt.subplots(1, len(columns), figsize=(width, 4.2), sharey=True, squeeze=False)
    x, w = np.arange(len(rows)), 0.4
    for ax, column in zip(axes[0], columns):
        cells = [values.get((row, column), (None, None)) for row in rows]
        paper = [(i, p) for i, (_, p) in enumerate(cells) if p is not None]
        ours = [(i, o) for i, (o, _) in enumerate(cells) if o is not None]
        if paper:
            ax.bar([x[i] - w / 2 for i, _ in paper], [p for _, p in paper], w, color="0.78", edgecolor="0.4",
                   linewidth=0.5, label="paper")
        if ours:
            ax.bar([x[i] + w / 2 for i, _ in ours], [o for _, o in ours], w, color="C0", label=f"ours ({table.scale})")
        spread = [(x[rows.index(c.row)] + w / 2, c.ours, c.spread) for c in table.cells
                  if c.column == column and c.row in rows and c.ours is not None and c.spread is not None]
        if spread:  # the mean of several seeds: one standard deviation either side
            ax.errorbar([i for i, _, _ in spread], [o for _, o, _ in spread], yerr=[s for _, _, s in spread],
                        fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
        for i, (o, p) in enumerate(cells):
            if o is None and p is not None:
                ax.text(x[i] + w / 2, 1, "not run", rotation=90, ha="center", va="bottom", fontsize=6, color="0.3")
        ax.set_xticks(x, rows, rotation=60, ha="right", fontsize=7)
        ax.set_title(column, fontsize=8)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", linewidth=0.3)
    axes[0][0].set_ylabel("top-1 accuracy (%)")
    handles = [plt.Rectangle((0, 0), 1, 1, color="0.78", ec="0.4"), plt.Rectangle((0, 0), 1, 1, color="C0")]
    fig.legend(handles, ["paper", f"ours ({table.scale} scale)"], loc="upper right", fontsize=7)
    title, data, _ = caption(table)
    fig.suptitle(f"{title}\n{wrap(data, int(width * 14))}", fontsize=8)
    fig.tight_layout()
    return fig, values


# ---------------------------------------------------------------------------------------------- poisons

def find_poisons(scale: str, store=None, rows: tuple[str, ...] | None = None, algorithm: str = "simclr",
                 dataset: str = DATASET) -> tuple[dict[str, Poison], list[str]]:
    """The stored poisons of `rows` as the grids specify them (CP made with `algorithm`), and a note for
    each one missing or unreadable."""
    found, notes = {}, []
    for row in rows or poison_rows():
        spec = attack_spec(row, dataset, algorithm, scale)
        try:
            poison = load_poison(spec, store)
        except (PoisonError, OSError) as err:
            notes.append(f"{row}: unreadable poison {poison_path(spec, store)} ({err})")
            continue
        if poison is None:
            notes.append(f"{row}: no poison at {poison_path(spec, store)}")
        else:
            found[row] = poison
    return found, notes


def poison_label(row: str, poison: Poison) -> str:
    return f"{row} ({'class' if poison.per == 'class' else 'sample'}-wise)"


def amplitude_spectrum(delta: torch.Tensor, chunk: int = 4096) -> np.ndarray:
    """Mean over samples and channels of |FFT2(delta)|, zero frequency at the centre: (H, W)."""
    total = torch.zeros(delta.shape[-2:], dtype=torch.float64)
    for start in range(0, len(delta), chunk):
        amp = torch.fft.fft2(delta[start:start + chunk].double()).abs()
        total += amp.sum(dim=(0, 1))
    mean = total / (delta.shape[0] * delta.shape[1])
    return torch.fft.fftshift(mean).numpy()


def spectrum_figure(poisons: dict[str, Poison], subtitle: str = "") -> tuple[Figure, dict[str, np.ndarray]]:
    """One panel per poison: its mean amplitude spectrum on one shared log colour scale."""
    from matplotlib.colors import LogNorm

    if not poisons:
        raise FigureSkipped("no poison found")
    plt = pyplot()
    spectra = {row: amplitude_spectrum(p.delta) for row, p in poisons.items()}
    positive = np.concatenate([s[s > 0] for s in spectra.values()] or [np.ones(1)])
    norm = LogNorm(vmin=max(float(positive.min()), 1e-3), vmax=float(positive.max()))
    fig, axes = plt.subplots(1, len(spectra), figsize=(2.6 * len(spectra) + 0.8, 3.0), squeeze=False)
    for ax, (row, spectrum) in zip(axes[0], spectra.items()):
        h, w = spectrum.shape
        image = ax.imshow(np.clip(spectrum, norm.vmin, None), norm=norm, cmap="viridis",
                          extent=(-w / 2, w / 2, h / 2, -h / 2))
        ax.set_title(poison_label(row, poisons[row]), fontsize=8)
        ax.set_xlabel("frequency (x)", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0][0].set_ylabel("frequency (y)", fontsize=7)
    fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label="mean |FFT2(delta)| (pixel units, log)")
    fig.suptitle(f"Fourier amplitude spectrum of the perturbations (centre: zero frequency){subtitle}", fontsize=9)
    return fig, spectra


def perturbation_features(poison: Poison, data: ImageData) -> torch.Tensor:
    """Each training sample's perturbation, flattened, in units of eps (a class-wise poison by label)."""
    rows = poison.perturbation_for(data.index).rows(torch.arange(len(data)), data.labels)
    return rows.flatten(1).float() / max(poison.eps_pixels, 1)


def linear_separability(features: torch.Tensor, labels: torch.Tensor, *, test_fraction: float = 0.2,
                        seed: int = 0, steps: int = 100, weight_decay: float = 1e-4,
                        max_samples: int = 20000) -> float:
    """Test accuracy (%) of a multinomial logistic regression from `features` to `labels`, trained on a
    random (1 - test_fraction) split (at most `max_samples` samples in all), tested on the rest."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)[:max_samples]
    n_test = max(1, round(len(order) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    num_classes = int(labels.max()) + 1
    x, y = features[train], labels[train]
    linear = torch.nn.Linear(features.shape[1], num_classes)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(linear.parameters(), lr=1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(x), y) + weight_decay * linear.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float((linear(features[test]).argmax(1) == labels[test]).float().mean()) * 100


def separability_figure(poisons: dict[str, Poison], data: ImageData,
                        subtitle: str = "") -> tuple[Figure, dict[str, float]]:
    """A bar per poison: the linear separability of its perturbations (chance: 100 / classes)."""
    if not poisons:
        raise FigureSkipped("no poison found")
    plt = pyplot()
    accuracy = {row: linear_separability(perturbation_features(p, data), data.labels) for row, p in poisons.items()}
    fig, ax = plt.subplots(figsize=(1.0 * len(accuracy) + 2.5, 3.4))
    labels = [poison_label(row, poisons[row]) for row in accuracy]
    bars = ax.bar(labels, list(accuracy.values()), color=["C3" if r.startswith("cp-") else "C0" for r in accuracy])
    ax.bar_label(bars, fmt="%.1f", fontsize=7)
    chance = 100 / data.num_classes
    ax.axhline(chance, color="0.3", linestyle="--", linewidth=0.8, label=f"chance ({chance:.0f}%)")
    ax.set_ylim(0, 105)
    ax.set_ylabel("held-out accuracy (%)")
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(wrap("Linear classifier on the perturbations alone (80/20 split of "
                      f"{data.source}, {len(data)} training images){subtitle}", 70), fontsize=8)
    fig.tight_layout()
    return fig, accuracy


# ---------------------------------------------------------------------------------------------- records

def record_label(record: dict) -> str:
    """'cp-s / simclr' (attack / victim algorithm); `cp-c@moco` where the attacker's algorithm differs;
    the architecture and data set where they are not ResNet-18 on CIFAR-10."""
    victim, poison = record["victim"], record["victim"].get("poison") or {}
    attack = poison.get("attack", "none")
    if poison.get("algorithm") not in (None, "supervised", victim["algorithm"]):
        attack += f"@{poison['algorithm']}"
    extra = [v for v, default in ((victim.get("arch"), "resnet18"), (victim.get("dataset"), DATASET))
             if v and v != default]
    return f"{attack} / {victim['algorithm']}" + "".join(f", {e}" for e in extra)


def embedding_histories(records: list[dict]) -> tuple[dict[str, list[dict]], list[str]]:
    """{label: history entries with alignment and uniformity}, clean runs first; and the labels skipped."""
    histories, skipped = {}, []
    for record in sorted(records, key=lambda r: (bool(r["victim"].get("poison")), record_label(r))):
        label = record_label(record)
        history = [h for h in record.get("history", []) if "alignment" in h and "uniformity" in h]
        if not history:
            skipped.append(label)
            continue
        histories[label if label not in histories else f"{label} [{record['key'][:6]}]"] = history
    return histories, skipped


def matched_cp_records(records: list[dict]) -> list[dict]:
    """What the paper's alignment/uniformity figure compares: each contrastive algorithm's ResNet-18 victim on
    CIFAR-10 (default seed) clean, on CP-S and on CP-C made with that same algorithm."""
    default_seed, contrastive = VictimSpec.__dataclass_fields__["seed"].default, contrastive_algorithms()
    out = []
    for record in records:
        victim, poison = record["victim"], record["victim"].get("poison") or {}
        if victim["algorithm"] in contrastive \
                and victim.get("arch") == "resnet18" and victim.get("dataset") == DATASET \
                and victim.get("seed", default_seed) == default_seed \
                and (not poison or (poison.get("attack") in ("cp-s", "cp-c")
                                    and poison.get("algorithm") == victim["algorithm"])):
            out.append(record)
    return out


def alignment_uniformity_figure(histories: dict[str, list[dict]],
                                subtitle: str = "") -> tuple[Figure, dict[str, list[dict]]]:
    """Two panels (alignment, uniformity) against the epoch; colour = attack, line style = algorithm."""
    if not histories:
        raise FigureSkipped("no record has alignment/uniformity in its history")
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    attacks = list(dict.fromkeys(label.split(" / ")[0] for label in histories))
    colours = {a: "black" if a == "none" else f"C{i}" for i, a in enumerate(attacks)}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, history in histories.items():
        attack, algorithm = label.split(" / ")[0], label.split(" / ")[1].split(",")[0]
        epochs = [h["epoch"] for h in history]
        for ax, key in zip(axes, ("alignment", "uniformity")):
            ax.plot(epochs, [h[key] for h in history], color=colours[attack],
                    linestyle=linestyle(algorithm), marker="o", markersize=2, label=label)
    for ax, key, note in zip(axes, ("alignment", "uniformity"), ("lower: positive pairs closer",
                                                                  "lower: embeddings more uniform")):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(key)
        ax.set_title(f"{key} ({note})", fontsize=9)
        ax.grid(linewidth=0.3)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"Alignment and uniformity of the victims' embeddings over training{subtitle}", fontsize=9)
    fig.tight_layout()
    return fig, histories


# ---------------------------------------------------------------------------------------------- t-SNE

def _simclr_on(record: dict, dataset: str = DATASET) -> bool:
    v = record["victim"]
    return v["algorithm"] == "simclr" and v.get("arch") == "resnet18" and v.get("dataset") == dataset


def pick_tsne_records(records: list[dict], usable: Callable[[dict], bool] = lambda record: True,
                      ) -> tuple[dict | None, dict | None]:
    """The clean SimCLR / ResNet-18 / CIFAR-10 record and a CP-S (else CP-C) poisoned one, preferring a
    poison made with SimCLR itself; only records for which `usable` holds (e.g. whose encoder is stored)."""
    records = [r for r in records if usable(r)]
    clean = next((r for r in records if _simclr_on(r) and not r["victim"].get("poison")), None)
    for attack in ("cp-s", "cp-c"):
        poisoned = [r for r in records if _simclr_on(r) and (r["victim"].get("poison") or {}).get("attack") == attack]
        if poisoned:
            return clean, min(poisoned, key=lambda r: r["victim"]["poison"].get("algorithm") != "simclr")
    return clean, None


def checkpoint_path(record: dict, store=None) -> Path:
    return victim_checkpoint(record["key"], (record.get("poison") or {}).get("checksum"), store)


def load_encoder(record: dict, num_classes: int, store=None) -> tuple[torch.nn.Module, int]:
    """The trained encoder of a record's victim from its checkpoint, and the checkpoint's epoch."""
    path = checkpoint_path(record, store)
    if not path.is_file():
        raise FigureSkipped(f"no checkpoint {path} for victim {record_label(record)}")
    victim = record["victim"]
    source = get_scale(record["scale"]).source(victim["dataset"])
    model, _, _ = build_model(victim["algorithm"], victim["arch"], record["scale"], num_classes,
                              input_size=source.input_size)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["trainer"]["algorithm"])
    return model.encoder.eval(), int(state.get("epoch", 0))


def tsne_embedding(features: torch.Tensor, seed: int = 0) -> np.ndarray:
    """2-D t-SNE of L2-normalised features (N, D) -> (N, 2)."""
    from sklearn.manifold import TSNE

    x = torch.nn.functional.normalize(features.float(), dim=1).cpu().numpy()
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def class_silhouette(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Silhouette score of the true classes in the (L2-normalised, cosine) feature space: higher = the
    classes are better separated."""
    from sklearn.metrics import silhouette_score

    x = torch.nn.functional.normalize(features.float(), dim=1).cpu().numpy()
    return float(silhouette_score(x, labels.cpu().numpy(), metric="cosine"))


def victim_features(record: dict, test: ImageData, store=None, device="cpu") -> tuple[torch.Tensor, int]:
    """Features of the test images through a record's trained encoder, and the checkpoint's epoch."""
    from victims.augment import eval_transform
    from victims.probe import extract_features

    encoder, epoch = load_encoder(record, test.num_classes, store)
    input_size = get_scale(record["scale"]).source(record["victim"]["dataset"]).input_size
    transform = eval_transform(input_size, record["victim"]["dataset"]).to(device)
    return extract_features(encoder.to(device), test.images, transform, device).cpu(), epoch


def tsne_figure(records: dict[str, dict], test: ImageData, store=None, device="cpu", samples: int = 1000,
                seed: int = 0, subtitle: str = "") -> tuple[Figure, dict[str, dict]]:
    """One panel per victim ({title: record}): t-SNE of its features of up to `samples` clean test
    images, coloured by class; returns {title: {"embedding", "labels", "silhouette", "epoch"}}."""
    plt = pyplot()
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:samples].sort().values
    test = test.subset(pick)
    out = {}
    for title, record in records.items():
        features, epoch = victim_features(record, test, store, device)
        out[title] = {"embedding": tsne_embedding(features, seed), "labels": test.labels.numpy(),
                      "silhouette": class_silhouette(features, test.labels), "epoch": epoch}
    fig, axes = plt.subplots(1, len(out), figsize=(4.6 * len(out), 4.6), squeeze=False)
    cmap = plt.get_cmap("tab10" if test.num_classes <= 10 else "tab20")
    for ax, (title, result) in zip(axes[0], out.items()):
        xy, labels = result["embedding"], result["labels"]
        for c in range(test.num_classes):
            mask = labels == c
            ax.scatter(xy[mask, 0], xy[mask, 1], s=5, color=cmap(c % cmap.N), label=test.classes[c])
        ax.set_title(f"{title}\nepoch {result['epoch']}, class silhouette {result['silhouette']:.3f}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=6, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(wrap(f"t-SNE of the encoders' features of {len(test)} clean test images ({test.source})", 100)
                 + subtitle, fontsize=9)
    fig.tight_layout()
    return fig, out


# ---------------------------------------------------------------------------------------------- the command

@dataclass
class Context:
    """Where a figure's inputs come from and where it goes."""

    scale: str
    out: Path
    results: Path
    store: Path | None = None
    data_root: str | None = None
    device: str = "cpu"

    def split(self, split: str) -> ImageData:
        return load_split(get_scale(self.scale), DATASET, split, data_root=self.data_root, store=self.store)

    @property
    def subtitle(self) -> str:
        return f"\nscale {self.scale}, data {get_scale(self.scale).describe_data(DATASET)}"

    @cached_property
    def poisons(self) -> dict[str, Poison]:
        """The scale's stored poisons (looked up once; a note printed for each one missing)."""
        poisons, notes = find_poisons(self.scale, self.store)
        for note in notes:
            print(f"  note: {note} (skipped)")
        return poisons


def make_bars(ctx: Context, grid: str) -> list[Path]:
    table = build_tables(grid, ctx.scale, ctx.results)[0]
    fig, _ = bars_figure(table)
    return save_figure(fig, ctx.out, f"bars_{grid}")


def make_spectrum(ctx: Context) -> list[Path]:
    fig, _ = spectrum_figure(ctx.poisons, ctx.subtitle)
    return save_figure(fig, ctx.out, "spectrum")


def make_separability(ctx: Context) -> list[Path]:
    poisons = ctx.poisons
    if not poisons:
        raise FigureSkipped("no poison found")
    fig, accuracy = separability_figure(poisons, ctx.split("train"), f", scale {ctx.scale}")
    print("  linear separability: " + ", ".join(f"{row} {acc:.1f}%" for row, acc in accuracy.items()))
    return save_figure(fig, ctx.out, "separability")


def current_records(ctx: Context) -> list[dict]:
    """The scale's victim records made with the code of now (as the tables show them), undefended and on a
    whole poisoned set (the defended and partial ones are the defenses and ratio figures'); a note for the
    out-of-date ones."""
    records = [r for r in read_records(ctx.results, ctx.scale)
               if "defense" not in r["victim"] and "poison_ratio" not in r["victim"]]
    current = [r for r in records if is_current(r)]
    if len(current) < len(records):
        print(f"  note: {len(records) - len(current)} out-of-date record(s) left out (`bench cells` lists them)")
    return current


def make_alignment_uniformity(ctx: Context) -> list[Path]:
    histories, skipped = embedding_histories(matched_cp_records(current_records(ctx)))
    if skipped:
        print(f"  note: records without alignment/uniformity (skipped): {', '.join(skipped)}")
    fig, _ = alignment_uniformity_figure(histories, ctx.subtitle)
    return save_figure(fig, ctx.out, "alignment_uniformity")


def make_tsne(ctx: Context) -> list[Path]:
    clean, poisoned = pick_tsne_records(current_records(ctx), lambda r: checkpoint_path(r, ctx.store).is_file())
    if clean is None or poisoned is None:
        missing = [what for what, r in (("clean SimCLR", clean), ("CP-S/CP-C poisoned SimCLR", poisoned)) if r is None]
        raise FigureSkipped(f"no {' and no '.join(missing)} record (ResNet-18, {DATASET}) at the {ctx.scale} scale "
                            "with its encoder checkpoint in the store (`bench victim` trains one)")
    records = {f"clean ({record_label(clean)})": clean, f"poisoned ({record_label(poisoned)})": poisoned}
    fig, _ = tsne_figure(records, ctx.split("test"), ctx.store, ctx.device, subtitle=ctx.subtitle)
    return save_figure(fig, ctx.out, "tsne")


def ratio_points(results: Path, scale: str, metric: str = "probe_best") -> dict[tuple[str, str], list]:
    """{(attack row, victim): [(poisoned share, damage), ...]} from the ratio grid's current records (damage
    against the same victim on clean data, and its untrained control)."""
    cache, out = RecordCache(results, scale), {}
    for cell in grid_cells("ratio", scale):
        value = cell_metric(cache.get(cell.victim.key), cell.probe, metric)
        clean = cell_metric(cache.get(cell.victim.clean().key), cell.probe, metric)
        untrained = cell_metric(cache.get(cell.victim.control().key), cell.probe, metric)
        d = damage(clean, value, untrained)
        if d is not None:
            out.setdefault((cell.row, cell.victim.algorithm), []).append((cell.victim.poison_ratio, d))
    return {k: sorted(v) for k, v in out.items()}


def ratio_figure(points: dict[tuple[str, str], list], subtitle: str = "") -> Figure:
    """Damage against the poisoned share of the training set, a line per attack and victim."""
    if not points:
        raise FigureSkipped("no ratio-grid cell measured (`bench run --grid ratio`)")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.4, 3.6))
    for (row, victim), values in sorted(points.items()):
        ax.plot([r for r, _ in values], [d for _, d in values], marker="o", linestyle=linestyle(victim),
                label=f"{row} / {victim}")
    ax.axhline(0, color="0.5", linewidth=0.6)
    ax.set_xlabel("poisoned share of the training set")
    ax.set_ylabel("damage")
    ax.legend(fontsize=6)
    ax.set_title(wrap(f"Partial poisoning: damage against the poisoned share{subtitle}", 70), fontsize=8)
    fig.tight_layout()
    return fig


def make_ratio(ctx: Context) -> list[Path]:
    """results/figures/ratio.png: the ratio grid's damage against the poisoned share."""
    return save_figure(ratio_figure(ratio_points(ctx.results, ctx.scale), ctx.subtitle), ctx.out, "ratio")


MAKERS: dict[str, Callable[[Context], list[Path]]] = {
    **{f"bars_{g}": (lambda ctx, g=g: make_bars(ctx, g)) for g in TABLE_GRIDS},
    "spectrum": make_spectrum, "separability": make_separability,
    "alignment_uniformity": make_alignment_uniformity, "tsne": make_tsne, "ratio": make_ratio,
}


def selected(only: list[str] | None) -> list[str]:
    """The figures named by --only (`bars` = every bars_<grid>), in the usual order; all by default."""
    if not only:
        return list(FIGURES)
    names = {f for name in only for f in (FIGURES if name == "all" else
                                           [n for n in FIGURES if n.startswith("bars_")] if name == "bars" else [name])}
    return [f for f in FIGURES if f in names]


def make_figures(ctx: Context, only: list[str] | None = None) -> tuple[list[Path], dict[str, str]]:
    """Draw the selected figures; print each file written and each figure skipped (with the reason).
    Returns (paths written, {figure skipped: reason})."""
    written, skipped = [], {}
    for name in selected(only):
        try:
            paths = MAKERS[name](ctx)
        except (FigureSkipped, DatasetNotFoundError, PoisonError, OSError) as err:
            skipped[name] = str(err)
            print(f"skipped {name}: {err}")
            continue
        for path in paths:
            print(f"wrote {path}")
        written += paths
    return written, skipped


def cmd_figures(args: argparse.Namespace) -> int:
    """`bench figures`: write the figures under --out (default <results>/figures)."""
    results = results_root(args.results)
    out = Path(args.out) if args.out else results / "figures"
    device = args.device or str(default_device())
    ctx = Context(args.scale, out, results, getattr(args, "store", None), getattr(args, "data_root", None), device)
    written, skipped = make_figures(ctx, args.only)
    print(f"\n{len(written)} files written under {out}, {len(skipped)} figure(s) skipped")
    return 0


def add_figures_command(sub: argparse._SubParsersAction) -> None:
    """Add `figures` to the `bench` sub-commands (cli.py's add_parser already adds --data-root, --store)."""
    p = sub.add_parser("figures", help="draw the figures (ours vs paper bars, perturbation spectra and linear "
                       "separability, alignment/uniformity, t-SNE) as PNG and PDF")
    p.add_argument("--scale", default="mini", choices=SCALES)
    p.add_argument("--out", metavar="DIR", help="folder for the figures (default: <results>/figures)")
    p.add_argument("--results", metavar="DIR", help="results folder (default: $BENCH_RESULTS or ./results)")
    p.add_argument("--only", nargs="+", metavar="NAME", choices=FIGURES + ("bars", "all"),
                   help=f"only these figures: {', '.join(FIGURES)}; `bars` = every bars_<grid>")
    p.add_argument("--device", help="device for the t-SNE features (default: cuda when available)")
    p.set_defaults(func=cmd_figures)


__all__ = ["FIGURES", "Context", "FigureSkipped", "add_figures_command", "alignment_uniformity_figure", "current_records", "matched_cp_records",
           "amplitude_spectrum", "bar_values", "bars_figure", "embedding_histories", "find_poisons",
           "linear_separability", "make_figures", "perturbation_features", "pick_tsne_records", "record_label",
           "save_figure", "separability_figure", "spectrum_figure", "tsne_embedding", "tsne_figure"]
