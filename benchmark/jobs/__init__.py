"""What one job does: make a poison (`poison`; stored and judged current by `poison_store`, or made elsewhere and
imported: `import_poison`), train and probe a victim (`victim`) on the split standing for a data set
(`splits`); seeds (`seeds`) and throughput (`perf`).

May import only the model (benchmark/*.py, data/), attacks/ and victims/; dispatch/, report/, parity/ and
cli/ import it.
"""
