"""Classification time for a 10 KB ticket against 100, 1,000 and 10,000 keyword rules.

Run: .venv/bin/python bench/bench_rules.py [--runs N]

Goal (issue 4): the 10,000-rule time stays within 2x of the 100-rule time and under 1 ms,
because all keywords share one Aho-Corasick automaton and only rules whose keywords were
found get evaluated. The text contains the same 20 keywords at every size, so the work that
legitimately depends on hits is equal and what is left to compare is the cost of rule count.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.rules.engine import classify, compile_ruleset
from gateway.rules.model import Actions, Condition, Rule, RuleSet

SIZES = (100, 1_000, 10_000)
TEXT_BYTES = 10 * 1024
HITS = 20

PARAGRAPHS = (
    "今天上午十点左右，订单服务的接口响应时间明显变长，部分用户反馈下单页面一直转圈。"
    "我们查看了监控，发现应用服务器的负载并不高，但是连接池的等待时间在上升。",
    "The nightly batch finished later than usual and the reporting dashboards showed "
    "yesterday's numbers until about nine. Nobody changed the schedule as far as we know.",
    "请帮忙确认一下网络设备的配置是否在上周的维护窗口里被修改过，日志里看到几条告警，"
    "时间和用户投诉的时间大致吻合，附件是相关的截图和日志片段。",
    "Attached are the logs from app-03 and app-04 between 09:40 and 10:20. The error "
    "rate stayed below one percent but latency for the checkout endpoint doubled.",
)
# Common CJK characters and ASCII letters for synthetic keywords that do not occur in the
# text by accident (so the number of hits does not grow with the number of rules).
CJK = "".join(chr(c) for c in range(0x4E00, 0x4E00 + 3000))
ASCII = "bcdfghjklmnpqrstvwxz"


def synthetic_rules(count: int, rng: random.Random) -> list[Rule]:
    rules = []
    for i in range(count):
        words = []
        for _ in range(3):
            if rng.random() < 0.5:
                words.append("".join(rng.choice(CJK) for _ in range(3)))
            else:
                words.append("".join(rng.choice(ASCII) for _ in range(7)) + str(i))
        kind = i % 4
        condition = (
            Condition(any=tuple(words))
            if kind < 2
            else Condition(all=tuple(words[:2]))
            if kind == 2
            else Condition(any=tuple(words[:2]), none=(words[2],))
        )
        actions = Actions(
            type=("incident", "change", "request", "inspection")[i % 4],
            priority=f"P{i % 4}",
            group=None,
            tags=(f"t{i}",),
            # Half the rules let evaluation continue, so every hit rule really gets evaluated.
            stop=i % 2 == 1,
        )
        rules.append(Rule(f"rule-{i}", (condition,), actions))
    return rules


def ticket_text(rules: list[Rule], rng: random.Random) -> str:
    """About 10 KB of realistic prose with the keywords of the first HITS rules inside."""
    planted = [(r.conditions[0].any or r.conditions[0].all)[0] for r in rules[:HITS]]
    parts: list[str] = []
    while len("".join(parts).encode()) < TEXT_BYTES:
        parts.append(rng.choice(PARAGRAPHS))
        if planted and rng.random() < 0.5:
            parts.append(f" {planted.pop()} ")
    parts.extend(f" {w} " for w in planted)
    return "".join(parts).encode()[:TEXT_BYTES].decode(errors="ignore")


def measure(
    rulesets: dict[int, RuleSet], fields: dict[str, str], runs: int
) -> dict[int, list[float]]:
    """Milliseconds per classification. Sizes take turns within each round, so CPU frequency
    changes and neighbours on a shared machine affect every size alike."""
    samples: dict[int, list[float]] = {size: [] for size in rulesets}
    for round_ in range(runs + 50):
        for size, ruleset in rulesets.items():
            start = time.perf_counter_ns()
            classify(ruleset, fields)
            if round_ >= 50:  # the first rounds warm caches and the allocator
                samples[size].append((time.perf_counter_ns() - start) / 1e6)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    rng = random.Random(4)
    all_rules = synthetic_rules(max(SIZES), rng)
    text = ticket_text(all_rules, rng)
    fields = {"subject": "接口变慢 / checkout latency", "body": text}
    print(f"text: {len(text.encode())} bytes, {len(text)} characters; {args.runs} runs per size")
    print(f"{'rules':>7} {'compile ms':>11} {'median ms':>10} {'p90 ms':>8} {'matched':>8}")
    rulesets: dict[int, RuleSet] = {}
    compile_ms: dict[int, float] = {}
    for size in SIZES:
        start = time.perf_counter()
        rulesets[size] = compile_ruleset(all_rules[:size])
        compile_ms[size] = (time.perf_counter() - start) * 1e3
    samples = measure(rulesets, fields, args.runs)
    medians: dict[int, float] = {}
    for size in SIZES:
        ordered = sorted(samples[size])
        medians[size] = statistics.median(ordered)
        p90 = ordered[int(len(ordered) * 0.9) - 1]
        matched = len(classify(rulesets[size], fields).rules)
        print(
            f"{size:>7} {compile_ms[size]:>11.1f} {medians[size]:>10.3f} {p90:>8.3f} {matched:>8}"
        )
    ratio = medians[SIZES[-1]] / medians[SIZES[0]]
    ok = ratio <= 2 and medians[SIZES[-1]] < 1.0
    verdict = "met" if ok else "NOT met"
    label = f"{SIZES[-1]:,}/{SIZES[0]:,} rules"
    print(f"ratio {label} (median): {ratio:.2f}x; goal (<= 2x, < 1 ms) {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
