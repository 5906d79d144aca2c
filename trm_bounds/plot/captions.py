"""Figure captions, computed from the result files, and the ``captions.md`` written beside
the figures (a file a paper author can paste from).

:func:`figure_captions` gives each figure's caption: the registry's text
(:data:`trm_bounds.plot.figures.FIGURES`) where it quotes no computed number, else the text
this module composes from the figure's result file (:data:`CAPTIONS`).  Numbers drawn from
floats are printed by :func:`trm_bounds.margins.stable_number`, whose text does not change
under a relative perturbation far below its margin
(:data:`trm_bounds.margins.CAPTION_MARGIN`), so a caption reads the same on every CPU (the
perturbation test in ``tests/plot/test_captions.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from trm_bounds.margins import stable_number

from .figures import FIGURES, ResultFileError
from .figures_certify import caption_f10
from .result_file import get_field

__all__ = ["CAPTIONS", "figure_captions", "captions_markdown", "write_captions"]


def _num(x: float) -> str:
    """A parameter as the study wrote it (``1e-4``, ``0.01``, ``400``), 3 significant digits."""
    return f"{float(stable_number(x, 3, fixed=False)):g}"


def _caption_f1(data: dict) -> str:
    sec = get_field(data, "uniform", source="bound_scaling.json")
    d = _num(sec["delta"])
    return (
        "Every published bound (docs/theory.md §4) against the horizon T under uniform "
        f"divergence: every context has KL = delta = {d}, D_KL^seq = T delta and the worst case "
        "Dbar_t = eps = sqrt(delta/2). Curves that coincide on the whole grid are one legend "
        "entry (at Dbar_t = eps, Adaptive-KL is PM-KL and Adaptive-TV is Coupling). Line style "
        "marks the route: KL solid, TV dashed, both dash-dot. Thin dotted lines: reference "
        "slopes T^2, T^{3/2}, T. Under uniform divergence the Mixed bounds grow like T^{3/2}, "
        "not T (docs/theory.md §4)."
    )


def _caption_f2(data: dict) -> str:
    sec = get_field(data, "sparse", source="bound_scaling.json")
    return (
        f"Every published bound against T under sparse divergence: D_KL^seq = "
        f"{_num(sec['dkl_seq'])} nats fixed, spread over {int(sec['n_divergent'])} positions "
        f"with KL = delta = {_num(sec['delta'])} (Dbar_t = eps there, 0 elsewhere). With "
        "D_KL^seq fixed the Mixed bounds grow like T, the paper's O(T) claim. Coincident "
        "curves share one legend entry; a curve that runs within 5% of one drawn before it "
        "(Linear, equal to Adaptive (TV) beyond the divergent positions) is drawn as a wide "
        "band beneath it; line style marks the route; dotted: reference slopes."
    )


def _slope(fit: dict) -> str:
    lo, hi = (stable_number(t, 0) for t in fit["window"])  # horizons: integers
    return f"slope {stable_number(fit['slope'])} on T in [{lo}, {hi}]"


def _caption_f3(data: dict) -> str:
    reg = get_field(data, "regimes", source="tabular_scaling.json")
    parts = [
        "Exact error of four fixed finite-state instances (DP engine) with the sharp bounds "
        "(docs/theory.md §5) at each instance's exact divergences. Filled dots: Error > 0; "
        "open dots: Error < 0, drawn as |Error|; grey band: where Error changes sign."
    ]
    u = reg.get("uniform")
    if u:
        S = u.get("params", {}).get("S")
        text = f"Slowly mixing walk (uniform divergence, S = {S})"
        for lo, hi in u.get("sign_changes", []):
            text += f": Error changes sign between T = {_num(lo)} and {_num(hi)}, so no " \
                    "slope is fitted across it"  # fmt: skip
        fit = (u.get("fits") or {}).get("error_max_over_rewards")
        if fit:
            text += f"; the worst case over final-state rewards, max_R |Error| (dashed), has " \
                    f"{_slope(fit)}, then saturates once the walk mixes"  # fmt: skip
        parts.append(text + ".")
    s = reg.get("sparse")
    if s:
        S, n = s.get("params", {}).get("S"), s.get("params", {}).get("n_contexts")
        text = f"Sparse walk (S = {S}, {n} perturbed contexts at the first positions)"
        fit = (s.get("fits") or {}).get("error_max_over_rewards")
        if fit:
            text += f": max_R |Error| has {_slope(fit)} while the walk diffuses (the trace " \
                    "of the early perturbations spreads over about sqrt(T) states)"  # fmt: skip
        if s.get("decay"):
            tau = stable_number(1.0 / s["decay"]["rate"], 0)
            text += f", then falls like exp(-T/{tau}) for T >= {stable_number(s['decay']['window'][0], 0)}" \
                    ", the rate of the walk's spectral gap"  # fmt: skip
        parts.append(text + ".")
    parts.append(
        "The fast-mixing random machines (S = 8) forget within a few steps. Slopes are printed "
        "only where the local log-log slopes stay within 0.05 of their median over at least "
        "one decade."
    )
    return " ".join(parts)


def _caption_f6(data: dict) -> str:
    sim = get_field(data, "length_bias", source="bound_scaling.json").get("simulation") or {}
    what = (
        f"({int(sim['n_sequences'])} sequences per T, log-ratios N(0, {_num(sim['sigma'])}^2) "
        f"with spikes of +-{_num(sim['spike'])} with probability p = {_num(sim['p'])})"
        if {"n_sequences", "sigma", "spike", "p"} <= set(sim) else ""
    )
    return (
        "Length bias (docs/theory.md §6). Top: TRM-Max acceptance (1-p)^T for i.i.d. violations"
        " with probability p, with the paper's table (circles; triangle: the paper prints '<')."
        f" Bottom: simulated acceptance of TRM-Max, TRM-Avg, SER and LN-TRM {what}, shaded: "
        "95% Wilson intervals; TRM-Max follows (1-p)^T, SER and LN-TRM do not depend on T."
    ).replace("  ", " ")


def _caption_f7(data: dict) -> str:
    rows = get_field(data, "exact", source="transformer_mismatch.json")
    if not rows:
        raise ResultFileError("transformer_mismatch.json: field 'exact' is empty")
    Ts = sorted({int(r["T"]) for r in rows})
    Vs = sorted({int(r.get("V", 4)) for r in rows})
    t0 = Ts[0]
    ratios = [float(r["bounds_sharp"]["unified"]) / float(r["error_max_over_rewards"])
              for r in rows if int(r["T"]) == t0 and float(r["error_max_over_rewards"]) > 0]
    text = (
        f"Small transformers (2 layers, d = 32, V = {', '.join(map(str, Vs))}), one policy pair "
        "per mismatch source, each drawn in its own colour and marker in both panels. (a) "
        f"Every sequence enumerated at T = {', '.join(map(str, Ts))} (KV-cached walk of the "
        "prefix tree, float64): the worst-case exact error max_R |Error| (filled markers, "
        "solid) and the sharp unified bound B* (open markers, dashed); every pair satisfies "
        "every bound"
    )
    if ratios:
        text += f", B* / max_R |Error| between {stable_number(min(ratios), 1)} and " \
                f"{stable_number(max(ratios), 1)} at T = {t0}"  # fmt: skip
    mc = data.get("montecarlo") or []
    if mc:
        text += (
            f". (b) Monte Carlo at T = {int(mc[0]['T'])} (N = {int(mc[0]['N'])} rollouts) on "
            "models trained at that length: the point estimate of |Error| (filled marker), the "
            "4-sigma interval of |Error| (capped whisker; a triangle at the axis bottom: the "
            "interval contains 0), and the plug-in sharp B* (open marker), an estimate at the "
            "observed eps and delta, not a certified bound (docs/theory.md §6)"
        )
    return text + "."


#: Figures whose caption quotes numbers of their result file: key -> composer of the caption.
CAPTIONS: dict[str, Callable[[dict], str]] = {
    "F1": _caption_f1, "F2": _caption_f2, "F3": _caption_f3, "F6": _caption_f6,
    "F7": _caption_f7, "F10": caption_f10,
}  # fmt: skip


def figure_captions(results_dir: str | Path, keys: Iterable[str] | None = None) -> dict[str, str]:
    """Figure key -> caption text for the figures ``keys`` (default: all), each computed from
    its result file under ``results_dir`` where it quotes numbers (:data:`CAPTIONS`), else the
    registry's.  Raises ``FileNotFoundError`` / :class:`ResultFileError` naming the file."""
    out = {}
    cache: dict[str, dict] = {}
    for key in keys or FIGURES:
        spec = FIGURES[key]
        if key not in CAPTIONS:
            out[key] = spec.caption
            continue
        path = Path(results_dir) / spec.source
        if spec.source not in cache:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: result file not found")
            try:
                cache[spec.source] = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise ResultFileError(f"{path}: not valid JSON (line {exc.lineno})") from exc
        try:
            out[key] = CAPTIONS[key](cache[spec.source])
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise ResultFileError(f"{path}: unexpected layout ({type(exc).__name__}: {exc})") \
                from exc  # fmt: skip
    return out


def captions_markdown(captions: dict[str, str]) -> str:
    """``captions.md``: one section per figure, its file stem and its caption."""
    lines = ["# Figure captions", "",
             "Generated by `trm-bounds plot` from the result files; paste beside each figure.",
             ""]  # fmt: skip
    for key, text in captions.items():
        lines += [f"## {key}: `{FIGURES[key].name}`", "", text, ""]
    return "\n".join(lines)


def write_captions(out_dir: str | Path, captions: dict[str, str]) -> Path:
    """Write :func:`captions_markdown` to ``out_dir/captions.md``; returns the path."""
    path = Path(out_dir) / "captions.md"
    path.write_text(captions_markdown(captions), encoding="utf-8")
    return path
