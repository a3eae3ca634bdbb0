"""`finsent tune` (issue 21, in progress): fine-tuning on a desk's own labelled rows. So far: the training
data (examples), read as `finsent eval` reads a labelled file."""
