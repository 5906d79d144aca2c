"""The evaluator's certified section, error estimate, threshold section and verdict
(trm_bounds.evaluate.certified; docs/theory.md §9).

The streamed per-sequence path is compared with the library on the whole padded arrays
(:func:`trm_bounds.certify.certify_linear`): two independent routes to the same numbers.
The certificate's a-priori inputs: the generation limit (the option, else none: no certified
claim), the reward range (scales the bound; a reward outside it is an error naming the row),
the groups (``uid``) and the rows with no trained token (never sequences).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.tolerances import ATOL, RTOL
from trm_bounds.certify import certify_linear
from trm_bounds.evaluate import OptionError, evaluate
from trm_bounds.evaluate.certified import DECISION_MARGIN, certified_section, verdict
from trm_bounds.logs import LogFormatError
from trm_bounds.planner import unified_at

CONTRACT_KEYS = {"schema", "n_sequences", "n_tokens", "metrics", "criteria", "length_buckets",
                 "dbar_estimate", "observed", "bounds"}  # fmt: skip
NEW_KEYS = {"certified", "trm_thresholds", "verdict", "headline"}
CERT_KEYS = {"level", "method", "n_sequences", "n_units", "unit", "T_max", "T_max_source",
             "dbar_sum_estimate", "dbar_sum_ucb", "width", "conditions", "reward_range",
             "vacuous", "n_untrained_rows"}  # fmt: skip


def random_dump(path, *, seed: int, n: int = 60, T: int = 24, rewards: bool = True,
                zero_rho: bool = True, groups: int | None = None, empty_rows: int = 0,
                reward_scale: float = 1.0) -> dict:
    """A verl-style ``.npz`` of ``n`` sequences with random lengths, log-probs <= 0; one
    trainer log-prob of ``-inf`` (rho = 0, allowed without absolute continuity); ``groups``:
    a ``uid`` per row (``n / groups`` responses a prompt); ``empty_rows``: rows with no
    trained token appended (pad rows)."""
    rng = np.random.default_rng(seed)
    L = rng.integers(1, T + 1, size=n)
    mask = np.arange(T)[None, :] < L[:, None]
    lr = np.log(rng.uniform(0.05, 1.0, size=(n, T)))
    lp = np.minimum(lr + rng.normal(0, 0.3, size=(n, T)), 0.0)
    if zero_rho:
        lp[0, 0] = -np.inf
    lp, lr = np.where(mask, lp, 0.0), np.where(mask, lr, 0.0)
    R = reward_scale * rng.uniform(0, 1, size=n)
    uid = None if groups is None else np.repeat(np.arange(groups), n // groups).astype(str)
    lp_all, lr_all, m_all, R_all = lp, lr, mask, R
    if empty_rows:
        z = np.zeros((empty_rows, T))
        lp_all, lr_all = np.vstack([lp, z - 1.0]), np.vstack([lr, z - 1.0])
        m_all, R_all = np.vstack([mask, z.astype(bool)]), np.concatenate([R, np.zeros(empty_rows)])
        if uid is not None:
            uid = np.concatenate([uid, np.array(["pad"] * empty_rows)])
    fields = dict(old_log_probs=lp_all, rollout_log_probs=lr_all, response_mask=m_all)
    if rewards:
        fields["reward"] = R_all
    if uid is not None:
        fields["uid"] = uid
    np.savez(path, **fields)
    return {"lp": lp, "lr": lr, "mask": mask, "R": R, "uid": uid, "T": T}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from trm_bounds.evaluate import demo_dump_path

    out = tmp_path_factory.mktemp("demo")
    rep = evaluate(demo_dump_path(), out, progress=False, max_response_length=512,
                   max_response_length_source="--max-response-length")
    return rep, out


def test_demo_report_keys_groups_and_the_verdict_first(demo):
    """The demo (verl dump with a prompt id, 4 responses a prompt): certified over groups at
    the given limit; report.md opens with the headline, then the verdict."""
    rep, out = demo
    assert CONTRACT_KEYS | NEW_KEYS | {"error_estimate"} <= set(rep)
    c = rep["certified"]
    assert CERT_KEYS <= set(c) and c["computed"]
    for variant, const in (("published", 4.0), ("sharp", 2.0), ("proved_here", 1.0)):
        assert c[variant]["constant"] == const
        np.testing.assert_allclose(c[variant]["bound"], const * c["dbar_sum_ucb"], rtol=RTOL)
        assert c[variant]["bound"] == c[f"bound_{variant}"]
    assert c["dbar_sum_estimate"] <= c["dbar_sum_ucb"] and c["width"] >= 0
    assert c["T_max"] == 512 and c["T_max_source"] == "--max-response-length"
    assert c["unit"] == "group" and c["n_units"] == c["n_groups"] < c["n_sequences"]
    v = rep["verdict"]
    assert v["bound"] == c["proved_here"]["bound"]
    md = (out / "report.md").read_text()
    assert md.startswith(f"# trm-bounds log evaluation\n\n**{rep['headline']}**\n\n## Verdict\n\n"
                         + v["text"])  # fmt: skip
    assert json.loads((out / "report.json").read_text())["verdict"]["text"] == v["text"]
    assert f"{c['n_groups']} groups" in md and "git None" not in md


def test_demo_verdict_is_vacuous_and_says_whether_more_data_helps(demo):
    rep, _ = demo
    v, c = rep["verdict"], rep["certified"]
    assert v["bound"] >= 1 and v["status"] == "vacuous" and c["vacuous"]
    assert "vacuous against the reward range" in v["text"]
    assert c["more_data"]["text"] in v["text"]
    assert c["more_data"]["possible"] is (c["dbar_sum_estimate"] < 1 - DECISION_MARGIN)


def test_vacuous_with_little_data_says_how_many_units_would_do(tmp_path):
    """theta = roll on 8 short sequences at a generation limit of 64: the bound is vacuous
    only for want of data; the report gives the planner's best-case count, which is more than
    the sequences at hand and makes the best-case bound informative."""
    from trm_bounds.certify import certify_sums
    from trm_bounds.planner import required_sample_size

    lr = np.log(np.full((8, 4), 0.5))
    np.savez(tmp_path / "d.npz", old_log_probs=lr, rollout_log_probs=lr,
             response_mask=np.ones((8, 4), bool))  # fmt: skip
    c = evaluate(tmp_path / "d.npz", tmp_path / "o", progress=False,
                 max_response_length=64)["certified"]  # fmt: skip
    assert c["vacuous"] and c["dbar_sum_estimate"] == 0.0
    m = c["more_data"]
    want = required_sample_size((1 - DECISION_MARGIN), T_max=64, constant=1.0)["n_units"]
    assert m["possible"] and m["n_units_at_least"] == want > 8
    assert f"at least {want} sequences (now 8)" in m["text"]
    best = certify_sums(np.zeros(want), T_max=64)["bounds"]["proved_here"]
    assert best < 1 - DECISION_MARGIN


def test_without_a_generation_limit_no_certified_claim(tmp_path):
    """The longest logged response is never the range: without the limit the report makes no
    certified claim, says what to pass, and every page says so."""
    random_dump(tmp_path / "d.npz", seed=6)
    rep = evaluate(tmp_path / "d.npz", tmp_path / "out", progress=False)
    c = rep["certified"]
    assert c["computed"] is False and "bound_proved_here" not in c
    assert "--max-response-length" in c["what_to_pass"]
    assert rep["verdict"]["status"] == "no certified claim" and rep["verdict"]["bound"] is None
    assert "--max-response-length" in rep["headline"]
    for page in ("report.md", "report.html"):
        text = (tmp_path / "out" / page).read_text()
        assert "--max-response-length" in text and "probability at least" not in text


def test_generation_limit_and_groups_from_the_artifact(tmp_path):
    """A verl DataProto whose ``responses`` are padded to the configured limit, with ``uid``:
    the report certifies at that limit over the uid groups and says where both came from; the
    option, when given, is the one used."""
    torch = pytest.importorskip("torch")
    from tests.logs.test_dataset import random_source, write_pt

    src = random_source(B=12, T=9)
    width = src["lp"].shape[1]
    path = write_pt(tmp_path / "a.pt", src, uid=[f"u{i // 4}" for i in range(12)],
                    responses=torch.zeros((12, width), dtype=torch.int64))  # fmt: skip
    c = evaluate(path, tmp_path / "o", progress=False)["certified"]
    assert c["computed"] and c["T_max"] == width and "responses" in c["T_max_source"]
    assert c["unit"] == "group" and c["n_groups"] == 3 and c["group_field"] == "uid"
    md = (tmp_path / "o" / "report.md").read_text()
    assert "key: uid" in md and c["T_max_source"] in md
    c = evaluate(path, tmp_path / "o2", progress=False, max_response_length=64)["certified"]
    assert c["T_max"] == 64 and c["T_max_source"] == "the max_response_length option"


@pytest.mark.parametrize("chunk_size", [7, 1000])
def test_streamed_certificate_equals_the_library_on_whole_arrays(tmp_path, chunk_size):
    """Terms collected chunk by chunk (groups, pad rows included) give the library's numbers
    on the whole padded arrays of the trained rows, at every chunking."""
    d = random_dump(tmp_path / "d.npz", seed=1, groups=15, empty_rows=3)
    rep = evaluate(tmp_path / "d.npz", tmp_path / "out", chunk_size=chunk_size, progress=False,
                   max_response_length=d["T"])  # fmt: skip
    c = rep["certified"]
    ref = certify_linear(d["lp"], d["lr"], d["mask"], T_max=d["T"], group_ids=d["uid"][:60])
    for k in ("dbar_sum_estimate", "dbar_sum_ucb", "width", "T_max", "n_sequences", "n_units"):
        np.testing.assert_allclose(c[k], ref[k], rtol=RTOL, atol=ATOL, err_msg=k)
    for variant, b in ref["bounds"].items():
        np.testing.assert_allclose(c[variant]["bound"], b, rtol=RTOL, atol=ATOL)
    assert rep["n_sequences"] == 60 and c["n_untrained_rows"] == 3 and c["n_groups"] == 15


def test_untrained_rows_change_nothing(tmp_path):
    """Pad rows (no trained token) are neither sequences nor groups: same certificate."""
    random_dump(tmp_path / "a.npz", seed=7)
    random_dump(tmp_path / "b.npz", seed=7, empty_rows=20)
    a = evaluate(tmp_path / "a.npz", tmp_path / "oa", progress=False, max_response_length=24)
    b = evaluate(tmp_path / "b.npz", tmp_path / "ob", progress=False, max_response_length=24)
    assert a["n_sequences"] == b["n_sequences"] == 60
    assert a["certified"]["bound_proved_here"] == b["certified"]["bound_proved_here"]
    assert any("20 rows" in w for w in b["warnings"])


def test_reward_range_scales_the_bound(tmp_path):
    """Rewards in [-1, 3] (a range holding 0): every bound is 4 times the [0, 1] one."""
    random_dump(tmp_path / "d.npz", seed=2)
    a = evaluate(tmp_path / "d.npz", tmp_path / "a", progress=False, max_response_length=24)
    b = evaluate(tmp_path / "d.npz", tmp_path / "b", progress=False, max_response_length=24,
                 reward_range=(-1, 3))  # fmt: skip
    for k in ("published", "sharp", "proved_here"):
        np.testing.assert_allclose(b["certified"][k]["bound"], 4 * a["certified"][k]["bound"],
                                   rtol=RTOL)  # fmt: skip
    assert "[-1, 3]" in b["verdict"]["text"] and b["certified"]["reward_span"] == 4.0


def test_reward_outside_the_range_names_the_row(tmp_path):
    """Rewards in {0, 1000} with the default range [0, 1]: an error naming file, record and
    field, nothing written; with the range given, the bound is 1000 times larger."""
    random_dump(tmp_path / "d.npz", seed=3, reward_scale=1000.0)
    with pytest.raises(LogFormatError, match=r"d\.npz: record 0: field 'reward': .* outside the "
                                             r"reward range \[0, 1\]") as err:  # fmt: skip
        evaluate(tmp_path / "d.npz", tmp_path / "out", progress=False, max_response_length=24)
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()
    big = evaluate(tmp_path / "d.npz", tmp_path / "o2", progress=False, max_response_length=24,
                   reward_range=(0, 1000))["certified"]  # fmt: skip
    np.testing.assert_allclose(big["bound_proved_here"], 1000 * big["dbar_sum_ucb"], rtol=RTOL)


def test_response_longer_than_the_limit_names_the_row(tmp_path):
    d = random_dump(tmp_path / "d.npz", seed=4)
    L = d["mask"].sum(axis=1)
    first = int(np.argmax(L > 10))
    with pytest.raises(LogFormatError, match=rf"record {first}: field 'response_mask': "
                                             rf"{L[first]} trained tokens, more than the "
                                             r"generation limit 10"):  # fmt: skip
        evaluate(tmp_path / "d.npz", tmp_path / "out", progress=False, max_response_length=10)
    assert not (tmp_path / "out").exists()


def test_level_of_the_certificate(tmp_path):
    """A higher level gives a larger bound; the level is recorded."""
    random_dump(tmp_path / "d.npz", seed=2)
    lo = evaluate(tmp_path / "d.npz", tmp_path / "a", level=0.8, progress=False,
                  max_response_length=24)["certified"]  # fmt: skip
    hi = evaluate(tmp_path / "d.npz", tmp_path / "b", level=0.99, progress=False,
                  max_response_length=24)["certified"]  # fmt: skip
    assert lo["dbar_sum_estimate"] == hi["dbar_sum_estimate"]
    assert lo["dbar_sum_ucb"] < hi["dbar_sum_ucb"]
    assert lo["level"] == 0.8 and lo["method"] == "betting"


def test_without_rewards_no_error_estimate(tmp_path):
    random_dump(tmp_path / "d.npz", seed=3, rewards=False)
    rep = evaluate(tmp_path / "d.npz", tmp_path / "out", progress=False, max_response_length=24)
    assert "error_estimate" not in rep
    assert "reward range" in rep["verdict"]["against"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Estimated error" not in md and "## Certified bounds on |Error|" in md
    assert "assumes one response per prompt" in md


def test_trm_thresholds_section_is_the_planner_at_the_logged_lengths(tmp_path):
    """B* at the TRM-Max threshold in use (an override here), conditional, from the planner
    at the logged lengths; said in the report's detail."""
    d = random_dump(tmp_path / "d.npz", seed=4)
    rep = evaluate(tmp_path / "d.npz", tmp_path / "out", thresholds={"seq_max_k2": 0.01},
                   progress=False)  # fmt: skip
    t = rep["trm_thresholds"]
    L = d["mask"].sum(axis=1)
    assert t["delta"] == 0.01 and t["T"] == L.max() and "conditional" in t["label"]
    assert t["unified_published"] == unified_at(int(L.max()), 0.01, lengths=L)
    assert t["unified_sharp"] == unified_at(int(L.max()), 0.01, lengths=L, sharp=True)
    assert f"{t['unified_published']:.4g}" in (tmp_path / "out" / "report.md").read_text()


