"""What KB suggestions add to intake: group-commit batches of new tickets, in process.

Run: .venv/bin/python bench/bench_kb.py [--batches N] [--entries N]

Stores batches of eight brand-new mail tickets (the SMTP group-commit path, SQLite, default
rules) in the same run: suggestions off, on with an empty knowledge base, and on with
`--entries` entries in two vocabularies. "zipf": 3,000 words (Chinese and English) drawn
with Zipf weights, as real text is; "worst": 57 ops words drawn uniformly, so that every
term of a ticket occurs in about a third of all entries. Reports the time per message of
`process_batch` (classification, storage, commit with fsync) and of the suggestion statement
alone; the gap between the lines is what suggestions cost.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.config import DatabaseSettings, load_settings
from gateway.intake import Intake, Source
from gateway.kb import store
from gateway.kb.settings import KbSettings
from gateway.pipeline import Pipeline
from gateway.rules.holder import RulesHolder
from gateway.storage import migrate
from gateway.storage.db import Database

RULES = Path(__file__).resolve().parents[1] / "gateway" / "defaults" / "rules.yaml"
VOCABULARY = (
    "服务器 宕机 数据库 连接 超时 网络 中断 磁盘 空间 不足 内存 泄漏 证书 过期 负载 过高 权限 "
    "调整 备份 失败 订单 服务 接口 响应 变慢 日志 告警 交换机 端口 防火墙 策略 账号 锁定 "
    "mysql nginx redis kafka timeout disk full vpn token login backup failed latency "
    "certificate expired cpu memory leak replication lag dns resolve proxy gateway"
)
WORDS = VOCABULARY.split(" ")
BATCH = 8
HAN = (
    "服务器数据库网络磁盘内存日志告警接口订单支付用户权限账号备份证书负载延迟连接超时失败异常"
    "中断配置升级扩容迁移监控集群节点主从同步缓存队列消息端口防火墙交换机路由机房电源硬盘文件"
    "系统进程线程"
)


def zipf_words(rng: random.Random, n: int = 3000) -> tuple[list[str], list[float]]:
    words: set[str] = set()
    while len(words) < n:
        if rng.random() < 0.6:
            words.add("".join(rng.choice(HAN) for _ in range(rng.choice((2, 2, 3, 4)))))
        else:
            words.add(
                "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
            )
    ordered = sorted(words)
    rng.shuffle(ordered)
    return ordered, [1 / (rank + 1) ** 1.1 for rank in range(n)]


class Vocabulary:
    def __init__(self, kind: str, seed: int = 1) -> None:
        rng = random.Random(seed)
        if kind == "zipf":
            self.words, self.weights = zipf_words(rng)
        else:
            self.words, self.weights = WORDS, [1.0] * len(WORDS)

    def text(self, rng: random.Random, n: int) -> str:
        return " ".join(rng.choices(self.words, self.weights, k=n))


def run(db: Database, settings, vocabulary: Vocabulary, batches: int) -> tuple[float, float]:
    """Median ms per message of process_batch, and of the suggestion statement alone."""
    rng = random.Random(2)
    pipeline = Pipeline(db, settings, RulesHolder(RULES).classify)
    whole, lookup = [], []
    for b in range(batches):
        items = [
            (
                Intake(
                    source=Source.SMTP,
                    sender=f"user{i}@example.com",
                    subject=vocabulary.text(rng, 5) + f" host-{b}-{i}",
                    body=vocabulary.text(rng, 40),
                ),
                None,
            )
            for i in range(BATCH)
        ]
        with db.unit(readonly=True) as session:
            started = time.perf_counter()
            store.suggest_many(session, [f"{i.subject}\n{i.body[:300]}" for i, _ in items])
            lookup.append((time.perf_counter() - started) / BATCH)
        started = time.perf_counter()
        pipeline.process_batch(items)
        whole.append((time.perf_counter() - started) / BATCH)
    return statistics.median(whole) * 1000, statistics.median(lookup) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--entries", type=int, default=2000)
    args = parser.parse_args()
    base = load_settings(None, require_file=False)
    print(f"{'case':<32} {'process_batch':>14} {'suggestions':>12}  (ms per message)")
    for label, suggest, entries, kind in (
        ("suggestions off", False, 0, "zipf"),
        ("on, empty KB", True, 0, "zipf"),
        (f"on, {args.entries} entries, zipf", True, args.entries, "zipf"),
        (f"on, {args.entries} entries, worst", True, args.entries, "worst"),
    ):
        folder = tempfile.mkdtemp()
        settings = base.model_copy(
            update={
                "database": DatabaseSettings(url=f"sqlite:///{folder}/bench.db"),
                "kb": KbSettings(suggest=suggest),
            }
        )
        db = Database(settings.database)
        migrate.upgrade(db.engine)
        vocabulary = Vocabulary(kind)
        rng = random.Random(1)
        now = datetime.now(UTC)
        with db.unit() as session:
            for _ in range(entries):
                fields = {
                    "title": vocabulary.text(rng, 4),
                    "symptom": vocabulary.text(rng, 15),
                    "steps": vocabulary.text(rng, 20),
                    "solution": vocabulary.text(rng, 20),
                }
                session.add(store.new_entry(fields, "bench", now))
        whole, lookup = run(db, settings, vocabulary, args.batches)
        print(f"{label:<32} {whole:>14.3f} {lookup:>12.3f}")
        db.dispose()


if __name__ == "__main__":
    main()
