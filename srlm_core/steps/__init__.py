"""One module per DVC stage, named as the stage: each `run()` reads its inputs, does the stage's work
with the modules of the other packages and writes its outputs. No step imports another."""