def _cert(B: float, span: float = 1.0) -> dict:
    return {"computed": True, "level": 0.95, "n_sequences": 10, "n_units": 10,
            "unit": "sequence", "T_max": 8, "reward_range": [0.0, span],
            "vacuous": not B < (1 - DECISION_MARGIN) * span, "more_data": None,
            "proved_here": {"bound": B}, "published": {"bound": 4 * B},
            "sharp": {"bound": 2 * B}}  # fmt: skip


def _err(lp: float) -> dict:
    s = {"estimate": lp, "lo": lp - 0.1, "hi": lp + 0.1}
    return {"L_prime": s, "error": s, "n_sequences": 10}


@pytest.mark.parametrize("B, lp, status", [
    (2.0, None, "vacuous"),          # B >= 1 against the reward range
    (0.5, None, "informative"),      # B < 1, no rewards
    (1 - DECISION_MARGIN / 2, None, "vacuous"),  # within the margin of the range: vacuous
    (0.2, 0.35, "decides the sign of the gain"),  # the L' interval [0.25, 0.45] above B
    (0.2, -0.35, "decides the sign of the gain"),  # and below -B
    (0.2, 0.25, "inconclusive"),     # the estimate above B, its interval [0.15, 0.35] not
    (0.5, -0.3, "inconclusive"),     # B < 1 but >= |L'|
    (1.5, 0.3, "vacuous"),           # B >= 1 and >= |L'|
    (1.5, 2.0, "decides the sign of the gain"),  # a surrogate above any true gain
])  # fmt: skip
def test_verdict_categories(B, lp, status):
    """The vacuity rule of :func:`verdict`: against the reward range without rewards,
    against the interval of L' with them."""
    v = verdict(_cert(B), None if lp is None else _err(lp), None)
    assert v["status"] == status and v["bound"] == B
    assert ("L'" in v["against"]) is (lp is not None)
    if status == "decides the sign of the gain":
        sign = "so J_theta > J_roll by" if lp > 0 else "so J_theta < J_roll by"
        assert sign in v["text"] and "probability at least 0.9 (both" in v["text"]


