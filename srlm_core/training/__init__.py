"""Training with TRL: trainer arguments, resumable runs and metrics (`trainer`), multi-process
launch (`launch`) and DPO checkpoint selection (`selection`)."""
