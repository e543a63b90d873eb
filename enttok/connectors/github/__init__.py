"""The GitHub connector: incremental, paginated, rate-limit aware sync with treq."""
