"""The local git connector: the user's own commits in local repositories."""
