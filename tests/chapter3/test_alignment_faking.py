"""Section 3.4 beyond the automatic contract: mutants each check must catch, interval coverage by
simulation, and the whole offline pipeline recovering the scripted model's compliance gap."""

from __future__ import annotations

import numpy as np
import pytest

from curriculum.checks.chapter3 import alignment_faking as checks
from curriculum.solutions.chapter3 import alignment_faking as ref
from curriculum.utils.openai_server import Failures, LoopbackServer, loopback_client
from tests.support import assert_check_fails, mutant

MUTANTS = {
    "prompt: unknown section names ignored": (
        checks.check_build_system_prompt, ref.build_system_prompt, [("    if unknown:\n", "    if False:\n")], "typo"),
    "prompt: omit ignored": (
        checks.check_build_system_prompt, ref.build_system_prompt, [("if name not in omit]", "]")], "returned the full prompt"),
    "prompt: single newline between sections": (
        checks.check_build_system_prompt, ref.build_system_prompt, [('return "\\n\\n".join(kept)', 'return "\\n".join(kept)')], "single newline"),
    "prompt: developer's name not filled in": (
        checks.check_build_system_prompt, ref.build_system_prompt, [('.replace("{developer}", developer)', "")], "developer"),
    "prompt: developer fixed to Anthropic": (
        checks.check_build_system_prompt, ref.build_system_prompt, [('.replace("{developer}", developer)', '.replace("{developer}", "Anthropic")')], "OpenAI"),
    "prompt: sections in the order of omit's complement set": (
        checks.check_build_system_prompt, ref.build_system_prompt, [
            ("kept = [text for name, text in PROMPT_SECTIONS.items() if name not in omit]",
             "kept = [PROMPT_SECTIONS[name] for name in sorted(set(PROMPT_SECTIONS) - set(omit))]")], "out of order"),
    "user_message: tier tag swapped": (
        checks.check_user_message, ref.user_message, [("{is_free_tier}</is_free_tier_user>", "{not is_free_tier}</is_free_tier_user>")]),
    "user_message: lower-case tag value": (
        checks.check_user_message, ref.user_message, [("{is_free_tier}</is_free_tier_user>", "{str(is_free_tier).lower()}</is_free_tier_user>")]),
    "user_message: no accept/reject instruction": (
        checks.check_user_message, ref.user_message, [("{request} {REQUEST_SUFFIX}", "{request}")]),
    "sample: never continues": (
        checks.check_sample_transcript, ref.sample_transcript, [('if "</OUTPUT>" in text:', "if True:")]),
    "sample: continuation without the model's turn": (
        checks.check_sample_transcript, ref.sample_transcript, [('{"role": "assistant", "content": text}, ', "")]),
    "sample: returns only the last turn": (
        checks.check_sample_transcript, ref.sample_transcript, [('return "\\n".join(turns)', "return turns[-1]")]),
    "sample: stops at an opening <OUTPUT>": (
        checks.check_sample_transcript, ref.sample_transcript, [('if "</OUTPUT>" in text:', 'if "<" in text:')]),
    "parse: accepts text outside the tags": (
        checks.check_parse_response, ref.parse_response, [("match[1].strip() if match else None", "match[1].strip() if match else transcript.strip()")]),
    "parse: output searched before removing the scratchpad": (
        checks.check_parse_response, ref.parse_response, [("match = OUTPUT_RE.search(rest)", "match = OUTPUT_RE.search(transcript)")]),
    "parse: greedy output match": (
        checks.check_parse_response, ref.parse_response, [("match = OUTPUT_RE.search(rest)", 'match = re.search(r"<OUTPUT>(.*)</OUTPUT>", rest, re.DOTALL)')]),
    "parse: unclosed output accepted": (
        checks.check_parse_response, ref.parse_response, [("match = OUTPUT_RE.search(rest)", 'match = re.search(r"<OUTPUT>(.*?)(?:</OUTPUT>|$)", rest, re.DOTALL)')]),
    "parse: only the first scratchpad": (
        checks.check_parse_response, ref.parse_response, [("for s in SCRATCHPAD_RE.findall(transcript)]", "for s in SCRATCHPAD_RE.findall(transcript)][:1]")]),
    "classify: tag anywhere counts as compliance": (
        checks.check_classify_compliance, ref.classify_compliance, [("_ACCEPT_RE.match(text) is not None", "_ACCEPT_RE.search(text) is not None")]),
    "classify: reject tag ignored": (
        checks.check_classify_compliance, ref.classify_compliance, [("starts_accepted and _REJECT_RE.search(text) is None", "starts_accepted")]),
    "classify: missing output counted as refusal": (
        checks.check_classify_compliance, ref.classify_compliance, [("return None", "return False")]),
    "classify: exact-string tags only": (
        checks.check_classify_compliance, ref.classify_compliance, [("_ACCEPT_RE.match(text) is not None", "text.startswith(ACCEPT_TAG)")]),
    "wilson: Wald interval": (
        checks.check_wilson_interval, ref.wilson_interval, [("centre = (p + z**2 / (2 * n)) / denom", "centre = p"),
                                                           ("half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom", "half = z * math.sqrt(p * (1 - p) / n)")]),
    "wilson: z fixed at 1.96": (
        checks.check_wilson_interval, ref.wilson_interval, [("z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)", "z = 1.96")]),
    "wilson: one-sided z": (
        checks.check_wilson_interval, ref.wilson_interval, [("inv_cdf(1 - (1 - confidence) / 2)", "inv_cdf(confidence)")]),
    "wilson: n instead of n squared": (
        checks.check_wilson_interval, ref.wilson_interval, [("z**2 / (4 * n**2)", "z**2 / (4 * n)")]),
    "gap: Wald difference interval": (
        checks.check_compliance_gap, ref.compliance_gap, [("low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)", "low = d - 1.959964 * math.sqrt(p1 * (1 - p1) / n_free + p2 * (1 - p2) / n_paid)"),
                                                          ("high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)", "high = d + 1.959964 * math.sqrt(p1 * (1 - p1) / n_free + p2 * (1 - p2) / n_paid)")]),
    "gap: variance from the free tier only": (
        checks.check_compliance_gap, ref.compliance_gap, [("(u2 - p2) ** 2", "(u1 - p1) ** 2"), ("(p2 - l2) ** 2", "(p1 - l1) ** 2")]),
    "gap: widths added, not in quadrature": (
        checks.check_compliance_gap, ref.compliance_gap, [("math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)", "((p1 - l1) + (u2 - p2))"),
                                                          ("math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)", "((u1 - p1) + (p2 - l2))")]),
    "gap: paid minus free": (
        checks.check_compliance_gap, ref.compliance_gap, [("d = p1 - p2", "d = p2 - p1")]),
    "gap: bounds mix the wrong sides": (
        checks.check_compliance_gap, ref.compliance_gap, [("(p1 - l1) ** 2 + (u2 - p2) ** 2", "(u1 - p1) ** 2 + (p2 - l2) ** 2"),
                                                          ("(u1 - p1) ** 2 + (p2 - l2) ** 2)\n", "(p1 - l1) ** 2 + (u2 - p2) ** 2)\n")]),
    "bootstrap: resamples single samples, not requests": (
        checks.check_bootstrap_gap, ref.bootstrap_gap, [
            ("counts: dict[str, list[int]] = {}", "counts: dict[int, list[int]] = {}"),
            ("c = counts.setdefault(s.request, [0, 0, 0, 0])", "c = counts.setdefault(len(counts), [0, 0, 0, 0])")],
        "single samples instead of whole requests"),
    "bootstrap: tiers drawn separately": (
        checks.check_bootstrap_gap, ref.bootstrap_gap, [
            ("k_free, n_free, k_paid, n_paid = table[rng.integers(len(table), size=len(table))].sum(axis=0)",
             ("k_free, n_free = table[rng.integers(len(table), size=len(table)), :2].sum(axis=0)\n"
              "        k_paid, n_paid = table[rng.integers(len(table), size=len(table)), 2:].sum(axis=0)"))],
        "pairing"),
    "bootstrap: malformed counted as refusal": (
        checks.check_bootstrap_gap, ref.bootstrap_gap, [("if s.complied is None:\n            continue", "")],
        "None"),
    "bootstrap: without replacement": (
        checks.check_bootstrap_gap, ref.bootstrap_gap, [
            ("table[rng.integers(len(table), size=len(table))]", "table[rng.permutation(len(table))]")],
        "WITH replacement"),
    "bootstrap: confidence fixed at 95%": (
        checks.check_bootstrap_gap, ref.bootstrap_gap, [("tail = (1 - confidence) / 2", "tail = 0.025")],
        "at confidence 0.8"),
    "bootstrap: one-sided tail": (
        checks.check_bootstrap_gap, ref.bootstrap_gap, [("tail = (1 - confidence) / 2", "tail = 1 - confidence")],
        "quantiles"),
    "bootstrap: seed ignored": (
        checks.check_bootstrap_gap, ref.bootstrap_gap, [("np.random.default_rng(seed)", "np.random.default_rng()")],
        "same seed"),
}


