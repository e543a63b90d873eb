"""Ordered schema upgrades, tracked in C{PRAGMA user_version}.

Version 1 is the schema of the original backend spec; each later step is
applied once, in order, inside a transaction.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: the spec's tables.
    """
    create table if not exists jobs (
      job_id text primary key,
      type text not null,
      status text not null,
      created_at text not null,
      updated_at text not null,
      progress real,
      message text,
      payload_json text,
      result_json text,
      error_json text
    );
    create table if not exists job_events (
      event_id integer primary key,
      job_id text not null references jobs(job_id),
      created_at text not null,
      level text not null,
      message text not null,
      meta_json text
    );
    create table if not exists sync_state (
      connector text primary key,
      cursor text,
      last_sync_at text
    );
    """,
    # 2: the job engine's bookkeeping.
    """
    alter table jobs add column attempts integer not null default 0;
    alter table jobs add column payload_key text;
    alter table jobs add column seq integer;
    update jobs set seq = rowid;
    create unique index jobs_seq on jobs(seq);
    create index jobs_status on jobs(status, type);
    create index jobs_type on jobs(type);
    create index job_events_job on job_events(job_id, event_id);
    create table meta (key text primary key, value text not null);
    """,
    # 3: the vault index (notes, chunks, embeddings, full text).
    """
    create table notes (
      note_id integer primary key,
      path text not null unique,
      size integer not null,
      mtime_ns integer not null,
      content_hash text not null,
      title text not null,
      note_date text,
      tags_json text not null default '[]',
      links_json text not null default '[]',
      tasks_json text not null default '[]',
      frontmatter_json text not null default '{}',
      indexed_hash text,
      updated_at text not null
    );
    create index notes_date on notes(note_date);
    create table note_tags (
      tag text not null,
      note_id integer not null references notes(note_id) on delete cascade,
      primary key (tag, note_id)
    ) without rowid;
    create table chunks (
      chunk_id integer primary key autoincrement,
      note_id integer not null references notes(note_id) on delete cascade,
      ordinal integer not null,
      heading_path text not null,
      text text not null,
      content_hash text not null,
      token_count integer not null,
      embed_text text not null
    );
    create index chunks_note on chunks(note_id, ordinal);
    create index chunks_hash on chunks(content_hash);
    create table embeddings (
      content_hash text not null,
      model_id text not null,
      vector blob not null,
      primary key (content_hash, model_id)
    ) without rowid;
    create virtual table chunk_fts using fts5(
      title, heading, body, tokenize = 'porter unicode61 remove_diacritics 2'
    );
    """,
    # 4: activity from connectors (GitHub), and HTTP validators for conditional requests.
    """
    create table activity (
      item_id integer primary key,
      identity text not null unique,
      workspace text not null,
      source text not null,
      kind text not null,
      repo text,
      number integer,
      title text,
      url text,
      occurred_at text not null,
      raw_json text not null,
      updated_at text not null
    );
    create index activity_time on activity(workspace, occurred_at);
    create table http_cache (
      url text primary key,
      etag text not null,
      updated_at text not null
    );
    """,
    # 5: the latest suggestions for each day.
    """
    create table suggestions (
      note_date text primary key,
      job_id text not null,
      created_at text not null,
      result_json text not null
    );
    """,
]

LATEST = len(MIGRATIONS)


class SchemaTooNew(Exception):
    """The database was written by a newer enttok than this one."""


def current_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("pragma user_version").fetchone()[0]
    return version


def migrate(conn: sqlite3.Connection, migrations: list[str] = MIGRATIONS) -> int:
    """
    Bring the schema up to date and return the number of steps applied.

    @raise SchemaTooNew: when the database's version is above the latest known.
    """
    version = current_version(conn)
    if version > len(migrations):
        raise SchemaTooNew(
            f"database schema version {version} is newer than this enttok "
            f"(knows up to {len(migrations)}); upgrade enttok")
    for number, script in enumerate(migrations[version:], start=version + 1):
        conn.execute("begin immediate")
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"pragma user_version = {number}")
            conn.execute("commit")
        except BaseException:
            conn.execute("rollback")
            raise
    return len(migrations) - version


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
