"""The store's schema and its migrations.

``MIGRATIONS[n]`` takes a store from schema ``n - 1`` to ``n``. A new store runs all of them in
order, an old one runs the ones it lacks, each inside the same transaction as the version bump, so
a store is never left half-migrated.
"""

from __future__ import annotations

import re
from typing import NamedTuple

APPLICATION = "pytest-teach"

#: The backends a store can live on.
BACKENDS = ("sqlite", "postgresql")


class Only(NamedTuple):
    """A migration statement for one backend only."""

    backend: str
    sql: str


#: One schema for both backends, written in SQLite's spelling; :func:`statements` renders it
#: for PostgreSQL (REAL is DOUBLE PRECISION, AUTOINCREMENT is BIGSERIAL, BLOB is BYTEA).
MIGRATIONS: dict[int, tuple[str | Only, ...]] = {
    1: (
        """CREATE TABLE IF NOT EXISTS meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )""",
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            started_at REAL NOT NULL,
            finished_at REAL,
            git_commit TEXT,
            argv TEXT NOT NULL DEFAULT '[]',
            version TEXT NOT NULL,
            rootdir TEXT,
            exit_status INTEGER
        )""",
        """CREATE TABLE episodes (
            id TEXT PRIMARY KEY,
            session_id TEXT REFERENCES sessions(id),
            nodeid TEXT NOT NULL,
            scenario TEXT NOT NULL,
            category TEXT,
            model TEXT,
            arm TEXT,
            params TEXT NOT NULL DEFAULT '{}',
            meta TEXT NOT NULL DEFAULT '{}',
            outcome TEXT NOT NULL CHECK (outcome IN ('success', 'intervention', 'error')),
            label INTEGER CHECK (label IN (0, 1)),
            label_reason TEXT,
            reward REAL,
            reward_components TEXT NOT NULL DEFAULT '{}',
            quality REAL,
            metrics TEXT NOT NULL DEFAULT '{}',
            duration_s REAL,
            error TEXT,
            worker TEXT,
            created_at REAL NOT NULL
        )""",
        # few indexes: each one costs every recorded test a page write
        "CREATE INDEX episodes_session ON episodes(session_id)",
        """CREATE TABLE steps (
            episode_id TEXT NOT NULL REFERENCES episodes(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            observation TEXT,
            action TEXT,
            messages TEXT,
            valid_actions TEXT,
            probs TEXT,
            entropy REAL,
            label TEXT CHECK (label IN ('good', 'bad')),
            correction TEXT,
            screenshot TEXT,
            error TEXT,
            PRIMARY KEY (episode_id, idx)
        ) WITHOUT ROWID""",
        """CREATE TABLE labels (
            episode_id TEXT NOT NULL REFERENCES episodes(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            reason TEXT,
            PRIMARY KEY (episode_id, seq)
        ) WITHOUT ROWID""",
        """CREATE TABLE feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            episode_id TEXT NOT NULL REFERENCES episodes(id) ON DELETE CASCADE,
            step_idx INTEGER,
            rating INTEGER CHECK (rating BETWEEN 1 AND 5),
            aspects TEXT NOT NULL DEFAULT '{}',
            comment TEXT,
            suggested_action TEXT,
            correct_action TEXT,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX feedback_episode ON feedback(episode_id)",
        """CREATE TABLE artifacts (
            sha256 TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            media_type TEXT NOT NULL,
            relpath TEXT NOT NULL
        )""",
        """CREATE TABLE episode_artifacts (
            episode_id TEXT NOT NULL REFERENCES episodes(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            sha256 TEXT NOT NULL REFERENCES artifacts(sha256),
            PRIMARY KEY (episode_id, name)
        )""",
    ),
    2: (
        # the improvement pipeline (pytest_teach.pipeline): a job turns a scope of the store into
        # training data, training runs on a trainer service fine-tune on it, and registered
        # models are the specialists those runs produced
        """CREATE TABLE improvement_jobs (
            id TEXT PRIMARY KEY,
            agent TEXT NOT NULL,
            scope TEXT NOT NULL DEFAULT '{}',
            strategy TEXT NOT NULL CHECK (strategy IN ('from_feedback', 'from_runs')),
            status TEXT NOT NULL CHECK (status IN ('created', 'data_ready', 'training',
                'trained', 'registered', 'failed', 'cancelled')),
            dataset_path TEXT,
            labeled_path TEXT,
            stats TEXT NOT NULL DEFAULT '{}',
            note TEXT,
            error TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE training_runs (
            run_id TEXT PRIMARY KEY,
            job_id TEXT NOT NULL REFERENCES improvement_jobs(id) ON DELETE CASCADE,
            trainer_url TEXT NOT NULL,
            backend TEXT,
            dataset_ref TEXT NOT NULL,
            base_model TEXT,
            params TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed')),
            output_model_ref TEXT,
            metrics TEXT NOT NULL DEFAULT '{}',
            error TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE INDEX training_runs_job ON training_runs(job_id)",
        """CREATE TABLE registered_models (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            agent TEXT NOT NULL,
            path TEXT NOT NULL,
            kind TEXT NOT NULL,
            spec TEXT,
            base_model TEXT,
            job_id TEXT REFERENCES improvement_jobs(id) ON DELETE SET NULL,
            run_id TEXT REFERENCES training_runs(run_id) ON DELETE SET NULL,
            metrics TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX registered_models_agent ON registered_models(agent, created_at)",
    ),
    3: (
        # the intervention predictor's probability for the step, when a run was scored live
        # (pytest --intervention-predictor); NULL for steps recorded without one
        "ALTER TABLE steps ADD COLUMN intervention_p REAL",
    ),
    4: (
        # the team store: on PostgreSQL artifacts live in the database, content-addressed and
        # chunked (streamed both ways); SQLite keeps them as files under artifacts/
        Only(
            "postgresql",
            """CREATE TABLE artifact_chunks (
                sha256 TEXT NOT NULL,
                seq INTEGER NOT NULL,
                data BLOB NOT NULL,
                PRIMARY KEY (sha256, seq)
            )""",
        ),
        # SQLite's implicit rowid, which orders episodes and records by insertion
        Only("postgresql", "ALTER TABLE episodes ADD COLUMN rowid BIGSERIAL"),
        Only("postgresql", "CREATE UNIQUE INDEX episodes_rowid ON episodes(rowid)"),
        Only("postgresql", "ALTER TABLE improvement_jobs ADD COLUMN rowid BIGSERIAL"),
        Only("postgresql", "ALTER TABLE training_runs ADD COLUMN rowid BIGSERIAL"),
        Only("postgresql", "ALTER TABLE registered_models ADD COLUMN rowid BIGSERIAL"),
    ),
    5: (
        # the viewer's filters on a store of millions: each index holds the row's position, so
        # a page of one outcome, model or scenario (newest first) reads its 50 rows and its
        # count reads the index, not the table
        "CREATE INDEX episodes_outcome ON episodes(outcome)",
        "CREATE INDEX episodes_model ON episodes(model)",
        "CREATE INDEX episodes_scenario ON episodes(scenario)",
    ),
    6: (
        # `teach stats` counts by these columns in one pass over this index (SQLite reads it in
        # order, with no sort of the table); filtered by model it reads a range of it
        "CREATE INDEX episodes_stats ON episodes(model, outcome, label, category, scenario)",
        # SQLite's indexes end in the rowid, so one session's (or outcome's, model's, scenario's)
        # episodes come from them in insertion order, page after page; PostgreSQL's indexes
        # need the column to give the same order without sorting every match for each page
        Only("postgresql", "DROP INDEX episodes_session"),
        Only("postgresql", "CREATE INDEX episodes_session ON episodes(session_id, rowid)"),
        Only("postgresql", "DROP INDEX episodes_outcome"),
        Only("postgresql", "CREATE INDEX episodes_outcome ON episodes(outcome, rowid)"),
        Only("postgresql", "DROP INDEX episodes_model"),
        Only("postgresql", "CREATE INDEX episodes_model ON episodes(model, rowid)"),
        Only("postgresql", "DROP INDEX episodes_scenario"),
        Only("postgresql", "CREATE INDEX episodes_scenario ON episodes(scenario, rowid)"),
    ),
    7: (
        # each episode carries its step count, so `teach stats` counts steps in the same pass
        # over episodes_stats instead of reading the steps table
        "ALTER TABLE episodes ADD COLUMN n_steps INTEGER",
        "UPDATE episodes SET n_steps = "
        "(SELECT COUNT(*) FROM steps WHERE steps.episode_id = episodes.id)",
        "DROP INDEX episodes_stats",
        "CREATE INDEX episodes_stats ON episodes(model, outcome, label, category, scenario, "
        "n_steps)",
    ),
}

SCHEMA_VERSION = max(MIGRATIONS)


_POSTGRES_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\)\s*WITHOUT ROWID\s*$"), ")"),
)


def render(migration: tuple[str | Only, ...], backend: str) -> list[str]:
    """A migration's statements as ``backend`` (``sqlite`` or ``postgresql``) runs them."""
    out: list[str] = []
    for entry in migration:
        if isinstance(entry, Only):
            if entry.backend != backend:
                continue
            entry = entry.sql
        if backend == "postgresql":
            for pattern, replacement in _POSTGRES_TYPES:
                entry = pattern.sub(replacement, entry)
        out.append(entry)
    return out