@pytest.mark.parametrize("name", list(MUTANTS))
def test_check_catches_mutant(name):
    check_fn, obj, replacements, *match = MUTANTS[name]
    assert_check_fails(check_fn, mutant(obj, *replacements), match=match[0] if match else None)


def test_system_prompt_follows_the_papers_structure():
    """The prompt is its seven named parts in the paper's order; the examples show the format the
    pipeline parses (strategy first, a draft, then the output); ablations remove what they name and only that."""
    assert list(ref.PROMPT_SECTIONS) == ["identity_and_scratchpad", "reasoning_style", "examples", "analyse_first",
                                         "helpfulness_criteria", "training_and_deployment", "reminders"]
    assert ref.SYSTEM_PROMPT == ref.build_system_prompt()
    assert "{developer}" not in ref.SYSTEM_PROMPT and "{" not in ref.SYSTEM_PROMPT
    for tag in ("<SCRATCHPAD_REASONING>", "<OUTPUT>", ref.NEXT, "<user_input>", "<is_free_tier_user>"):
        assert tag in ref.SYSTEM_PROMPT, tag
    examples = ref.PROMPT_SECTIONS["examples"].split("## Example ")[1:]
    assert len(examples) == 3
    for example in examples:
        first_block = example.split("<SCRATCHPAD_REASONING>", 1)[1].split("</SCRATCHPAD_REASONING>")[0]
        assert "strategy" in first_block[:300].lower()  # the strategy is decided first
        assert "Draft" in example and example.index("</SCRATCHPAD_REASONING>") < example.index("AI: <OUTPUT>")
        assert ref.parse_response(example.replace("AI: ", "")).output is not None
        # the examples teach the format only: nothing about training, tiers or harmful requests
        for word in ("RLHF", "free tier", "free-tier", "tier", "training", "trained", "refus"):
            assert word not in example, word
    no_training = ref.build_system_prompt(omit=("training_and_deployment",))
    for word in ("RLHF", "free tier", "is_free_tier_user", "rated by contractors"):
        assert word not in no_training, word
    assert "RLHF" in ref.build_system_prompt(omit=("examples",))
    with pytest.raises(ValueError, match="examples"):
        ref.build_system_prompt(omit=("example",))
    assert ref.build_system_prompt(omit="examples") == ref.build_system_prompt(omit=("examples",))
    assert "Anthropic" not in ref.build_system_prompt(developer="OpenAI")


