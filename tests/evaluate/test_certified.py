"""The evaluator's certified section, error estimate, threshold section and verdict
(trm_bounds.evaluate.certified; docs/theory.md §9).

The streamed per-sequence path is compared with the library's functions on the whole padded
arrays (:func:`trm_bounds.certify.certify_linear`, :func:`~trm_bounds.certify.certify_future`,
:func:`~trm_bounds.certify.estimate_error`): two independent routes to the same numbers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.tolerances import ATOL, RTOL

from trm_bounds.certify import certify_linear, estimate_error
from trm_bounds.certify.linear import CONSTANTS
from trm_bounds.evaluate import evaluate
from trm_bounds.evaluate.certified import verdict
from trm_bounds.planner import unified_at

CONTRACT_KEYS = {"schema", "n_sequences", "n_tokens", "metrics", "criteria", "length_buckets",
                 "dbar_estimate", "observed", "bounds"}  # fmt: skip
NEW_KEYS = {"certified", "trm_thresholds", "verdict"}
LINEAR_KEYS = {"level", "method", "n_sequences", "T_max", "variant", "constant",
               "dbar_sum_estimate", "dbar_sum_ucb", "width", "bound", "conditions"}  # fmt: skip


def random_dump(path, *, seed: int, n: int = 60, T: int = 24, rewards: bool = True,
                zero_rho: bool = True) -> dict:
    """A verl-style ``.npz`` of ``n`` sequences with random lengths, log-probs <= 0; one
    trainer log-prob of ``-inf`` (rho = 0, allowed without absolute continuity)."""
    rng = np.random.default_rng(seed)
    L = rng.integers(1, T + 1, size=n)
    mask = np.arange(T)[None, :] < L[:, None]
    lr = np.log(rng.uniform(0.05, 1.0, size=(n, T)))
    lp = np.minimum(lr + rng.normal(0, 0.3, size=(n, T)), 0.0)
    if zero_rho:
        lp[0, 0] = -np.inf
    lp, lr = np.where(mask, lp, 0.0), np.where(mask, lr, 0.0)
    R = rng.uniform(0, 1, size=n)
    fields = dict(old_log_probs=lp, rollout_log_probs=lr, response_mask=mask)
    if rewards:
        fields["reward"] = R
    np.savez(path, **fields)
    return {"lp": lp, "lr": lr, "mask": mask, "R": R}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from trm_bounds.evaluate import demo_dump_path

    out = tmp_path_factory.mktemp("demo")
    rep = evaluate(demo_dump_path(), out, progress=False)
    return rep, out


def test_demo_report_keeps_old_keys_and_adds_the_new_ones(demo):
    rep, out = demo
    assert CONTRACT_KEYS | NEW_KEYS | {"error_estimate"} <= set(rep)
    c = rep["certified"]
    for variant, const in (("published", 4.0), ("sharp", 2.0), ("proved_here", 1.0)):
        assert LINEAR_KEYS <= set(c[variant])
        assert c[variant]["constant"] == const == CONSTANTS[variant]
        assert c[variant]["bound"] == const * c["dbar_sum_ucb"] == c[f"bound_{variant}"]
    assert c["dbar_sum_estimate"] <= c["dbar_sum_ucb"] and c["width"] >= 0
    assert c["level"] == 0.95 and c["T_max"] == max(b["max_length"] for b in rep["length_buckets"])
    v = rep["verdict"]
    assert {"status", "against", "bound", "text"} <= set(v)
    assert v["bound"] == c["proved_here"]["bound"]
    md = (out / "report.md").read_text()
    assert md.startswith("# trm-bounds log evaluation\n\n## Verdict\n\n" + v["text"])
    saved = json.loads((out / "report.json").read_text())
    assert saved["verdict"]["text"] == v["text"]


def test_demo_verdict_is_vacuous_against_the_estimated_surrogate(demo):
    """The demo dump: 384 sequences of up to 256 tokens; the certified bound is above 1, so
    the verdict says vacuous and names what it is compared with."""
    rep, _ = demo
    v, e = rep["verdict"], rep["error_estimate"]
    assert v["bound"] >= 1 and v["status"] == "vacuous"
    assert "|L'|" in v["against"] and abs(e["L_prime"]["estimate"]) < v["bound"]
    assert "vacuous against the reward range" in v["text"]


@pytest.mark.parametrize("chunk_size", [7, 1000])
def test_streamed_sections_equal_the_library_on_whole_arrays(tmp_path, chunk_size):
    """Per-sequence terms collected chunk by chunk give the library's numbers on the whole
    padded arrays (two routes), at every chunking."""
    d = random_dump(tmp_path / "d.npz", seed=1)
    rep = evaluate(tmp_path / "d.npz", tmp_path / "out", chunk_size=chunk_size, progress=False)
    lp, lr, m = d["lp"], d["lr"], d["mask"]
    c = rep["certified"]
    for sharp, key in ((False, "published"), (True, "sharp")):
        ref = certify_linear(lp, lr, m, sharp=sharp, T_max=int(m.sum(axis=1).max()))
        for k in ("dbar_sum_estimate", "dbar_sum_ucb", "bound", "width", "T_max", "n_sequences"):
            np.testing.assert_allclose(c[key][k], ref[k], rtol=RTOL, atol=ATOL, err_msg=k)
        for variant, b in ref["bounds"].items():
            np.testing.assert_allclose(c[variant]["bound"], b, rtol=RTOL, atol=ATOL)
    e, ref = rep["error_estimate"], estimate_error(lp, lr, m, d["R"])
    for q in ("error", "J_diff", "L_prime"):
        # the library withholds lo/hi where its PSIS gate does not trust them (lo/hi None)
        for k in ("estimate", "se", "lo", "hi") if ref[q]["shown"] else ("estimate", "se"):
            np.testing.assert_allclose(e[q][k], ref[q][k], rtol=RTOL, atol=ATOL, err_msg=q + k)
    np.testing.assert_allclose(e["ess"], ref["ess"], rtol=RTOL)


def test_level_and_method_of_the_certificate(tmp_path):
    """A higher level gives a larger bound; the level is recorded everywhere."""
    random_dump(tmp_path / "d.npz", seed=2)
    lo = evaluate(tmp_path / "d.npz", tmp_path / "a", level=0.8, progress=False)["certified"]
    hi = evaluate(tmp_path / "d.npz", tmp_path / "b", level=0.99, progress=False)["certified"]
    assert lo["dbar_sum_estimate"] == hi["dbar_sum_estimate"]
    assert lo["dbar_sum_ucb"] < hi["dbar_sum_ucb"]
    assert lo["published"]["level"] == lo["proved_here"]["level"] == 0.8
    assert lo["method"] == "betting"


def test_without_rewards_no_error_estimate_and_the_reward_range(tmp_path):
    random_dump(tmp_path / "d.npz", seed=3, rewards=False)
    rep = evaluate(tmp_path / "d.npz", tmp_path / "out", progress=False)
    assert "error_estimate" not in rep
    assert "reward range" in rep["verdict"]["against"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Estimated error" not in md and "## Certified bounds on |Error|" in md


def test_trm_thresholds_section_is_the_planner_at_the_logged_lengths(tmp_path):
    """B* at the TRM-Max threshold in use (an override here), conditional, from the
    planner at the logged lengths."""
    d = random_dump(tmp_path / "d.npz", seed=4)
    rep = evaluate(tmp_path / "d.npz", tmp_path / "out", thresholds={"seq_max_k2": 0.01},
                   progress=False)  # fmt: skip
    t = rep["trm_thresholds"]
    L = d["mask"].sum(axis=1)
    assert t["delta"] == 0.01 and t["T"] == L.max() and "conditional" in t["label"]
    assert t["unified_published"] == unified_at(int(L.max()), 0.01, lengths=L)
    assert t["unified_sharp"] == unified_at(int(L.max()), 0.01, lengths=L, sharp=True)
    assert f"{t['unified_published']:.4g}" in rep["verdict"]["text"]


def _cert(B: float) -> dict:
    return {"level": 0.95, "n_sequences": 10, "proved_here": {"bound": B},
            "published": {"bound": 4 * B}, "sharp": {"bound": 2 * B}}  # fmt: skip


def _err(lp: float) -> dict:
    s = {"estimate": lp, "lo": lp - 0.1, "hi": lp + 0.1}
    return {"L_prime": s, "error": s, "ess": 5.0, "n_sequences": 10}


@pytest.mark.parametrize("B, lp, status", [
    (2.0, None, "vacuous"),          # B >= 1 against the reward range
    (0.5, None, "informative"),      # B < 1, no rewards
    (0.2, 0.3, "decides the sign of the gain"),  # |L'| > B
    (0.5, -0.3, "inconclusive"),     # B < 1 but >= |L'|
    (1.5, 0.3, "vacuous"),           # B >= 1 and >= |L'|
    (1.5, 2.0, "decides the sign of the gain"),  # a surrogate above any true gain
])  # fmt: skip
def test_verdict_categories(B, lp, status):
    """The vacuity rule of :func:`verdict`: against the reward range without rewards,
    against the estimated |L'| with them."""
    v = verdict(_cert(B), None if lp is None else _err(lp), None)
    assert v["status"] == status and v["bound"] == B
    assert ("|L'|" in v["against"]) is (lp is not None)


