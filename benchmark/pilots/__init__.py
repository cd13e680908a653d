"""The pilot study of issue 39: CPU-sized settings, each a registered scale, measured for the paper's effect."""
