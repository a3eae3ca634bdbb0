"""Label quality: gold labels as people have them (gold_labels), the metrics (metrics), `finsent eval`'s
run over a labelled file (evaluation) and what it writes (report). Imports jobs, engine and leaves."""