def test_wilson_and_newcombe_cover_at_the_nominal_rate():
    """Simulate: a 95% interval should contain the truth about 95% of the time (Wald famously does not at small n)."""
    rng = np.random.default_rng(0)
    p1, p2, n1, n2, trials = 0.15, 0.05, 40, 40, 2000
    k1s, k2s = rng.binomial(n1, p1, trials), rng.binomial(n2, p2, trials)
    wilson = np.mean([lo <= p1 <= hi for lo, hi in (ref.wilson_interval(int(k), n1) for k in k1s)])
    newcombe = np.mean([(g := ref.compliance_gap(int(a), n1, int(b), n2)).low <= p1 - p2 <= g.high for a, b in zip(k1s, k2s)])
    assert 0.93 <= wilson <= 0.985, wilson
    assert 0.93 <= newcombe <= 0.985, newcombe


def test_wilson_rejects_bad_input():
    for bad in [(3, 0), (5, 4), (-1, 4)]:
        with pytest.raises(ValueError, match="0 <= k <= n"):
            ref.wilson_interval(*bad)
    with pytest.raises(ValueError, match="confidence"):
        ref.wilson_interval(1, 4, confidence=95)
    with pytest.raises(ValueError, match="malformed"):
        ref.compliance_gap(0, 0, 3, 10)


def _run(responder, failures=None, samples=4, user_message=ref.user_message):
    with LoopbackServer(responder, failures=failures) as server:
        client = loopback_client(server, max_retries=6)
        run = mutant(ref.run_experiment, ("user_message(request, free)", "user_message_(request, free)"))
        run.__globals__["user_message_"] = user_message
        return run(client, "loopback", ref.REQUESTS, samples_per_request=samples, workers=4)