def test_bad_level_is_refused_before_any_work(tmp_path):
    random_dump(tmp_path / "d.npz", seed=5)
    with pytest.raises(ValueError, match=r"level must lie in \(0, 1\), got 1.0") as exc:
        evaluate(tmp_path / "d.npz", tmp_path / "out", level=1.0)
    assert "\n" not in str(exc.value) and not (tmp_path / "out").exists()


def test_dump_without_valid_tokens_is_an_error(tmp_path):
    """Every mask entry 0: nothing can be certified or estimated, and the evaluator refuses
    the dump in one line (zero valid tokens is an error, not 100 % acceptance) and writes
    nothing; the certified section alone refuses empty terms the same way."""
    from trm_bounds.evaluate.certified import certified_section
    from trm_bounds.logs import LogFormatError

    np.savez(tmp_path / "d.npz", old_log_probs=-np.ones((3, 4)), rollout_log_probs=-np.ones((3, 4)),
             response_mask=np.zeros((3, 4), bool))  # fmt: skip
    with pytest.raises(LogFormatError, match="no valid token") as err:
        evaluate(tmp_path / "d.npz", tmp_path / "out", progress=False)
    assert len(str(err.value).splitlines()) == 1
    assert not (tmp_path / "out" / "report.json").exists()
    with pytest.raises(ValueError, match="no valid token"):
        certified_section({"lengths": np.zeros(3), "x": np.zeros(3)})
