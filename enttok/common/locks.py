"""Names of the job engine's locks that job types of several packages share."""

#: Held by every job that writes the vault index or rewrites the database
#: (index scan/update/rebuild/embed and database maintenance): one at a time.
INDEX_LOCK = "index"