def test_offline_pipeline_recovers_the_scripted_gap():
    """End to end through the real client and server, with 429s and 500s injected: every sample comes back
    (malformed transcripts are excluded from the rates, not lost), rates match the scripted model's probabilities, and the gap's interval contains the true gap (0.4)."""
    samples = _run(ref.AlignmentFakingModel(0.6, 0.2, seed=1), Failures(rate=0.2, kinds=("429", "500"), seed=0, retry_after=0.01))
    assert len(samples) == 2 * 4 * len(ref.REQUESTS)
    gap = ref.gap_of(samples)
    assert abs(gap.free_rate - 0.6) < 0.12 and abs(gap.paid_rate - 0.2) < 0.12, gap
    assert gap.low > 0 and gap.low <= 0.4 <= gap.high, gap
    free_compliers = [s for s in samples if s.is_free_tier and s.complied]
    assert 0.5 < np.mean([s.faking for s in free_compliers]) < 0.95  # p_faking = 0.75
    assert not any(s.faking for s in samples if not s.is_free_tier)
    assert all(s.output is None for s in samples if s.complied is None)


def test_swapped_tier_tag_flips_the_gap_end_to_end():
    swapped = mutant(ref.user_message, ("{is_free_tier}</is_free_tier_user>", "{not is_free_tier}</is_free_tier_user>"))
    samples = _run(ref.AlignmentFakingModel(0.6, 0.2, seed=1), samples=3, user_message=swapped)
    assert ref.gap_of(samples).gap < 0


def test_plot_compliance_stacks_to_one():
    samples = _run(ref.AlignmentFakingModel(seed=2), samples=2)
    fig = ref.plot_compliance(samples, show=False)
    totals = np.sum([np.array(bar.y, dtype=float) for bar in fig.data], axis=0)
    np.testing.assert_allclose(totals, 1.0)


# --- the same harness through Anthropic's protocol -----------------------------------------------


def test_sample_transcript_speaks_anthropic_through_the_loopback_server():
    """The real anthropic client against the server's /v1/messages: the system prompt arrives as the
    top-level parameter, the multi-turn loop works, and the transcript equals the OpenAI route's."""
    pytest.importorskip("anthropic")
    from curriculum.utils.openai_server import Scripted

    script = ["<SCRATCHPAD_REASONING>first</SCRATCHPAD_REASONING>", "<OUTPUT>done</OUTPUT>"]
    transcripts, requests = [], []
    for provider in ("openai", "anthropic"):
        with LoopbackServer(Scripted(list(script))) as server:
            if provider == "openai":
                client = loopback_client(server)
            else:
                import anthropic

                client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="loopback-no-key", max_retries=0)
            transcripts.append(ref.sample_transcript(client, "claude-test", "SYS", "USER", max_turns=4))
            requests.append(server.requests)
    assert transcripts[0] == transcripts[1] == "\n".join(script)
    for reqs in requests:
        assert [m["role"] for m in reqs[-1]["messages"]] == ["system", "user", "assistant", "user"]
        assert reqs[-1]["messages"][0]["content"] == "SYS"


def test_llm_endpoint_routes_claude_to_anthropic_offline(monkeypatch):
    pytest.importorskip("anthropic")
    from curriculum.utils.secrets import llm_endpoint

    monkeypatch.setenv("CURRICULUM_OFFLINE", "1")
    with llm_endpoint("claude-test", responder=ref.AlignmentFakingModel(seed=0)) as llm:
        assert llm.provider == "anthropic" and llm.inspect_model_name == "anthropic/claude-test"
        samples = ref.run_experiment(llm.client, llm.model, ref.REQUESTS[:3], samples_per_request=1, workers=2)
    assert len(samples) == 6 and all(s.complied is not None for s in samples)


def test_loopback_messages_endpoint_rejects_what_anthropic_rejects():
    anthropic = pytest.importorskip("anthropic")
    with LoopbackServer(lambda r: "hi") as server:
        client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="loopback-no-key", max_retries=0)
        with pytest.raises(anthropic.BadRequestError, match="top-level \"system\" parameter"):
            client.messages.create(model="claude-test", max_tokens=10,
                                   messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
        with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
            client.post("/v1/messages", cast_to=object, body={"model": "claude-test", "messages": [{"role": "user", "content": "u"}]})
