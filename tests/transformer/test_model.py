"""Small transformers: model properties, exact enumeration, export, bounds on neural pairs.

Checks: log-probabilities normalise; the model is causal; the KV cache agrees with
the full pass; every enumerated pair satisfies the docs/theory.md identities (error two
ways, D_KL^seq two ways) and §3 relations, and ``|Error| <= `` every published and sharp
bound (also ``max_R |Error|``); the precision pair has a non-zero divergence; a pair exported
as a ``trm-oracle-instances/v1`` instance gives identical exact quantities in the tree
engine.
"""

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tolerances import ATOL, RTOL, leq
from trm_bounds.bounds import BOUND_NAMES
from trm_bounds.engines.neural import (
    context_indices,
    enumerate_tables,
    enumerate_with_routes,
    exact_quantities,
    reward_table,
    route_flips,
    sequence_tokens,
)
from trm_bounds.instances.format import instance_record, load_instances, write_instances
from trm_bounds.instances.tree import context_index, n_contexts, sequence_index
from trm_bounds.report import ExactReport
from trm_bounds.transformer import (
    GPT,
    GPTConfig,
    MarkovSource,
    count_route_flips,
    grammar_reward,
    moe_routing_pair,
    policy_logprobs,
    precision_pair,
    sample,
    staleness_pair,
    token_logprobs,
    train_on_source,
    weight_noise_pair,
)

torch.set_num_threads(1)  # tiny models: threads only add contention on shared CI cores

V, N_PROMPTS = 4, 2
P_X = np.full(N_PROMPTS, 1.0 / N_PROMPTS)


@pytest.fixture(scope="module")
def source():
    return MarkovSource(V=V, n_prompts=N_PROMPTS, seed=0)


@pytest.fixture(scope="module")
def dense(source):
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=V, n_prompts=N_PROMPTS, seed=0))
    train_on_source(m, source, steps=40, lr=1e-2, seed=0)
    return m


@pytest.fixture(scope="module")
def moe(source):
    m = GPT(GPTConfig(vocab_size=V, n_prompts=N_PROMPTS, n_experts=4, top_k=2, seed=1))
    train_on_source(m, source, steps=40, lr=1e-2, seed=1)
    return m


@pytest.fixture(scope="module")
def pairs(dense, moe, source):
    """One pair per mismatch source."""
    return {
        "precision_bf16": precision_pair(dense, torch.bfloat16),
        "precision_fp16": precision_pair(dense, torch.float16),
        "staleness": staleness_pair(dense, source, k=2, lr=1e-3, T=4, batch=32),
        "moe_routing": moe_routing_pair(moe, 0.05, seed=0),
        "weight_noise": weight_noise_pair(dense, 0.05, seed=0),
    }


@pytest.fixture(scope="module")
def reports(pairs, source):
    """Exact quantities of every pair at T = 3 and 4 (V^T = 64 and 256 sequences)."""
    out = {}
    for T in (3, 4):
        R = reward_table(source, N_PROMPTS, T)
        for name, (roll, theta) in pairs.items():
            pr, pt = enumerate_tables(roll, T), enumerate_tables(theta, T)
            out[name, T] = (pr, pt, R, exact_quantities(pr, pt, R, P_X))
    return out


def _random_inputs(T, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, N_PROMPTS, (n,), generator=g)
    y = torch.randint(0, V, (n, T), generator=g)
    return x, y


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_logprobs_normalise(dense, dtype):
    """sum_v pi(v|c) = 1 at every position, in float64 whatever dtype the network runs in."""
    model = precision_pair(dense, dtype)[0]
    x, y = _random_inputs(6)
    idx = torch.cat([(V + x)[:, None], y[:, :-1]], 1)
    logp = policy_logprobs(model, idx)
    assert logp.dtype == torch.float64
    np.testing.assert_allclose(logp.exp().sum(-1).numpy(), 1.0, rtol=RTOL, atol=ATOL)
    # token_logprobs is the gather of the same distributions
    tok = token_logprobs(model, x, y).detach()
    np.testing.assert_allclose(tok, logp.gather(-1, y[..., None])[..., 0], rtol=RTOL, atol=ATOL)