def test_verdict_scales_with_the_reward_span():
    assert verdict(_cert(2.0, span=4.0), None, None)["status"] == "informative"
    assert verdict(_cert(4.0, span=4.0), None, None)["status"] == "vacuous"


@pytest.mark.parametrize("changes, field", [
    ({"level": 1.0}, "level"),
    ({"max_response_length": 8.7}, "max_response_length"),
    ({"max_response_length": 0}, "max_response_length"),
    ({"reward_range": (1, 0)}, "reward_range"),
    ({"reward_range": (0, float("nan"))}, "reward_range"),
])  # fmt: skip
def test_bad_certificate_options_are_refused_before_any_work(tmp_path, changes, field):
    random_dump(tmp_path / "d.npz", seed=5)
    with pytest.raises(OptionError) as exc:
        evaluate(tmp_path / "d.npz", tmp_path / "out", **changes)
    assert exc.value.field == field and str(exc.value).startswith(f"{field}: ")
    assert "\n" not in str(exc.value) and not (tmp_path / "out").exists()


def test_dump_without_trained_tokens_is_an_error(tmp_path):
    """Every mask entry 0: nothing can be certified or estimated; the evaluator refuses the
    dump in one line and writes nothing; the certified section refuses it the same way."""
    np.savez(tmp_path / "d.npz", old_log_probs=-np.ones((3, 4)), rollout_log_probs=-np.ones((3, 4)),
             response_mask=np.zeros((3, 4), bool))  # fmt: skip
    with pytest.raises(LogFormatError, match="no valid token") as err:
        evaluate(tmp_path / "d.npz", tmp_path / "out", progress=False)
    assert len(str(err.value).splitlines()) == 1
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="no trained token"):
        certified_section({"lengths": np.zeros(3), "x": np.zeros(3)}, T_max=4)


