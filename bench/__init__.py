"""Named benchmarks: `python -m bench NAME --n N` prints one JSON object on its last line."""