def test_model_is_causal(dense):
    """Changing y_j changes no logit at input positions <= j-1 ... and does change later ones."""
    model = precision_pair(dense, torch.float64)[1]
    x, y = _random_inputs(6)
    j = 3  # input position of token y_3 (the prompt token is position 0)
    idx = torch.cat([(V + x)[:, None], y], 1)  # (n, 7)
    idx2 = idx.clone()
    idx2[:, j] = (idx2[:, j] + 1) % V
    a, b = policy_logprobs(model, idx), policy_logprobs(model, idx2)
    np.testing.assert_allclose(a[:, :j], b[:, :j], rtol=RTOL, atol=ATOL)
    assert (a[:, j:] - b[:, j:]).abs().max() > 1e-6


def test_kv_cache_matches_full_pass(dense):
    """The sampler's cached log-probabilities equal one teacher-forced pass (float64 model)."""
    model = precision_pair(dense, torch.float64)[1]
    x = torch.tensor([0, 1, 1, 0])
    y, logp = sample(model, x, 7, torch.Generator().manual_seed(0))
    full = policy_logprobs(model, torch.cat([(V + x)[:, None], y[:, :-1]], 1))
    np.testing.assert_allclose(logp, full, rtol=RTOL, atol=ATOL)


def test_training_moves_far_from_uniform(dense, source):
    """After training, the mean largest next-token probability exceeds uniform (1/V = 0.25)
    by far: the source puts (1 - leak) = 0.9 on two allowed successors, so >= 0.45 on one."""
    pi = enumerate_tables(dense, 3)
    assert pi.max(-1).mean() > 0.4
    # and the grammar reward under the model beats the uniform policy's n_allowed/V = 0.5
    R = reward_table(source, N_PROMPTS, 3)
    rep = exact_quantities(pi, pi, R, P_X)
    assert rep["J_roll"] > 0.7


def test_reward_in_unit_interval(source):
    """R in [0, 1] on every sequence; R = 1 exactly on a grammatical chain."""
    R = reward_table(source, N_PROMPTS, 4)
    assert R.min() >= 0.0 and R.max() <= 1.0
    prev, y = 0, []  # prompt 0 starts at y_0 = 0; follow the first allowed successor
    for _ in range(4):
        prev = int(np.flatnonzero(source.allowed[prev])[0])
        y.append(prev)
    assert grammar_reward(source, [0], [y])[0] == 1.0


def test_context_and_sequence_indexing():
    """ctx(t, y_<t) and seq(y) follow the exchange format's layout (docs/theory.md §1;
    independent scalar formula: the tree instances)."""
    T = 4
    toks, ctx = sequence_tokens(V, T), context_indices(V, T)
    for s in (0, 1, 37, V**T - 1):
        y = toks[s].tolist()
        assert sequence_index(y, V) == s
        assert [context_index(y[:t], V) for t in range(T)] == ctx[s].tolist()
    assert int(ctx.max()) == n_contexts(V, T) - 1


