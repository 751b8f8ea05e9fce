"""What KB suggestions add to intake: group-commit batches of new tickets, in process.

Run: .venv/bin/python bench/bench_kb.py [--batches N] [--entries N]

Stores batches of eight brand-new mail tickets (the SMTP group-commit path, SQLite, default
rules) three ways in the same run: suggestions off, on with an empty knowledge base, and on
with `--entries` entries written from realistic ops vocabulary. Reports the store time per
message; the difference is the cost of the one UNION ALL suggestion statement per batch.
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


def run(db: Database, settings, batches: int, seed: int) -> float:
    rng = random.Random(seed)
    pipeline = Pipeline(db, settings, RulesHolder(RULES).classify)
    times = []
    for b in range(batches):
        items = [
            (
                Intake(
                    source=Source.SMTP,
                    sender=f"user{i}@example.com",
                    subject=" ".join(rng.sample(WORDS, 4)) + f" host-{b}-{i}",
                    body=" ".join(rng.sample(WORDS, 20)),
                ),
                None,
            )
            for i in range(BATCH)
        ]
        started = time.perf_counter()
        pipeline.process_batch(items)
        times.append((time.perf_counter() - started) / BATCH)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--entries", type=int, default=2000)
    args = parser.parse_args()
    base = load_settings(None, require_file=False)
    for label, suggest, entries in (
        ("suggestions off", False, args.entries),
        ("on, empty KB", True, 0),
        (f"on, {args.entries} entries", True, args.entries),
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
        rng = random.Random(1)
        now = datetime.now(UTC)
        with db.unit() as session:
            for _ in range(entries):
                fields = {
                    "title": " ".join(rng.sample(WORDS, 3)),
                    "symptom": " ".join(rng.sample(WORDS, 8)),
                    "solution": " ".join(rng.sample(WORDS, 12)),
                }
                session.add(store.new_entry(fields, "bench", now))
        per_message = run(db, settings, args.batches, seed=2)
        print(f"{label:<24} {per_message:.3f} ms per message (median of {args.batches} batches)")
        db.dispose()


if __name__ == "__main__":
    main()
