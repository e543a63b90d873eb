"""The job engine: types, persistent queue, workers, scheduler."""