def test_enumerated_table_matches_direct_evaluation(dense):
    """The table row of context (x, y_<t) equals the model's distribution on that prefix
    (float64 model, so batch shape does not change the rounding)."""
    T = 4
    dense = precision_pair(dense, torch.float64)[1]
    pi = enumerate_tables(dense, T)
    for x, prefix in ((0, []), (1, [2]), (0, [3, 1, 0])):
        idx = torch.tensor([[V + x, *prefix]])
        direct = policy_logprobs(dense, idx)[0, -1].exp().numpy()
        np.testing.assert_allclose(pi[x, context_index(prefix, V)], direct, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("V_, T", [(2, 1), (2, 6), (3, 4), (4, 5)])
def test_kv_enumeration_equals_full_recompute(V_, T):
    """The KV-cached walk of the prefix tree (one token per context) gives the same table as
    the reference full recompute on the V^(T-1) longest prefixes, float64 model, to the suite's
    tolerance; a small ``batch`` forces the depth-first blocking at every level."""
    model = GPT(GPTConfig(vocab_size=V_, n_prompts=2, seed=V_ + T)).double()
    full = enumerate_tables(model, T, method="full")
    for batch in (V_, 7, 4096):
        kv = enumerate_tables(model, T, batch=batch)
        assert kv.shape == full.shape == (2, n_contexts(V_, T), V_)
        np.testing.assert_allclose(kv, full, rtol=RTOL, atol=ATOL)


def test_kv_routes_equal_full_pass_routes(moe):
    """The KV walk's top-k expert sets per (layer, context) are those of a full pass over the
    same prefix (float64 MoE), and route_flips counts each context once."""
    roll, theta = moe_routing_pair(moe, 0.3, seed=0)
    T = 4
    tab, routes = enumerate_with_routes(roll, T, batch=8)
    _, routes_t = enumerate_with_routes(theta, T)
    assert routes.shape == (roll.cfg.n_layer, N_PROMPTS, n_contexts(V, T), 2)
    for x, prefix in ((0, []), (1, [2]), (0, [3, 1, 0])):
        with torch.no_grad():
            roll(torch.tensor([[V + x, *prefix]]))
        for i, block in enumerate(roll.blocks):
            top = block.mlp.last_router_logits[0, -1].topk(2).indices.sort().values
            assert routes[i, x, context_index(prefix, V)].tolist() == top.tolist()
    flips, total = route_flips(routes, routes_t)
    manual = sum(
        set(routes[i, x, c]) != set(routes_t[i, x, c])
        for i in range(2) for x in range(N_PROMPTS) for c in range(n_contexts(V, T))
    )  # fmt: skip
    assert (flips, total) == (manual, 2 * N_PROMPTS * n_contexts(V, T))
    assert 0 < flips < total
    np.testing.assert_allclose(tab, enumerate_tables(roll, T, method="full"), rtol=RTOL, atol=ATOL)


def test_chunked_exact_quantities_equal_one_block(reports):
    """Summing the sequence terms over blocks of 7 leaves gives the one-block values (the
    blocking changes only the summation order)."""
    pr, pt, R, q = reports["staleness", 4]
    qc = exact_quantities(pr, pt, R, P_X, chunk=7)
    for k in ("J_roll", "J_theta", "L_prime", "error", "error_identity", "error_max_over_rewards",
              "D_TV_seq", "D_KL_seq_direct", "D_KL_seq", "Dbar"):  # fmt: skip
        np.testing.assert_allclose(qc[k], q[k], rtol=RTOL, atol=ATOL, err_msg=k)
    np.testing.assert_array_equal(reward_table(MarkovSource(V=V, n_prompts=N_PROMPTS, seed=0),
                                               N_PROMPTS, 4, chunk=5), R)  # fmt: skip


def test_enumerate_tables_rejects_unknown_method(dense):
    """A method other than kv/full is a one-line ValueError naming it."""
    with pytest.raises(ValueError, match="method: must be 'kv' or 'full', got 'fast'"):
        enumerate_tables(dense, 2, method="fast")


def test_identities_and_relations(reports):
    """docs/theory.md §2 error two ways (and via J), D_KL^seq chain rule = direct; §3
    relations."""
    for (_name, T), (*_, q) in reports.items():
        np.testing.assert_allclose(q["error"], q["error_identity"], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(q["error"], q["error_from_J"], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(q["D_KL_seq"], q["D_KL_seq_direct"], rtol=RTOL, atol=ATOL)
        assert 2 * q["eps"] ** 2 <= q["delta"] + 1e-14  # Pinsker, squared form (§3)
        assert leq(q["Dbar"], q["eps"])
        assert leq(q["D_KL_seq"], T * q["delta"])
        assert 2 * q["D_TV_seq"] ** 2 <= q["D_KL_seq"] + 1e-14
        assert leq(abs(q["error"]), q["error_max_over_rewards"])


def test_error_within_every_bound(reports):
    """|Error| <= every published and sharp bound (docs/theory.md §4, §5) on every pair, and so
    is the reward-free worst case max_R |Error| (the bounds hold for every R in [0, 1])."""
    for key, (*_, q) in reports.items():
        for kind in ("bounds_published", "bounds_sharp"):
            assert set(q[kind]) == set(BOUND_NAMES)
            for name, b in q[kind].items():
                assert leq(q["error_max_over_rewards"], b), (key, kind, name)
        for name in BOUND_NAMES:  # sharp = published / 2 (§5)
            np.testing.assert_allclose(
                2 * q["bounds_sharp"][name], q["bounds_published"][name], rtol=RTOL, atol=ATOL
            )


@settings(max_examples=12)  # each example enumerates two models (about 0.3 s)
@given(
    kind=st.sampled_from(["weight_noise", "moe_routing"]),
    scale=st.floats(1e-3, 1.0),
    seed=st.integers(0, 2**16),
    T=st.integers(2, 4),
)
def test_bounds_hold_on_random_neural_pairs(dense, moe, source, kind, scale, seed, T):
    """Random perturbation scale and seed: the §2 identity and |Error|, max_R |Error| <=
    every published and sharp bound (docs/theory.md §4, §5)."""
    if kind == "weight_noise":
        roll, theta = weight_noise_pair(dense, scale, seed=seed)
    else:
        roll, theta = moe_routing_pair(moe, scale, seed=seed)
    R = reward_table(source, N_PROMPTS, T)
    q = exact_quantities(enumerate_tables(roll, T), enumerate_tables(theta, T), R, P_X)
    np.testing.assert_allclose(q["error"], q["error_identity"], rtol=RTOL, atol=ATOL)
    for kind_b in ("bounds_published", "bounds_sharp"):
        for name, b in q[kind_b].items():
            assert leq(q["error_max_over_rewards"], b), (kind_b, name)


def test_precision_pair_has_nonzero_divergence(reports):
    """Low-precision evaluation changes the policy: delta, eps > 0; bfloat16 (8 significand
    bits) departs more than float16 (11 bits)."""
    for T in (3, 4):
        bf, fp = reports["precision_bf16", T][3], reports["precision_fp16", T][3]
        assert fp["delta"] > 0 and fp["eps"] > 0 and fp["D_KL_seq"] > 0
        assert bf["delta"] > fp["delta"]


def test_every_source_has_nonzero_error(reports):
    """Every mismatch source moves at least two contexts on a path, so Error != 0 (§2)."""
    for (name, _T), (*_, q) in reports.items():
        assert q["error_max_over_rewards"] > 0, name


def test_moe_routing_flips_a_few_contexts(pairs):
    """The router perturbation flips the expert choice on some but not all positions."""
    roll, theta = pairs["moe_routing"]
    toks = sequence_tokens(V, 4)
    idx = torch.cat([torch.full((len(toks), 1), V), toks[:, :-1]], 1)
    flips, total = count_route_flips(roll, theta, idx)
    assert 0 < flips < total


def test_report_is_the_common_exact_report(reports):
    """The neural engine returns the typed report every engine returns, with its two extra
    cross-checks (error from J, D_KL^seq over whole sequences) and no tree-only fields."""
    q = reports["weight_noise", 3][3]
    assert isinstance(q, ExactReport)
    assert q.error_from_J is not None and q.D_KL_seq_direct is not None
    assert q.baseline_b is None and "L_baseline" not in q
    # None: all rewards and an exact D_TV^seq, left out of the keys (the committed files' set)
    assert q.error_max_over_rewards_scope is None and q.D_TV_seq_method is None
    assert "error_max_over_rewards_scope" not in q and "D_TV_seq_method" not in q
    assert len(q["Dbar"]) == 3


def test_export_matches_tree_engine(reports, tmp_path):
    """Pair -> trm-oracle-instances/v1 file -> tree engine's exact_report: identical
    quantities."""
    from trm_bounds.engines.tree import exact_report

    keys = "J_roll J_theta L_prime error error_identity error_max_over_rewards eps delta"
    keys = (keys + " Dbar D_KL_seq D_TV_seq").split()
    insts = [
        instance_record(f"{name}-T{T}", pr, pt, R, P_X, expected=q, kind=name)
        for (name, T), (pr, pt, R, q) in reports.items()
        if T == 3
    ]
    path = write_instances(tmp_path / "inst.json", insts, compact=True)
    loaded = load_instances(path)
    assert len(loaded) == len(insts)
    for inst in loaded:
        rep = exact_report(inst)
        exp = inst.meta["expected"]
        for k in keys:
            np.testing.assert_allclose(rep[k], exp[k], rtol=RTOL, atol=ATOL, err_msg=k)
        for kind in ("bounds_published", "bounds_sharp"):
            for name in BOUND_NAMES:
                np.testing.assert_allclose(
                    rep[kind][name], exp[kind][name], rtol=RTOL, atol=ATOL, err_msg=name
                )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_enumeration_matches_cpu(pairs, source):
    """float64 enumeration and exact quantities on CUDA equal the CPU ones."""
    from trm_bounds.transformer import no_tf32

    no_tf32()
    roll, theta = pairs["weight_noise"]
    T = 4
    R = reward_table(source, N_PROMPTS, T)
    cpu = exact_quantities(enumerate_tables(roll, T), enumerate_tables(theta, T), R, P_X)
    rc, tc = copy.deepcopy(roll).to("cuda"), copy.deepcopy(theta).to("cuda")
    gpu = exact_quantities(enumerate_tables(rc, T), enumerate_tables(tc, T), R, P_X, device="cuda")
    for k in ("error", "eps", "delta", "D_KL_seq", "D_TV_seq"):
        np.testing.assert_allclose(gpu[k], cpu[k], rtol=1e-9, atol=ATOL, err_msg=k)


@pytest.mark.slow
@pytest.mark.parametrize("V_, T", [(4, 12), (8, 8)])
def test_large_kv_enumeration(V_, T):
    """Issue 12 sizes, 16.7M sequences per prompt (V = 4, T = 12 and V = 8, T = 8; minutes on
    one CPU core, experiments/bench_neural.py times them): the KV walk's rows equal a direct
    full pass on random contexts at every depth, every row normalises, and the exact
    quantities satisfy the docs/theory.md §2 identities and every published and sharp bound."""
    src = MarkovSource(V=V_, n_prompts=2, seed=0)
    model = GPT(GPTConfig(vocab_size=V_, n_prompts=2, seed=0))
    train_on_source(model, src, steps=20, lr=1e-2, seed=0)
    roll, theta = weight_noise_pair(model, 0.05, seed=0)
    pr, pt = enumerate_tables(roll, T), enumerate_tables(theta, T)
    np.testing.assert_allclose(pr.sum(-1), 1.0, rtol=RTOL, atol=ATOL)
    rng = np.random.default_rng(0)
    for depth in (0, 1, T // 2, T - 1, T - 1):
        x, prefix = int(rng.integers(2)), rng.integers(0, V_, depth).tolist()
        direct = policy_logprobs(roll, torch.tensor([[V_ + x, *prefix]]))[0, -1].exp().numpy()
        np.testing.assert_allclose(pr[x, context_index(prefix, V_)], direct, rtol=RTOL,
                                   atol=ATOL)  # fmt: skip
    q = exact_quantities(pr, pt, reward_table(src, 2, T), P_X)
    np.testing.assert_allclose(q["error"], q["error_identity"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(q["error"], q["error_from_J"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(q["D_KL_seq"], q["D_KL_seq_direct"], rtol=RTOL, atol=ATOL)
    for kind in ("bounds_published", "bounds_sharp"):
        for name, b in q[kind].items():
            assert leq(q["error_max_over_rewards"], b), (kind, name)
    assert q["error_max_over_rewards"] > 0


@pytest.mark.slow
def test_experiment_smoke(tmp_path):
    """The transformer_mismatch study at --small runs and writes both files (about a minute)."""
    import json
    import subprocess
    import sys

    out, inst = tmp_path / "tm.json", tmp_path / "ti.json"
    cmd = [sys.executable, "-m", "trm_bounds.studies.transformer_mismatch", "--small"]
    cmd += ["--out", str(out), "--instances-out", str(inst)]
    subprocess.run(cmd, check=True, capture_output=True)
    data = json.loads(out.read_text())
    assert {r["source"] for r in data["exact"]} == set(data["sources"])
    assert json.loads(inst.read_text())["schema"] == "trm-oracle-instances/v1"