# ----------------------------------------------------------------------------- end to end coverage

def _sample_dump(path, inst, R: np.ndarray, rng: np.random.Generator, *, groups: int,
                 G: int) -> None:
    """``groups`` prompts drawn from ``p_x``, ``G`` responses each from pi_roll
    (:func:`~trm_bounds.instances.end_token.sample_responses`), written as a verl-style
    ``.npz`` with ``uid``, rewards and the mask cut after the end token; two pad rows (no
    trained token) appended."""
    from trm_bounds.instances.end_token import sample_responses

    x = np.repeat(rng.choice(inst.n_prompts, size=groups, p=inst.p_x), G)
    d = sample_responses(inst, x, rng)
    n, T = x.shape[0], inst.T
    pad = np.zeros((2, T))
    np.savez(path, old_log_probs=np.vstack([d["log_probs"], pad - 1]),
             rollout_log_probs=np.vstack([d["rollout_log_probs"], pad - 1]),
             response_mask=np.vstack([d["mask"], pad.astype(bool)]),
             reward=np.concatenate([R[x, d["seq"]], [0.0, 0.0]]),
             uid=np.concatenate([(np.arange(n) // G).astype(str), ["pad", "pad"]]))  # fmt: skip


@pytest.mark.e2e
def test_evaluate_end_to_end_covers_the_exact_error(tmp_path):
    """The evaluator itself, from dump files to report.json, on dumps sampled from an exact
    instance with variable lengths (an end token), GRPO groups of 8 responses sharing a
    prompt, two pad rows and rewards in [-3, 5] (the worst reward for the instance): the
    upper confidence bound covers the exact sum_t Dbar_t (from the context tables, not from
    X), the certified bound the exact |Error|, and the intervals of the error estimate the
    exact Error, J_theta - J_roll and L' (docs/theory.md §9, Theorem 9.4), each in at least
    level - 2 s.e. of the repetitions (fixed seeds; 100 dumps of 128 groups)."""
    from trm_bounds.certify.exact import sequence_table
    from trm_bounds.instances.end_token import end_token_tree

    inst = end_token_tree(seed=11)
    lo, hi, level, reps = -3.0, 5.0, 0.9, 100
    table = sequence_table(inst.p_x, inst.pi_roll, inst.pi_theta, np.zeros_like(inst.reward))
    R = np.where(table.coef > 0, hi, lo)  # (n, V^T): the reward that makes |Error| largest
    error = abs(float((R * table.coef).sum()))
    assert error <= (hi - lo) * table.dbar_sum * (1 + RTOL)  # Theorem 9.3 on the instance
    p = table.w_roll  # (n, V^T) joint probabilities of prompt and response under pi_roll
    w = np.exp(table.S)
    exact = {"error": float((p * R * (w - 1 - table.U)).sum()),
             "J_diff": float((p * R * (w - 1)).sum()), "L_prime": float((p * R * table.U).sum())}
    np.testing.assert_allclose(abs(exact["error"]), error, rtol=RTOL)  # two routes
    rng = np.random.default_rng(12)
    ucb_covers = bound_covers = 0
    iv_covers = dict.fromkeys(exact, 0)
    ucbs = []
    for i in range(reps):
        _sample_dump(tmp_path / f"d{i}.npz", inst, R, rng, groups=128, G=8)
        rep = evaluate(tmp_path / f"d{i}.npz", tmp_path / f"o{i}", progress=False, html=False,
                       prefetch=False, level=level, max_response_length=inst.T,
                       reward_range=(lo, hi))  # fmt: skip
        c = rep["certified"]
        assert c["unit"] == "group" and c["n_units"] == 128 and c["n_untrained_rows"] == 2
        ucb_covers += table.dbar_sum <= c["dbar_sum_ucb"]
        bound_covers += error <= c["bound_proved_here"]
        ucbs.append(c["dbar_sum_ucb"])
        e = rep["error_estimate"]
        assert e["unit"] == "group" and e["n_units"] == 128
        for q, v in exact.items():
            iv_covers[q] += e[q]["lo"] <= v <= e[q]["hi"]
    se = math.sqrt(level * (1 - level) / reps)
    assert ucb_covers / reps >= level - 2 * se, ucb_covers
    assert bound_covers / reps >= level - 2 * se, bound_covers
    assert all(c / reps >= level - 2 * se for c in iv_covers.values()), iv_covers
    assert np.median(ucbs) < 1.5 * table.dbar_sum  # near enough to the truth to be tested
