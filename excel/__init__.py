"""Excel integration: xlwings functions (=FINSENT, =FINSENT_SCORE, =FINSENT_PROBS) and their set-up."""
