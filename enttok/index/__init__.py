"""The search index: full text (FTS5), vectors (hnswlib), and the jobs that keep them current."""
